// AdamW against a direct transcription of the update rule, state and errors.

#include <mbok/adamw.hpp>

#include <cmath>
#include <limits>

#include "../../support.hpp"

namespace mbok::test {
namespace {

TEST_CASE("AdamW follows the update rule with decoupled weight decay", "[adamw]") {
  Eigen::VectorXf a = random_matrix(5, 1), ga(5);
  Eigen::MatrixXf b = random_matrix(3, 2), gb(3, 2);
  AdamWOptions opt;
  opt.learning_rate = 0.01;
  opt.weight_decay = 0.1;
  AdamW o({make_parameter("a", a, ga), make_parameter("b", b, gb, false)}, opt);
  CHECK(o.num_parameters() == 2);
  // Reference in double.
  Eigen::VectorXd pa = a.cast<double>(), ma = Eigen::VectorXd::Zero(5), va = Eigen::VectorXd::Zero(5);
  Eigen::MatrixXd pb = b.cast<double>(), mb = Eigen::MatrixXd::Zero(3, 2), vb = Eigen::MatrixXd::Zero(3, 2);
  for (int t = 1; t <= 4; ++t) {
    // Copy into the registered buffers (a moved-in temporary would replace them).
    const Eigen::MatrixXf new_ga = random_matrix(5, 1), new_gb = random_matrix(3, 2);
    ga = new_ga;
    gb = new_gb;
    o.step();
    const double c1 = 1 - std::pow(0.9, t), c2 = 1 - std::pow(0.999, t);
    ma = 0.9 * ma + 0.1 * ga.cast<double>();
    va = 0.999 * va + 0.001 * ga.cast<double>().cwiseAbs2();
    pa -= 0.01 * ((ma / c1).array() / ((va / c2).array().sqrt() + 1e-8)).matrix() + 0.01 * 0.1 * pa;
    mb = 0.9 * mb + 0.1 * gb.cast<double>();
    vb = 0.999 * vb + 0.001 * gb.cast<double>().cwiseAbs2();
    pb -= 0.01 * ((mb / c1).array() / ((vb / c2).array().sqrt() + 1e-8)).matrix();  // no decay
  }
  CHECK((a.cast<double>() - pa).cwiseAbs().maxCoeff() < 1e-5);
  CHECK((b.cast<double>() - pb).cwiseAbs().maxCoeff() < 1e-5);
  CHECK(o.state_bytes() >= 2 * (5 + 6) * sizeof(float));
}

TEST_CASE("AdamW state round-trips and rejects mismatches", "[adamw][state]") {
  Eigen::VectorXf a = random_matrix(4, 1), ga = random_matrix(4, 1);
  AdamW o({make_parameter("a", a, ga)});
  o.step();
  o.step();
  StateDict dict;
  o.export_state(dict, "adam.");
  Eigen::VectorXf a2 = a, ga2 = ga;
  AdamW r({make_parameter("a", a2, ga2)});
  r.import_state(dict, "adam.");
  CHECK(r.step_count() == 2);
  o.step();
  r.step();
  CHECK(a == a2);

  Eigen::VectorXf c(5), gc(5);
  AdamW wrong({make_parameter("a", c, gc)});
  CHECK_THROWS_AS(wrong.import_state(dict, "adam."), FormatError);
  CHECK(wrong.step_count() == 0);
}

TEST_CASE("AdamW rejects bad gradients and options", "[adamw][errors]") {
  Eigen::VectorXf a = Eigen::VectorXf::Ones(3), ga = Eigen::VectorXf::Ones(3);
  AdamW o({make_parameter("a", a, ga)});
  ga(1) = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(o.step(), test::contains("gradient of 'a' is not finite"));
  CHECK(a == Eigen::VectorXf::Ones(3));
  CHECK(o.step_count() == 0);
  CHECK_THROWS_WITH(o.add_parameters({make_parameter("a", a, ga)}), test::contains("duplicate"));
  Eigen::VectorXf g4(4);
  CHECK_THROWS_WITH(make_parameter("x", a, g4), test::contains("gradient is 4 x 1"));
  AdamWOptions bad;
  bad.beta1 = 1.0;
  CHECK_THROWS_WITH(AdamW({}, bad), test::contains("beta1"));
  CHECK_THROWS_AS(o.set_learning_rate(-1), InvalidArgument);
}

}  // namespace
}  // namespace mbok::test
