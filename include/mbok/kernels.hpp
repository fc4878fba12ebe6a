#pragma once
/// \file
/// The Boolean products, chosen at run time for the active ISA (isa.hpp).
///
/// GEMM convention: Y = X W^T, with W stored one output row per packed row (m x n bits), X
/// holding one token per row (t x n). Every product has a whole-matrix form that runs on the
/// default `parallel_for`, and a `_range` form over output columns [j0, j1) that a host engine
/// calls from its own threads. Shapes are checked (`InvalidArgument` naming the operand).

#include <cstddef>
#include <cstdint>

#include "bit_matrix.hpp"
#include "error.hpp"
#include "isa.hpp"
#include "parallel.hpp"
#define MBOK_INTERNAL_INCLUDE
#include "detail/kernels/dispatch.hpp"
#undef MBOK_INTERNAL_INCLUDE

namespace mbok {

/// The kernels of one ISA. A layer builds one when it is made and keeps it.
class KernelSet {
 public:
  /// The kernels of the active ISA (see isa.hpp).
  KernelSet() : table_(&detail::kernel_table(active_isa())) {}
  /// The kernels of `isa`; throws `InvalidArgument` when it is not available here.
  explicit KernelSet(Isa isa) : table_(&detail::kernel_table(isa)) {
    detail::require(isa_available(isa), "KernelSet: ISA '", isa_name(isa),
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
  /// `ldx` bytes apart, start 64-byte aligned, and hold w.row_words() * 64 values, zero past n.
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

 private:
  // Enough rows per chunk that a thread does at least ~64 Ki word operations.
  static std::size_t grain_rows(std::size_t t, std::size_t words) noexcept {
    const std::size_t per_row = std::max<std::size_t>(1, t * words);
    return std::max<std::size_t>(1, (std::size_t{1} << 16) / per_row);
  }
  static void check_range(std::size_t b, std::size_t e, std::size_t n, const char* what) {
    detail::require(b <= e && e <= n, what, ": range [", b, ", ", e, ") out of [0, ", n, ")");
  }
  static void check_xnor(BitMatrixView a, BitMatrixView b, const std::int32_t* c, std::size_t ldc) {
    detail::require(a.cols() == b.cols(), "xnor_gemm: activations have ", a.cols(),
                    " columns, weights ", b.cols());
    detail::require(ldc >= b.rows(), "xnor_gemm: ldc ", ldc, " < output columns ", b.rows());
    detail::require(c != nullptr || a.empty() || b.empty(), "xnor_gemm: null output");
  }
  static void check_gemm(const float* x, std::size_t ldx, std::size_t t, BitMatrixView w,
                         const float* y, std::size_t ldy, const char* what) {
    detail::require(ldx >= w.cols(), what, ": ldx ", ldx, " < input features ", w.cols());
    detail::require(ldy >= w.rows(), what, ": ldy ", ldy, " < output features ", w.rows());
    detail::require(t == 0 || (x != nullptr && y != nullptr), what, ": null input or output");
  }
  static void check_transposed(const float* z, std::size_t ldz, std::size_t t, BitMatrixView w,
                               const float* dx, std::size_t lddx) {
    detail::require(ldz >= w.rows(), "sign_gemm_transposed: ldz ", ldz, " < output features ",
                    w.rows());
    detail::require(lddx >= w.cols(), "sign_gemm_transposed: lddx ", lddx, " < input features ",
                    w.cols());
    detail::require(t == 0 || (z != nullptr && dx != nullptr),
                    "sign_gemm_transposed: null input or output");
  }
  static void check_i8(const std::int8_t* x, std::size_t ldx, std::size_t t, BitMatrixView w,
                       const std::int32_t* y, std::size_t ldy) {
    detail::require(ldx >= w.row_words() * 64, "sign_gemm_i8: ldx ", ldx,
                    " < padded input row of ", w.row_words() * 64, " bytes");
    detail::require(ldy >= w.rows(), "sign_gemm_i8: ldy ", ldy, " < output features ", w.rows());
    detail::require(t == 0 || (x != nullptr && y != nullptr), "sign_gemm_i8: null input or output");
    detail::require(t == 0 || reinterpret_cast<std::uintptr_t>(x) % kBufferAlignment == 0,
                    "sign_gemm_i8: activations must be 64-byte aligned");
    detail::require(ldx % kBufferAlignment == 0, "sign_gemm_i8: ldx ", ldx,
                    " is not a multiple of 64 bytes");
  }

  const detail::KernelTable* table_;
};

}  // namespace mbok
