#pragma once
/// \file
/// The Boolean products, chosen at run time for the active ISA (isa.hpp).
///
/// GEMM convention: Y = X W^T, with W stored one output row per packed row (m x n bits), X
/// holding one token per row (t x n). Every product has a whole-matrix form that runs on the
/// default `parallel_for`, and a `_range` form over output columns [j0, j1) that a host engine
/// calls from its own threads. Shapes are checked (`InvalidArgument` naming the operand).
///
/// Boolean weights x int8 activations come in two algorithms with the same exact int32
/// results: `sign_gemm_i8` (masked byte moves into multiply-adds, no preparation) and the
/// table-lookup product `sign_gemm_i8_lut` (weights repacked once by `prepare_lut`, per-token
/// tables of partial sums built by `build_lut_tables`; fastest for few tokens, see
/// `ProductSet::lut_max_tokens`).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "activations.hpp"
#include "bit_matrix.hpp"
#include "config.hpp"
#include "error.hpp"
#include "int8_matrix.hpp"
#include "isa.hpp"
#include "parallel.hpp"

#include "detail/base/aligned_buffer.hpp"
#include "detail/base/checked.hpp"
#include "detail/products/dispatch.hpp"

namespace mbok {

/// Former name of `kMaxInt8Features` (activations.hpp), the one limit of the int8 products.
inline constexpr std::size_t kMaxInt8ProductCols = kMaxInt8Features;
/// Longest row of `xnor_gemm`: |n - 2 popcount| <= n must fit in int32.
inline constexpr std::size_t kMaxXnorCols = static_cast<std::size_t>(INT32_MAX);

/// The byte layouts of repacked weights, one per SIMD family (detail/products/lut_format.hpp):
/// `interleave4` (AVX-512, NEON, scalar) and `lanes16` (AVX2).
using LutLayout = detail::LutLayout;
/// The layout's name in files ("interleave4", "lanes16").
inline const char* lut_layout_name(LutLayout layout) noexcept {
  return layout == LutLayout::lanes16 ? "lanes16" : "interleave4";
}
/// The layout named `name`; false for an unknown name.
inline bool parse_lut_layout(const std::string& name, LutLayout& out) noexcept {
  for (LutLayout l : {LutLayout::interleave4, LutLayout::lanes16})
    if (name == lut_layout_name(l)) {
      out = l;
      return true;
    }
  return false;
}

/// Boolean weights (m x n) repacked for the table-lookup int8 product of one `ProductSet`
/// (`ProductSet::prepare_lut`): rows in tiles of 16, two 4-bit column patterns per byte, in the
/// layout of that set's ISA (detail/products/lut_format.hpp), 2 * ceil(n / 32) * 32 bytes per
/// 16 rows (the size of the bits, rounded up). Build once per weight matrix (at load time);
/// move-only. The repacking is a bijection: `unpack` gives the bits back exactly, so a layer
/// that keeps only this form (`PackedLinear`) loses nothing.
class Int8LutWeights {
 public:
  Int8LutWeights() = default;
  /// Output features m.
  std::size_t rows() const noexcept { return view_.rows; }
  /// Input features n.
  std::size_t cols() const noexcept { return view_.cols; }
  /// The ISA whose kernels it was packed for.
  Isa isa() const noexcept { return isa_; }
  /// The byte layout (that ISA's).
  LutLayout layout() const noexcept { return view_.layout; }
  /// Bytes held.
  std::size_t bytes() const noexcept { return detail::lut_tiles(view_.rows) * view_.tile_bytes(); }
  /// Whether the bytes belong to someone else (a mapped file), kept alive by this object.
  bool is_borrowed() const noexcept { return view_.data != nullptr && data_.data() == nullptr; }
  /// The packed data (internal layout).
  const detail::LutWeightsView& view() const noexcept { return view_; }
  /// The bits it was packed from (rows() x cols(), a new owned matrix).
  BitMatrix unpack() const {
    BitMatrix out(rows(), cols());
    detail::lut_unpack(view_, 0, out.mutable_view());
    return out;
  }

 private:
  friend class ProductSet;
  detail::AlignedBuffer<std::uint8_t> data_;
  std::shared_ptr<const void> owner_;  // keeps borrowed bytes alive (may be null: caller's)
  detail::LutWeightsView view_;
  Isa isa_ = Isa::scalar;
};

/// Per-token tables of int8 activations for `sign_gemm_i8_lut` (`ProductSet::build_lut_tables`):
/// 8 bytes per input feature (rounded up to 32 features) and token. Storage is reused by later
/// builds that fit (no allocation then).
class Int8LutTables {
 public:
  /// Tokens held.
  std::size_t tokens() const noexcept { return view_.tokens; }
  /// Input features n.
  std::size_t cols() const noexcept { return view_.cols; }
  /// The tables (internal format).
  const detail::LutTablesView& view() const noexcept { return view_; }

 private:
  friend class ProductSet;
  void reserve(std::size_t t, std::size_t n) {
    const std::size_t ld = detail::lut_table_bytes(n);
    const std::size_t need = std::max<std::size_t>(
        detail::mul_or_throw({t, ld}, "build_lut_tables: ", t, " tokens x ", ld, " bytes"), 64);
    data_.grow(need);
    if (base_.size() < t) base_.resize(t);
    view_ = {data_.data(), base_.data(), t, n, ld};
  }
  detail::AlignedBuffer<std::uint8_t> data_;
  std::vector<std::int32_t> base_;
  detail::LutTablesView view_;
};

/// Per-token tables of float activations for `sign_gemm_f32_lut`
/// (`ProductSet::build_lut_tables_f32`): 16 floats per group of 4 input features (64 bytes per
/// 4 features, rounded up to 32 features) and token. Storage is reused by later builds that
/// fit (no allocation then).
class FloatLutTables {
 public:
  /// Tokens held.
  std::size_t tokens() const noexcept { return view_.tokens; }
  /// Input features n.
  std::size_t cols() const noexcept { return view_.cols; }
  /// The tables (internal format, detail/products/lut_f32_format.hpp).
  const detail::LutTablesF32View& view() const noexcept { return view_; }

 private:
  friend class ProductSet;
  float* reserve(std::size_t t, std::size_t n) {
    const std::size_t ld = detail::lut_f32_table_floats(n);
    const std::size_t need = std::max<std::size_t>(
        detail::mul_or_throw({t, ld, sizeof(float)}, "build_lut_tables_f32: ", t, " tokens x ", ld,
                             " floats"),
        64);
    float* tables = data_.grow(need / sizeof(float));
    view_ = {tables, t, n, ld};
    return tables;
  }
  detail::AlignedBuffer<float> data_;
  detail::LutTablesF32View view_;
};

/// The products of one ISA. A layer builds one when it is made and keeps it.
class ProductSet {
 public:
  /// The products of the active ISA (see isa.hpp).
  ProductSet() : table_(&detail::product_table(active_isa())) {}
  /// The products of `isa`; throws `InvalidArgument` when it is not available here.
  explicit ProductSet(Isa isa) : table_(&detail::product_table(isa)) {
    detail::require(isa_available(isa), "ProductSet: ISA '", isa_name(isa),
                    "' is not available on this CPU and build");
  }

  /// The ISA whose kernels run.
  Isa isa() const noexcept { return table_->isa; }

  /// Boolean x Boolean: C (a.rows() x b.rows(), row stride `ldc`) = n - 2 popcount(a_i xor b_j).
  void xnor_gemm(BitMatrixView a, BitMatrixView b, std::int32_t* c, std::size_t ldc) const {
    check_xnor(a, b, c, ldc);
    parallel_for(0, b.rows(), grain_rows(a.rows(), a.row_words()),
                 [&](std::size_t j0, std::size_t j1) { table_->xnor_gemm(a, b, c, ldc, j0, j1); });
  }
  /// `xnor_gemm` for output columns [j0, j1) only, on the calling thread.
  void xnor_gemm_range(BitMatrixView a, BitMatrixView b, std::int32_t* c, std::size_t ldc,
                       std::size_t j0, std::size_t j1) const {
    check_xnor(a, b, c, ldc);
    check_range(j0, j1, b.rows(), "xnor_gemm");
    table_->xnor_gemm(a, b, c, ldc, j0, j1);
  }

  /// Boolean weights x float activations: Y (t x m, stride ldy) = X (t x n, stride ldx) W^T.
  void sign_gemm(const float* x, std::size_t ldx, std::size_t t, BitMatrixView w, float* y,
                 std::size_t ldy) const {
    check_gemm(x, ldx, t, w, y, ldy, "sign_gemm");
    parallel_for(0, w.rows(), grain_rows(t, w.row_words()), [&](std::size_t j0, std::size_t j1) {
      table_->sign_gemm_f32(x, ldx, t, w, y, ldy, j0, j1);
    });
  }
  /// `sign_gemm` for output columns [j0, j1) only.
  void sign_gemm_range(const float* x, std::size_t ldx, std::size_t t, BitMatrixView w, float* y,
                       std::size_t ldy, std::size_t j0, std::size_t j1) const {
    check_gemm(x, ldx, t, w, y, ldy, "sign_gemm");
    check_range(j0, j1, w.rows(), "sign_gemm");
    table_->sign_gemm_f32(x, ldx, t, w, y, ldy, j0, j1);
  }

  /// One kernel's share of a multi-kernel forward, for output columns [j0, j1) on the
  /// calling thread: Y (t x m, stride ldy) += (X W^T) (.) s_out^T, X (t x n, stride ldx)
  /// already scaled by the kernel's s_in; reads X up to column n only, Y columns outside
  /// [j0, j1) are not touched. `s_out` holds m values.
  void sign_gemm_acc_range(const float* x, std::size_t ldx, std::size_t t, BitMatrixView w,
                           const float* s_out, float* y, std::size_t ldy, std::size_t j0,
                           std::size_t j1) const {
    check_gemm(x, ldx, t, w, y, ldy, "sign_gemm_acc");
    check_range(j0, j1, w.rows(), "sign_gemm_acc");
    detail::require(s_out != nullptr || w.rows() == 0, "sign_gemm_acc: null s_out");
    table_->sign_gemm_acc_f32(x, ldx, t, w, s_out, y, ldy, j0, j1);
  }

  /// Dense int8 weights x float activations: Y (t x m, stride ldy) = X (t x n, stride ldx)
  /// W^T for W = `w` (m x n, scale(j) q(j, l)). Float sums in the product's own order: within
  /// float rounding of the exact sum, not bit for bit across ISAs.
  void dense_i8_gemm(const float* x, std::size_t ldx, std::size_t t, const Int8Matrix& w, float* y,
                     std::size_t ldy) const {
    check_dense_i8(x, ldx, t, w, y, ldy);
    parallel_for(0, w.rows(), grain_rows(t, w.cols() / 64 + 1),
                 [&](std::size_t j0, std::size_t j1) {
                   table_->dense_i8_f32(w.data(), w.stride(), w.scales(), w.cols(), x, ldx, t, y,
                                        ldy, j0, j1);
                 });
  }
  /// `dense_i8_gemm` for output columns [j0, j1) only, on the calling thread.
  void dense_i8_gemm_range(const float* x, std::size_t ldx, std::size_t t, const Int8Matrix& w,
                           float* y, std::size_t ldy, std::size_t j0, std::size_t j1) const {
    check_dense_i8(x, ldx, t, w, y, ldy);
    check_range(j0, j1, w.rows(), "dense_i8_gemm");
    table_->dense_i8_f32(w.data(), w.stride(), w.scales(), w.cols(), x, ldx, t, y, ldy, j0, j1);
  }

  /// The backward orientation: dX (t x n, stride lddx) = Z (t x m, stride ldz) W.
  void sign_gemm_transposed(const float* z, std::size_t ldz, std::size_t t, BitMatrixView w,
                            float* dx, std::size_t lddx) const {
    check_transposed(z, ldz, t, w, dx, lddx);
    parallel_for(
        0, w.cols(), 512,
        [&](std::size_t l0, std::size_t l1) {
          table_->sign_gemm_t_f32(z, ldz, t, w, dx, lddx, l0, l1);
        },
        64);
  }
  /// `sign_gemm_transposed` for dX columns [l0, l1) only; `l0` must be a multiple of 64.
  void sign_gemm_transposed_range(const float* z, std::size_t ldz, std::size_t t, BitMatrixView w,
                                  float* dx, std::size_t lddx, std::size_t l0,
                                  std::size_t l1) const {
    check_transposed(z, ldz, t, w, dx, lddx);
    check_range(l0, l1, w.cols(), "sign_gemm_transposed");
    detail::require(l0 % 64 == 0, "sign_gemm_transposed: range start ", l0,
                    " is not a multiple of 64");
    table_->sign_gemm_t_f32(z, ldz, t, w, dx, lddx, l0, l1);
  }

  /// Boolean weights x int8 activations, int32 results: Y (t x m) = X W^T. Rows of X are
  /// `ldx` bytes apart, start 64-byte aligned, and hold w.row_words() * 64 values, zero past n
  /// (verified: a nonzero value there throws `InvalidArgument`, as does n >
  /// kMaxInt8Features, where int32 could not hold the result).
  void sign_gemm_i8(const std::int8_t* x, std::size_t ldx, std::size_t t, BitMatrixView w,
                    std::int32_t* y, std::size_t ldy) const {
    check_i8(x, ldx, t, w, y, ldy);
    parallel_for(0, w.rows(), grain_rows(t, w.row_words()), [&](std::size_t j0, std::size_t j1) {
      table_->sign_gemm_i8(x, ldx, t, w, y, ldy, j0, j1);
    });
  }
  /// `sign_gemm_i8` for output columns [j0, j1) only.
  void sign_gemm_i8_range(const std::int8_t* x, std::size_t ldx, std::size_t t, BitMatrixView w,
                          std::int32_t* y, std::size_t ldy, std::size_t j0, std::size_t j1) const {
    check_i8(x, ldx, t, w, y, ldy);
    check_range(j0, j1, w.rows(), "sign_gemm_i8");
    table_->sign_gemm_i8(x, ldx, t, w, y, ldy, j0, j1);
  }

  /// Repacks w (m x n, n <= kMaxInt8Features) for `sign_gemm_i8_lut` on this ISA.
  Int8LutWeights prepare_lut(BitMatrixView w) const {
    detail::require(w.cols() <= kMaxInt8Features, "prepare_lut: ", w.cols(),
                    " input features exceed the exact int32 limit of ", kMaxInt8Features);
    Int8LutWeights out;
    out.isa_ = isa();
    const detail::LutLayout layout = table_->lut_layout();
    const std::size_t bytes =
        std::max<std::size_t>(detail::lut_tiles(w.rows()) * 2 * detail::lut_cols32(w.cols()), 64);
    out.data_ = detail::AlignedBuffer<std::uint8_t>::uninitialized(bytes);
    detail::lut_pack(w, layout, out.data_.data());
    out.view_ = {out.data_.data(), layout, w.rows(), w.cols()};
    return out;
  }
  /// The byte layout `prepare_lut` packs for on this ISA.
  LutLayout lut_layout() const noexcept { return table_->lut_layout(); }
  /// Weights of m x n already repacked in `layout` and kept elsewhere (`data`, a mapped
  /// file's bytes: lut_tiles(m) * 2 * cols32 bytes, owner keeping them alive). In this ISA's
  /// layout and 64-byte aligned they are borrowed, with no copy; otherwise repacked once into
  /// owned memory. Reads only the padding (rows past m, columns past n) to check that it is
  /// zero. Throws `InvalidArgument` naming `what` for a null pointer, n > kMaxInt8Features, or
  /// a padding bit set.
  Int8LutWeights adopt_lut(const std::uint8_t* data, LutLayout layout, std::size_t m, std::size_t n,
                           std::shared_ptr<const void> owner,
                           const std::string& what = "packed weights") const {
    detail::require(data != nullptr, what, ": null data");
    detail::require(n <= kMaxInt8Features, what, ": ", n,
                    " input features exceed the exact int32 limit of ", kMaxInt8Features);
    const detail::LutWeightsView given{data, layout, m, n};
    const std::size_t bad = detail::lut_padding_row(given);
    detail::require(bad == static_cast<std::size_t>(-1), what, ": a padding bit is set in row ",
                    bad, " (rows >= ", m, " and columns >= ", n, " must be zero)");
    if (layout == lut_layout() && reinterpret_cast<std::uintptr_t>(data) % kBufferAlignment == 0) {
      Int8LutWeights out;
      out.isa_ = isa();
      out.owner_ = std::move(owner);
      out.view_ = given;
      return out;
    }
    BitMatrix bits(m, n);
    detail::lut_unpack(given, 0, bits.mutable_view());
    return prepare_lut(bits);
  }

  /// `mbok::quantize_activations` (activations.hpp) on this set's products: the same codes,
  /// scales and sums on every ISA.
  void quantize_activations(const float* x, std::size_t ldx, std::size_t t, std::size_t n,
                            QuantizedActivations& out, const float* s_in = nullptr) const {
    detail::quantize_activations(*table_, x, ldx, t, n, out, s_in);
  }

  /// Tables of t tokens of int8 activations with n features (rows `ldx` bytes apart, the
  /// input contract of `sign_gemm_i8` for n columns, verified) into `out`. Many tokens are
  /// split across threads on the default `parallel_for`.
  void build_lut_tables(const std::int8_t* x, std::size_t ldx, std::size_t t, std::size_t n,
                        Int8LutTables& out) const {
    detail::require(n <= kMaxInt8Features, "build_lut_tables: ", n,
                    " input features exceed the exact int32 limit of ", kMaxInt8Features);
    check_i8_input(x, ldx, t, n, "build_lut_tables");
    out.reserve(t, n);
    // Tokens are independent: many of them (a prefill) split across threads.
    parallel_for(0, t, detail::grain_for_cost(n), [&](std::size_t i0, std::size_t i1) {
      table_->lut_tables_i8(x + i0 * ldx, ldx, i1 - i0, n, out.data_.data() + i0 * out.view_.ld,
                            out.view_.ld, out.base_.data() + i0);
    });
  }
  /// Tables of quantized activations (`quantize_activations` meets the input contract by
  /// construction, so nothing is scanned again) into `out`.
  void build_lut_tables(const QuantizedActivations& q, Int8LutTables& out) const {
    out.reserve(q.tokens(), q.cols());
    parallel_for(0, q.tokens(), detail::grain_for_cost(q.cols()),
                 [&](std::size_t i0, std::size_t i1) {
                   table_->lut_tables_i8(q.data() + i0 * q.ld(), q.ld(), i1 - i0, q.cols(),
                                         out.data_.data() + i0 * out.view_.ld, out.view_.ld,
                                         out.base_.data() + i0);
                 });
  }
  /// Y (x.tokens() x m, stride ldy) = X W^T in exact int32, by table lookup: the same results
  /// as `sign_gemm_i8`. `w` must come from `prepare_lut` of a ProductSet with this layout (this
  /// ISA on this CPU); x.cols() == w.cols().
  void sign_gemm_i8_lut(const Int8LutTables& x, const Int8LutWeights& w, std::int32_t* y,
                        std::size_t ldy) const {
    check_lut(x, w, y, ldy);
    parallel_for(
        0, w.rows(), std::max<std::size_t>(64, grain_rows(x.tokens(), w.cols() / 64 + 1)),
        [&](std::size_t j0, std::size_t j1) {
          detail::lut_product(*table_, x.tokens())(x.view(), w.view(), y + j0, ldy, j0, j1);
        },
        detail::kLutTileRows);
  }
  /// `sign_gemm_i8_lut` for output columns [j0, j1) only. Work is done in tiles of 16 rows:
  /// ranges that start or end inside a tile compute the whole tile (only [j0, j1) is written),
  /// so ranges on multiples of 16 waste nothing.
  void sign_gemm_i8_lut_range(const Int8LutTables& x, const Int8LutWeights& w, std::int32_t* y,
                              std::size_t ldy, std::size_t j0, std::size_t j1) const {
    check_lut(x, w, y, ldy);
    check_range(j0, j1, w.rows(), "sign_gemm_i8_lut");
    detail::lut_product(*table_, x.tokens())(x.view(), w.view(), y + j0, ldy, j0, j1);
  }
  /// Largest token count for which the fused int8 forward picks the LUT product by default.
  std::size_t lut_max_tokens() const noexcept { return table_->lut_max_tokens; }
  /// Fewest tokens for which `sign_gemm_i8_lut` runs its blocked many-token (prefill) product
  /// (SIZE_MAX where this ISA has none); the results are the same either way.
  std::size_t lut_prefill_min_tokens() const noexcept { return table_->lut_prefill_min_tokens; }

  /// Tables of t tokens of float activations for `sign_gemm_f32_lut`: token i is x_i (.) s
  /// (x rows `ldx` floats apart, n features read; `s` n values, or null for x itself), into
  /// `out`. Many tokens are split across threads on the default `parallel_for`.
  void build_lut_tables_f32(const float* x, std::size_t ldx, std::size_t t, std::size_t n,
                            const float* s, FloatLutTables& out) const {
    detail::require(ldx >= n, "build_lut_tables_f32: ldx ", ldx, " < input features ", n);
    detail::require(t == 0 || x != nullptr, "build_lut_tables_f32: null input");
    detail::require_addressable(t, ldx, n, sizeof(float), "build_lut_tables_f32: input");
    float* tables = out.reserve(t, n);
    const std::size_t ld = out.view().ld;
    parallel_for(0, t, detail::grain_for_cost(4 * n), [&](std::size_t i0, std::size_t i1) {
      table_->lut_tables_f32(x + i0 * ldx, ldx, i1 - i0, n, s, tables + i0 * ld, ld);
    });
  }
  /// Y (x.tokens() x m, stride ldy) = (X W^T) (.) s_out^T by table lookup, over the weights
  /// the int8 LUT product reads (`prepare_lut`, either layout; this ISA's own layout runs its
  /// SIMD product, the other the portable one). `s_out`: m values, or null for none; with
  /// `accumulate` the result is added to Y. Float sums in the kernel's own order: with
  /// S = sum_l |x_l| (x as tabled), |Y - exact| <= gamma(ceil(n / 4) + 3) |s_out_j| S
  /// (+ one rounding for the scale and one for the accumulation), gamma(k) = k u / (1 - k u),
  /// u = 2^-24 (detail/products/lut_f32_format.hpp). NaN and infinite activations propagate
  /// as in a sum.
  void sign_gemm_f32_lut(const FloatLutTables& x, const Int8LutWeights& w, float* y,
                         std::size_t ldy, const float* s_out = nullptr,
                         bool accumulate = false) const {
    check_lut_f32(x, w, y, ldy);
    parallel_for(
        0, w.rows(), std::max<std::size_t>(64, grain_rows(x.tokens(), w.cols() / 16 + 1)),
        [&](std::size_t j0, std::size_t j1) {
          table_->sign_gemm_f32_lut(x.view(), w.view(), s_out, accumulate, y, ldy, j0, j1);
        },
        detail::kLutTileRows);
  }
  /// `sign_gemm_f32_lut` for output columns [j0, j1) only, on the calling thread (ranges on
  /// multiples of 16 waste nothing, as for `sign_gemm_i8_lut_range`).
  void sign_gemm_f32_lut_range(const FloatLutTables& x, const Int8LutWeights& w, float* y,
                               std::size_t ldy, std::size_t j0, std::size_t j1,
                               const float* s_out = nullptr, bool accumulate = false) const {
    check_lut_f32(x, w, y, ldy);
    check_range(j0, j1, w.rows(), "sign_gemm_f32_lut");
    table_->sign_gemm_f32_lut(x.view(), w.view(), s_out, accumulate, y, ldy, j0, j1);
  }
  /// Largest token count for which the float forward over prepared weights picks the float
  /// LUT product by default (0: never on this ISA).
  std::size_t lut_f32_max_tokens() const noexcept { return table_->lut_f32_max_tokens; }
  /// Kernels times tokens (K t) from which the fused float forward (`FloatAlgorithm::automatic`)
  /// and the layer's dX rebuild W panel by panel into one float product; SIZE_MAX where this
  /// ISA has no register-tiled float product.
  std::size_t weight_product_min_work() const noexcept { return table_->weight_product_min_work; }

  /// The bound table of products, unchecked (for mbok's fused forwards, which check once).
  const detail::ProductTable& table() const noexcept { return *table_; }

 private:
  static void check_dense_i8(const float* x, std::size_t ldx, std::size_t t, const Int8Matrix& w,
                             const float* y, std::size_t ldy) {
    detail::require(ldx >= w.cols(), "dense_i8_gemm: ldx ", ldx, " is below ", w.cols(),
                    " input columns");
    detail::require(ldy >= w.rows(), "dense_i8_gemm: ldy ", ldy, " is below ", w.rows(),
                    " output columns");
    detail::require((x != nullptr && y != nullptr) || t == 0 || w.rows() == 0,
                    "dense_i8_gemm: null activations or output");
  }
  // Enough rows per chunk that a thread does at least ~64 Ki word operations.
  static std::size_t grain_rows(std::size_t t, std::size_t words) noexcept {
    std::size_t per_row = SIZE_MAX;  // saturates: only a grain
    if (!detail::checked_mul(t, words, per_row)) per_row = SIZE_MAX;
    per_row = std::max<std::size_t>(1, per_row);
    return std::max<std::size_t>(1, (std::size_t{1} << 16) / per_row);
  }
  static void check_range(std::size_t b, std::size_t e, std::size_t n, const char* what) {
    detail::require(b <= e && e <= n, what, ": range [", b, ", ", e, ") out of [0, ", n, ")");
  }
  static void check_xnor(BitMatrixView a, BitMatrixView b, const std::int32_t* c, std::size_t ldc) {
    detail::require(a.cols() == b.cols(), "xnor_gemm: activations have ", a.cols(),
                    " columns, weights ", b.cols());
    detail::require(a.cols() <= kMaxXnorCols, "xnor_gemm: ", a.cols(),
                    " columns exceed the int32 result limit of ", kMaxXnorCols);
    detail::require(ldc >= b.rows(), "xnor_gemm: ldc ", ldc, " < output columns ", b.rows());
    detail::require(c != nullptr || a.empty() || b.empty(), "xnor_gemm: null output");
    detail::require_addressable(b.empty() ? 0 : a.rows(), ldc, b.rows(), sizeof(std::int32_t),
                                "xnor_gemm: output");
  }
  static void check_gemm(const float* x, std::size_t ldx, std::size_t t, BitMatrixView w,
                         const float* y, std::size_t ldy, const char* what) {
    detail::require(ldx >= w.cols(), what, ": ldx ", ldx, " < input features ", w.cols());
    detail::require(ldy >= w.rows(), what, ": ldy ", ldy, " < output features ", w.rows());
    detail::require(t == 0 || (x != nullptr && y != nullptr), what, ": null input or output");
    detail::require_addressable(t, ldx, w.cols(), sizeof(float), what, ": input");
    detail::require_addressable(t, ldy, w.rows(), sizeof(float), what, ": output");
  }
  static void check_transposed(const float* z, std::size_t ldz, std::size_t t, BitMatrixView w,
                               const float* dx, std::size_t lddx) {
    detail::require(ldz >= w.rows(), "sign_gemm_transposed: ldz ", ldz, " < output features ",
                    w.rows());
    detail::require(lddx >= w.cols(), "sign_gemm_transposed: lddx ", lddx, " < input features ",
                    w.cols());
    detail::require(t == 0 || (z != nullptr && dx != nullptr),
                    "sign_gemm_transposed: null input or output");
    detail::require_addressable(t, ldz, w.rows(), sizeof(float), "sign_gemm_transposed: input");
    detail::require_addressable(t, lddx, w.cols(), sizeof(float), "sign_gemm_transposed: output");
  }
  static void check_i8(const std::int8_t* x, std::size_t ldx, std::size_t t, BitMatrixView w,
                       const std::int32_t* y, std::size_t ldy) {
    detail::require(w.cols() <= kMaxInt8Features, "sign_gemm_i8: ", w.cols(),
                    " input features exceed the exact int32 limit of ", kMaxInt8Features);
    detail::require(ldy >= w.rows(), "sign_gemm_i8: ldy ", ldy, " < output features ", w.rows());
    detail::require(t == 0 || y != nullptr, "sign_gemm_i8: null output");
    detail::require_addressable(t, ldy, w.rows(), sizeof(std::int32_t), "sign_gemm_i8: output");
    check_i8_input(x, ldx, t, w.cols(), "sign_gemm_i8");
  }
  // The int8 input contract: aligned rows of the padded length, zero past n. The zero check
  // reads at most 511 bytes per token (the kernels sum whole padded rows, so a stray value
  // there would silently change every result).
  static void check_i8_input(const std::int8_t* x, std::size_t ldx, std::size_t t, std::size_t n,
                             const char* what) {
    const std::size_t padded = padded_row_words(n) * 64;
    detail::require(ldx >= padded, what, ": ldx ", ldx, " < padded input row of ", padded,
                    " bytes");
    detail::require(t == 0 || x != nullptr, what, ": null input");
    detail::require_addressable(t, ldx, padded, 1, what, ": input");
    detail::require(t == 0 || reinterpret_cast<std::uintptr_t>(x) % kBufferAlignment == 0, what,
                    ": activations must be 64-byte aligned");
    detail::require(ldx % kBufferAlignment == 0, what, ": ldx ", ldx,
                    " is not a multiple of 64 bytes");
    for (std::size_t i = 0; i < t; ++i) {
      const std::int8_t* row = x + i * ldx;
      int any = 0;
      for (std::size_t l = n; l < padded; ++l) any |= row[l];
      if (any != 0)
        for (std::size_t l = n; l < padded; ++l)
          detail::require(row[l] == 0, what, ": token ", i, " has the nonzero value ",
                          static_cast<int>(row[l]), " at column ", l, ", past its ", n,
                          " features (the padded row must be zero)");
    }
  }
  void check_lut(const Int8LutTables& x, const Int8LutWeights& w, const std::int32_t* y,
                 std::size_t ldy) const {
    detail::require(w.view().data != nullptr || w.rows() == 0,
                    "sign_gemm_i8_lut: weights not prepared");
    detail::require(w.view().layout == table_->lut_layout(),
                    "sign_gemm_i8_lut: weights packed for ", isa_name(w.isa()),
                    ", whose layout the ", isa_name(isa()), " kernels here do not read");
    detail::require(x.tokens() == 0 || x.cols() == w.cols(), "sign_gemm_i8_lut: tables have ",
                    x.cols(), " features, weights ", w.cols());
    detail::require(ldy >= w.rows(), "sign_gemm_i8_lut: ldy ", ldy, " < output features ",
                    w.rows());
    detail::require(x.tokens() == 0 || y != nullptr, "sign_gemm_i8_lut: null output");
    detail::require_addressable(x.tokens(), ldy, w.rows(), sizeof(std::int32_t),
                                "sign_gemm_i8_lut: output");
  }

  static void check_lut_f32(const FloatLutTables& x, const Int8LutWeights& w, const float* y,
                            std::size_t ldy) {
    detail::require(w.view().data != nullptr || w.rows() == 0,
                    "sign_gemm_f32_lut: weights not prepared");
    detail::require(x.tokens() == 0 || x.cols() == w.cols(), "sign_gemm_f32_lut: tables have ",
                    x.cols(), " features, weights ", w.cols());
    detail::require(ldy >= w.rows(), "sign_gemm_f32_lut: ldy ", ldy, " < output features ",
                    w.rows());
    detail::require(x.tokens() == 0 || y != nullptr, "sign_gemm_f32_lut: null output");
    detail::require_addressable(x.tokens(), ldy, w.rows(), sizeof(float),
                                "sign_gemm_f32_lut: output");
  }

  const detail::ProductTable* table_;
};

/// Former name of `ProductSet` ("kernel" now means one Boolean matrix B_k only).
using KernelSet = ProductSet;

}  // namespace mbok
