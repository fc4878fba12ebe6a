#pragma once
#include "../guard.hpp"

#include <cstddef>
#include <cstdint>

#include "../../bit_matrix.hpp"
#include "../../isa.hpp"
#include "boolean_step_args.hpp"
#include "lut_f32_format.hpp"
#include "lut_format.hpp"
#include "weight_panels.hpp"

namespace mbok::detail {

// The products every ISA provides, in the GEMM convention Y = X W^T (W: one output row per
// packed row). The inference entries take a range of the output's columns so that callers can
// split the work across threads; shapes are checked by the public entry points (products.hpp),
// not here. The training entries (from gemm_tn_f32 on) are reached through training.hpp, which
// checks nothing either: its callers (the layer, the optimizer) check at their entrance.
struct ProductTable {
  Isa isa;
  // C[i * ldc + j] = n - 2 popcount(A_i xor B_j), i < a.rows(), j in [j0, j1); n = a.cols().
  void (*xnor_gemm)(BitMatrixView a, BitMatrixView b, std::int32_t* c, std::size_t ldc,
                    std::size_t j0, std::size_t j1);
  // Y[i * ldy + j] = sum_l X[i * ldx + l] * W(j, l), i < t, j in [j0, j1).
  void (*sign_gemm_f32)(const float* x, std::size_t ldx, std::size_t t, BitMatrixView w, float* y,
                        std::size_t ldy, std::size_t j0, std::size_t j1);
  // dX[i * lddx + l] = sum_j Z[i * ldz + j] * W(j, l), i < t, l in [l0, l1); l0 is a multiple
  // of 64.
  void (*sign_gemm_t_f32)(const float* z, std::size_t ldz, std::size_t t, BitMatrixView w,
                          float* dx, std::size_t lddx, std::size_t l0, std::size_t l1);
  // Y[i * ldy + j] = sum_l X[i * ldx + l] * W(j, l) in int32; X rows hold w.row_words() * 64
  // int8 values, zero past n, and start 64-byte aligned.
  void (*sign_gemm_i8)(const std::int8_t* x, std::size_t ldx, std::size_t t, BitMatrixView w,
                       std::int32_t* y, std::size_t ldy, std::size_t j0, std::size_t j1);
  // Y[i * ldy + j] += s_out[j] * sum_l X[i * ldx + l] * W(j, l), i < t, j in [j0, j1): one
  // kernel's share of the fused multi-kernel forward (X already scaled by s_in). Reads X up
  // to column n only.
  void (*sign_gemm_acc_f32)(const float* x, std::size_t ldx, std::size_t t, BitMatrixView w,
                            const float* s_out, float* y, std::size_t ldy, std::size_t j0,
                            std::size_t j1);
  // The table-lookup int8 product (lut_format.hpp). The weight layout this ISA packs for (the
  // CPU can decide it: avx512 uses interleave4 with VBMI + VNNI, lanes16 otherwise).
  LutLayout (*lut_layout)();
  // Tables of t tokens of int8 activations (sign_gemm_i8's input contract) with `cols`
  // features: token i's tables at tables + i * ld (ld >= lut_table_bytes(cols), a multiple of
  // 64, tables 64-byte aligned), base[i] = sum(x_i) + 256 lut_cols32(cols) modulo 2^32.
  void (*lut_tables_i8)(const std::int8_t* x, std::size_t ldx, std::size_t t, std::size_t cols,
                        std::uint8_t* tables, std::size_t ld, std::int32_t* base);
  // Y[i * ldy + j - j0] = sum_l X[i, l] * W(j, l), i < x.tokens, j in [j0, j1) (y points at
  // column j0); w in lut_layout().
  void (*sign_gemm_i8_lut)(LutTablesView x, LutWeightsView w, std::int32_t* y, std::size_t ldy,
                           std::size_t j0, std::size_t j1);
  // Y[i * ldy + j] = s[j] * sum_l X[i * ldx + l] * Q[j * ldq + l], i < t, j in [j0, j1): a
  // dense int8 matrix with one scale per row (Int8Matrix) times float activations.
  void (*dense_i8_f32)(const std::int8_t* q, std::size_t ldq, const float* s, std::size_t n,
                       const float* x, std::size_t ldx, std::size_t t, float* y, std::size_t ldy,
                       std::size_t j0, std::size_t j1);
  // sign_gemm_i8_lut's contract, by a product built for many tokens (the same weights and
  // tables); lut_product() picks it for x.tokens >= lut_prefill_min_tokens.
  void (*sign_gemm_i8_lut_prefill)(LutTablesView x, LutWeightsView w, std::int32_t* y,
                                   std::size_t ldy, std::size_t j0, std::size_t j1);
  // Fewest tokens for which sign_gemm_i8_lut_prefill runs (measured per ISA; SIZE_MAX: never).
  std::size_t lut_prefill_min_tokens;
  // Largest token count for which the fused int8 forward picks the LUT product by default
  // (measured per ISA; bounded by the tables' memory where the LUT product wins at every t).
  std::size_t lut_max_tokens;
  // The table-lookup float product (lut_f32_format.hpp) over the int8 product's repacked
  // weights. Tables of t tokens of x (.) s (s: cols values, or null for x itself; x read up to
  // column cols) into tables + i * ld (ld >= lut_f32_table_floats(cols), a multiple of 16,
  // tables 64-byte aligned); bit for bit the same on every ISA.
  void (*lut_tables_f32)(const float* x, std::size_t ldx, std::size_t t, std::size_t cols,
                         const float* s, float* tables, std::size_t ld);
  // Y[i * ldy + j] = s_out[j] sum_l X[i, l] W(j, l), plus Y[i * ldy + j] when `accumulate`
  // (s_out null: 1), i < x.tokens, j in [j0, j1); w in either layout (the ISA's own is fast).
  void (*sign_gemm_f32_lut)(LutTablesF32View x, LutWeightsView w, const float* s_out,
                            bool accumulate, float* y, std::size_t ldy, std::size_t j0,
                            std::size_t j1);
  // Largest token count for which the float forward over repacked weights picks the float
  // LUT product by default (measured per ISA; 0: never).
  std::size_t lut_f32_max_tokens;

  // ---- the training step (training.hpp) ----
  // C (m x n, rows ldc apart) = A^T B for A t x m (rows lda apart), B t x n (rows ldb apart);
  // t, m, n > 0. A whole product: it packs A once, then splits C's columns on parallel_for.
  void (*gemm_tn_f32)(const float* a, std::size_t lda, const float* b, std::size_t ldb,
                      std::size_t t, std::size_t m, std::size_t n, float* c, std::size_t ldc);
  // Y (t x m, rows ldy apart) = X W^T for the multi-kernel weight W = sum_k s_out_k (.) B_k (.)
  // s_in_k (m x n) and X (t x n, rows ldx apart), overwriting Y; t, m, n > 0. Whole product.
  void (*weight_forward_f32)(const SignKernels& w, std::size_t m, std::size_t n, const float* x,
                             std::size_t ldx, std::size_t t, float* y, std::size_t ldy);
  // dX (t x n, rows lddx apart) += Z W for Z (t x m, rows ldz apart); t, m, n > 0. Whole
  // product.
  void (*weight_backward_dx_f32)(const SignKernels& w, std::size_t m, std::size_t n, const float* z,
                                 std::size_t ldz, std::size_t t, float* dx, std::size_t lddx);
  // K t (kernels times tokens) from which the layer's float forward and dX, and
  // multi_kernel_forward, take the weight products instead of K sign products (measured per
  // ISA; SIZE_MAX where the weight products are not faster).
  std::size_t weight_product_min_work;
  // Rows [r0, r1) of the backward's pass over P = Z^T X (m x n, rows n apart) for the kernels
  // order[0 .. count) of w: ds_out[k][i] += sum_j P_ij b_ij s_in_k,j, ds_in[k][j] += sum_i
  // P_ij b_ij s_out_k,i (b = +-1, bit set = -1), and where q[k] is not null Q_k,ij = P_ij
  // s_out_k,i s_in_k,j (added to q[k] when add_q[k], written otherwise; q[k] may be P itself
  // for the last kernel of `order`, which reads P last).
  void (*signal_rows)(const SignKernels& w, const std::size_t* order, std::size_t count,
                      const float* p, std::size_t n, std::size_t r0, std::size_t r1,
                      float* const* ds_out, float* const* ds_in, float* const* q,
                      const bool* add_q);
  // The Boolean optimizer's step over rows [r0, r1) for each accumulator codec (StepCodec
  // order: f32, f16, i8), bit for bit the same on every ISA; returns the flips.
  std::size_t (*boolean_step_rows[3])(const BooleanStepArgs& args, std::size_t r0, std::size_t r1);
  // The largest |q| over rows x cols (rows ld apart) as its bit pattern (>= 0x7F800000 when
  // a value is NaN or infinite).
  std::uint32_t (*max_abs_bits)(const float* q, std::size_t ld, std::size_t rows, std::size_t cols);

  // ---- per-token int8 quantization of activations (activations.hpp), bit for bit the same
  // on every ISA, of v(l) = x(l) s(l) (s null: x(l)), l < n:
  // max |v| as its bit pattern (>= 0x7F800000 when a value is NaN or infinite);
  std::uint32_t (*abs_max_bits_f32)(const float* x, const float* s, std::size_t n);
  // q(l) = (v(l) pre) inv (no product by pre when pre is 1) rounded to nearest, halves away
  // from zero, clamped to [-127, 127], into n bytes of q; returns sum q.
  std::int32_t (*quantize_codes_f32)(const float* x, const float* s, std::size_t n, float pre,
                                     float inv, std::int8_t* q);
};

// The table-lookup int8 product `table` runs for `tokens` tokens (one token block of a call).
inline auto lut_product(const ProductTable& table, std::size_t tokens) noexcept {
  return tokens >= table.lut_prefill_min_tokens ? table.sign_gemm_i8_lut_prefill
                                                : table.sign_gemm_i8_lut;
}

}  // namespace mbok::detail
