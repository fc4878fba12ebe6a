#pragma once
#include "../../guard.hpp"

// neon: Boolean x Boolean (XNOR/popcount): table entry xnor_gemm.
// Until the neon version is written the table keeps the portable kernel.

#include "../table.hpp"

namespace mbok::detail::neon {

inline constexpr void install_xnor(KernelTable&) noexcept {}

}  // namespace mbok::detail::neon
