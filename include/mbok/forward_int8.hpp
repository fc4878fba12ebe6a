#pragma once
/// \file
/// The fused multi-kernel forward with int8 activations:
///
///     y(i, :) = sum_k s_out_k (.) (B_k (x(i, :) (.) s_in_k))        i < t, over all K kernels
///
/// Each kernel's input x (.) s_in_k is quantized per token to int8 (activations.hpp), the
/// +-1 product runs in exact int32 on the active ISA (`KernelSet::sign_gemm_i8`), and the
/// result is scaled by the token's quantization scale and s_out_k and summed over kernels
/// while the int32 block is still in cache. t = 1 is the decode GEMV, t > 1 the prefill GEMM.
///
/// Two algorithms compute the same exact int32 products (kernels.hpp): the masked product
/// (`KernelSet::sign_gemm_i8`, no preparation) and the table-lookup product (weights repacked
/// once into an `Int8PreparedWeights`, per-token tables built by `prepare_int8_forward`). The
/// overloads taking `Int8PreparedWeights` pick per ISA and token count (`Int8Algorithm`:
/// automatic = LUT for t <= KernelSet::lut_max_tokens(), the masked product above), or run the
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
#include <vector>

#include "activations.hpp"
#include "bit_matrix.hpp"
#include "error.hpp"
#include "kernels.hpp"
#include "multi_kernel_weights.hpp"
#include "parallel.hpp"

namespace mbok {

/// Which int8 product the fused forward runs.
enum class Int8Algorithm {
  automatic,  ///< the faster one for this ISA and token count
  masked,     ///< KernelSet::sign_gemm_i8
  lut,        ///< KernelSet::sign_gemm_i8_lut (table lookup)
};

/// The K kernels of a `MultiKernelWeights` repacked for the table-lookup product of one
/// `KernelSet` (its ISA's layout), built once per weight matrix (about the size of the bits).
/// Pass it with the same weights to the forward overloads below; the scales stay in the
/// weights. Move-only.
class Int8PreparedWeights {
 public:
  Int8PreparedWeights() = default;
  /// Repacks every kernel of `w` for `kernels`. Throws `InvalidArgument` for n >
  /// kMaxInt8Features.
  explicit Int8PreparedWeights(const MultiKernelWeights<float>& w,
                               const KernelSet& kernels = KernelSet())
      : kernels_(kernels), rows_(w.out_features()), cols_(w.in_features()) {
    lut_.reserve(w.num_kernels());
    for (std::size_t k = 0; k < w.num_kernels(); ++k)
      lut_.push_back(kernels.prepare_lut(w.kernel_view(k)));
  }
  /// The kernels it was packed for; the forward runs on these.
  const KernelSet& kernels() const noexcept { return kernels_; }
  std::size_t num_kernels() const noexcept { return lut_.size(); }
  std::size_t out_features() const noexcept { return rows_; }
  std::size_t in_features() const noexcept { return cols_; }
  /// Kernel k's repacked bits.
  const Int8LutWeights& kernel(std::size_t k) const {
    detail::require(k < lut_.size(), "Int8PreparedWeights: kernel ", k, " of ", lut_.size());
    return lut_[k];
  }

 private:
  KernelSet kernels_;
  std::vector<Int8LutWeights> lut_;
  std::size_t rows_ = 0, cols_ = 0;
};

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
  friend void prepare_int8_forward(const MultiKernelWeights<float>&, const float*, std::size_t,
                                   std::size_t, Int8ForwardWorkspace&);
  friend void prepare_int8_forward(const MultiKernelWeights<float>&, const Int8PreparedWeights&,
                                   const float*, std::size_t, std::size_t, Int8ForwardWorkspace&,
                                   Int8Algorithm);
  friend void multi_kernel_forward_int8_range(const MultiKernelWeights<float>&,
                                              const Int8PreparedWeights&,
                                              const Int8ForwardWorkspace&, float*, std::size_t,
                                              std::size_t, std::size_t);
  friend void multi_kernel_forward_int8(const MultiKernelWeights<float>&,
                                        const Int8PreparedWeights&, const float*, std::size_t,
                                        std::size_t, float*, std::size_t, Int8ForwardWorkspace&,
                                        Int8Algorithm);
  std::vector<QuantizedActivations> inputs_;
  std::vector<Int8LutTables> tables_;
  bool lut_ = false;
  std::size_t tokens_ = 0;
  std::size_t kernels_ = 0;
  // The other threads' own preparations of the same input in the one-call forward (one per
  // chunk after the first): every thread then reads tables it wrote itself.
  std::vector<Int8ForwardWorkspace> copies_;
};

/// Quantizes x (t tokens of w.in_features() floats, row i at x + i * ldx) once per kernel
/// into `ws`. Throws `InvalidArgument` for K = 0, ldx < n, n > kMaxInt8Features, a null x
/// with t > 0, or a non-finite x (s_in) value.
inline void prepare_int8_forward(const MultiKernelWeights<float>& w, const float* x,
                                 std::size_t ldx, std::size_t t, Int8ForwardWorkspace& ws) {
  const std::size_t n = w.in_features();
  detail::require(w.num_kernels() > 0, "multi_kernel_forward_int8: weights have no kernels");
  detail::require(n <= kMaxInt8Features, "multi_kernel_forward_int8: ", n,
                  " input features exceed the exact int32 limit of ", kMaxInt8Features);
  detail::require(ldx >= n, "multi_kernel_forward_int8: ldx ", ldx, " < input features ", n);
  detail::require(t == 0 || x != nullptr, "multi_kernel_forward_int8: null input");
  const std::size_t k_count = w.num_kernels();
  if (ws.inputs_.size() < k_count) ws.inputs_.resize(k_count);
  for (std::size_t k = 0; k < k_count; ++k)
    quantize_activations(x, ldx, t, n, ws.inputs_[k], w.s_in(k).data());
  ws.tokens_ = t;
  ws.kernels_ = k_count;
  ws.lut_ = false;
}

namespace detail {
// Whether the forward of t tokens runs the table lookup (`Int8Algorithm::automatic`: for
// t <= lut_max_tokens() of the prepared weights' ISA).
inline bool int8_uses_lut(const Int8PreparedWeights& pw, std::size_t t,
                          Int8Algorithm algorithm) noexcept {
  return algorithm == Int8Algorithm::lut ||
         (algorithm == Int8Algorithm::automatic && t <= pw.kernels().lut_max_tokens());
}
}  // namespace detail

/// Quantizes x like the overload above and, when the table-lookup product is chosen
/// (`algorithm`; automatic: t <= pw.kernels().lut_max_tokens()), builds each kernel's tables
/// (8 bytes per feature, token and kernel, kept in `ws`). Throws `InvalidArgument` as the
/// overload above, and when `pw` was not prepared from weights of this shape and K.
inline void prepare_int8_forward(const MultiKernelWeights<float>& w, const Int8PreparedWeights& pw,
                                 const float* x, std::size_t ldx, std::size_t t,
                                 Int8ForwardWorkspace& ws,
                                 Int8Algorithm algorithm = Int8Algorithm::automatic) {
  detail::require(pw.num_kernels() == w.num_kernels() && pw.out_features() == w.out_features() &&
                      pw.in_features() == w.in_features(),
                  "multi_kernel_forward_int8: prepared weights (", pw.num_kernels(), " kernels, ",
                  pw.out_features(), " x ", pw.in_features(), ") do not match the weights (",
                  w.num_kernels(), " kernels, ", w.out_features(), " x ", w.in_features(), ")");
  prepare_int8_forward(w, x, ldx, t, ws);
  if (!detail::int8_uses_lut(pw, t, algorithm)) return;
  if (ws.tables_.size() < ws.kernels_) ws.tables_.resize(ws.kernels_);
  for (std::size_t k = 0; k < ws.kernels_; ++k) {
    const QuantizedActivations& q = ws.inputs_[k];
    pw.kernels().build_lut_tables(q.data(), q.ld(), t, w.in_features(), ws.tables_[k]);
  }
  ws.lut_ = true;
}

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

}  // namespace detail

/// Output features [j0, j1) of every token: y(i, j) for i < ws.tokens(), row stride `ldy`
/// floats; the other columns of y are not touched. Runs on the calling thread.
/// Throws `InvalidArgument` when `ws` was not prepared for these weights' K and shape, for
/// ldy < m, a null y, or a range outside [0, m).
inline void multi_kernel_forward_int8_range(const MultiKernelWeights<float>& w,
                                            const Int8ForwardWorkspace& ws, float* y,
                                            std::size_t ldy, std::size_t j0, std::size_t j1,
                                            const KernelSet& kernels = KernelSet()) {
  const std::size_t m = w.out_features();
  const std::size_t t = ws.tokens();
  const std::size_t k_count = w.num_kernels();
  detail::require(ws.num_kernels() == k_count && k_count > 0,
                  "multi_kernel_forward_int8: workspace prepared for ", ws.num_kernels(),
                  " kernels, weights have ", k_count);
  detail::require(t == 0 || ws.input(0).cols() == w.in_features(),
                  "multi_kernel_forward_int8: workspace prepared for ", ws.input(0).cols(),
                  " input features, weights have ", w.in_features());
  detail::require(ldy >= m, "multi_kernel_forward_int8: ldy ", ldy, " < output features ", m);
  detail::require(j0 <= j1 && j1 <= m, "multi_kernel_forward_int8: range [", j0, ", ", j1,
                  ") out of [0, ", m, ")");
  detail::require(t == 0 || y != nullptr, "multi_kernel_forward_int8: null output");
  detail::require_addressable(t, ldy, m, sizeof(float), "multi_kernel_forward_int8: output");
  if (t == 0 || j0 == j1) return;
  const std::size_t rows = detail::int8_block_rows(t);
  std::int32_t stack[detail::kInt8BlockInts];
  std::vector<std::int32_t> heap;
  std::int32_t* block = stack;
  if (t * rows > detail::kInt8BlockInts) {
    heap.resize(t * rows);
    block = heap.data();
  }
  for (std::size_t jb = j0; jb < j1; jb += rows) {
    const std::size_t nr = std::min(rows, j1 - jb);
    for (std::size_t k = 0; k < k_count; ++k) {
      const QuantizedActivations& q = ws.input(k);
      const BitMatrixView bk = w.kernel_view(k).middle_rows(jb, nr);
      // The quantizer meets the product's input contract: no per-block checks.
      kernels.table().sign_gemm_i8(q.data(), q.ld(), t, bk, block, nr, 0, nr);
      detail::int8_scale_block(block, t, nr, q, 0, w.s_out(k).data() + jb, y + jb, ldy, k == 0);
    }
  }
}

/// All output features of a prepared workspace, on the default `parallel_for` (rows of y
/// split across threads).
inline void multi_kernel_forward_int8(const MultiKernelWeights<float>& w,
                                      const Int8ForwardWorkspace& ws, float* y, std::size_t ldy,
                                      const KernelSet& kernels = KernelSet()) {
  const std::size_t m = w.out_features();
  const std::size_t words = padded_row_words(w.in_features());
  const std::size_t per_row = std::max<std::size_t>(1, ws.tokens() * words * w.num_kernels());
  const std::size_t grain = std::max<std::size_t>(16, (std::size_t{1} << 16) / per_row);
  parallel_for(
      0, m, grain,
      [&](std::size_t j0, std::size_t j1) {
        multi_kernel_forward_int8_range(w, ws, y, ldy, j0, j1, kernels);
      },
      16);
}

/// y (t x m, row stride `ldy`) = sum_k s_out_k (.) (B_k (x (.) s_in_k)) for t tokens of x
/// (row i at x + i * ldx), with int8 activations: quantizes into a temporary workspace and
/// runs on the default `parallel_for`. Throws `InvalidArgument` as `prepare_int8_forward`
/// and `multi_kernel_forward_int8_range` do.
inline void multi_kernel_forward_int8(const MultiKernelWeights<float>& w, const float* x,
                                      std::size_t ldx, std::size_t t, float* y, std::size_t ldy,
                                      const KernelSet& kernels = KernelSet()) {
  Int8ForwardWorkspace ws;
  prepare_int8_forward(w, x, ldx, t, ws);
  multi_kernel_forward_int8(w, ws, y, ldy, kernels);
}

/// Output features [j0, j1) with the algorithm `ws` was prepared for, on pw.kernels(), on the
/// calling thread (`ws` and `pw` are read-only here). The LUT product works on tiles of 16
/// rows: a range boundary inside a tile computes that whole tile (only [j0, j1) is written),
/// so host thread pools should split on multiples of 16. Throws `InvalidArgument` as the
/// overload without `pw`, and when `pw` does not match `w`.
inline void multi_kernel_forward_int8_range(const MultiKernelWeights<float>& w,
                                            const Int8PreparedWeights& pw,
                                            const Int8ForwardWorkspace& ws, float* y,
                                            std::size_t ldy, std::size_t j0, std::size_t j1) {
  detail::require(pw.num_kernels() == w.num_kernels() && pw.out_features() == w.out_features() &&
                      pw.in_features() == w.in_features(),
                  "multi_kernel_forward_int8: prepared weights do not match the weights");
  if (!ws.lut_) {
    multi_kernel_forward_int8_range(w, ws, y, ldy, j0, j1, pw.kernels());
    return;
  }
  const std::size_t m = w.out_features();
  const std::size_t t = ws.tokens();
  const std::size_t k_count = w.num_kernels();
  detail::require(ws.num_kernels() == k_count && k_count > 0,
                  "multi_kernel_forward_int8: workspace prepared for ", ws.num_kernels(),
                  " kernels, weights have ", k_count);
  detail::require(t == 0 || ws.tables_[0].cols() == w.in_features(),
                  "multi_kernel_forward_int8: workspace prepared for ", ws.tables_[0].cols(),
                  " input features, weights have ", w.in_features());
  detail::require(ldy >= m, "multi_kernel_forward_int8: ldy ", ldy, " < output features ", m);
  detail::require(j0 <= j1 && j1 <= m, "multi_kernel_forward_int8: range [", j0, ", ", j1,
                  ") out of [0, ", m, ")");
  detail::require(t == 0 || y != nullptr, "multi_kernel_forward_int8: null output");
  detail::require_addressable(t, ldy, m, sizeof(float), "multi_kernel_forward_int8: output");
  if (t == 0 || j0 == j1) return;
  const detail::KernelTable& table = pw.kernels().table();
  // Tokens in blocks whose tables stay in L2 while the rows pass over them (many tokens'
  // tables together exceed it), rows in blocks whose int32 results stay in L1/L2.
  const std::size_t tokens = std::clamp<std::size_t>(
      detail::kLutTableBlockBytes / std::max<std::size_t>(ws.tables_[0].view().ld, 1), 1, t);
  const std::size_t rows = detail::int8_block_rows(tokens);
  std::int32_t stack[detail::kInt8BlockInts];
  std::vector<std::int32_t> heap;
  std::int32_t* block = stack;
  if (tokens * rows > detail::kInt8BlockInts) {
    heap.resize(tokens * rows);
    block = heap.data();
  }
  for (std::size_t i0 = 0; i0 < t; i0 += tokens) {
    const std::size_t tn = std::min(tokens, t - i0);
    // Blocks start on tile boundaries (after the first), so only the range's ends split tiles.
    for (std::size_t jb = j0; jb < j1;) {
      const std::size_t je = std::min(j1, (jb / rows + 1) * rows);
      const std::size_t nr = je - jb;
      for (std::size_t k = 0; k < k_count; ++k) {
        detail::LutTablesView x = ws.tables_[k].view();
        x.data += i0 * x.ld;
        x.base += i0;
        x.tokens = tn;
        // Rows [jb, je) of tokens [i0, i0 + tn) land at block[i * nr + j - jb].
        table.sign_gemm_i8_lut(x, pw.kernel(k).view(), block, nr, jb, je);
        detail::int8_scale_block(block, tn, nr, ws.inputs_[k], i0, w.s_out(k).data() + jb,
                                 y + i0 * ldy + jb, ldy, k == 0);
      }
      jb = je;
    }
  }
}

namespace detail {
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
}  // namespace detail

/// All output features, with the algorithm `ws` was prepared for, on the default
/// `parallel_for` (rows split on multiples of 16; products under about 16 Mi weight-token
/// products per thread run on the calling thread). The tables in `ws` are built once and
/// read by every thread.
inline void multi_kernel_forward_int8(const MultiKernelWeights<float>& w,
                                      const Int8PreparedWeights& pw, const Int8ForwardWorkspace& ws,
                                      float* y, std::size_t ldy) {
  const std::size_t grain =
      detail::int8_forward_grain(ws.tokens(), w.in_features(), w.num_kernels());
  parallel_for(
      0, w.out_features(), grain,
      [&](std::size_t j0, std::size_t j1) {
        multi_kernel_forward_int8_range(w, pw, ws, y, ldy, j0, j1);
      },
      16);
}

/// y = the fused int8 forward of t tokens of x with the prepared weights in one call on the
/// default `parallel_for`, reusing `ws` (no allocation once it has seen this t and shape).
/// With the table lookup and t <= 8 tokens, every thread quantizes x and builds the tables
/// itself (`ws` keeps one copy per thread) and then computes its rows: a few microseconds of
/// work repeated per thread, instead of all threads waiting for one to prepare and then
/// reading its tables out of another core's cache (docs/decode.md, "Threads").
/// Otherwise it prepares once and splits the rows. Afterwards `ws` holds this call's prepared
/// input, as after `prepare_int8_forward`. Throws `InvalidArgument` as
/// `prepare_int8_forward` and `multi_kernel_forward_int8_range` do.
inline void multi_kernel_forward_int8(const MultiKernelWeights<float>& w,
                                      const Int8PreparedWeights& pw, const float* x,
                                      std::size_t ldx, std::size_t t, float* y, std::size_t ldy,
                                      Int8ForwardWorkspace& ws,
                                      Int8Algorithm algorithm = Int8Algorithm::automatic) {
  const bool lut = detail::int8_uses_lut(pw, t, algorithm);
  const std::size_t grain = detail::int8_forward_grain(t, w.in_features(), w.num_kernels());
  const std::size_t chunks = parallel_chunk_count(0, w.out_features(), grain, 16);
  if (!lut || t > detail::kInt8OwnTablesMaxTokens || chunks <= 1) {
    prepare_int8_forward(w, pw, x, ldx, t, ws, algorithm);
    multi_kernel_forward_int8(w, pw, ws, y, ldy);
    return;
  }
  if (ws.copies_.size() < chunks - 1) ws.copies_.resize(chunks - 1);
  parallel_for(
      0, w.out_features(), grain,
      [&](std::size_t j0, std::size_t j1, std::size_t c) {
        Int8ForwardWorkspace& own = c == 0 ? ws : ws.copies_[c - 1];
        prepare_int8_forward(w, pw, x, ldx, t, own, Int8Algorithm::lut);
        multi_kernel_forward_int8_range(w, pw, own, y, ldy, j0, j1);
      },
      16);
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
