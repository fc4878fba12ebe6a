// With two_units_b.cpp: two translation units that include the whole library link into one
// binary (no ODR clashes, no duplicate symbols).
#include <mbok/mbok.hpp>

#include "support.hpp"

namespace mbok::test {
std::size_t popcount_in_unit_b(const BitMatrix& m);
}

TEST_CASE("two translation units including the library link together", "[link]") {
  const mbok::BitMatrix m = mbok::test::random_bits(3, 77);
  CHECK(mbok::test::popcount_in_unit_b(m) == m.popcount());
  CHECK(mbok::KernelSet().isa() == mbok::active_isa());
}
