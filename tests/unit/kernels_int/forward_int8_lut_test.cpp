// The fused int8 forward through the table-lookup product against the masked product, on
// every ISA available here: both compute the same exact int32 products and scale them the
// same way, so the floats must be equal bit for bit, for whole calls, for row ranges that
// start and end inside 16-row tiles, and for token counts whose tables are split in blocks.
#include <mbok/forward_int8.hpp>

#include <cstdint>
#include <vector>

#include "int_support.hpp"
#include "support.hpp"

using namespace mbok;

namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

void check(std::size_t m, std::size_t n, std::size_t t, std::size_t k_count) {
  const MultiKernelWeights<float> w =
      test::random_kernel_weights(m, n, k_count, test::fast_random_bits);
  const RowMatrix x = test::random_matrix(t, n + 3);
  const std::size_t ldx = n + 3, ldy = m + 1;
  test::for_each_isa([&](Isa isa) {
    const ProductSet ks;
    REQUIRE(ks.isa() == isa);
    const Int8PreparedWeights pw(w, ks);
    INFO("m = " << m << ", n = " << n << ", t = " << t << ", K = " << k_count);
    std::vector<float> masked(t * ldy, 7.0f), lut(t * ldy, 7.0f), pieces(t * ldy, 7.0f);
    multi_kernel_forward_int8(w, pw, x.data(), ldx, t, masked.data(), ldy, Int8Algorithm::masked);
    multi_kernel_forward_int8(w, pw, x.data(), ldx, t, lut.data(), ldy, Int8Algorithm::lut);
    REQUIRE(lut == masked);
    // The masked overload without prepared weights agrees too.
    std::vector<float> plain(t * ldy, 7.0f);
    multi_kernel_forward_int8(w, x.data(), ldx, t, plain.data(), ldy, ks);
    REQUIRE(plain == masked);
    // Ranges off the tile grid, from a workspace prepared once.
    Int8ForwardWorkspace ws;
    prepare_int8_forward(w, pw, x.data(), ldx, t, ws, Int8Algorithm::lut);
    REQUIRE(ws.algorithm() == Int8Algorithm::lut);
    const std::size_t cuts[] = {0, m / 5, m / 2 + 1, m};
    for (std::size_t c = 0; c + 1 < 4; ++c)
      if (cuts[c] <= cuts[c + 1])
        multi_kernel_forward_int8_range(w, pw, ws, pieces.data(), ldy, cuts[c], cuts[c + 1]);
    REQUIRE(pieces == masked);
    // Automatic picks the LUT exactly up to the ISA's token limit.
    prepare_int8_forward(w, pw, x.data(), ldx, t, ws);
    REQUIRE((ws.algorithm() == Int8Algorithm::lut) == (t <= ks.lut_max_tokens()));
  });
}

}  // namespace

TEST_CASE("the LUT forward equals the masked forward bit for bit", "[kernels_int][forward][lut]") {
  for (std::size_t k_count : {1u, 2u, 3u})
    for (std::size_t t : {1u, 2u, 5u, 17u}) {
      check(1, 3, t, k_count);
      check(17, 65, t, k_count);
      check(130, 513, t, k_count);
    }
  check(300, 128, 1, 2);  // several row blocks
  check(530, 64, 9, 2);
  // 40 tokens of 4096 features: their tables (32 KiB each) exceed detail::kLutTableBlockBytes,
  // so the product runs in token blocks (16, 16, 8).
  static_assert(40 * detail::lut_table_bytes(4096) > detail::kLutTableBlockBytes);
  check(70, 4096, 40, 2);
  // Token blocks of 31 (n = 2100): three by the prefill product, the last 7 tokens by the
  // per-token one (detail::lut_product).
  check(45, 2100, 100, 2);
}

TEST_CASE("the LUT forward over larger shapes", "[kernels_int][forward][lut][slow]") {
  check(1000, 4096, 1, 2);
  check(257, 997, 33, 2);
}

TEST_CASE("the prepared forward checks its arguments", "[kernels_int][forward][lut]") {
  const MultiKernelWeights<float> w = test::random_kernel_weights(8, 100, 2,
                                                                  test::fast_random_bits),
                                  other =
                                      test::random_kernel_weights(8, 99, 2, test::fast_random_bits);
  const Int8PreparedWeights pw(w);
  const RowMatrix x = test::random_matrix(2, 100);
  Int8ForwardWorkspace ws;
  std::vector<float> y(16);
  REQUIRE_THROWS_AS(prepare_int8_forward(other, pw, x.data(), 100, 2, ws), InvalidArgument);
  prepare_int8_forward(w, pw, x.data(), 100, 2, ws, Int8Algorithm::lut);
  REQUIRE_THROWS_AS(multi_kernel_forward_int8_range(w, pw, ws, y.data(), 8, 0, 9), InvalidArgument);
  REQUIRE_THROWS_AS(multi_kernel_forward_int8_range(w, pw, ws, y.data(), 7, 0, 8), InvalidArgument);
}
