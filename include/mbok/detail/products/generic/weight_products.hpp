// The forward and dX products of a multi-kernel weight, written once for avx2 and avx512 (the
// way tile_loop.hpp is): an ISA's gemm_f32.hpp includes this file once, inside its namespace
// and code region, after its kGemmCols, gemm_packed_f32, w_rows_panel and w_cols_panel, so the
// drivers compile for that ISA and call its panels and tile. No include guard of its own.

// Output columns [i0, i1) of Y (t x m, rows ldy apart) = X W^T, overwriting Y; `xpack` holds X
// (t x n) in blocks of kGemmRows tokens (xpack[(block * n + s) * kGemmRows + r]). i0 is a
// multiple of kGemmCols.
inline void weight_forward_panels(const SignKernels& w, const float* xpack, std::size_t t,
                                  std::size_t n, float* y, std::size_t ldy, std::size_t i0,
                                  std::size_t i1) {
  AlignedBuffer<float> storage = AlignedBuffer<float>::zeroed(n * kGemmCols);
  for (std::size_t i = i0; i < i1; i += kGemmCols) {
    const std::size_t rows = std::min(kGemmCols, i1 - i);
    w_rows_panel(w, n, i, rows, storage.data());
    gemm_packed_f32(xpack, n, t, storage.data(), y, ldy, i, rows, false);
  }
}

// Input columns [j0, j1) of dX (t x n, rows lddx apart) += Z W; `zpack` holds Z (t x m) in
// blocks of kGemmRows tokens. j0 is a multiple of kGemmCols.
inline void weight_backward_panels(const SignKernels& w, const float* zpack, std::size_t t,
                                   std::size_t m, float* dx, std::size_t lddx, std::size_t j0,
                                   std::size_t j1) {
  AlignedBuffer<float> storage = AlignedBuffer<float>::zeroed(m * kGemmCols);
  for (std::size_t j = j0; j < j1; j += kGemmCols) {
    const std::size_t cols = std::min(kGemmCols, j1 - j);
    w_cols_panel(w, m, j, cols, storage.data());
    gemm_packed_f32(zpack, m, t, storage.data(), dx, lddx, j, cols, true);
  }
}
