#pragma once
#include "../../guard.hpp"

// neon: Boolean weights x int8 activations: table entry sign_gemm_i8.
// Until the neon version is written the table keeps the portable kernel.

#include "../table.hpp"

namespace mbok::detail::neon {

inline constexpr void install_sign_i8(KernelTable&) noexcept {}

}  // namespace mbok::detail::neon
