// The float training backward (one dense product P = Z^T X for every kernel's scale gradients
// and signal; dX by a sign product per kernel for the few tokens used here, the rebuilt-weight
// product of weight_products_test.cpp from K t >= 64 on) against the double layer, which keeps
// the per-kernel products, and the dense product itself on every ISA.

#include <mbok/boolean_linear.hpp>
#include <mbok/detail/products/training.hpp>

#include <algorithm>

#include "../../support.hpp"
#include "reference.hpp"

namespace mbok::test {
namespace {

MultiKernelWeights<double> random_weights_d(std::size_t m, std::size_t n, std::size_t k_count) {
  MultiKernelWeights<double> w(m, n);
  for (std::size_t k = 0; k < k_count; ++k)
    w.add_kernel(random_bits(m, n), random_matrix(m, 1).cast<double>(),
                 random_matrix(n, 1).cast<double>());
  return w;
}

// The float backward derives every kernel's scale gradients and signal from one dense product
// P = Z^T X; on edge shapes (rows and columns not multiples of the register tiles or of 64,
// one token, K = 1..3, every trainable set, with and without accumulation) it matches the
// double layer's per-kernel products within 1e-5 of each tensor's largest entry.
TEST_CASE("float backward from Z^T X equals the per-kernel double backward on edge shapes",
          "[layer][gradients]") {
  const std::size_t shapes[][3] = {{1, 1, 1},   {7, 65, 1},   {65, 7, 3},
                                   {9, 130, 2}, {33, 63, 17}, {70, 129, 5}};
  for (const auto& shape : shapes)
    for (std::size_t k_count = 1; k_count <= 3; ++k_count)
      for (int mode = 0; mode < 3; ++mode) {
        const std::size_t m = shape[0], n = shape[1], t = shape[2];
        CAPTURE(m, n, t, k_count, mode);
        auto wd = random_weights_d(m, n, k_count);
        MultiKernelWeights<float> wf(m, n);
        for (std::size_t k = 0; k < k_count; ++k)
          wf.add_kernel(wd.kernel(k), wd.s_out(k).cast<float>(), wd.s_in(k).cast<float>());
        BooleanLinearOptions opt;
        if (mode == 1) opt.trainable_kernels = {};
        if (mode == 2) {
          opt.trainable_kernels.clear();
          for (std::size_t k = 0; k < k_count; ++k)
            opt.trainable_kernels.push_back(static_cast<long>(k));
        }
        BooleanLinear<double> dl(wd, opt);
        const auto xf = BooleanLinear<float>::RowMatrix(random_matrix(t, n));
        const auto zf = BooleanLinear<float>::RowMatrix(random_matrix(t, m));
        RowMatrixD dxd(t, n);
        dl.backward(xf.cast<double>(), zf.cast<double>(), dxd);
        const auto close = [](const auto& got, const auto& want, double scale) {
          return (got.template cast<double>() - want).cwiseAbs().maxCoeff() <=
                 1e-5 * std::max(want.cwiseAbs().maxCoeff(), 1e-30) * scale;
        };
        for_each_isa([&](Isa isa) {
          CAPTURE(isa_name(isa));
          BooleanLinear<float> fl(wf, opt);
          BooleanLinear<float>::RowMatrix dx(t, n);
          for (int pass = 1; pass <= 2; ++pass) {
            // The second pass accumulates: everything doubles.
            fl.backward(xf, zf, dx, pass == 2);
            const double f = pass;
            CHECK(close(dx, dxd * f, f));
            for (std::size_t k = 0; k < k_count; ++k) {
              CHECK(close(fl.grad_s_out(k), dl.grad_s_out(k) * f, f));
              CHECK(close(fl.grad_s_in(k), dl.grad_s_in(k) * f, f));
              if (fl.trainable(k)) CHECK(close(fl.signal(k), dl.signal(k) * f, f));
            }
          }
        });
      }
}

TEST_CASE("dense Z^T X product of every ISA equals the double product", "[layer][gradients]") {
  const std::size_t shapes[][3] = {{1, 1, 1},  {8, 32, 1},    {9, 33, 3}, {6, 16, 2},
                                   {7, 17, 5}, {70, 100, 31}, {5, 3, 0}};
  for (const auto& shape : shapes)
    for (Isa isa : kAllIsas) {
      const std::size_t m = shape[0], n = shape[1], t = shape[2];
      CAPTURE(m, n, t, isa_name(isa));
      const RowMatrixD a = random_matrix(t, m + 3).cast<double>(),
                       b = random_matrix(t, n + 1).cast<double>();
      const BooleanLinear<float>::RowMatrix af = a.cast<float>(), bf = b.cast<float>();
      BooleanLinear<float>::RowMatrix c = BooleanLinear<float>::RowMatrix::Constant(
          static_cast<Eigen::Index>(m), static_cast<Eigen::Index>(n + 2), 7.0f);
      // Runs on the given ISA's products only where this CPU has it (Eigen otherwise).
      const Isa run_isa = isa_available(isa) ? isa : Isa::scalar;
      detail::gemm_tn_f32(ProductSet(run_isa).table(), af.data(), m + 3, bf.data(), n + 1, t, m, n,
                          c.data(), n + 2);
      const RowMatrixD want = a.leftCols(static_cast<Eigen::Index>(m)).transpose() *
                              b.leftCols(static_cast<Eigen::Index>(n));
      const double err = t == 0 ? c.leftCols(static_cast<Eigen::Index>(n)).cwiseAbs().maxCoeff()
                                : (c.leftCols(static_cast<Eigen::Index>(n)).cast<double>() - want)
                                      .cwiseAbs()
                                      .maxCoeff();
      CHECK(err <= 1e-5 * std::max(1.0, want.size() > 0 ? want.cwiseAbs().maxCoeff() : 0.0));
      CHECK((c.rightCols(2).array() == 7.0f).all());  // the stride's padding is not written
    }
}

}  // namespace
}  // namespace mbok::test
