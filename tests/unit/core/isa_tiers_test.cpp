// One ctest entry per ISA tier (isa-tier-<name>, tests/CMakeLists.txt), so a tier that this
// CPU cannot run shows up as a skipped test instead of vanishing inside a passing area: the
// case exits with code 77 (ctest's SKIP_RETURN_CODE) naming what is missing, or checks the
// tier's integer products against the naive references. "[isa-tiers]" prints the tiers this
// CPU runs natively, for the test summary.

#include <mbok/activations.hpp>
#include <mbok/products.hpp>

#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "reference/naive.hpp"
#include "reference/naive_int8.hpp"
#include "support.hpp"

using namespace mbok;

TEST_CASE("the requested ISA tier runs its products exactly, or the test is skipped",
          "[isa-tier]") {
  const char* requested = std::getenv("MBOK_TEST_TIER");
  if (requested == nullptr) {
    WARN("MBOK_TEST_TIER is not set: nothing to check");
    return;
  }
  const Isa tier = parse_isa(requested);
  if (!isa_available(tier)) {
    std::cout << "tier " << isa_name(tier) << " skipped: not available on this CPU and build ("
              << isa_report() << ")" << std::endl;
    std::exit(77);
  }
  const ProductSet k(tier);
  REQUIRE(k.isa() == tier);
  for (std::size_t n : {1, 64, 65, 513, 997}) {
    INFO("n = " << n);
    const BitMatrix a = test::random_bits(5, n);
    const BitMatrix b = test::random_bits(19, n);
    std::vector<std::int32_t> c(a.rows() * b.rows());
    k.xnor_gemm(a, b, c.data(), b.rows());
    CHECK(c == test::naive_xnor_gemm(a, b));

    const QuantizedActivations q =
        quantize_activations(Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>(
            test::random_matrix(3, n)));
    std::vector<std::int32_t> y(q.tokens() * b.rows());
    k.sign_gemm_i8(q.data(), q.ld(), q.tokens(), b, y.data(), b.rows());
    const auto ref =
        test::naive_i8_gemm(q.data(), q.ld(), q.tokens(), test::naive_signs(b), b.rows(), n);
    CHECK(std::vector<std::int64_t>(y.begin(), y.end()) == ref);
  }
}

TEST_CASE("the ISA tiers this CPU runs natively", "[isa-tiers]") {
  std::string tiers;
  for (Isa isa : kAllIsas)
    if (isa_available(isa)) tiers += std::string(tiers.empty() ? "" : " ") + isa_name(isa);
  REQUIRE_FALSE(tiers.empty());
  std::cout << "mbok-tiers-native: " << tiers << std::endl;
}
