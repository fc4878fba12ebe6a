#pragma once
#include "../guard.hpp"

#include <cstddef>
#include <cstdint>

#include "../../bit_matrix.hpp"
#include "../../isa.hpp"
#include "lut_format.hpp"

namespace mbok::detail {

// The products every ISA provides, in the GEMM convention Y = X W^T (W: one output row per
// packed row). Every entry takes a range of the output's columns so that callers can split
// the work across threads; shapes are checked by the public entry points (kernels.hpp), not
// here.
struct KernelTable {
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
  // Largest token count for which the fused int8 forward picks the LUT product by default
  // (measured per ISA; bounded by the tables' memory where the LUT product wins at every t).
  std::size_t lut_max_tokens;
};

}  // namespace mbok::detail
