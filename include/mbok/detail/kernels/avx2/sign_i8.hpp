#pragma once
#include "../../guard.hpp"

// avx2: Boolean weights x int8 activations: table entry sign_gemm_i8.
// Until the avx2 version is written the table keeps the portable kernel.

#include "../table.hpp"

namespace mbok::detail::avx2 {

inline constexpr void install_sign_i8(KernelTable&) noexcept {}

}  // namespace mbok::detail::avx2
