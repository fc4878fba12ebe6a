// Sizes whose products overflow std::size_t are refused with InvalidArgument before anything
// is allocated: a wrapped product would allocate a small buffer that every later access
// overruns.

#include <mbok/activations.hpp>
#include <mbok/bit_matrix.hpp>
#include <mbok/multi_kernel_weights.hpp>
#include <mbok/state_dict.hpp>

#include <cstdint>

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

}  // namespace
}  // namespace mbok::test
