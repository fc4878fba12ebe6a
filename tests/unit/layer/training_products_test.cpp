// The training step's table entries on every ISA (the scalar entries included) against naive
// references: the pass over P = Z^T X that gives every kernel's scale gradients and signal, and
// the signal's largest magnitude (the dense product: backward_product_test.cpp, the weight
// products: weight_products_test.cpp, the step: optimizer_vector_test.cpp); and the optimizer
// stepping on the products of the layer it trains.

#include <mbok/boolean_linear.hpp>
#include <mbok/boolean_optimizer.hpp>
#include <mbok/detail/products/training.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "../../support.hpp"
#include "reference.hpp"

namespace mbok::test {
namespace {

using RowMatrixF = BooleanLinear<float>::RowMatrix;

bool close(double got, double want, double magnitude) {
  return std::abs(got - want) <= 1e-5 * magnitude + 1e-30;
}

TEST_CASE("signal pass of every ISA equals the per-kernel definitions", "[layer][gradients]") {
  for_each_isa([](Isa isa) {
    const detail::ProductTable& table = ProductSet(isa).table();
    for (std::size_t m : {1, 5, 33})
      for (std::size_t n : {1, 15, 16, 17, 64, 65, 130})
        for (std::size_t k_count = 1; k_count <= 3; ++k_count) {
          CAPTURE(m, n, k_count);
          MultiKernelWeights<float> w(m, n);
          for (std::size_t k = 0; k < k_count; ++k)
            w.add_kernel(random_bits(m, n), random_matrix(m, 1), random_matrix(n, 1));
          const RowMatrixF p = random_matrix(m, n);
          std::vector<std::size_t> order;
          for (std::size_t k = k_count; k-- > 0;) order.push_back(k);  // any order
          std::vector<RowMatrixF> ds_out, ds_in, q;
          std::vector<float*> ds_out_p, ds_in_p, q_p;
          std::unique_ptr<bool[]> add_q(new bool[k_count]);
          for (std::size_t k = 0; k < k_count; ++k) {
            ds_out.push_back(random_matrix(m, 1));
            ds_in.push_back(random_matrix(n, 1));
            q.push_back(random_matrix(m, n));
            add_q[k] = k % 2 == 1;
          }
          const std::vector<RowMatrixF> ds_out0 = ds_out, ds_in0 = ds_in, q0 = q;
          for (std::size_t k = 0; k < k_count; ++k) {
            ds_out_p.push_back(ds_out[k].data());
            ds_in_p.push_back(ds_in[k].data());
            q_p.push_back(q[k].data());
          }
          detail::signal_pass(table, w, order, p.data(), ds_out_p.data(), ds_in_p.data(),
                              q_p.data(), add_q.get());
          const DenseKernels d = DenseKernels::of(w);
          const RowMatrixD pd = p.cast<double>();
          for (std::size_t k = 0; k < k_count; ++k) {
            const RowMatrixD pb = pd.array() * d.b[k].array();
            const RowMatrixD pb_abs = pd.cwiseAbs();
            const Eigen::VectorXd so = d.s_out[k], si = d.s_in[k];
            const Eigen::VectorXd want_out = ds_out0[k].cast<double>() + pb * si;
            const Eigen::VectorXd bound_out =
                ds_out0[k].cast<double>().cwiseAbs() + pb_abs * si.cwiseAbs();
            const Eigen::VectorXd want_in = ds_in0[k].cast<double>() + pb.transpose() * so;
            const Eigen::VectorXd bound_in =
                ds_in0[k].cast<double>().cwiseAbs() + pb_abs.transpose() * so.cwiseAbs();
            for (Eigen::Index i = 0; i < want_out.size(); ++i)
              CHECK(close(ds_out[k](i), want_out(i), bound_out(i)));
            for (Eigen::Index j = 0; j < want_in.size(); ++j)
              CHECK(close(ds_in[k](j), want_in(j), bound_in(j)));
            const RowMatrixD qk = pd.array() * (so * si.transpose()).array();
            const RowMatrixD want_q = add_q[k] ? RowMatrixD(q0[k].cast<double>() + qk) : qk;
            const RowMatrixD bound_q = (add_q[k] ? RowMatrixD(q0[k].cast<double>().cwiseAbs())
                                                 : RowMatrixD::Zero(qk.rows(), qk.cols())) +
                                       qk.cwiseAbs();
            CHECK(((q[k].cast<double>() - want_q).array().abs() <= 1e-6 * bound_q.array() + 1e-30)
                      .all());
          }
        }
  });
}

TEST_CASE("max_abs_bits of every ISA is the largest magnitude's bit pattern",
          "[layer][optimizer]") {
  const auto bits = [](float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u & 0x7FFFFFFFu;
  };
  for_each_isa([&](Isa isa) {
    const detail::ProductTable& table = ProductSet(isa).table();
    for (std::size_t rows : {1, 3})
      for (std::size_t cols : {1, 15, 16, 17, 33}) {
        CAPTURE(rows, cols);
        const std::size_t ld = cols + 2;
        RowMatrixF q = random_matrix(rows, ld);
        // Outside the columns: larger values and a NaN that must not be read.
        for (std::size_t i = 0; i < rows; ++i) {
          q(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(cols)) = -100.0f;
          q(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(cols + 1)) =
              std::numeric_limits<float>::quiet_NaN();
        }
        std::uint32_t want = 0;
        for (std::size_t i = 0; i < rows; ++i)
          for (std::size_t j = 0; j < cols; ++j)
            want =
                std::max(want, bits(q(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j))));
        CHECK(table.max_abs_bits(q.data(), ld, rows, cols) == want);
        q(0, static_cast<Eigen::Index>(cols - 1)) = -std::numeric_limits<float>::infinity();
        CHECK(table.max_abs_bits(q.data(), ld, rows, cols) >= 0x7F800000u);
      }
  });
}

TEST_CASE("the optimizer steps each kernel on the products of its layer", "[layer][optimizer]") {
  if (!isa_available(Isa::avx2)) {
    WARN("avx2 not available here: the layer's ISA is checked with scalar only");
  }
  const Isa layer_isa = isa_available(Isa::avx2) ? Isa::avx2 : Isa::scalar;
  MultiKernelWeights<float> w(9, 70);
  for (std::size_t k = 0; k < 2; ++k)
    w.add_kernel(random_bits(9, 70), random_matrix(9, 1), random_matrix(70, 1));
  BooleanLinear<float> layer(w, {}, ProductSet(layer_isa));
  REQUIRE(layer.isa() == layer_isa);
  BooleanOptimizerOptions options;
  options.learning_rate = 4.0;
  // Whatever the active ISA, the layer's kernels step on the layer's ISA (bit for bit what
  // every ISA computes: optimizer_vector_test.cpp).
  BooleanOptimizer optimizer(layer.boolean_parameters(), options);
  REQUIRE(optimizer.num_parameters() == 1);
  CHECK(optimizer.isa(0) == layer_isa);
  const RowMatrixF x = random_matrix(20, 70), dy = random_matrix(20, 9);
  layer.backward(x, dy);
  optimizer.step();
  CHECK(optimizer.last_stats().flips() > 0);
  // A parameter without an ISA of its own steps on the optimizer's products.
  BitMatrix bits = random_bits(3, 10);
  std::vector<float> q(30, 1.0f);
  BooleanOptimizer plain({BooleanParameter{"w", &bits, q.data(), 10}}, {}, ProductSet(Isa::scalar));
  CHECK(plain.isa(0) == Isa::scalar);
  CHECK(plain.product_set().isa() == Isa::scalar);
  CHECK_THROWS_AS(plain.isa(1), InvalidArgument);
}

}  // namespace
}  // namespace mbok::test
