#pragma once
#include "../../guard.hpp"

// The avx2 table: one file per product. A product not yet written for avx2 points at the
// portable kernel.

#include "../scalar/kernels.hpp"
#include "../table.hpp"

namespace mbok::detail::avx2 {

inline constexpr KernelTable kTable{Isa::avx2, &scalar::xnor_gemm, &scalar::sign_gemm_f32,
                                    &scalar::sign_gemm_t_f32, &scalar::sign_gemm_i8};

}  // namespace mbok::detail::avx2
