// Quantization of tokens whose max |x| is tiny (zero, subnormal, FLT_MIN, below 127 / FLT_MAX,
// where 127 / amax overflows float), QuantizedActivations resizes and AlignedBuffer growth that
// fail on an allocation (injected), and strides whose products overflow in the raw-pointer int8
// entry points.
#include <mbok/activations.hpp>
#include <mbok/boolean_linear.hpp>
#include <mbok/detail/base/aligned_buffer.hpp>
#include <mbok/forward_int8.hpp>
#include <mbok/products.hpp>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <new>
#include <vector>

#include "../failing_new.hpp"  // this area's one include: replaces operator new and delete
#include "support.hpp"

using namespace mbok;

namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

constexpr std::size_t kN = 100;

// A fixed pattern in [-1, 1] with max |p| == 1 at l = 37 (negative) and mixed magnitudes.
float pattern(std::size_t l) {
  if (l == 37) return -1.0f;
  return std::sin(0.37f * static_cast<float>(l) + 0.1f) * 0.9f;
}

// Tokens: 0 all zero, 1 subnormal multiples of denorm_min, 2 max 1e-38 (subnormal), 3 max
// FLT_MIN, 4 max 1e-37 (normal, but 127 / 1e-37 overflows float), 5 a normal token.
RowMatrix tiny_tokens() {
  RowMatrix x = RowMatrix::Zero(6, kN);
  const float denorm = std::numeric_limits<float>::denorm_min();
  const float amax[] = {0.0f, 0.0f, 1e-38f, FLT_MIN, 1e-37f, 3.0f};
  for (std::size_t l = 0; l < kN; ++l) {
    const auto c = static_cast<Eigen::Index>(l);
    x(1, c) = denorm * static_cast<float>(static_cast<int>(l % 7) - 3);
    for (Eigen::Index i = 2; i < 6; ++i) x(i, c) = amax[i] * pattern(l);
  }
  return x;
}

std::vector<std::int8_t> codes(const QuantizedActivations& q, std::size_t i) {
  return std::vector<std::int8_t>(q.row(i), q.row(i) + q.cols());
}

}  // namespace

TEST_CASE("quantize_activations: tokens with zero, subnormal or tiny max |x| stay finite",
          "[kernels_int][activations][numeric]") {
  const RowMatrix x = tiny_tokens();
  const QuantizedActivations q = quantize_activations(x);
  // Max |x| below FLT_MIN (zero or only subnormals): the all-zero token.
  for (std::size_t i = 0; i < 3; ++i) {
    INFO("token " << i);
    CHECK(q.scale(i) == 0.0f);
    CHECK(q.row_sum(i) == 0);
    for (std::int8_t c : codes(q, i)) CHECK(c == 0);
  }
  // Max |x| >= FLT_MIN: the codes of the same token scaled up by a power of two (exactly), and
  // scale = amax / 127 as a float.
  for (std::size_t i = 3; i < 6; ++i) {
    INFO("token " << i);
    const int shift = i == 5 ? 0 : 100;
    RowMatrix up = x.row(static_cast<Eigen::Index>(i));
    for (Eigen::Index l = 0; l < up.cols(); ++l) up(0, l) = std::ldexp(up(0, l), shift);
    const QuantizedActivations alone = quantize_activations(up);
    CHECK(codes(q, i) == codes(alone, 0));
    CHECK(q.row_sum(i) == alone.row_sum(0));
    CHECK(q.row(i)[37] == -127);
    const float amax = std::fabs(x(static_cast<Eigen::Index>(i), 37));
    CHECK(q.scale(i) == amax / 127.0f);
    CHECK(q.scale(i) > 0.0f);
    // Dequantized within half a step (plus the rounding of a subnormal scale).
    for (std::size_t l = 0; l < kN; ++l) {
      const double v = x(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(l));
      const double back = static_cast<double>(q.scale(i)) * q.row(i)[l];
      CHECK(std::fabs(v - back) <= 0.5000001 * q.scale(i) + 127.0 * std::ldexp(1.0, -149));
    }
  }
  // Through s_in: products that are subnormal make an all-zero token too.
  const Eigen::VectorXf s_in = Eigen::VectorXf::Constant(kN, 1e-40f);
  const RowMatrix normal = x.row(5);
  const QuantizedActivations qs = quantize_activations(normal, s_in.data());
  CHECK(qs.scale(0) == 0.0f);
  for (std::int8_t c : codes(qs, 0)) CHECK(c == 0);
}

TEST_CASE("int8 forward of tiny tokens is finite on every ISA",
          "[kernels_int][activations][numeric]") {
  const RowMatrix x = tiny_tokens();
  const Eigen::MatrixXf w = test::random_matrix(24, kN);
  const auto layer = BooleanLinear<float>::from_dense(w, 2);
  test::for_each_isa([&](Isa) {
    const RowMatrix y = layer.forward_int8(x);
    REQUIRE(y.allFinite());
    for (Eigen::Index i = 0; i < 3; ++i) CHECK(y.row(i).isZero(0.0f));
    const RowMatrix y5 = layer.forward_int8(x.row(5));
    CHECK(y.row(5).isApprox(y5.row(0), 1e-5f));
  });
}

TEST_CASE("QuantizedActivations::resize and copy are all or nothing",
          "[kernels_int][activations][alloc]") {
  const RowMatrix x = test::random_matrix(2, kN);
  const QuantizedActivations big = quantize_activations(RowMatrix(test::random_matrix(40, 300)));
  bool resized = false, copied = false;
  for (long k = 0; k < 16 && !(resized && copied); ++k) {
    INFO("allocation " << k << " fails");
    QuantizedActivations q = quantize_activations(x);
    const QuantizedActivations q0 = q;
    std::vector<unsigned char> bytes0(q0.data(), q0.data() + q0.tokens() * q0.ld());
    auto unchanged = [&] {
      CHECK(q.tokens() == 2);
      CHECK(q.cols() == kN);
      CHECK(q.ld() == q0.ld());
      for (std::size_t i = 0; i < 2; ++i) {
        CHECK(q.scale(i) == q0.scale(i));
        CHECK(q.row_sum(i) == q0.row_sum(i));
      }
      CHECK(std::memcmp(q.data(), bytes0.data(), bytes0.size()) == 0);
    };
    bool threw = false;
    {
      test::FailAllocation fail(k);
      try {
        q.resize(40, 300);
      } catch (const std::bad_alloc&) {
        threw = true;
      }
      resized = resized || (!threw && !test::FailAllocation::fired());
    }
    if (threw) unchanged();
    q = q0;
    threw = false;
    {
      test::FailAllocation fail(k);
      try {
        q = big;
      } catch (const std::bad_alloc&) {
        threw = true;
      }
      copied = copied || (!threw && !test::FailAllocation::fired());
    }
    if (threw) unchanged();
  }
  CHECK(resized);
  CHECK(copied);
}

TEST_CASE("AlignedBuffer::grow that fails on its allocation keeps the old memory",
          "[kernels_int][aligned-buffer][alloc]") {
  auto b = detail::AlignedBuffer<float>::zeroed(20);
  b.data()[19] = 3.0f;
  const float* p = b.data();
  {
    test::FailAllocation fail(0);
    CHECK_THROWS_AS(b.grow(1000), std::bad_alloc);
    CHECK(test::FailAllocation::fired());
  }
  CHECK(b.data() == p);
  CHECK(b.size() == 20);
  CHECK(b.capacity() == 32);
  CHECK(b.data()[19] == 3.0f);
  CHECK(b.grow(1000) != p);  // and grows once memory is there
  CHECK(b.capacity() == 1008);
}

TEST_CASE("raw int8 entry points refuse strides whose products overflow",
          "[kernels_int][overflow]") {
  constexpr std::size_t kOne = 1;
  std::vector<float> x(2 * kN, 0.5f), y(2 * 64, 0.0f);
  QuantizedActivations q;
  // (t - 1) * ldx floats wraps size_t, or its bytes exceed PTRDIFF_MAX.
  CHECK_THROWS_AS(quantize_activations(x.data(), kOne << 62, 2, kN, q), InvalidArgument);
  CHECK_THROWS_AS(quantize_activations(x.data(), kOne << 61, 2, kN, q), InvalidArgument);
  CHECK_THROWS_AS(quantize_activations(x.data(), kN, SIZE_MAX / 2, kN, q), InvalidArgument);
  CHECK(q.tokens() == 0);
  CHECK_THROWS_AS(binarize_activations(x.data(), kOne << 62, 2, kN), InvalidArgument);

  const Eigen::MatrixXf w = test::random_matrix(8, kN);
  MultiKernelWeights<float> weights(8, kN);
  weights.add_kernel(BitMatrix::pack(w), Eigen::VectorXf::Ones(8), Eigen::VectorXf::Ones(kN));
  CHECK_THROWS_AS(multi_kernel_forward_int8(weights, x.data(), kOne << 62, 2, y.data(), 64),
                  InvalidArgument);
  CHECK_THROWS_AS(multi_kernel_forward_int8(weights, x.data(), kN, 2, y.data(), kOne << 62),
                  InvalidArgument);

  const ProductSet kernels;
  const QuantizedActivations qa = quantize_activations(x.data(), kN, 2, kN);
  const BitMatrix bits = BitMatrix::pack(w);
  std::vector<std::int32_t> c(2 * 64);
  CHECK_THROWS_AS(kernels.sign_gemm_i8(qa.data(), qa.ld(), 2, bits.view(), c.data(), kOne << 62),
                  InvalidArgument);
  // t * ldx bytes wraps: 2^58 tokens of 64 bytes.
  Int8LutTables tables;
  CHECK_THROWS_AS(kernels.build_lut_tables(qa.data(), 64, kOne << 58, kN, tables), InvalidArgument);
  CHECK_THROWS_AS(xnor_output_to_float(c.data(), kOne << 62, 2, 8, nullptr, nullptr, y.data(), 8),
                  InvalidArgument);
}
