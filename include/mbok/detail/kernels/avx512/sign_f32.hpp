#pragma once
#include "../../guard.hpp"

// avx512: Boolean weights x float activations: table entries sign_gemm_f32 and sign_gemm_t_f32.
// Until the avx512 version is written the table keeps the portable kernel.

#include "../table.hpp"

namespace mbok::detail::avx512 {

inline constexpr void install_sign_f32(KernelTable&) noexcept {}

}  // namespace mbok::detail::avx512
