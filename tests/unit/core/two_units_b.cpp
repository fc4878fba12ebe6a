// Second translation unit of the link test (see two_units_a.cpp).
#include <mbok/mbok.hpp>

namespace mbok::test {
std::size_t popcount_in_unit_b(const BitMatrix& m) { return m.popcount(); }
}  // namespace mbok::test
