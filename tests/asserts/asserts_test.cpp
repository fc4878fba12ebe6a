// Built with MBOK_ENABLE_ASSERTS=1 (in its own binary: the value must be the same in every
// translation unit of a program): the hot-path checks throw AssertionError instead of
// reading out of bounds.
#if !defined(MBOK_ENABLE_ASSERTS) || MBOK_ENABLE_ASSERTS != 1
#error "this test is built with MBOK_ENABLE_ASSERTS=1"
#endif

#include <mbok/activations.hpp>
#include <mbok/bit_matrix.hpp>
#include <mbok/state_dict.hpp>

#include <cstdint>
#include <type_traits>

#include "support.hpp"

namespace mbok::test {
namespace {

TEST_CASE("row access past the end of a bit matrix is an assertion error", "[asserts]") {
  static_assert(!noexcept(std::declval<BitMatrixView>().row(0)),
                "row() may throw when asserts are on");
  BitMatrix m(3, 70);
  CHECK_NOTHROW(m.view().row(2));
  CHECK_THROWS_AS(m.view().row(3), AssertionError);
  CHECK_THROWS_WITH(m.mutable_view().row(100), contains("i < rows_"));
  CHECK_THROWS_AS(BitMatrix().view().row(0), AssertionError);
}

TEST_CASE("a trusted view that breaks the stride contract is an assertion error", "[asserts]") {
  BitMatrix m(2, 600);  // two 512-bit blocks per row: stride 16 words
  CHECK_NOTHROW(BitMatrixView::unchecked(m.data(), 2, 600, 16));
  CHECK_THROWS_AS(BitMatrixView::unchecked(m.data(), 2, 600, 8), AssertionError);  // too short
  CHECK_THROWS_AS(BitMatrixView::unchecked(m.data(), 1, 600, 20),
                  AssertionError);  // not a multiple of 8
  CHECK_THROWS_AS(BitMatrixView::unchecked(nullptr, 1, 600, 16), AssertionError);
  CHECK_NOTHROW(BitMatrixView::unchecked(nullptr, 0, 0, 0));
}

TEST_CASE("int8 activation rows are checked", "[asserts]") {
  QuantizedActivations q;
  q.resize(2, 10);
  CHECK_NOTHROW(q.row(1));
  CHECK_THROWS_AS(q.row(2), AssertionError);
  CHECK_THROWS_AS(q.mutable_row(5), AssertionError);
}

TEST_CASE("state reads stay checked", "[asserts]") {
  const float v[3] = {1, 2, 3};
  StateDict d{{"v", Tensor::from(v, {3})}};
  float out[3] = {};
  read_tensor(d, "v", {3}, out);
  CHECK(out[2] == 3.0f);
}

}  // namespace
}  // namespace mbok::test
