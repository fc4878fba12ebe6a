// Quantization to int8, binarization to packed signs, and the XNOR output transforms,
// against element-by-element definitions computed here.
#include <mbok/activations.hpp>
#include <mbok/products.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <utility>
#include <vector>

#include "int_support.hpp"
#include "reference/naive_int8.hpp"
#include "support.hpp"

using namespace mbok;

namespace {
using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
}

TEST_CASE("quantize_activations: per-token absmax, rounding bound, layout",
          "[kernels_int][activations]") {
  const std::size_t sizes[] = {1, 63, 64, 65, 513, 997};
  for (std::size_t n : sizes)
    for (bool with_scale : {false, true}) {
      const std::size_t t = 4, ldx = n + 5;
      RowMatrix x = test::random_matrix(t, ldx, 3.0f);
      x.row(2).setZero();      // an all-zero token
      x(3, n - 1) = -1000.0f;  // a dominant negative value
      const Eigen::VectorXf s_in = test::random_matrix(n, 1).cwiseAbs();
      const float* s = with_scale ? s_in.data() : nullptr;
      const QuantizedActivations q = quantize_activations(x.data(), ldx, t, n, s);
      REQUIRE(q.tokens() == t);
      REQUIRE(q.cols() == n);
      REQUIRE(q.ld() == padded_row_words(n) * 64);
      REQUIRE(reinterpret_cast<std::uintptr_t>(q.data()) % 64 == 0);
      for (std::size_t i = 0; i < t; ++i) {
        double amax = 0;
        std::vector<double> v(n);
        for (std::size_t l = 0; l < n; ++l) {
          v[l] =
              static_cast<double>(x(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(l))) *
              (s ? static_cast<double>(s[l]) : 1.0);
          amax = std::max(amax, std::fabs(v[l]));
        }
        INFO("n = " << n << ", token " << i);
        REQUIRE(q.scale(i) == Approx(amax / 127.0).epsilon(1e-6));
        std::int64_t sum = 0;
        int qmax = 0;
        for (std::size_t l = 0; l < n; ++l) {
          const int qi = q.row(i)[l];
          REQUIRE(std::abs(qi) <= 127);
          // |v - scale q| <= scale / 2 (plus float rounding of v / scale).
          REQUIRE(std::fabs(v[l] - static_cast<double>(q.scale(i)) * qi) <=
                  0.5 * q.scale(i) * (1 + 1e-5) + 1e-30);
          sum += qi;
          qmax = std::max(qmax, std::abs(qi));
        }
        REQUIRE(qmax == (amax > 0 ? 127 : 0));
        REQUIRE(q.row_sum(i) == sum);
        for (std::size_t l = n; l < q.ld(); ++l) REQUIRE(q.row(i)[l] == 0);
      }
    }
}

TEST_CASE("quantize_activations rejects NaN and infinity, naming the place",
          "[kernels_int][activations]") {
  RowMatrix x = test::random_matrix(3, 70);
  x(1, 66) = std::numeric_limits<float>::quiet_NaN();
  REQUIRE_THROWS_WITH(quantize_activations(x), test::contains("token 1 feature 66"));
  x(1, 66) = std::numeric_limits<float>::infinity();
  REQUIRE_THROWS_AS(quantize_activations(x), InvalidArgument);
  x(1, 66) = 1.0f;
  // A finite x times a finite s_in can still overflow to infinity.
  std::vector<float> s_in(70, 1.0f);
  x(2, 5) = 3e38f;
  s_in[5] = 10.0f;
  REQUIRE_THROWS_WITH(quantize_activations(x.data(), 70, 3, 70, s_in.data()),
                      test::contains("token 2 feature 5"));
  REQUIRE_THROWS_AS(quantize_activations(x.data(), 60, 3, 70), InvalidArgument);
}

namespace {
// The codes of one token by the documented float steps, written out here: v = x s, amax,
// inv = 127 / amax (values below 2^-100 scaled by 2^64 first), r = v inv,
// q = trunc(r + (r >= 0 ? 0.5 : -0.5)) clamped to [-127, 127].
std::vector<int> reference_codes(const float* x, const float* s, std::size_t n, float& scale) {
  std::vector<float> v(n);
  float amax = 0;
  for (std::size_t l = 0; l < n; ++l) {
    v[l] = s ? x[l] * s[l] : x[l];
    amax = std::max(amax, std::fabs(v[l]));
  }
  std::vector<int> q(n, 0);
  scale = 0;
  if (!(amax >= std::numeric_limits<float>::min())) return q;
  scale = amax / 127.0f;
  const bool tiny = amax < 0x1p-100f;
  const float inv = tiny ? 127.0f / (amax * 0x1p64f) : 127.0f / amax;
  for (std::size_t l = 0; l < n; ++l) {
    const float r = (tiny ? v[l] * 0x1p64f : v[l]) * inv;
    q[l] = std::clamp(static_cast<int>(r + (r >= 0.0f ? 0.5f : -0.5f)), -127, 127);
  }
  return q;
}
}  // namespace

TEST_CASE("quantize_activations: the same codes, scales and sums on every ISA, ties included",
          "[kernels_int][activations]") {
  std::mt19937 rng(77);
  std::uniform_int_distribution<int> code(-126, 126);
  // Edge sizes around the vector widths (8, 16, 32 floats per step) and a model's width.
  for (std::size_t n : {1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 100, 4099}) {
    const std::size_t t = 5, ldx = n + 3;
    RowMatrix x = test::random_matrix(t, ldx, 2.0f);
    const std::size_t cols = n;
    for (std::size_t l = 0; l < cols; ++l) {
      // Token 1: exact halves of a step of 1 (ties: r = k + 0.5 after the scaling, with
      // amax = 127 so that inv is 1).
      x(1, static_cast<Eigen::Index>(l)) = static_cast<float>(code(rng)) + (l % 2 ? 0.5f : -0.5f);
      // Token 3: values below 2^-100 (the path scaled by 2^64), some subnormal.
      x(3, static_cast<Eigen::Index>(l)) = x(0, static_cast<Eigen::Index>(l)) * 0x1p-110f;
      // Token 4: subnormal values only (scale 0).
      x(4, static_cast<Eigen::Index>(l)) = x(0, static_cast<Eigen::Index>(l)) * 0x1p-140f;
    }
    x(1, 0) = 127.0f;
    const Eigen::VectorXf s_in = test::random_matrix(cols, 1).cwiseAbs();
    for (bool with_scale : {false, true}) {
      const float* s = with_scale ? s_in.data() : nullptr;
      test::for_each_isa([&](Isa isa) {
        QuantizedActivations q;
        ProductSet(isa).quantize_activations(x.data(), ldx, t, n, q, s);
        // The free function runs the active ISA's products: the same result.
        const QuantizedActivations active = quantize_activations(x.data(), ldx, t, n, s);
        for (std::size_t i = 0; i < t; ++i) {
          INFO("n = " << n << ", s_in " << with_scale << ", token " << i);
          float scale = 0;
          const std::vector<int> ref = reference_codes(x.data() + i * ldx, s, n, scale);
          CHECK(q.scale(i) == scale);
          CHECK(active.scale(i) == scale);
          std::int64_t sum = 0;
          bool same = true;
          for (std::size_t l = 0; l < n; ++l) {
            same = same && q.row(i)[l] == ref[l] && active.row(i)[l] == ref[l];
            sum += ref[l];
          }
          CHECK(same);
          CHECK(q.row_sum(i) == sum);
          for (std::size_t l = n; l < q.ld(); ++l) REQUIRE(q.row(i)[l] == 0);
        }
      });
    }
  }
}

TEST_CASE("QuantizedActivations reuses and zero-fills its storage", "[kernels_int][activations]") {
  QuantizedActivations q;
  const RowMatrix big = test::random_matrix(3, 600);
  quantize_activations(big.data(), 600, 3, 600, q);
  const RowMatrix small = test::random_matrix(2, 65);
  quantize_activations(small.data(), 65, 2, 65, q);
  REQUIRE(q.tokens() == 2);
  REQUIRE(q.ld() == 512);
  for (std::size_t i = 0; i < 2; ++i)
    for (std::size_t l = 65; l < 512; ++l) REQUIRE(q.row(i)[l] == 0);
  const QuantizedActivations copy = q;
  REQUIRE(copy.row(1)[3] == q.row(1)[3]);
  REQUIRE(copy.scale(1) == q.scale(1));
}

TEST_CASE("A moved-from QuantizedActivations is empty and can be filled again",
          "[kernels_int][activations]") {
  QuantizedActivations q;
  const RowMatrix x = test::random_matrix(3, 600);
  quantize_activations(x.data(), 600, 3, 600, q);
  const std::int8_t* storage = q.data();
  QuantizedActivations moved(std::move(q));
  CHECK(moved.data() == storage);
  CHECK(moved.tokens() == 3);
  // The storage went with the move: refilling the source allocates anew, it does not write
  // through the buffer that now belongs to `moved`.
  quantize_activations(x.data(), 600, 2, 600, q);  // NOLINT(bugprone-use-after-move)
  CHECK(q.tokens() == 2);
  CHECK(q.data() != storage);
  CHECK(q.row(1)[0] == moved.row(1)[0]);
  for (std::size_t l = 600; l < q.ld(); ++l) CHECK(q.row(1)[l] == 0);
}

TEST_CASE("binarize_activations packs signs with the mean |x| scale",
          "[kernels_int][activations]") {
  for (std::size_t n : {1, 63, 64, 65, 513}) {
    const std::size_t t = 3, ldx = n + 2;
    RowMatrix x = test::random_matrix(t, ldx);
    x(0, 0) = 0.0f;
    x(1, 0) = -0.0f;  // sign(-0) = +1
    BinaryActivations b = binarize_activations(x.data(), ldx, t, n);
    REQUIRE(b.bits.rows() == t);
    REQUIRE(b.bits.cols() == n);
    for (std::size_t i = 0; i < t; ++i) {
      double abs_sum = 0;
      for (std::size_t l = 0; l < n; ++l) {
        const float v = x(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(l));
        REQUIRE(b.bits.sign(i, l) == (v < 0 ? -1 : 1));
        abs_sum += std::fabs(static_cast<double>(v));
      }
      REQUIRE(b.scale[i] == Approx(abs_sum / static_cast<double>(n)).epsilon(1e-5));
    }
    // The result meets the bit-layout contract (checked view construction).
    REQUIRE_NOTHROW(BitMatrixView(b.bits.data(), t, n, b.bits.stride_words()));
    // Reuse with the same shape.
    x = -x;
    binarize_activations(x.data(), ldx, t, n, b);
    for (std::size_t l = 1; l < n; ++l)
      REQUIRE(b.bits.sign(0, l) == (x(0, static_cast<Eigen::Index>(l)) < 0 ? -1 : 1));
  }
  RowMatrix bad = test::random_matrix(2, 100);
  bad(1, 99) = std::numeric_limits<float>::quiet_NaN();
  REQUIRE_THROWS_WITH(binarize_activations(bad.data(), 100, 2, 100),
                      test::contains("token 1 feature 99"));
}

TEST_CASE("An XNOR layer: binarize, xnor_gemm, float and bit outputs",
          "[kernels_int][activations]") {
  const std::size_t t = 9, n = 300, m = 70;
  const RowMatrix x = test::random_matrix(t, n);
  const BitMatrix w = test::fast_random_bits(m, n);
  const Eigen::VectorXf col_scale = test::random_matrix(m, 1);  // signed on purpose
  const Eigen::VectorXf threshold = test::random_matrix(m, 1, 5.0f);
  const BinaryActivations a = binarize_activations(x.data(), n, t, n);
  // Reference: +-1 products from the floats' signs.
  const std::vector<int> ws = test::naive_signs(w);
  std::vector<double> ref(t * m);
  for (std::size_t i = 0; i < t; ++i)
    for (std::size_t j = 0; j < m; ++j) {
      long long s = 0;
      for (std::size_t l = 0; l < n; ++l)
        s += (x(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(l)) < 0 ? -1 : 1) *
             ws[j * n + l];
      ref[i * m + j] =
          static_cast<double>(s) * a.scale[i] * col_scale(static_cast<Eigen::Index>(j));
    }
  test::for_each_isa([&](Isa isa) {
    const ProductSet k;
    REQUIRE(k.isa() == isa);
    std::vector<std::int32_t> c(t * m);
    k.xnor_gemm(a.bits, w, c.data(), m);
    std::vector<float> y(t * (m + 1), 7.0f);
    xnor_output_to_float(c.data(), m, t, m, a.scale.data(), col_scale.data(), y.data(), m + 1);
    BitMatrix bits;
    xnor_output_to_bits(c.data(), m, t, m, a.scale.data(), col_scale.data(), threshold.data(),
                        bits);
    REQUIRE(bits.rows() == t);
    REQUIRE(bits.cols() == m);
    REQUIRE_NOTHROW(BitMatrixView(bits.data(), t, m, bits.stride_words()));
    for (std::size_t i = 0; i < t; ++i) {
      for (std::size_t j = 0; j < m; ++j) {
        const double r = ref[i * m + j];
        // Two float roundings of a product: 2 eps relative.
        REQUIRE(std::fabs(y[i * (m + 1) + j] - r) <=
                2.5 * std::numeric_limits<float>::epsilon() * std::fabs(r));
        const double th = threshold(static_cast<Eigen::Index>(j));
        if (std::fabs(r - th) > 1e-4 * (std::fabs(r) + std::fabs(th)))
          REQUIRE(bits.bit(i, j) == (r < th));
      }
      REQUIRE(y[i * (m + 1) + m] == 7.0f);
    }
  });
}
