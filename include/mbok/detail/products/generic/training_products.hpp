// The training step's whole products around an ISA's register tile, written once for avx2 and
// avx512: an ISA's products.hpp includes this file inside its namespace but outside its code
// region (the drivers pack and split work; the panels and tiles they call are the region's),
// after its gemm_f32.hpp, and before generic/product_table.hpp, which calls install_training.
// No include guard of its own: it defines its contents once per ISA namespace.

inline void gemm_tn_whole(const float* a, std::size_t lda, const float* b, std::size_t ldb,
                          std::size_t t, std::size_t m, std::size_t n, float* c, std::size_t ldc) {
  const std::vector<float> apack = pack_gemm_tn_a(a, lda, t, m, kGemmRows);
  const std::size_t panels = (n + kGemmCols - 1) / kGemmCols;
  parallel_for(0, panels, 1, [&](std::size_t p0, std::size_t p1) {
    gemm_tn_panels(apack.data(), t, m, b, ldb, c, ldc, p0 * kGemmCols, std::min(n, p1 * kGemmCols));
  });
}

// Forward: Y (t x m) = X W^T, summing over n in panels of W's rows; else dX (t x n) += Z W,
// summing over m in panels of W's columns. The operand a holds t tokens, rows lda apart.
template <bool Forward>
void weight_product_whole(const SignKernels& w, std::size_t m, std::size_t n, const float* a,
                          std::size_t lda, std::size_t t, float* out, std::size_t ldo) {
  const std::size_t inner = Forward ? n : m, outer = Forward ? m : n;
  const std::vector<float> apack = pack_gemm_tokens(a, lda, t, inner, kGemmRows);
  const std::size_t panels = (outer + kGemmCols - 1) / kGemmCols;
  parallel_for(0, panels, 1, [&](std::size_t p0, std::size_t p1) {
    const std::size_t o0 = p0 * kGemmCols, o1 = std::min(outer, p1 * kGemmCols);
    if constexpr (Forward)
      weight_forward_panels(w, apack.data(), t, inner, out, ldo, o0, o1);
    else
      weight_backward_panels(w, apack.data(), t, inner, out, ldo, o0, o1);
  });
}

// K t >= 64: rebuilding W costs about K m n operations per call against K t m n for K sign
// products, so the weight products win from K t of about 64 on (docs/performance.md,
// "Training step", measured on Zen 4 with AVX-512 and AVX2).
inline constexpr void install_training(ProductTable& t) noexcept {
  t.gemm_tn_f32 = &gemm_tn_whole;
  t.weight_forward_f32 = &weight_product_whole<true>;
  t.weight_backward_dx_f32 = &weight_product_whole<false>;
  t.weight_product_min_work = 64;
  t.signal_rows = &signal_rows;
}
