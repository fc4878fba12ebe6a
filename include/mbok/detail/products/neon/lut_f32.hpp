#pragma once
#include "../../guard.hpp"

// neon: the table-lookup float product keeps the portable entries (scalar/lut_f32.hpp) until
// a neon version is measured; the float forward over repacked weights does not pick it by
// default here (the neon sign products run instead where the bits are at hand).

#include "../table.hpp"

namespace mbok::detail::neon {

inline constexpr void install_lut_f32(ProductTable& t) noexcept { t.lut_f32_max_tokens = 0; }

}  // namespace mbok::detail::neon
