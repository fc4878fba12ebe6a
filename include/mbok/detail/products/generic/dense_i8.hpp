// The dense int8 x float product's row loop, written once and compiled once per ISA: an ISA
// includes this file inside its namespace and code region, after defining
//
//     template <int R> void dense_i8_rows(q, ldq, s, n, x, ldx, t, y, ldy)
//
// (y[i * ldy + r] = s[r] * dot(q row r, x row i) for R rows starting at q, every token i).
// Rows go four at a time (independent accumulator chains for one token), then one at a time.
// No include guard: it defines its contents once per ISA namespace.

inline void dense_i8_f32(const std::int8_t* q, std::size_t ldq, const float* s, std::size_t n,
                         const float* x, std::size_t ldx, std::size_t t, float* y, std::size_t ldy,
                         std::size_t j0, std::size_t j1) {
  std::size_t j = j0;
  for (; j + 4 <= j1; j += 4) dense_i8_rows<4>(q + j * ldq, ldq, s + j, n, x, ldx, t, y + j, ldy);
  for (; j < j1; ++j) dense_i8_rows<1>(q + j * ldq, ldq, s + j, n, x, ldx, t, y + j, ldy);
}

inline constexpr void install_dense_i8(ProductTable& t) noexcept { t.dense_i8_f32 = &dense_i8_f32; }
