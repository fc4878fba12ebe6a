#pragma once
/// \file
/// The fused multi-kernel forward with int8 activations:
///
///     y(i, :) = sum_k s_out_k (.) (B_k (x(i, :) (.) s_in_k))        i < t, over all K kernels
///
/// Each kernel's input x (.) s_in_k is quantized per token to int8 (activations.hpp), the
/// +-1 product runs in exact int32 on the active ISA (`ProductSet::sign_gemm_i8`), and the
/// result is scaled by the token's quantization scale and s_out_k and summed over kernels
/// while the int32 block is still in cache. t = 1 is the decode GEMV, t > 1 the prefill GEMM.
///
/// Two algorithms compute the same exact int32 products (products.hpp): the masked product
/// (`ProductSet::sign_gemm_i8`, no preparation) and the table-lookup product (weights repacked
/// once into an `Int8PreparedWeights`, per-token tables built by `prepare_int8_forward`). The
/// overloads taking `Int8PreparedWeights` pick per ISA and token count (`Int8Algorithm`:
/// automatic = LUT for t <= ProductSet::lut_max_tokens(), the masked product above), or run the
/// one asked for; the overloads without it run the masked product.
///
/// Ways to call it:
/// - `multi_kernel_forward_int8(w, pw, x, ldx, t, y, ldy, workspace)`: prepares and runs on
///   the default `parallel_for` in one call, reusing the workspace (the decode path:
///   `BooleanLinear::forward_int8` calls it); `multi_kernel_forward_int8(w, x, ldx, t, y, ldy)`
///   without prepared weights runs the masked product;
/// - `prepare_int8_forward(w, [pw,] x, ldx, t, workspace)` once, then
///   `multi_kernel_forward_int8_range(w, [pw,] workspace, y, ldy, j0, j1)` for output features
///   [j0, j1) from a host engine's own threads (the workspace is read-only there).
///
/// Accuracy: per token and kernel, |v - scale q| <= scale / 2 elementwise (v = x (.) s_in_k,
/// scale = max|v| / 127), so |y_ij - exact_ij| <= sum_k |s_out_k(j)| scale_k(i) n / 2 at
/// worst, plus float rounding of the final scaling; typical errors are about sqrt(n) times
/// smaller. Exact int32 accumulation needs n <= kMaxInt8Features (2^24 - 1).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "activations.hpp"
#include "bit_matrix.hpp"
#include "error.hpp"
#include "multi_kernel_weights.hpp"
#include "parallel.hpp"
#include "products.hpp"

namespace mbok {

/// Which int8 product the fused forward runs.
enum class Int8Algorithm {
  automatic,  ///< the faster one for this ISA and token count
  masked,     ///< ProductSet::sign_gemm_i8
  lut,        ///< ProductSet::sign_gemm_i8_lut (table lookup)
};

/// The K kernels of a `MultiKernelWeights` repacked for the table-lookup product of one
/// `ProductSet` (its ISA's layout), built once per weight matrix (about the size of the bits).
/// Pass it with the same weights to the forward overloads below; the scales stay in the
/// weights. Move-only.
class Int8PreparedWeights {
 public:
  Int8PreparedWeights() = default;
  /// Repacks every kernel of `w` for `kernels`. Throws `InvalidArgument` for n >
  /// kMaxInt8Features.
  explicit Int8PreparedWeights(const MultiKernelWeights<float>& w,
                               const ProductSet& products = ProductSet())
      : products_(products), rows_(w.out_features()), cols_(w.in_features()) {
    lut_.reserve(w.num_kernels());
    for (std::size_t k = 0; k < w.num_kernels(); ++k)
      lut_.push_back(products.prepare_lut(w.kernel_view(k)));
  }
  /// Kernels already repacked (`ProductSet::prepare_lut` / `adopt_lut` of `kernels`), all of
  /// one shape. Throws `InvalidArgument` for none, mixed shapes, or another ISA's packing.
  Int8PreparedWeights(std::vector<Int8LutWeights> packed, const ProductSet& products)
      : products_(products), lut_(std::move(packed)) {
    detail::require(!lut_.empty(), "Int8PreparedWeights: no kernels");
    rows_ = lut_[0].rows();
    cols_ = lut_[0].cols();
    for (std::size_t k = 0; k < lut_.size(); ++k) {
      detail::require(lut_[k].rows() == rows_ && lut_[k].cols() == cols_,
                      "Int8PreparedWeights: kernel ", k, " is ", lut_[k].rows(), " x ",
                      lut_[k].cols(), ", kernel 0 ", rows_, " x ", cols_);
      detail::require(lut_[k].isa() == products.isa() && lut_[k].layout() == products.lut_layout(),
                      "Int8PreparedWeights: kernel ", k, " was packed for ",
                      isa_name(lut_[k].isa()), ", not ", isa_name(products.isa()));
    }
  }
  /// The kernels it was packed for; the forward runs on these.
  const ProductSet& products() const noexcept { return products_; }
  std::size_t num_kernels() const noexcept { return lut_.size(); }
  std::size_t out_features() const noexcept { return rows_; }
  std::size_t in_features() const noexcept { return cols_; }
  /// Kernel k's repacked bits.
  const Int8LutWeights& kernel(std::size_t k) const {
    detail::require(k < lut_.size(), "Int8PreparedWeights: kernel ", k, " of ", lut_.size());
    return lut_[k];
  }

 private:
  ProductSet products_;
  std::vector<Int8LutWeights> lut_;
  std::size_t rows_ = 0, cols_ = 0;
};

namespace detail {
struct Int8Forward;
}

/// The quantized inputs of one forward call: one `QuantizedActivations` per kernel. Reuse
/// one workspace across calls to avoid reallocating.
class Int8ForwardWorkspace {
 public:
  /// Number of tokens prepared.
  std::size_t tokens() const noexcept { return tokens_; }
  /// Number of kernels prepared.
  std::size_t num_kernels() const noexcept { return kernels_; }
  /// The algorithm prepared: `lut` when the tables were built, else `masked`.
  Int8Algorithm algorithm() const noexcept {
    return lut_ ? Int8Algorithm::lut : Int8Algorithm::masked;
  }
  /// Kernel k's quantized input x (.) s_in_k.
  const QuantizedActivations& input(std::size_t k) const {
    detail::require(k < kernels_, "Int8ForwardWorkspace: kernel ", k,
                    " not prepared (K = ", kernels_, ")");
    return inputs_[k];
  }

 private:
  friend struct detail::Int8Forward;
  std::vector<QuantizedActivations> inputs_;
  std::vector<Int8LutTables> tables_;
  bool lut_ = false;
  std::size_t tokens_ = 0;
  std::size_t kernels_ = 0;
  std::size_t cols_ = 0;
  // The other threads' own preparations of the same input in the one-call forward (one per
  // chunk after the first): every thread then reads tables it wrote itself.
  std::vector<Int8ForwardWorkspace> copies_;
};

namespace detail {

// Output rows per block of the fused forward, and a stack buffer for the int32 block (t x
// rows) so that the per-call path allocates nothing for t <= 256: the block stays in L1/L2
// between the product that writes it and the scaling that reads it.
inline constexpr std::size_t kInt8BlockInts = 4096;
inline std::size_t int8_block_rows(std::size_t t) noexcept {
  return std::clamp<std::size_t>((kInt8BlockInts / std::max<std::size_t>(t, 1)) / 16 * 16, 16, 256);
}

// y(i, jb + j) (+)= block(i, j) * scale(i0 + i) * s_out(jb + j) for i < t, j < nr (token
// i of the block is token i0 + i of q).
inline void int8_scale_block(const std::int32_t* block, std::size_t t, std::size_t nr,
                             const QuantizedActivations& q, std::size_t i0, const float* so,
                             float* y, std::size_t ldy, bool first) noexcept {
  for (std::size_t i = 0; i < t; ++i) {
    const float a = q.scale(i0 + i);
    const std::int32_t* bi = block + i * nr;
    float* yi = y + i * ldy;
    if (first)
      for (std::size_t j = 0; j < nr; ++j) yi[j] = static_cast<float>(bi[j]) * a * so[j];
    else
      for (std::size_t j = 0; j < nr; ++j) yi[j] += static_cast<float>(bi[j]) * a * so[j];
  }
}

// An int32 block of t x rows: on the stack up to kInt8BlockInts, else on the heap.
class Int8Block {
 public:
  explicit Int8Block(std::size_t ints) {
    if (ints > kInt8BlockInts) {
      heap_.resize(ints);
      data_ = heap_.data();
    }
  }
  std::int32_t* data() noexcept { return data_; }

 private:
  std::int32_t stack_[kInt8BlockInts];
  std::vector<std::int32_t> heap_;
  std::int32_t* data_ = stack_;
};

// Least work per thread of the prepared forward, in 64-weight words x tokens x kernels. With
// threads that spin a while before sleeping (the OpenMP runtimes' default) a split costs about
// 1 us, so 2^15 words (2 Mi weights, about 8 us of the avx512 LUT GEMV) is enough. Waking a
// sleeping thread (threads_wait_passively()) costs tens of microseconds on a virtual machine,
// so then only products of 2^18 words (16 Mi weights, about 60 us) are split (docs/decode.md).
inline constexpr std::size_t kInt8MinWordsPerThread = std::size_t{1} << 15;
inline constexpr std::size_t kInt8MinWordsPerWokenThread = std::size_t{1} << 18;

// parallel_for's grain in rows for the prepared forward of t tokens, n features, K kernels.
inline std::size_t int8_forward_grain(std::size_t t, std::size_t n, std::size_t kernels) {
  return std::max<std::size_t>(
      64, grain_for_cost(t * padded_row_words(n) * kernels, kInt8MinWordsPerThread,
                         kInt8MinWordsPerWokenThread));
}

// Most tokens for which every thread of the one-call forward prepares its own tables (t x 8
// bytes per feature and kernel): decode and small batches. Beyond it one preparation is
// shared, its cost spread over t times more product work.
inline constexpr std::size_t kInt8OwnTablesMaxTokens = 8;

// The fused int8 forward's steps, for any weights W that give num_kernels(), out_features(),
// in_features(), s_in(k) and s_out(k) (`MultiKernelWeights<float>`, `PackedLinear`); the
// masked product also needs W::kernel_view(k). The `check_*` functions are the entrances'
// checks; the steps after them trust their operands (each is checked once per call, not
// once per thread or block).
struct Int8Forward {
  template <class W>
  static void check_input(const W& w, const float* x, std::size_t ldx, std::size_t t) {
    const std::size_t n = w.in_features();
    require(w.num_kernels() > 0, "multi_kernel_forward_int8: weights have no kernels");
    require(n <= kMaxInt8Features, "multi_kernel_forward_int8: ", n,
            " input features exceed the exact int32 limit of ", kMaxInt8Features);
    require(ldx >= n, "multi_kernel_forward_int8: ldx ", ldx, " < input features ", n);
    require(t == 0 || x != nullptr, "multi_kernel_forward_int8: null input");
    require_addressable(t, ldx, n, sizeof(float), "multi_kernel_forward_int8: input");
  }
  template <class W>
  static void check_prepared(const W& w, const Int8PreparedWeights& pw,
                             const char* what = "multi_kernel_forward_int8") {
    require(pw.num_kernels() == w.num_kernels() && pw.out_features() == w.out_features() &&
                pw.in_features() == w.in_features(),
            what, ": prepared weights (", pw.num_kernels(), " kernels, ", pw.out_features(), " x ",
            pw.in_features(), ") do not match the weights (", w.num_kernels(), " kernels, ",
            w.out_features(), " x ", w.in_features(), ")");
  }
  template <class W>
  static void check_workspace(const W& w, const Int8ForwardWorkspace& ws) {
    require(ws.kernels_ == w.num_kernels() && ws.kernels_ > 0,
            "multi_kernel_forward_int8: workspace prepared for ", ws.kernels_,
            " kernels, weights have ", w.num_kernels());
    require(ws.tokens_ == 0 || ws.cols_ == w.in_features(),
            "multi_kernel_forward_int8: workspace prepared for ", ws.cols_,
            " input features, weights have ", w.in_features());
  }
  static void check_output(std::size_t m, std::size_t t, const float* y, std::size_t ldy,
                           std::size_t j0, std::size_t j1) {
    require(ldy >= m, "multi_kernel_forward_int8: ldy ", ldy, " < output features ", m);
    require(j0 <= j1 && j1 <= m, "multi_kernel_forward_int8: range [", j0, ", ", j1,
            ") out of [0, ", m, ")");
    require(t == 0 || y != nullptr, "multi_kernel_forward_int8: null output");
    require_addressable(t, ldy, m, sizeof(float), "multi_kernel_forward_int8: output");
  }

  // Quantizes x (.) s_in_k per kernel into ws (a non-finite value throws on its way).
  template <class W>
  static void quantize(const W& w, const ProductSet& products, const float* x, std::size_t ldx,
                       std::size_t t, Int8ForwardWorkspace& ws) {
    const std::size_t k_count = w.num_kernels();
    if (ws.inputs_.size() < k_count) ws.inputs_.resize(k_count);
    for (std::size_t k = 0; k < k_count; ++k)
      products.quantize_activations(x, ldx, t, w.in_features(), ws.inputs_[k], w.s_in(k).data());
    ws.tokens_ = t;
    ws.kernels_ = k_count;
    ws.cols_ = w.in_features();
    ws.lut_ = false;
  }
  // Quantizes, then builds each kernel's tables for the LUT product of `kernels`.
  template <class W>
  static void quantize_with_tables(const W& w, const ProductSet& products, const float* x,
                                   std::size_t ldx, std::size_t t, Int8ForwardWorkspace& ws) {
    quantize(w, products, x, ldx, t, ws);
    if (ws.tables_.size() < ws.kernels_) ws.tables_.resize(ws.kernels_);
    for (std::size_t k = 0; k < ws.kernels_; ++k)
      products.build_lut_tables(ws.inputs_[k], ws.tables_[k]);
    ws.lut_ = true;
  }

  // Rows [j0, j1) by the masked product of the bits.
  template <class W>
  static void masked_rows(const W& w, const ProductSet& products, const Int8ForwardWorkspace& ws,
                          float* y, std::size_t ldy, std::size_t j0, std::size_t j1) {
    const std::size_t t = ws.tokens_;
    if (t == 0 || j0 == j1) return;
    const std::size_t rows = int8_block_rows(t);
    Int8Block block(t * rows);
    for (std::size_t jb = j0; jb < j1; jb += rows) {
      const std::size_t nr = std::min(rows, j1 - jb);
      for (std::size_t k = 0; k < ws.kernels_; ++k) {
        const QuantizedActivations& q = ws.inputs_[k];
        const BitMatrixView bk = w.kernel_view(k).middle_rows(jb, nr);
        products.table().sign_gemm_i8(q.data(), q.ld(), t, bk, block.data(), nr, 0, nr);
        int8_scale_block(block.data(), t, nr, q, 0, w.s_out(k).data() + jb, y + jb, ldy, k == 0);
      }
    }
  }

  // Rows [j0, j1) by the table lookup over the repacked weights (ws holds tables).
  template <class W>
  static void lut_rows(const W& w, const Int8PreparedWeights& pw, const Int8ForwardWorkspace& ws,
                       float* y, std::size_t ldy, std::size_t j0, std::size_t j1) {
    const std::size_t t = ws.tokens_;
    if (t == 0 || j0 == j1) return;
    const ProductTable& table = pw.products().table();
    // Tokens in blocks whose tables stay in L2 while the rows pass over them (many tokens'
    // tables together exceed it), rows in blocks whose int32 results stay in L1/L2.
    const std::size_t tokens = std::clamp<std::size_t>(
        kLutTableBlockBytes / std::max<std::size_t>(ws.tables_[0].view().ld, 1), 1, t);
    const std::size_t rows = int8_block_rows(tokens);
    Int8Block block(tokens * rows);
    for (std::size_t i0 = 0; i0 < t; i0 += tokens) {
      const std::size_t tn = std::min(tokens, t - i0);
      // Blocks start on tile boundaries (after the first), so only the range's ends split tiles.
      for (std::size_t jb = j0; jb < j1;) {
        const std::size_t je = std::min(j1, (jb / rows + 1) * rows);
        const std::size_t nr = je - jb;
        for (std::size_t k = 0; k < ws.kernels_; ++k) {
          LutTablesView x = ws.tables_[k].view();
          x.data += i0 * x.ld;
          x.base += i0;
          x.tokens = tn;
          // Rows [jb, je) of tokens [i0, i0 + tn) land at block[i * nr + j - jb].
          lut_product(table, tn)(x, pw.kernel(k).view(), block.data(), nr, jb, je);
          int8_scale_block(block.data(), tn, nr, ws.inputs_[k], i0, w.s_out(k).data() + jb,
                           y + i0 * ldy + jb, ldy, k == 0);
        }
        jb = je;
      }
    }
  }

  // Whether W holds bits (the masked product's operand); weights held only repacked always
  // run the table lookup.
  template <class W, class = void>
  struct HasBits : std::false_type {};
  template <class W>
  struct HasBits<W, std::void_t<decltype(std::declval<const W&>().kernel_view(0))>>
      : std::true_type {};

  // Rows [j0, j1) by the algorithm ws was prepared for.
  template <class W>
  static void rows(const W& w, const Int8PreparedWeights& pw, const Int8ForwardWorkspace& ws,
                   float* y, std::size_t ldy, std::size_t j0, std::size_t j1) {
    if constexpr (HasBits<W>::value) {
      if (!ws.lut_) {
        masked_rows(w, pw.products(), ws, y, ldy, j0, j1);
        return;
      }
    }
    lut_rows(w, pw, ws, y, ldy, j0, j1);
  }

  // All rows of a prepared workspace on the default parallel_for.
  template <class W>
  static void all_rows(const W& w, const Int8PreparedWeights& pw, const Int8ForwardWorkspace& ws,
                       float* y, std::size_t ldy) {
    const std::size_t grain = int8_forward_grain(ws.tokens_, w.in_features(), w.num_kernels());
    parallel_for(
        0, w.out_features(), grain,
        [&](std::size_t j0, std::size_t j1) { rows(w, pw, ws, y, ldy, j0, j1); }, 16);
  }

  // The one-call forward (operands checked): with the table lookup and t <= 8 tokens, every
  // thread quantizes x and builds the tables itself (ws keeps one copy per thread) and then
  // computes its rows; otherwise one preparation, rows split across threads.
  template <class W>
  static void run(const W& w, const Int8PreparedWeights& pw, const float* x, std::size_t ldx,
                  std::size_t t, float* y, std::size_t ldy, Int8ForwardWorkspace& ws, bool lut) {
    auto prepare = [&](Int8ForwardWorkspace& into) {
      if (lut)
        quantize_with_tables(w, pw.products(), x, ldx, t, into);
      else
        quantize(w, pw.products(), x, ldx, t, into);
    };
    const std::size_t grain = int8_forward_grain(t, w.in_features(), w.num_kernels());
    const std::size_t chunks = parallel_chunk_count(0, w.out_features(), grain, 16);
    if (!lut || t > kInt8OwnTablesMaxTokens || chunks <= 1) {
      prepare(ws);
      all_rows(w, pw, ws, y, ldy);
      return;
    }
    if (ws.copies_.size() < chunks - 1) ws.copies_.resize(chunks - 1);
    parallel_for(
        0, w.out_features(), grain,
        [&](std::size_t j0, std::size_t j1, std::size_t c) {
          Int8ForwardWorkspace& own = c == 0 ? ws : ws.copies_[c - 1];
          prepare(own);
          lut_rows(w, pw, own, y, ldy, j0, j1);
        },
        16);
  }
};

// Whether the forward of t tokens runs the table lookup (`Int8Algorithm::automatic`: for
// t <= lut_max_tokens() of the prepared weights' ISA).
inline bool int8_uses_lut(const Int8PreparedWeights& pw, std::size_t t,
                          Int8Algorithm algorithm) noexcept {
  return algorithm == Int8Algorithm::lut ||
         (algorithm == Int8Algorithm::automatic && t <= pw.products().lut_max_tokens());
}

}  // namespace detail

/// Quantizes x (t tokens of w.in_features() floats, row i at x + i * ldx) once per kernel
/// into `ws`. Throws `InvalidArgument` for K = 0, ldx < n, n > kMaxInt8Features, a null x
/// with t > 0, or a non-finite x (s_in) value.
inline void prepare_int8_forward(const MultiKernelWeights<float>& w, const float* x,
                                 std::size_t ldx, std::size_t t, Int8ForwardWorkspace& ws) {
  detail::Int8Forward::check_input(w, x, ldx, t);
  detail::Int8Forward::quantize(w, ProductSet(), x, ldx, t, ws);
}

/// Quantizes x like the overload above and, when the table-lookup product is chosen
/// (`algorithm`; automatic: t <= pw.products().lut_max_tokens()), builds each kernel's tables
/// (8 bytes per feature, token and kernel, kept in `ws`). Throws `InvalidArgument` as the
/// overload above, and when `pw` was not prepared from weights of this shape and K.
inline void prepare_int8_forward(const MultiKernelWeights<float>& w, const Int8PreparedWeights& pw,
                                 const float* x, std::size_t ldx, std::size_t t,
                                 Int8ForwardWorkspace& ws,
                                 Int8Algorithm algorithm = Int8Algorithm::automatic) {
  detail::Int8Forward::check_prepared(w, pw);
  detail::Int8Forward::check_input(w, x, ldx, t);
  if (detail::int8_uses_lut(pw, t, algorithm))
    detail::Int8Forward::quantize_with_tables(w, pw.products(), x, ldx, t, ws);
  else
    detail::Int8Forward::quantize(w, pw.products(), x, ldx, t, ws);
}

/// Output features [j0, j1) of every token: y(i, j) for i < ws.tokens(), row stride `ldy`
/// floats; the other columns of y are not touched. Runs on the calling thread.
/// Throws `InvalidArgument` when `ws` was not prepared for these weights' K and shape, for
/// ldy < m, a null y, or a range outside [0, m).
inline void multi_kernel_forward_int8_range(const MultiKernelWeights<float>& w,
                                            const Int8ForwardWorkspace& ws, float* y,
                                            std::size_t ldy, std::size_t j0, std::size_t j1,
                                            const ProductSet& products = ProductSet()) {
  detail::Int8Forward::check_workspace(w, ws);
  detail::Int8Forward::check_output(w.out_features(), ws.tokens(), y, ldy, j0, j1);
  detail::Int8Forward::masked_rows(w, products, ws, y, ldy, j0, j1);
}

/// All output features of a prepared workspace, on the default `parallel_for` (rows of y
/// split across threads).
inline void multi_kernel_forward_int8(const MultiKernelWeights<float>& w,
                                      const Int8ForwardWorkspace& ws, float* y, std::size_t ldy,
                                      const ProductSet& products = ProductSet()) {
  detail::Int8Forward::check_workspace(w, ws);
  detail::Int8Forward::check_output(w.out_features(), ws.tokens(), y, ldy, 0, w.out_features());
  const std::size_t m = w.out_features();
  const std::size_t words = padded_row_words(w.in_features());
  const std::size_t per_row = std::max<std::size_t>(1, ws.tokens() * words * w.num_kernels());
  const std::size_t grain = std::max<std::size_t>(16, (std::size_t{1} << 16) / per_row);
  parallel_for(
      0, m, grain,
      [&](std::size_t j0, std::size_t j1) {
        detail::Int8Forward::masked_rows(w, products, ws, y, ldy, j0, j1);
      },
      16);
}

/// y (t x m, row stride `ldy`) = sum_k s_out_k (.) (B_k (x (.) s_in_k)) for t tokens of x
/// (row i at x + i * ldx), with int8 activations: quantizes into a temporary workspace and
/// runs on the default `parallel_for`. Throws `InvalidArgument` as `prepare_int8_forward`
/// and `multi_kernel_forward_int8_range` do.
inline void multi_kernel_forward_int8(const MultiKernelWeights<float>& w, const float* x,
                                      std::size_t ldx, std::size_t t, float* y, std::size_t ldy,
                                      const ProductSet& products = ProductSet()) {
  Int8ForwardWorkspace ws;
  prepare_int8_forward(w, x, ldx, t, ws);
  multi_kernel_forward_int8(w, ws, y, ldy, products);
}

/// Output features [j0, j1) with the algorithm `ws` was prepared for, on pw.products(), on the
/// calling thread (`ws` and `pw` are read-only here). The LUT product works on tiles of 16
/// rows: a range boundary inside a tile computes that whole tile (only [j0, j1) is written),
/// so host thread pools should split on multiples of 16. Throws `InvalidArgument` as the
/// overload without `pw`, and when `pw` does not match `w`.
inline void multi_kernel_forward_int8_range(const MultiKernelWeights<float>& w,
                                            const Int8PreparedWeights& pw,
                                            const Int8ForwardWorkspace& ws, float* y,
                                            std::size_t ldy, std::size_t j0, std::size_t j1) {
  detail::Int8Forward::check_prepared(w, pw);
  detail::Int8Forward::check_workspace(w, ws);
  detail::Int8Forward::check_output(w.out_features(), ws.tokens(), y, ldy, j0, j1);
  detail::Int8Forward::rows(w, pw, ws, y, ldy, j0, j1);
}

/// All output features, with the algorithm `ws` was prepared for, on the default
/// `parallel_for` (rows split on multiples of 16; products under about 16 Mi weight-token
/// products per thread run on the calling thread). The tables in `ws` are built once and
/// read by every thread.
inline void multi_kernel_forward_int8(const MultiKernelWeights<float>& w,
                                      const Int8PreparedWeights& pw, const Int8ForwardWorkspace& ws,
                                      float* y, std::size_t ldy) {
  detail::Int8Forward::check_prepared(w, pw);
  detail::Int8Forward::check_workspace(w, ws);
  detail::Int8Forward::check_output(w.out_features(), ws.tokens(), y, ldy, 0, w.out_features());
  detail::Int8Forward::all_rows(w, pw, ws, y, ldy);
}

/// y = the fused int8 forward of t tokens of x with the prepared weights in one call on the
/// default `parallel_for`, reusing `ws` (no allocation once it has seen this t and shape).
/// With the table lookup and t <= 8 tokens, every thread quantizes x and builds the tables
/// itself (`ws` keeps one copy per thread) and then computes its rows: a few microseconds of
/// work repeated per thread, instead of all threads waiting for one to prepare and then
/// reading its tables out of another core's cache (docs/decode.md, "Threads").
/// Otherwise it prepares once and splits the rows. Afterwards `ws` holds this call's prepared
/// input, as after `prepare_int8_forward`. Operands are checked once, here. Throws
/// `InvalidArgument` as `prepare_int8_forward` and `multi_kernel_forward_int8_range` do.
inline void multi_kernel_forward_int8(const MultiKernelWeights<float>& w,
                                      const Int8PreparedWeights& pw, const float* x,
                                      std::size_t ldx, std::size_t t, float* y, std::size_t ldy,
                                      Int8ForwardWorkspace& ws,
                                      Int8Algorithm algorithm = Int8Algorithm::automatic) {
  detail::Int8Forward::check_prepared(w, pw);
  detail::Int8Forward::check_input(w, x, ldx, t);
  detail::Int8Forward::check_output(w.out_features(), t, y, ldy, 0, w.out_features());
  detail::Int8Forward::run(w, pw, x, ldx, t, y, ldy, ws, detail::int8_uses_lut(pw, t, algorithm));
}

/// y = the fused int8 forward of t tokens of x with the prepared weights: quantizes (and
/// builds tables) into a temporary workspace, then runs on the default `parallel_for`.
inline void multi_kernel_forward_int8(const MultiKernelWeights<float>& w,
                                      const Int8PreparedWeights& pw, const float* x,
                                      std::size_t ldx, std::size_t t, float* y, std::size_t ldy,
                                      Int8Algorithm algorithm = Int8Algorithm::automatic) {
  Int8ForwardWorkspace ws;
  multi_kernel_forward_int8(w, pw, x, ldx, t, y, ldy, ws, algorithm);
}

}  // namespace mbok
