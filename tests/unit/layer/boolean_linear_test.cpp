// BooleanLinear forward passes against the naive dense reference, its state round trip and
// its errors.

#include <mbok/boolean_linear.hpp>

#include <cmath>

#include "../../support.hpp"
#include "reference.hpp"

namespace mbok::test {
namespace {

using RowMatrixF = BooleanLinear<float>::RowMatrix;

MultiKernelWeights<float> random_weights(std::size_t m, std::size_t n, std::size_t k_count) {
  MultiKernelWeights<float> w(m, n);
  for (std::size_t k = 0; k < k_count; ++k)
    w.add_kernel(random_bits(m, n),
                 random_matrix(m, 1).cwiseAbs() +
                     Eigen::VectorXf::Constant(static_cast<Eigen::Index>(m), 0.1f),
                 random_matrix(n, 1).cwiseAbs() +
                     Eigen::VectorXf::Constant(static_cast<Eigen::Index>(n), 0.1f));
  return w;
}

RowMatrixF random_rows(std::size_t t, std::size_t n) { return random_matrix(t, n); }

TEST_CASE("forward equals the naive reference on every ISA", "[layer]") {
  for_each_isa([](Isa isa) {
    for (auto [m, n, k_count, t] :
         {std::tuple<int, int, int, int>{5, 63, 1, 3}, {17, 130, 2, 1}, {33, 515, 3, 7}}) {
      INFO(m << " x " << n << ", K = " << k_count << ", t = " << t);
      auto w = random_weights(static_cast<std::size_t>(m), static_cast<std::size_t>(n),
                              static_cast<std::size_t>(k_count));
      DenseKernels ref = DenseKernels::of(w);
      const Eigen::VectorXf bias = random_matrix(static_cast<std::size_t>(m), 1);
      ref.bias = bias.cast<double>();
      BooleanLinear<float> layer(w, bias);
      CHECK(layer.isa() == isa);
      const RowMatrixF x = random_rows(static_cast<std::size_t>(t), static_cast<std::size_t>(n));
      const RowMatrixD expect = ref.forward(x.cast<double>());
      const RowMatrixF y = layer.forward(x);
      const double scale = expect.cwiseAbs().maxCoeff();
      CHECK((y.cast<double>() - expect).cwiseAbs().maxCoeff() <=
            1e-5 * scale * std::sqrt(n * k_count));

      // Raw-pointer form with strides wider than a row.
      std::vector<float> xs(static_cast<std::size_t>(t * (n + 3)), 7.0f),
          ys(static_cast<std::size_t>(t * (m + 2)), -9.0f);
      for (int i = 0; i < t; ++i)
        for (int l = 0; l < n; ++l) xs[static_cast<std::size_t>(i * (n + 3) + l)] = x(i, l);
      layer.forward(xs.data(), static_cast<std::size_t>(n + 3), static_cast<std::size_t>(t),
                    ys.data(), static_cast<std::size_t>(m + 2));
      for (int i = 0; i < t; ++i) {
        for (int j = 0; j < m; ++j)
          CHECK(ys[static_cast<std::size_t>(i * (m + 2) + j)] ==
                Approx(y(i, j)).margin(1e-5 * scale));
        CHECK(ys[static_cast<std::size_t>(i * (m + 2) + m)] == -9.0f);  // padding untouched
      }

      // The double layer over the same weights agrees too.
      MultiKernelWeights<double> wd(static_cast<std::size_t>(m), static_cast<std::size_t>(n));
      for (std::size_t k = 0; k < w.num_kernels(); ++k)
        wd.add_kernel(w.kernel(k), w.s_out(k).cast<double>(), w.s_in(k).cast<double>());
      BooleanLinear<double> dl(wd, bias.cast<double>());
      CHECK((dl.forward(x.cast<double>()) - expect).cwiseAbs().maxCoeff() <= 1e-12 * scale * n);
    }
  });
}

TEST_CASE("int8 forward is within the quantization error of the float forward", "[layer]") {
  for_each_isa([](Isa) {
    auto w = random_weights(24, 200, 2);
    BooleanLinear<float> layer(w);
    const RowMatrixF x = random_rows(5, 200);
    const RowMatrixD expect = DenseKernels::of(w).forward(x.cast<double>());
    const RowMatrixF y8 = layer.forward_int8(x);
    // Each scaled input moves by at most half a step, max|x s_in| / 254, per element.
    for (Eigen::Index i = 0; i < x.rows(); ++i)
      for (Eigen::Index j = 0; j < 24; ++j) {
        double bound = 0;
        for (std::size_t k = 0; k < 2; ++k) {
          const double step =
              (x.row(i).transpose().cwiseProduct(w.s_in(k))).cwiseAbs().maxCoeff() / 127.0;
          bound += w.s_out(k)(j) * 200 * step * 0.5;
        }
        CHECK(std::abs(y8(i, j) - expect(i, j)) <= bound * 1.01 + 1e-4);
      }
    // And it is much closer than the bound on average (errors cancel).
    CHECK((y8.cast<double>() - expect).norm() <= 0.02 * expect.norm());
  });
}

TEST_CASE("Boolean-activation forward equals the XNOR reference", "[layer]") {
  for_each_isa([](Isa) {
    const std::size_t m = 19, n = 150, t = 6;
    MultiKernelWeights<float> w(m, n);
    for (int k = 0; k < 2; ++k)  // constant s_in: the Boolean path is exact
      w.add_kernel(
          random_bits(m, n), random_matrix(m, 1).cwiseAbs(),
          Eigen::VectorXf::Constant(static_cast<Eigen::Index>(n), 0.5f + static_cast<float>(k)));
    BooleanLinear<float> layer(w);
    const RowMatrixF x = random_rows(t, n);
    const BinaryActivations act = binarize_activations(x);
    REQUIRE(act.bits.rows() == t);
    for (std::size_t i = 0; i < t; ++i)
      CHECK(act.scale[i] == Approx(x.row(static_cast<Eigen::Index>(i)).cwiseAbs().mean()));
    // Reference: the float forward of a_i sign(x_i).
    RowMatrixD xb(t, n);
    for (std::size_t i = 0; i < t; ++i)
      for (std::size_t l = 0; l < n; ++l)
        xb(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(l)) =
            act.scale[i] *
            (x(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(l)) < 0 ? -1.0 : 1.0);
    const RowMatrixD expect = DenseKernels::of(w).forward(xb);
    const RowMatrixF y = layer.forward_boolean(act);
    CHECK((y.cast<double>() - expect).cwiseAbs().maxCoeff() <= 1e-4 * expect.cwiseAbs().maxCoeff());
  });
}

TEST_CASE("state export and import round-trip", "[layer][state]") {
  auto w = random_weights(9, 70, 3);
  const Eigen::VectorXf bias = random_matrix(9, 1);
  BooleanLinear<float> layer(w, bias);
  StateDict dict;
  layer.export_state(dict, "blk.0.q.");
  REQUIRE(dict.count("blk.0.q.kernels.2.bits"));
  const Tensor& bits = dict.at("blk.0.q.kernels.0.bits");
  CHECK(bits.dtype == DType::u8);
  CHECK(bits.shape == std::vector<std::int64_t>{9, 64});
  // Byte b of a row holds columns 8b..8b+7, least significant bit first; 1 means -1.
  CHECK(((bits.bytes[1] >> 2) & 1) == (w.kernel(0).sign(0, 10) < 0 ? 1 : 0));
  CHECK(dict.at("blk.0.q.bias").shape == std::vector<std::int64_t>{9});

  auto loaded = BooleanLinear<float>::from_state(dict, "blk.0.q.");
  REQUIRE(loaded.num_kernels() == 3);
  REQUIRE(loaded.has_bias());
  const RowMatrixF x = random_rows(4, 70);
  CHECK((loaded.forward(x) - layer.forward(x)).cwiseAbs().maxCoeff() == 0.0f);

  // import_state into an existing layer keeps registered pointers valid.
  BooleanLinear<float> other(random_weights(9, 70, 3), Eigen::VectorXf::Zero(9));
  auto params = other.parameters();
  auto bparams = other.boolean_parameters();
  other.import_state(dict, "blk.0.q.");
  CHECK(params[0].value == other.s_out(0).data());
  CHECK(bparams[0].bits == &other.kernel(2));
  CHECK(*bparams[0].bits == w.kernel(2));
  CHECK((other.forward(x) - layer.forward(x)).cwiseAbs().maxCoeff() == 0.0f);
}

TEST_CASE("state import rejects mismatches and changes nothing", "[layer][state]") {
  BooleanLinear<float> layer(random_weights(9, 70, 2));
  StateDict dict;
  layer.export_state(dict, "");
  BooleanLinear<float> wrong_shape(random_weights(9, 71, 2));
  const RowMatrixF x71 = random_rows(2, 71);
  const RowMatrixF before = wrong_shape.forward(x71);
  CHECK_THROWS_AS(wrong_shape.import_state(dict, ""), FormatError);
  CHECK((wrong_shape.forward(x71) - before).cwiseAbs().maxCoeff() == 0.0f);
  BooleanLinear<float> wrong_k(random_weights(9, 70, 3));
  CHECK_THROWS_WITH(wrong_k.import_state(dict, ""), test::contains("kernels"));
  StateDict padded = dict;
  padded.at("kernels.1.bits").bytes[63] = 0x80;  // column 511 of row 0: padding
  CHECK_THROWS_WITH(BooleanLinear<float>::from_state(padded, ""), test::contains("padding"));
  StateDict nan = dict;
  const float bad = std::nanf("");
  std::memcpy(nan.at("kernels.0.s_in").bytes.data(), &bad, 4);
  CHECK_THROWS_WITH(BooleanLinear<float>::from_state(nan, ""), test::contains("not finite"));
  CHECK_THROWS_AS(BooleanLinear<float>::from_state(dict, "missing."), FormatError);
}

TEST_CASE("bad shapes, K = 0, bad trainable sets and non-finite inputs throw", "[layer][errors]") {
  CHECK_THROWS_WITH(BooleanLinear<float>(MultiKernelWeights<float>(4, 4)), test::contains("K = 0"));
  BooleanLinearOptions opt;
  opt.trainable_kernels = {2};
  CHECK_THROWS_WITH(BooleanLinear<float>(random_weights(4, 8, 2), opt),
                    test::contains("trainable kernel 2 does not exist"));
  opt.trainable_kernels = {0, -2};
  CHECK_THROWS_WITH(BooleanLinear<float>(random_weights(4, 8, 2), opt), test::contains("twice"));
  opt.trainable_kernels = {-3};
  CHECK_THROWS_AS(BooleanLinear<float>(random_weights(4, 8, 2), opt), InvalidArgument);
  CHECK_THROWS_WITH(BooleanLinear<float>(random_weights(4, 8, 1), Eigen::VectorXf::Zero(5)),
                    test::contains("bias"));

  BooleanLinear<float> layer(random_weights(6, 10, 2));
  CHECK(layer.trainable_kernels() == std::vector<std::size_t>{1});
  CHECK_THROWS_WITH(layer.forward(random_rows(3, 11)), test::contains("11 columns, expected 10"));
  RowMatrixF y(3, 5);
  CHECK_THROWS_AS(layer.forward(random_rows(3, 10), y), InvalidArgument);
  RowMatrixF x = random_rows(3, 10);
  x(1, 1) = std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH(layer.forward(x), test::contains("not finite"));
  CHECK_THROWS_WITH(layer.forward_int8(x), test::contains("not finite"));

  const RowMatrixF good = random_rows(3, 10);
  layer.backward(good, random_rows(3, 6));
  const Eigen::VectorXf g_before = layer.grad_s_out(1);
  RowMatrixF dx(3, 10);
  CHECK_THROWS_WITH(layer.backward(good, random_rows(3, 7), dx),
                    test::contains("7 columns, expected 6"));
  CHECK_THROWS_WITH(layer.backward(good, random_rows(2, 6), dx), test::contains("tokens"));
  RowMatrixF dx_bad(3, 9);
  CHECK_THROWS_WITH(layer.backward(good, random_rows(3, 6), dx_bad),
                    test::contains("dx must be 3 x 10"));
  RowMatrixF z = random_rows(3, 6);
  z(0, 0) = std::nanf("");
  CHECK_THROWS_WITH(layer.backward(good, z, dx), test::contains("not finite"));
  CHECK(layer.grad_s_out(1) == g_before);  // nothing changed
  CHECK_THROWS_WITH(layer.signal(0), test::contains("frozen"));
  CHECK_THROWS_AS(layer.grad_s_in(2), InvalidArgument);
  CHECK_THROWS_AS(layer.forward(nullptr, 10, 2, y.data(), 5), InvalidArgument);
}

}  // namespace
}  // namespace mbok::test
