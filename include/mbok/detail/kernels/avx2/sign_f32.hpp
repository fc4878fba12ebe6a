#pragma once
#include "../../guard.hpp"

// avx2: Boolean weights x float activations: table entries sign_gemm_f32 and sign_gemm_t_f32.
// Until the avx2 version is written the table keeps the portable kernel.

#include "../table.hpp"

namespace mbok::detail::avx2 {

inline constexpr void install_sign_f32(KernelTable&) noexcept {}

}  // namespace mbok::detail::avx2
