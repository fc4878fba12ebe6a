#pragma once
#include "../../guard.hpp"

// The neon table. Until the neon kernels land it runs the portable kernels, so dispatch,
// overrides and tests already exercise the neon entry.

#include "../scalar/kernels.hpp"
#include "../table.hpp"

#include "begin.hpp"
namespace mbok::detail::neon {

inline constexpr KernelTable kTable{Isa::neon, &scalar::xnor_gemm, &scalar::sign_gemm_f32,
                                    &scalar::sign_gemm_t_f32, &scalar::sign_gemm_i8};

}  // namespace mbok::detail::neon
#include "end.hpp"
