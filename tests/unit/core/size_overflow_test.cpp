// Sizes whose products overflow std::size_t are refused with InvalidArgument before anything
// is allocated: a wrapped product would allocate a small buffer that every later access
// overruns.

#include <mbok/activations.hpp>
#include <mbok/bit_matrix.hpp>
#include <mbok/forward_float.hpp>
#include <mbok/multi_kernel_weights.hpp>
#include <mbok/products.hpp>
#include <mbok/state_dict.hpp>

#include <cstdint>
#include <vector>

#include "../../support.hpp"

namespace mbok::test {
namespace {

constexpr std::size_t kOne = 1;

TEST_CASE("BitMatrix refuses shapes whose storage size wraps", "[overflow]") {
  // 2^22 rows of 2^45 bits: rows * words * 64 = 2^67 wraps to 0, which passed the old guard.
  CHECK_THROWS_WITH(BitMatrix(kOne << 22, kOne << 45), contains("too large"));
  CHECK_THROWS_AS(BitMatrix(kOne << 22, kOne << 45), InvalidArgument);
  CHECK_THROWS_AS(BitMatrix(kOne << 40, kOne << 30), InvalidArgument);  // 2^70 bits
  CHECK_THROWS_AS(BitMatrix(SIZE_MAX, 1), InvalidArgument);
  CHECK_THROWS_AS(BitMatrix(1, SIZE_MAX), InvalidArgument);  // padded_row_words wraps
  CHECK_THROWS_AS(BitMatrix(1, SIZE_MAX - 100), InvalidArgument);
  CHECK_THROWS_AS(BitMatrix(kOne << 17, kOne << 29), InvalidArgument);  // exactly 2^46 bits
  // Just below the limit the guard passes; not allocated here (8 TiB), so a small case only.
  const BitMatrix ok(3, 1000);
  CHECK(ok.storage_bytes() == 3 * 16 * 8);
}

TEST_CASE("QuantizedActivations::resize refuses a wrapping buffer size", "[overflow]") {
  QuantizedActivations q;
  // t * ld with ld = 64 bytes: SIZE_MAX / 32 tokens wraps.
  CHECK_THROWS_WITH(q.resize(SIZE_MAX / 32, 10), contains("QuantizedActivations"));
  CHECK_THROWS_AS(q.resize(kOne << 40, kOne << 30), InvalidArgument);
  CHECK_THROWS_AS(q.resize(1, SIZE_MAX), InvalidArgument);  // padded_row_words would wrap
  CHECK(q.tokens() == 0);                                   // unchanged
  q.resize(2, 100);
  CHECK(q.ld() == 512);
  CHECK(q.tokens() == 2);
}

TEST_CASE("MultiKernelWeights refuses a shape whose scale matrix cannot be counted", "[overflow]") {
  CHECK_THROWS_AS(MultiKernelWeights<float>(kOne << 40, kOne << 30), InvalidArgument);
  CHECK_THROWS_AS(MultiKernelWeights<double>(SIZE_MAX, 2), InvalidArgument);
  CHECK_NOTHROW(MultiKernelWeights<float>(kOne << 20, kOne << 20));  // holds nothing yet
}

TEST_CASE("tensor sizes never wrap", "[overflow]") {
  Tensor t;
  t.dtype = DType::f32;
  t.shape = {std::int64_t{1} << 62, 4};  // 2^64 elements
  CHECK(t.numel() == SIZE_MAX);
  CHECK(t.expected_bytes() == SIZE_MAX);
  t.shape = {std::int64_t{1} << 62};  // 2^62 elements of 4 bytes wrap to 0 bytes
  CHECK(t.expected_bytes() == SIZE_MAX);
  StateDict dict{{"t", t}};
  CHECK_THROWS_AS(expect_tensor(dict, "t", DType::f32, t.shape), FormatError);
  t.shape = {-1};
  CHECK(t.numel() == SIZE_MAX);
  const float x[2] = {1, 2};
  CHECK_THROWS_AS(Tensor::from(x, {std::int64_t{1} << 62}), InvalidArgument);
}

TEST_CASE("raw-pointer kernels refuse token counts and strides whose products overflow",
          "[overflow]") {
  // (t - 1) * ld elements wraps std::size_t, or its bytes exceed PTRDIFF_MAX: x + i * ld would
  // point anywhere. The buffers are small; nothing is read before the check.
  const BitMatrix w(8, 100);
  std::vector<float> x(2 * 100, 1.0f), y(2 * 8, 0.0f);
  const ProductSet kernels;
  for (std::size_t ld : {kOne << 62, kOne << 61}) {
    CHECK_THROWS_AS(kernels.sign_gemm(x.data(), ld, 2, w.view(), y.data(), 8), InvalidArgument);
    CHECK_THROWS_AS(kernels.sign_gemm(x.data(), 100, 2, w.view(), y.data(), ld), InvalidArgument);
    CHECK_THROWS_AS(kernels.sign_gemm_range(x.data(), ld, 2, w.view(), y.data(), 8, 0, 8),
                    InvalidArgument);
    CHECK_THROWS_AS(kernels.sign_gemm_transposed(y.data(), ld, 2, w.view(), x.data(), 100),
                    InvalidArgument);
    CHECK_THROWS_AS(kernels.sign_gemm_transposed(y.data(), 8, 2, w.view(), x.data(), ld),
                    InvalidArgument);
  }
  // t itself so large that t * ldx wraps.
  CHECK_THROWS_AS(kernels.sign_gemm(x.data(), 100, SIZE_MAX / 64, w.view(), y.data(), 8),
                  InvalidArgument);
  const BitMatrix a(2, 100);
  std::vector<std::int32_t> c(2 * 8);
  CHECK_THROWS_AS(kernels.xnor_gemm(a.view(), w.view(), c.data(), kOne << 62), InvalidArgument);

  MultiKernelWeights<float> mk(8, 100);
  mk.add_kernel(BitMatrix(8, 100), Eigen::VectorXf::Ones(8), Eigen::VectorXf::Ones(100));
  CHECK_THROWS_AS(multi_kernel_forward(mk, x.data(), kOne << 62, 2, y.data(), 8), InvalidArgument);
  CHECK_THROWS_AS(multi_kernel_forward(mk, x.data(), 100, 2, y.data(), kOne << 62),
                  InvalidArgument);
  // The same calls with sane strides run.
  CHECK_NOTHROW(kernels.sign_gemm(x.data(), 100, 2, w.view(), y.data(), 8));
  CHECK_NOTHROW(multi_kernel_forward(mk, x.data(), 100, 2, y.data(), 8));
}

}  // namespace
}  // namespace mbok::test
