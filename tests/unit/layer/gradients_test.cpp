// Every gradient of BooleanLinear against central finite differences of a naive forward,
// and Q_k against the dense formula and against the change of the loss when a +-1 weight is
// flipped (the loss is linear in each weight, so both are exact up to rounding).

#include <mbok/boolean_linear.hpp>

#include <cmath>

#include "../../support.hpp"
#include "reference.hpp"

namespace mbok::test {
namespace {

MultiKernelWeights<double> random_weights_d(std::size_t m, std::size_t n, std::size_t k_count) {
  MultiKernelWeights<double> w(m, n);
  for (std::size_t k = 0; k < k_count; ++k)
    w.add_kernel(random_bits(m, n), random_matrix(m, 1).cast<double>(), random_matrix(n, 1).cast<double>());
  return w;
}

struct Case {
  std::size_t m, n, k_count, t;
  std::vector<long> trainable;
  bool bias;
};

TEST_CASE("BooleanLinear gradients match finite differences", "[layer][gradients]") {
  const std::vector<Case> cases = {
      {3, 5, 1, 2, {-1}, true},     {4, 7, 2, 3, {-1}, false},   {6, 65, 2, 4, {0, 1}, true},
      {5, 9, 3, 1, {0}, true},      {7, 11, 3, 5, {}, false},    {2, 130, 4, 3, {1, -1}, true}};
  for (const Case& c : cases) {
    INFO(c.m << " x " << c.n << ", K = " << c.k_count << ", t = " << c.t);
    auto w = random_weights_d(c.m, c.n, c.k_count);
    BooleanLinearOptions opt;
    opt.trainable_kernels = c.trainable;
    const Eigen::VectorXd bias = random_matrix(c.m, 1).cast<double>();
    BooleanLinear<double> layer = c.bias ? BooleanLinear<double>(w, bias, opt) : BooleanLinear<double>(w, opt);
    DenseKernels ref = DenseKernels::of(w);
    if (c.bias) ref.bias = bias;
    RowMatrixD x = random_matrix(c.t, c.n).cast<double>();
    const RowMatrixD z = random_matrix(c.t, c.m).cast<double>();  // dL/dY for L = sum(Y (.) Z)
    auto loss = [&] { return contract(ref.forward(x), z); };

    RowMatrixD dx(c.t, c.n);
    layer.backward(x, z, dx);
    const double h = 1e-5, tol = 1e-7;

    for (Eigen::Index i = 0; i < x.rows(); ++i)
      for (Eigen::Index l = 0; l < x.cols(); ++l)
        CHECK(dx(i, l) == Approx(central_difference(x(i, l), h, loss)).margin(tol));
    for (std::size_t k = 0; k < c.k_count; ++k) {
      for (std::size_t j = 0; j < c.m; ++j)
        CHECK(layer.grad_s_out(k)(static_cast<Eigen::Index>(j)) ==
              Approx(central_difference(ref.s_out[k](static_cast<Eigen::Index>(j)), h, loss)).margin(tol));
      for (std::size_t l = 0; l < c.n; ++l)
        CHECK(layer.grad_s_in(k)(static_cast<Eigen::Index>(l)) ==
              Approx(central_difference(ref.s_in[k](static_cast<Eigen::Index>(l)), h, loss)).margin(tol));
      CHECK(layer.trainable(k) == (std::find_if(c.trainable.begin(), c.trainable.end(), [&](long v) {
                                     return (v < 0 ? v + static_cast<long>(c.k_count) : v) == static_cast<long>(k);
                                   }) != c.trainable.end()));
      if (!layer.trainable(k)) continue;
      const RowMatrixD& q = layer.signal(k);
      const RowMatrixD dense = ref.signal(k, x, z);
      CHECK((q - dense).cwiseAbs().maxCoeff() <= 1e-12 * (1 + dense.cwiseAbs().maxCoeff()));
      const double base = loss();
      for (Eigen::Index j = 0; j < q.rows(); ++j)
        for (Eigen::Index l = 0; l < q.cols(); l += 3) {
          double& b = ref.b[k](j, l);
          CHECK(q(j, l) == Approx(central_difference(b, h, loss)).margin(tol));
          // Flipping the weight changes the loss by exactly -2 b Q.
          const double sign = b;
          b = -sign;
          CHECK(loss() - base == Approx(-2 * sign * q(j, l)).margin(1e-9));
          b = sign;
        }
    }
    if (c.bias)
      for (std::size_t j = 0; j < c.m; ++j)
        CHECK(layer.grad_bias()(static_cast<Eigen::Index>(j)) ==
              Approx(central_difference(ref.bias(static_cast<Eigen::Index>(j)), h, loss)).margin(tol));
  }
}

TEST_CASE("float backward on every ISA equals the double backward", "[layer][gradients]") {
  const std::size_t m = 21, n = 200, t = 9;
  auto wd = random_weights_d(m, n, 2);
  MultiKernelWeights<float> wf(m, n);
  for (std::size_t k = 0; k < 2; ++k) wf.add_kernel(wd.kernel(k), wd.s_out(k).cast<float>(), wd.s_in(k).cast<float>());
  BooleanLinearOptions opt;
  opt.trainable_kernels = {0, 1};
  BooleanLinear<double> dl(wd, opt);
  const auto xf = BooleanLinear<float>::RowMatrix(random_matrix(t, n));
  const auto zf = BooleanLinear<float>::RowMatrix(random_matrix(t, m));
  RowMatrixD dxd(t, n);
  dl.backward(xf.cast<double>(), zf.cast<double>(), dxd);
  for_each_isa([&](Isa isa) {
    BooleanLinear<float> fl(wf, opt);
    REQUIRE(fl.isa() == isa);
    BooleanLinear<float>::RowMatrix dx(t, n);
    fl.backward(xf, zf, dx);
    const double tol = 1e-5;
    CHECK((dx.cast<double>() - dxd).cwiseAbs().maxCoeff() <= tol * dxd.cwiseAbs().maxCoeff());
    for (std::size_t k = 0; k < 2; ++k) {
      CHECK((fl.grad_s_out(k).cast<double>() - dl.grad_s_out(k)).cwiseAbs().maxCoeff() <= tol * dl.grad_s_out(k).cwiseAbs().maxCoeff());
      CHECK((fl.grad_s_in(k).cast<double>() - dl.grad_s_in(k)).cwiseAbs().maxCoeff() <= tol * dl.grad_s_in(k).cwiseAbs().maxCoeff());
      CHECK((fl.signal(k).cast<double>() - dl.signal(k)).cwiseAbs().maxCoeff() <= tol * dl.signal(k).cwiseAbs().maxCoeff());
    }
    // Accumulating a second identical pass doubles everything; skipping dX leaves it alone.
    BooleanLinear<float>::RowMatrix dx2 = dx;
    fl.backward(xf, zf, dx2, true);
    CHECK((dx2 - 2 * dx).cwiseAbs().maxCoeff() <= 1e-5f * dx.cwiseAbs().maxCoeff());
    CHECK((fl.signal(1).cast<double>() - 2 * dl.signal(1)).cwiseAbs().maxCoeff() <= tol * 2 * dl.signal(1).cwiseAbs().maxCoeff());
    fl.backward(xf, zf);
    CHECK((fl.signal(1).cast<double>() - dl.signal(1)).cwiseAbs().maxCoeff() <= tol * dl.signal(1).cwiseAbs().maxCoeff());
  });
}

}  // namespace
}  // namespace mbok::test
