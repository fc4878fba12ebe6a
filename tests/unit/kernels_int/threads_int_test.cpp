// The threaded integer products and the int8 forward give the same results on one thread and
// on several, on shapes that parallel_for really splits (observed by test::one_and_many).
// Integer products are exact, so any split gives the same int32 results; the int8 forward
// then scales each output element by the same operations whatever chunk holds it (its split
// is over output features), so its float results compare with == too.
#include <mbok/forward_int8.hpp>
#include <mbok/products.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <tuple>
#include <vector>

#include "int_support.hpp"
#include "support.hpp"
#include "threads_support.hpp"

using namespace mbok;

namespace {

MultiKernelWeights<float> weights(std::size_t m, std::size_t n, std::size_t kernels) {
  MultiKernelWeights<float> w(m, n);
  for (std::size_t k = 0; k < kernels; ++k)
    w.add_kernel(test::fast_random_bits(m, n), test::random_matrix(m, 1).col(0),
                 test::random_matrix(n, 1, 0.5f).col(0));
  return w;
}

struct Shape {
  std::size_t t, m, n;
};

}  // namespace

TEST_CASE("xnor_gemm: one thread and several give the same results", "[threads][kernels_int]") {
  MBOK_REQUIRE_THREADS();
  for (const Shape& s : {Shape{64, 100, 4099}, Shape{3, 2000, 997}}) {
    INFO("t = " << s.t << ", m = " << s.m << ", n = " << s.n);
    const BitMatrix a = test::fast_random_bits(s.t, s.n);
    const BitMatrix b = test::fast_random_bits(s.m, s.n);
    test::for_each_isa([&](Isa isa) {
      const ProductSet k;
      REQUIRE(k.isa() == isa);
      const auto [one, many] = test::one_and_many([&] {
        std::vector<std::int32_t> c(s.t * (s.m + 1), -7);
        k.xnor_gemm(a, b, c.data(), s.m + 1);
        return c;
      });
      REQUIRE(one == many);
    });
  }
}

TEST_CASE("sign_gemm_i8: one thread and several give the same results", "[threads][kernels_int]") {
  MBOK_REQUIRE_THREADS();
  for (const Shape& s : {Shape{5, 2000, 997}, Shape{1, 2000, 4099}, Shape{64, 100, 4099}}) {
    INFO("t = " << s.t << ", m = " << s.m << ", n = " << s.n);
    const BitMatrix w = test::fast_random_bits(s.m, s.n);
    const std::size_t ld = w.row_words() * 64;
    const test::Int8Rows x(s.t, s.n, ld, ld, -128, 127);
    test::for_each_isa([&](Isa isa) {
      const ProductSet k;
      REQUIRE(k.isa() == isa);
      const auto [one, many] = test::one_and_many([&] {
        std::vector<std::int32_t> y(s.t * s.m, -7);
        k.sign_gemm_i8(x.data.get(), ld, s.t, w, y.data(), s.m);
        return y;
      });
      REQUIRE(one == many);
    });
  }
}

TEST_CASE("sign_gemm_i8_lut: one thread and several give the same results",
          "[threads][kernels_int][lut]") {
  MBOK_REQUIRE_THREADS();
  for (const Shape& s : {Shape{1, 2000, 4099}, Shape{8, 1000, 997}}) {
    INFO("t = " << s.t << ", m = " << s.m << ", n = " << s.n);
    const BitMatrix w = test::fast_random_bits(s.m, s.n);
    const std::size_t ld = w.row_words() * 64;
    const test::Int8Rows x(s.t, s.n, ld, ld, -128, 127);
    test::for_each_isa([&](Isa isa) {
      const ProductSet k;
      REQUIRE(k.isa() == isa);
      const Int8LutWeights lw = k.prepare_lut(w);
      Int8LutTables tables;
      k.build_lut_tables(x.data.get(), ld, s.t, s.n, tables);
      const auto [one, many] = test::one_and_many([&] {
        std::vector<std::int32_t> y(s.t * s.m, -7);
        k.sign_gemm_i8_lut(tables, lw, y.data(), s.m);
        return y;
      });
      REQUIRE(one == many);
    });
  }
}

TEST_CASE("multi_kernel_forward_int8: one thread and several give the same bits",
          "[threads][kernels_int][forward]") {
  MBOK_REQUIRE_THREADS();
  struct Case {
    std::size_t t, m, n, kernels;
  };
  for (const Case& s : {Case{3, 2100, 997, 2}, Case{17, 90, 4099, 3}, Case{1, 10000, 513, 1}}) {
    INFO("t = " << s.t << ", m = " << s.m << ", n = " << s.n << ", K = " << s.kernels);
    const MultiKernelWeights<float> w = weights(s.m, s.n, s.kernels);
    const std::size_t ldx = s.n + 1, ldy = s.m + 2;
    const Eigen::MatrixXf xm = test::random_matrix(s.t, ldx);  // column-major: any floats will do
    const std::vector<float> x(xm.data(), xm.data() + xm.size());
    test::for_each_isa([&](Isa isa) {
      const ProductSet k;
      REQUIRE(k.isa() == isa);
      const auto [one, many] = test::one_and_many([&] {
        std::vector<float> y(s.t * ldy, -1.0f);
        multi_kernel_forward_int8(w, x.data(), ldx, s.t, y.data(), ldy, k);
        return y;
      });
      REQUIRE(one == many);
    });
  }
}

// The one-call forward over prepared weights: one thread and several give the bits of one
// preparation with all rows on the calling thread, for both algorithms; with the table lookup
// and t <= 8 every thread builds its own tables, at t = 9 one preparation is shared.
TEST_CASE("multi_kernel_forward_int8 with prepared weights: one thread and several agree",
          "[threads][kernels_int][forward][lut]") {
  MBOK_REQUIRE_THREADS();
  struct Case {
    std::size_t t, n, kernels;
  };
  for (const Case& s : {Case{1, 513, 1}, Case{3, 997, 2}, Case{8, 200, 3}, Case{9, 130, 1}}) {
    // Two chunks and a bit whatever the wait policy (the grain depends on it).
    const std::size_t grain = detail::int8_forward_grain(s.t, s.n, s.kernels);
    const std::size_t m = 2 * grain + 40;
    INFO("t = " << s.t << ", m = " << m << ", n = " << s.n << ", K = " << s.kernels);
    const MultiKernelWeights<float> w = weights(m, s.n, s.kernels);
    const std::size_t ldx = s.n + 3, ldy = m + 1;
    const Eigen::MatrixXf xm = test::random_matrix(s.t, ldx);
    const std::vector<float> x(xm.data(), xm.data() + xm.size());
    test::for_each_isa([&](Isa isa) {
      const ProductSet k;
      REQUIRE(k.isa() == isa);
      const Int8PreparedWeights pw(w, k);
      for (Int8Algorithm algorithm : {Int8Algorithm::masked, Int8Algorithm::lut}) {
        INFO("algorithm " << static_cast<int>(algorithm));
        Int8ForwardWorkspace ref_ws;
        prepare_int8_forward(w, pw, x.data(), ldx, s.t, ref_ws, algorithm);
        std::vector<float> ref(s.t * ldy, -1.0f);
        multi_kernel_forward_int8_range(w, pw, ref_ws, ref.data(), ldy, 0, m);
        Int8ForwardWorkspace ws;  // reused by both runs
        const auto [one, many] = test::one_and_many([&] {
          std::vector<float> y(s.t * ldy, -1.0f);
          multi_kernel_forward_int8(w, pw, x.data(), ldx, s.t, y.data(), ldy, ws, algorithm);
          return y;
        });
        REQUIRE(one == ref);
        REQUIRE(many == ref);
        REQUIRE(ws.tokens() == s.t);
        REQUIRE(ws.num_kernels() == s.kernels);
        REQUIRE(ws.algorithm() == algorithm);
      }
    });
  }
}

TEST_CASE("quantization and tables of many tokens: one thread and several give the same bytes",
          "[threads][kernels_int][lut]") {
  MBOK_REQUIRE_THREADS();
  const std::size_t n = 1000;
  const std::size_t t = 2 * detail::grain_for_cost(n) + 3;  // splits whatever the wait policy
  const Eigen::MatrixXf xm = test::random_matrix(t, n);
  const std::vector<float> x(xm.data(), xm.data() + xm.size());
  const Eigen::VectorXf s_in = test::random_matrix(n, 1, 0.5f).col(0);
  test::for_each_isa([&](Isa isa) {
    const ProductSet k;
    REQUIRE(k.isa() == isa);
    const auto [one, many] = test::one_and_many([&] {
      QuantizedActivations q;
      quantize_activations(x.data(), n, t, n, q, s_in.data());
      Int8LutTables tables;
      k.build_lut_tables(q.data(), q.ld(), t, n, tables);
      const detail::LutTablesView v = tables.view();
      std::vector<std::uint8_t> bytes(q.data(), q.data() + t * q.ld());
      bytes.insert(bytes.end(), v.data, v.data + t * v.ld);
      std::vector<float> scales(q.scales(), q.scales() + t);
      std::vector<std::int32_t> sums(q.row_sums(), q.row_sums() + t);
      sums.insert(sums.end(), v.base, v.base + t);
      return std::make_tuple(bytes, scales, sums);
    });
    REQUIRE(std::get<0>(one) == std::get<0>(many));
    REQUIRE(std::get<1>(one) == std::get<1>(many));
    REQUIRE(std::get<2>(one) == std::get<2>(many));
  });
}
