// detail::all_finite, the check every product runs on its inputs: exact on the values that
// sit at the edges of the float and double encodings, in any position of a strided block,
// and blind to the padding between rows.

#include <mbok/config.hpp>
#include <mbok/detail/base/finite.hpp>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "../../support.hpp"

namespace mbok::test {
namespace {

template <typename T>
void check_edges() {
  using L = std::numeric_limits<T>;
  const T finite[] = {T(0),     -T(0),       L::min(), L::denorm_min(), -L::denorm_min(),
                      L::max(), L::lowest(), T(1),     T(-3.5)};
  const T bad[] = {L::infinity(), -L::infinity(), L::quiet_NaN(), -L::quiet_NaN(),
                   L::signaling_NaN()};
  const std::size_t rows = 5, cols = 37, ld = 41;  // 4 padding values per row
  std::vector<T> block(rows * ld, T(0.25));
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t j = cols; j < ld; ++j) block[i * ld + j] = L::quiet_NaN();  // padding
  CHECK(detail::all_finite(block.data(), rows, cols, ld));
  CHECK(detail::all_finite(block.data(), 0, cols, ld));
  CHECK(detail::all_finite(block.data(), rows, 0, ld));
  for (T v : finite) {
    for (std::size_t pos : {std::size_t{0}, cols - 1, 2 * ld + 17, (rows - 1) * ld + cols - 1}) {
      std::vector<T> b = block;
      b[pos] = v;
      CHECK(detail::all_finite(b.data(), rows, cols, ld));
    }
  }
  for (T v : bad) {
    for (std::size_t pos : {std::size_t{0}, cols - 1, 2 * ld + 17, (rows - 1) * ld + cols - 1}) {
      std::vector<T> b = block;
      b[pos] = v;
      CHECK_FALSE(detail::all_finite(b.data(), rows, cols, ld));
      CHECK(detail::all_finite(b.data(), pos / ld, cols, ld));  // the rows before it
    }
  }
}

TEST_CASE("all_finite finds every NaN and infinity and nothing else (float)", "[finite]") {
  check_edges<float>();
}

TEST_CASE("all_finite finds every NaN and infinity and nothing else (double)", "[finite]") {
  check_edges<double>();
}

TEST_CASE("all_finite agrees with std::isfinite on every float exponent", "[finite]") {
  // One value per exponent field and sign, with a mantissa that sets the top and bottom bits.
  for (std::uint32_t e = 0; e < 256; ++e) {
    for (std::uint32_t sign : {0u, 1u}) {
      const std::uint32_t u = (sign << 31) | (e << 23) | 0x400001u;
      float v;
      std::memcpy(&v, &u, sizeof v);
      CHECK(detail::all_finite(&v, 1, 1, 1) == std::isfinite(v));
    }
  }
}

}  // namespace
}  // namespace mbok::test
