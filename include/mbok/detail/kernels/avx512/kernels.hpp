#pragma once
#include "../../guard.hpp"

// The avx512 table. Until the avx512 kernels land it runs the portable kernels, so dispatch,
// overrides and tests already exercise the avx512 entry.

#include "../scalar/kernels.hpp"
#include "../table.hpp"

#include "begin.hpp"
namespace mbok::detail::avx512 {

inline constexpr KernelTable kTable{Isa::avx512, &scalar::xnor_gemm, &scalar::sign_gemm_f32,
                                    &scalar::sign_gemm_t_f32, &scalar::sign_gemm_i8};

}  // namespace mbok::detail::avx512
#include "end.hpp"
