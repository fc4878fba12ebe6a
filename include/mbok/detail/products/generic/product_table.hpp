// The table of one SIMD ISA, written once for every ISA: the portable table with each product
// that has a version for this ISA replaced. An ISA includes this file inside its own namespace,
// after its product headers (each defines that ISA's install_<product>) and after naming its
// `Isa` as `kTableIsa`, so each ISA's table lives in its own namespace. It has no include
// guard of its own: it defines its contents once per ISA namespace. Include it as
//
//     namespace mbok::detail::avx2 {
//     inline constexpr Isa kTableIsa = Isa::avx2;
//     #include "../generic/product_table.hpp"
//     }
//
// after ../scalar/products.hpp, ../table.hpp and the ISA's dense_i8.hpp, lut_f32.hpp, lut_i8.hpp,
// sign_f32.hpp, sign_i8.hpp, xnor.hpp and its install_training, install_boolean_step and
// install_quantize.

inline constexpr ProductTable make_table() noexcept {
  ProductTable t = scalar::kTable;
  t.isa = kTableIsa;
  install_xnor(t);
  install_sign_f32(t);
  install_sign_i8(t);
  install_lut_i8(t);
  install_lut_f32(t);
  install_dense_i8(t);
  install_training(t);
  install_boolean_step(t);
  install_quantize(t);
  return t;
}

inline constexpr ProductTable kTable = make_table();
