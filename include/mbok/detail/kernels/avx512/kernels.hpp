#pragma once
#include "../../guard.hpp"

// The avx512 table: the portable table with each product that has a avx512 version replaced
// (one file per product).

#include "../scalar/kernels.hpp"
#include "../table.hpp"
#include "lut_i8.hpp"
#include "sign_f32.hpp"
#include "sign_i8.hpp"
#include "xnor.hpp"

namespace mbok::detail::avx512 {

inline constexpr KernelTable make_table() noexcept {
  KernelTable t = scalar::kTable;
  t.isa = Isa::avx512;
  install_xnor(t);
  install_sign_f32(t);
  install_sign_i8(t);
  install_lut_i8(t);
  return t;
}

inline constexpr KernelTable kTable = make_table();

}  // namespace mbok::detail::avx512
