#pragma once
#include "../../guard.hpp"

// The avx512 table: the portable table with each product that has an avx512 version replaced
// (one file per product; the table itself is generic/kernel_table.hpp).

#include "../scalar/kernels.hpp"
#include "../table.hpp"
#include "lut_i8.hpp"
#include "sign_f32.hpp"
#include "sign_i8.hpp"
#include "xnor.hpp"

namespace mbok::detail::avx512 {

inline constexpr Isa kTableIsa = Isa::avx512;
#include "../generic/kernel_table.hpp"

}  // namespace mbok::detail::avx512
