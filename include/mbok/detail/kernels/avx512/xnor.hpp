#pragma once
#include "../../guard.hpp"

// avx512: Boolean x Boolean (XNOR/popcount): table entry xnor_gemm.
// Until the avx512 version is written the table keeps the portable kernel.

#include "../table.hpp"

namespace mbok::detail::avx512 {

inline constexpr void install_xnor(KernelTable&) noexcept {}

}  // namespace mbok::detail::avx512
