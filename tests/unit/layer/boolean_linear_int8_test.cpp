// BooleanLinear::forward_int8 runs the fused int8 forward (forward_int8.hpp) with weights
// repacked once: bit-for-bit equal to multi_kernel_forward_int8, repacked after the bits change
// (flips, optimizer steps, state import) and not after scale changes, with its errors.

#include <mbok/boolean_linear.hpp>
#include <mbok/boolean_optimizer.hpp>
#include <mbok/forward_int8.hpp>

#include <cstring>
#include <limits>
#include <thread>
#include <vector>

#include "../../support.hpp"

namespace mbok::test {
namespace {

using RowMatrixF = BooleanLinear<float>::RowMatrix;

MultiKernelWeights<float> int8_weights(std::size_t m, std::size_t n, std::size_t k_count) {
  MultiKernelWeights<float> w(m, n);
  for (std::size_t k = 0; k < k_count; ++k)
    w.add_kernel(random_bits(m, n),
                 random_matrix(m, 1).cwiseAbs() +
                     Eigen::VectorXf::Constant(static_cast<Eigen::Index>(m), 0.1f),
                 random_matrix(n, 1).cwiseAbs() +
                     Eigen::VectorXf::Constant(static_cast<Eigen::Index>(n), 0.1f));
  return w;
}

// The library's fused forward on the layer's current weights, plus the bias.
RowMatrixF expected(const BooleanLinear<float>& layer, const RowMatrixF& x) {
  const std::size_t t = static_cast<std::size_t>(x.rows()), m = layer.out_features();
  RowMatrixF y(x.rows(), static_cast<Eigen::Index>(m));
  multi_kernel_forward_int8(layer.weights(), x.data(), layer.in_features(), t, y.data(), m,
                            layer.product_set());
  if (layer.has_bias()) y.rowwise() += layer.bias().transpose();
  return y;
}

bool same_bits(const RowMatrixF& a, const RowMatrixF& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.size()) * sizeof(float)) == 0;
}

TEST_CASE("BooleanLinear forward_int8 equals multi_kernel_forward_int8 bit for bit",
          "[layer][int8]") {
  for_each_isa([](Isa) {
    // Token counts on both sides of every ISA's LUT threshold (8 or 128), so both algorithms run;
    // widths that are not multiples of 16 rows or 32 columns.
    for (auto [m, n, k_count, t] : {std::tuple<int, int, int, int>{5, 63, 1, 1},
                                    {17, 130, 2, 1},
                                    {40, 515, 3, 3},
                                    {33, 200, 2, 9},
                                    {48, 96, 1, 130}}) {
      INFO(m << " x " << n << ", K = " << k_count << ", t = " << t);
      const auto w = int8_weights(static_cast<std::size_t>(m), static_cast<std::size_t>(n),
                                  static_cast<std::size_t>(k_count));
      const RowMatrixF x = random_matrix(static_cast<std::size_t>(t), static_cast<std::size_t>(n));
      BooleanLinear<float> plain(w);
      RowMatrixF ref(t, m);
      multi_kernel_forward_int8(w, x.data(), static_cast<std::size_t>(n),
                                static_cast<std::size_t>(t), ref.data(),
                                static_cast<std::size_t>(m), plain.product_set());
      CHECK(same_bits(plain.forward_int8(x), ref));
      CHECK(same_bits(plain.forward_int8(x), ref));  // second call: prepared weights reused
      CHECK(plain.int8_preparations() == 1);

      const Eigen::VectorXf bias = random_matrix(static_cast<std::size_t>(m), 1);
      BooleanLinear<float> biased(w, bias);
      RowMatrixF with_bias = ref;
      with_bias.rowwise() += bias.transpose();
      CHECK(same_bits(biased.forward_int8(x), with_bias));

      // Raw form with wide strides and a caller's workspace; the padding stays untouched.
      const std::size_t ldx = static_cast<std::size_t>(n + 5),
                        ldy = static_cast<std::size_t>(m + 3);
      std::vector<float> xs(static_cast<std::size_t>(t) * ldx, 1e30f),
          ys(static_cast<std::size_t>(t) * ldy, -7.0f);
      for (int i = 0; i < t; ++i)
        for (int l = 0; l < n; ++l)
          xs[static_cast<std::size_t>(i) * ldx + static_cast<std::size_t>(l)] = x(i, l);
      Int8ForwardWorkspace ws;
      biased.forward_int8(xs.data(), ldx, static_cast<std::size_t>(t), ys.data(), ldy, ws);
      for (int i = 0; i < t; ++i) {
        for (int j = 0; j < m; ++j)
          CHECK(ys[static_cast<std::size_t>(i) * ldy + static_cast<std::size_t>(j)] ==
                with_bias(i, j));
        CHECK(ys[static_cast<std::size_t>(i) * ldy + static_cast<std::size_t>(m)] == -7.0f);
      }
    }
  });
}

TEST_CASE("BooleanLinear forward_int8 repacks after the bits change, not after scale changes",
          "[layer][int8]") {
  for_each_isa([](Isa) {
    BooleanLinear<float> layer(int8_weights(37, 150, 2), random_matrix(37, 1));
    const RowMatrixF x = random_matrix(2, 150);
    CHECK(same_bits(layer.forward_int8(x), expected(layer, x)));
    CHECK(layer.int8_preparations() == 1);

    // Scales and bias are read on every call: no repack, new values used.
    layer.s_out(0) *= 1.5f;
    layer.s_in(1)(3) = 2.0f;
    layer.bias()(0) += 1.0f;
    CHECK(same_bits(layer.forward_int8(x), expected(layer, x)));
    CHECK(layer.int8_preparations() == 1);

    // Bit flips through the matrix.
    layer.kernel(0).flip(0, 0);
    layer.kernel(1).flip(36, 149);
    CHECK(same_bits(layer.forward_int8(x), expected(layer, x)));
    CHECK(layer.int8_preparations() == 2);
    // Through a fresh mutable view (row words written directly).
    MutableBitMatrixView v = layer.kernel(1).mutable_view();
    v.row(5)[0] ^= 0xF0F0u;
    CHECK(same_bits(layer.forward_int8(x), expected(layer, x)));
    CHECK(layer.int8_preparations() == 3);
    // A whole kernel replaced by assignment.
    layer.kernel(0) = random_bits(37, 150);
    CHECK(same_bits(layer.forward_int8(x), expected(layer, x)));
    CHECK(layer.int8_preparations() == 4);
    // prepare_int8 with nothing changed does nothing.
    layer.prepare_int8();
    CHECK(layer.int8_preparations() == 4);
  });
}

TEST_CASE("BooleanLinear forward_int8 sees optimizer steps and state imports", "[layer][int8]") {
  BooleanLinear<float> layer(int8_weights(32, 64, 2));
  const RowMatrixF x = random_matrix(3, 64);
  const RowMatrixF before = layer.forward_int8(x);
  CHECK(same_bits(before, expected(layer, x)));

  // One backward and a Boolean step that flips bits of the trainable (last) kernel.
  const RowMatrixF dy = random_matrix(3, 32);
  layer.backward(x, dy);
  BooleanOptimizerOptions o;
  o.learning_rate = 1e3;  // large enough to flip many bits in one step
  BooleanOptimizer opt(layer.boolean_parameters(), o);
  const BitMatrix old_bits = layer.kernel(1);
  opt.step();
  REQUIRE(layer.kernel(1) != old_bits);
  const RowMatrixF after = layer.forward_int8(x);
  CHECK(same_bits(after, expected(layer, x)));
  CHECK_FALSE(same_bits(after, before));

  // import_state replaces the bits.
  BooleanLinear<float> other(int8_weights(32, 64, 2));
  StateDict dict;
  other.export_state(dict);
  layer.import_state(dict);
  CHECK(same_bits(layer.forward_int8(x), other.forward_int8(x)));

  // Copies and moves keep working (a copy repacks for itself).
  BooleanLinear<float> copy = layer;
  CHECK(same_bits(copy.forward_int8(x), expected(layer, x)));
  copy.kernel(0).flip(1, 1);
  CHECK(same_bits(layer.forward_int8(x), expected(layer, x)));
  CHECK(same_bits(copy.forward_int8(x), expected(copy, x)));
  BooleanLinear<float> moved = std::move(copy);
  CHECK(same_bits(moved.forward_int8(x), expected(moved, x)));
}

TEST_CASE("BooleanLinear forward_int8 from several threads", "[layer][int8]") {
  BooleanLinear<float> layer(int8_weights(70, 300, 2));
  const RowMatrixF x = random_matrix(1, 300);
  const RowMatrixF ref = expected(layer, x);
  std::vector<int> ok(4, 0);
  std::vector<std::thread> threads;
  for (int th = 0; th < 4; ++th)
    threads.emplace_back([&, th] {
      Int8ForwardWorkspace ws;
      RowMatrixF y(1, 70), z(1, 70);
      bool good = true;
      for (int rep = 0; rep < 50; ++rep) {
        layer.forward_int8(x.data(), 300, 1, y.data(), 70, ws);  // own workspace
        layer.forward_int8(x.data(), 300, 1, z.data(), 70);      // the layer's, serialized
        good = good && same_bits(y, ref) && same_bits(z, ref);
      }
      ok[static_cast<std::size_t>(th)] = good;
    });
  for (auto& th : threads) th.join();
  for (int good : ok) CHECK(good == 1);
  CHECK(layer.int8_preparations() == 1);
}

TEST_CASE("BooleanLinear forward_int8 errors", "[layer][int8]") {
  BooleanLinear<float> layer(int8_weights(16, 40, 1));
  CHECK_THROWS_AS(layer.forward_int8(RowMatrixF::Zero(2, 39)), InvalidArgument);
  RowMatrixF x = random_matrix(2, 40);
  std::vector<float> y(2 * 16);
  CHECK_THROWS_WITH(layer.forward_int8(x.data(), 39, 2, y.data(), 16), test::contains("stride"));
  CHECK_THROWS_WITH(layer.forward_int8(x.data(), 40, 2, y.data(), 15), test::contains("stride"));
  CHECK_THROWS_WITH(layer.forward_int8(nullptr, 40, 2, y.data(), 16), test::contains("null"));
  CHECK_THROWS_WITH(layer.forward_int8(x.data(), 40, 2, nullptr, 16), test::contains("null"));
  layer.forward_int8(nullptr, 40, 0, nullptr, 16);  // no tokens: nothing to do
  x(1, 7) = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(layer.forward_int8(x), test::contains("not finite"));
  Int8ForwardWorkspace ws;
  CHECK_THROWS_WITH(layer.forward_int8(x.data(), 40, 2, y.data(), 16, ws),
                    test::contains("not finite"));
}

TEST_CASE("BooleanLinear forward_int8 rejects rows past the exact int32 limit",
          "[layer][int8][slow]") {
  // One output row of kMaxInt8Features + 1 inputs (2 MiB of bits, 64 MiB of floats).
  const std::size_t n = kMaxInt8Features + 1;
  MultiKernelWeights<float> w(1, n);
  w.add_kernel(BitMatrix(1, n), Eigen::VectorXf::Ones(1),
               Eigen::VectorXf::Ones(static_cast<Eigen::Index>(n)));
  BooleanLinear<float> layer(std::move(w));
  std::vector<float> x(n, 1.0f), y(1);
  CHECK_THROWS_WITH(layer.forward_int8(x.data(), n, 1, y.data(), 1),
                    test::contains("exact int32 limit"));
  CHECK_THROWS_AS(layer.prepare_int8(), InvalidArgument);
}

}  // namespace
}  // namespace mbok::test
