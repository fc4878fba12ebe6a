#pragma once
#include "../../guard.hpp"

// The avx2 table: the portable table with each product that has an avx2 version replaced
// (one file per product; the training step's whole products are generic/training_products.hpp,
// the table itself is generic/product_table.hpp).

#include <algorithm>
#include <cstddef>
#include <vector>

#include "../../../parallel.hpp"
#include "../gemm_pack.hpp"
#include "../scalar/products.hpp"
#include "../table.hpp"
#include "boolean_step.hpp"
#include "dense_i8.hpp"
#include "gemm_f32.hpp"
#include "lut_f32.hpp"
#include "lut_i8.hpp"
#include "quantize.hpp"
#include "sign_f32.hpp"
#include "sign_i8.hpp"
#include "xnor.hpp"

namespace mbok::detail::avx2 {

inline constexpr Isa kTableIsa = Isa::avx2;
#include "../generic/training_products.hpp"

// The table last: it installs what the files above define.
#include "../generic/product_table.hpp"

}  // namespace mbok::detail::avx2
