#pragma once
#include "../../guard.hpp"

// avx512: Boolean weights x int8 activations: table entry sign_gemm_i8.
// Until the avx512 version is written the table keeps the portable kernel.

#include "../table.hpp"

namespace mbok::detail::avx512 {

inline constexpr void install_sign_i8(KernelTable&) noexcept {}

}  // namespace mbok::detail::avx512
