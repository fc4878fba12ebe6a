// make_parameter: names, pointers, shapes and decay of registered tensors, for the float
// tensors optimizers step and the double tensors of gradient checks.

#include <mbok/parameter.hpp>

#include <type_traits>

#include "../../support.hpp"

namespace mbok::test {
namespace {

TEST_CASE("make_parameter records pointers, size, row-major shape and decay", "[parameter]") {
  Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> w(3, 2), gw(3, 2);
  Eigen::MatrixXf c(3, 2), gc(3, 2);
  Eigen::VectorXf v(4), gv(4);
  const Parameter pw = make_parameter("w", w, gw);
  CHECK(pw.name == "w");
  CHECK(pw.value == w.data());
  CHECK(pw.grad == gw.data());
  CHECK(pw.size == 6);
  CHECK(pw.shape == std::vector<std::int64_t>{3, 2});
  CHECK(pw.weight_decay);
  CHECK(make_parameter("c", c, gc).shape == std::vector<std::int64_t>{2, 3});
  const Parameter pv = make_parameter("v", v, gv, false);
  CHECK(pv.shape == std::vector<std::int64_t>{4});
  CHECK_FALSE(pv.weight_decay);
}

TEST_CASE("make_parameter registers double tensors as BasicParameter<double>", "[parameter]") {
  Eigen::MatrixXd w = Eigen::MatrixXd::Zero(2, 5), g = Eigen::MatrixXd::Ones(2, 5);
  const auto p = make_parameter("w", w, g);
  static_assert(std::is_same_v<std::decay_t<decltype(p)>, BasicParameter<double>>);
  CHECK(p.size == 10);
  p.value[3] = 2.5;
  CHECK(w.data()[3] == 2.5);
  CHECK(p.grad[9] == 1.0);
  Eigen::MatrixXd wrong(5, 2);
  CHECK_THROWS_WITH(make_parameter("x", w, wrong), test::contains("gradient is 5 x 2"));
}

}  // namespace
}  // namespace mbok::test
