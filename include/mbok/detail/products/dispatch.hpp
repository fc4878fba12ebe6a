#pragma once
#include "../guard.hpp"

// Collects one table per compiled ISA and picks one at run time.

#include "../../config.hpp"
#include "../../isa.hpp"
#include "scalar/products.hpp"
#include "table.hpp"
#if MBOK_HAS_X86_KERNELS
#include "avx2/products.hpp"
#include "avx512/products.hpp"
#endif
#if MBOK_HAS_NEON_KERNELS
#include "neon/products.hpp"
#endif

namespace mbok::detail {

// The table for `isa`, which must be compiled in (isa_compiled); scalar otherwise.
inline const ProductTable& product_table(Isa isa) noexcept {
  switch (isa) {
#if MBOK_HAS_X86_KERNELS
    case Isa::avx2:
      return avx2::kTable;
    case Isa::avx512:
      return avx512::kTable;
#endif
#if MBOK_HAS_NEON_KERNELS
    case Isa::neon:
      return neon::kTable;
#endif
    default:
      return scalar::kTable;
  }
}

}  // namespace mbok::detail
