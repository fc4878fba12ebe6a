#pragma once
#include "../../guard.hpp"

// avx2: Boolean x Boolean (XNOR/popcount): table entry xnor_gemm.
// Until the avx2 version is written the table keeps the portable kernel.

#include "../table.hpp"

namespace mbok::detail::avx2 {

inline constexpr void install_xnor(KernelTable&) noexcept {}

}  // namespace mbok::detail::avx2
