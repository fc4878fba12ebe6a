// The dense products of the multi-kernel weight W = sum_k s_out_k (.) B_k (.) s_in_k with W's
// panels rebuilt from the bits (the table's weight_forward_f32, weight_backward_dx_f32):
// against the double reference on edge shapes and every ISA's table (the scalar entries
// included), and through the layer, whose float forward and dX take them from K t >= the
// table's weight_product_min_work on and the per-kernel sign products below.

#include <mbok/boolean_linear.hpp>
#include <mbok/detail/products/training.hpp>

#include <algorithm>

#include "../../support.hpp"
#include "reference.hpp"

namespace mbok::test {
namespace {

using RowMatrixF = BooleanLinear<float>::RowMatrix;

MultiKernelWeights<float> random_weights_f(std::size_t m, std::size_t n, std::size_t k_count) {
  MultiKernelWeights<float> w(m, n);
  for (std::size_t k = 0; k < k_count; ++k)
    w.add_kernel(random_bits(m, n), random_matrix(m, 1), random_matrix(n, 1));
  return w;
}

// W as doubles; with `magnitude`, sum_k |s_out_k| |s_in_k|^T instead (the size of the terms
// that make up each weight, which bounds the rounding of W's float sum).
RowMatrixD dense_weight(const MultiKernelWeights<float>& w, bool magnitude = false) {
  const DenseKernels d = DenseKernels::of(w);
  RowMatrixD out = RowMatrixD::Zero(static_cast<Eigen::Index>(w.out_features()),
                                    static_cast<Eigen::Index>(w.in_features()));
  for (std::size_t k = 0; k < w.num_kernels(); ++k) {
    if (magnitude)
      out += d.s_out[k].cwiseAbs() * d.s_in[k].cwiseAbs().transpose();
    else
      out.array() += (d.s_out[k] * d.s_in[k].transpose()).array() * d.b[k].array();
  }
  return out;
}

// |got - want| <= 1e-5 * (|A| |B|) elementwise, |A| |B| being the sum of the products' absolute
// terms (|W| taken as sum_k |s_out_k| |s_in_k|^T): the float error bound of sums of up to ~150
// terms (150 u = 150 * 6e-8 < 1e-5) whatever the order of summation.
bool within_rounding(const RowMatrixF& got, const RowMatrixD& want, const RowMatrixD& bound) {
  return ((got.cast<double>() - want).array().abs() <= 1e-5 * bound.array() + 1e-30).all();
}

TEST_CASE("weight products of every ISA equal the double products on edge shapes",
          "[layer][gradients]") {
  const std::size_t sizes[] = {1, 7, 16, 31, 33, 65, 130};
  const std::size_t tokens[] = {1, 5, 8, 9, 17, 70};
  std::size_t runs = 0;
  for (Isa isa : kAllIsas) {
    if (!isa_available(isa)) continue;
    const detail::ProductTable& table = ProductSet(isa).table();
    for (std::size_t m : sizes)
      for (std::size_t n : sizes)
        for (std::size_t k_count = 1; k_count <= 3; ++k_count)
          for (std::size_t t : tokens) {
            if ((m + n + t + k_count) % 3 != 0 && m != 130 && n != 130) continue;  // a third
            CAPTURE(isa_name(isa), m, n, k_count, t);
            const auto w = random_weights_f(m, n, k_count);
            const RowMatrixD wd = dense_weight(w), wa = dense_weight(w, true);
            const RowMatrixF x = random_matrix(t, n + 3), z = random_matrix(t, m + 2);
            // Strided operands; the output's padding columns must stay untouched.
            RowMatrixF y = RowMatrixF::Constant(static_cast<Eigen::Index>(t),
                                                static_cast<Eigen::Index>(m + 1), 7.0f);
            detail::weight_forward_f32(table, w, x.data(), n + 3, t, y.data(), m + 1);
            const auto xs = x.leftCols(static_cast<Eigen::Index>(n)).cast<double>();
            const auto zs = z.leftCols(static_cast<Eigen::Index>(m)).cast<double>();
            CHECK(within_rounding(y.leftCols(static_cast<Eigen::Index>(m)), xs * wd.transpose(),
                                  xs.cwiseAbs() * wa.transpose()));
            CHECK((y.rightCols(1).array() == 7.0f).all());
            // dX is added to.
            const RowMatrixF start = random_matrix(t, n + 1);
            RowMatrixF dx = start;
            detail::weight_backward_dx_f32(table, w, z.data(), m + 2, t, dx.data(), n + 1);
            const RowMatrixD want =
                start.leftCols(static_cast<Eigen::Index>(n)).cast<double>() + zs * wd;
            const RowMatrixD bound =
                start.leftCols(static_cast<Eigen::Index>(n)).cast<double>().cwiseAbs() +
                zs.cwiseAbs() * wa;
            CHECK(within_rounding(dx.leftCols(static_cast<Eigen::Index>(n)), want, bound));
            CHECK(dx.rightCols(1) == start.rightCols(1));
            ++runs;
          }
  }
  CHECK(runs > 0);
}

// Through the layer: forward and dX of the weight products (K t >= 64) and of the per-kernel
// sign products (K t < 64) agree with the double layer and with each other, and a flipped bit
// or a changed scale is seen by the next call (nothing of W is kept between calls).
TEST_CASE("layer forward and dX by weight products equal the per-kernel products",
          "[layer][gradients]") {
  const std::size_t shapes[][2] = {{1, 1}, {7, 65}, {65, 7}, {33, 63}, {128, 128}, {70, 129}};
  for_each_isa([&](Isa isa) {
    for (const auto& shape : shapes)
      for (std::size_t k_count = 1; k_count <= 3; ++k_count) {
        const std::size_t m = shape[0], n = shape[1];
        // 64 / K tokens and more take the weight products, fewer the sign products.
        const std::size_t small_t = 64 / k_count - 1, large_t = 64 / k_count + 3;
        CAPTURE(isa_name(isa), m, n, k_count);
        auto w = random_weights_f(m, n, k_count);
        BooleanLinear<float> layer(w, Eigen::VectorXf(random_matrix(m, 1)));
        const RowMatrixF x = random_matrix(large_t, n), z = random_matrix(large_t, m);
        const auto check_layer = [&] {
          const DenseKernels d = [&] {
            DenseKernels r = DenseKernels::of(layer.weights());
            r.bias = layer.bias().cast<double>();
            return r;
          }();
          const RowMatrixD wd = dense_weight(layer.weights()),
                           wa = dense_weight(layer.weights(), true);
          const RowMatrixD xd = x.cast<double>(), zd = z.cast<double>();
          const RowMatrixD ybound = (xd.cwiseAbs() * wa.transpose()).rowwise() +
                                    layer.bias().cast<double>().cwiseAbs().transpose();
          const RowMatrixF y_large = layer.forward(x);
          CHECK(within_rounding(y_large, d.forward(xd), ybound));
          const RowMatrixF y_small = layer.forward(x.topRows(static_cast<Eigen::Index>(small_t)));
          CHECK(within_rounding(y_small, d.forward(xd.topRows(static_cast<Eigen::Index>(small_t))),
                                ybound.topRows(static_cast<Eigen::Index>(small_t))));
          // The two paths on the same tokens.
          CHECK(within_rounding(y_large.topRows(static_cast<Eigen::Index>(small_t)),
                                y_small.cast<double>(),
                                2.0 * ybound.topRows(static_cast<Eigen::Index>(small_t))));
          RowMatrixF dx(static_cast<Eigen::Index>(large_t), static_cast<Eigen::Index>(n));
          layer.backward(x, z, dx);
          CHECK(within_rounding(dx, zd * wd, zd.cwiseAbs() * wa));
          RowMatrixF dx_small(static_cast<Eigen::Index>(small_t), static_cast<Eigen::Index>(n));
          layer.backward(x.topRows(static_cast<Eigen::Index>(small_t)),
                         z.topRows(static_cast<Eigen::Index>(small_t)), dx_small);
          const RowMatrixD zs = zd.topRows(static_cast<Eigen::Index>(small_t));
          CHECK(within_rounding(dx_small, zs * wd, zs.cwiseAbs() * wa));
          // With accumulation, dX is added to.
          layer.backward(x, z, dx, true);
          CHECK(within_rounding(dx, 2.0 * zd * wd, 2.0 * zd.cwiseAbs() * wa));
        };
        check_layer();
        // Change the bits and a scale between calls: the next products use them.
        layer.kernel(k_count - 1).flip(m / 2, n / 2);
        layer.kernel(0).flip(0, 0);
        layer.s_in(0)(static_cast<Eigen::Index>(n - 1)) += 0.5f;
        layer.s_out(k_count - 1)(0) *= -2.0f;
        check_layer();
      }
  });
}

}  // namespace
}  // namespace mbok::test
