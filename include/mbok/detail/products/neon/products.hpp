#pragma once
#include "../../guard.hpp"

// The neon table: the portable table with each product that has a neon version replaced
// (one file per product; the table itself is generic/product_table.hpp).

#include "../scalar/products.hpp"
#include "../table.hpp"
#include "dense_i8.hpp"
#include "lut_f32.hpp"
#include "lut_i8.hpp"
#include "sign_f32.hpp"
#include "sign_i8.hpp"
#include "xnor.hpp"

namespace mbok::detail::neon {

inline constexpr Isa kTableIsa = Isa::neon;
// The training step runs the scalar entries on neon (no neon version yet): a neon product
// installs itself here.
inline constexpr void install_training(ProductTable&) noexcept {}
inline constexpr void install_boolean_step(ProductTable&) noexcept {}
inline constexpr void install_quantize(ProductTable&) noexcept {}
#include "../generic/product_table.hpp"

}  // namespace mbok::detail::neon
