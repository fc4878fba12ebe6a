#pragma once
#include "../../guard.hpp"

// The avx2 table. Until the avx2 kernels land it runs the portable kernels, so dispatch,
// overrides and tests already exercise the avx2 entry.

#include "../scalar/kernels.hpp"
#include "../table.hpp"

#include "begin.hpp"
namespace mbok::detail::avx2 {

inline constexpr KernelTable kTable{Isa::avx2, &scalar::xnor_gemm, &scalar::sign_gemm_f32,
                                    &scalar::sign_gemm_t_f32, &scalar::sign_gemm_i8};

}  // namespace mbok::detail::avx2
#include "end.hpp"
