// F16 and BF16 conversions against references built here: every 16-bit pattern round-trips,
// and float -> 16-bit picks the nearest value (ties to even) found by search over all of them.
#include <mbok/half.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "support.hpp"

using namespace mbok;

namespace {

bool is_nan16(std::uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0; }

// The F16 nearest to x by exhaustive search (ties to the even pattern), with IEEE overflow:
// |x| >= 65520 gives infinity.
std::uint16_t nearest_f16(float x) {
  if (std::fabs(x) >= 65520.0f) return x > 0 ? 0x7c00 : 0xfc00;
  const double v = x;
  std::uint16_t best = 0;
  double best_dist = std::numeric_limits<double>::infinity();
  for (std::uint32_t h = 0; h < 0x10000u; ++h) {
    const auto c = static_cast<std::uint16_t>(h);
    if ((c & 0x7c00u) == 0x7c00u) continue;
    if (std::signbit(static_cast<double>(f16_to_float(c))) != std::signbit(v)) continue;
    const double d = std::fabs(static_cast<double>(f16_to_float(c)) - v);
    if (d < best_dist || (d == best_dist && (c & 1u) == 0)) {
      best = c;
      best_dist = d;
    }
  }
  return best;
}

}  // namespace

TEST_CASE("every F16 pattern converts to float and back unchanged", "[half]") {
  for (std::uint32_t h = 0; h < 0x10000u; ++h) {
    const auto x = static_cast<std::uint16_t>(h);
    const float f = f16_to_float(x);
    if (is_nan16(x)) {
      CHECK(std::isnan(f));
      CHECK(float_to_f16(f) == (x | 0x200u));  // payload kept, made quiet
    } else if (float_to_f16(f) != x) {
      FAIL("pattern " << h << " -> " << f << " -> " << float_to_f16(f));
    }
  }
}

TEST_CASE("F16 values at the edges of the format", "[half]") {
  CHECK(f16_to_float(0x3c00) == 1.0f);
  CHECK(f16_to_float(0x0001) == std::ldexp(1.0f, -24));  // smallest subnormal
  CHECK(f16_to_float(0x0400) == std::ldexp(1.0f, -14));  // smallest normal
  CHECK(f16_to_float(0x7bff) == 65504.0f);
  CHECK(float_to_f16(65519.99f) == 0x7bff);
  CHECK(float_to_f16(65520.0f) == 0x7c00);  // halfway to 2^16 rounds to even: infinity
  CHECK(float_to_f16(-1e9f) == 0xfc00);
  CHECK(float_to_f16(std::ldexp(1.0f, -25)) == 0x0000);  // halfway to the smallest subnormal: even
  CHECK(float_to_f16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)) == 0x0001);
  CHECK(float_to_f16(std::ldexp(3.0f, -25)) == 0x0002);         // 1.5 units: ties to even
  CHECK(float_to_f16(std::ldexp(1023.5f, -24)) == 0x0400);      // rounds up into the normals
  CHECK(float_to_f16(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);  // tie: stays at even 1.0
  CHECK(float_to_f16(1.0f + std::ldexp(3.0f, -11)) == 0x3c02);  // tie: up to even
  CHECK(float_to_f16(-0.0f) == 0x8000);
  CHECK(float_to_f16(std::numeric_limits<float>::denorm_min()) == 0x0000);
  CHECK(float_to_f16(std::numeric_limits<float>::infinity()) == 0x7c00);
  CHECK(is_nan16(float_to_f16(std::numeric_limits<float>::quiet_NaN())));
}

TEST_CASE("float to F16 is the nearest value, ties to even", "[half][slow]") {
  std::mt19937_64 rng(7);
  std::vector<float> samples;
  std::uniform_int_distribution<std::uint32_t> bits(0, 0xffffffffu);
  // Random bit patterns in and around the F16 range, plus exact ties.
  while (samples.size() < 300) {
    const std::uint32_t b = (bits(rng) & 0x8fffffffu) | 0x30000000u;  // exponents 2^-31 .. 2^32
    float f;
    std::memcpy(&f, &b, sizeof f);
    samples.push_back(f);
  }
  for (int i = 0; i < 100; ++i) {
    const auto h = static_cast<std::uint16_t>(bits(rng) & 0x7bfeu);
    samples.push_back((f16_to_float(h) + f16_to_float(static_cast<std::uint16_t>(h + 1))) / 2);
  }
  for (float f : samples) {
    INFO("x = " << f);
    CHECK(float_to_f16(f) == nearest_f16(f));
  }
}

TEST_CASE("BF16 conversions", "[half]") {
  for (std::uint32_t b = 0; b < 0x10000u; ++b) {
    const auto x = static_cast<std::uint16_t>(b);
    const float f = bf16_to_float(x);
    if (std::isnan(f))
      CHECK(float_to_bf16(f) == (x | 0x40u));
    else if (float_to_bf16(f) != x)
      FAIL("pattern " << b);
  }
  std::mt19937_64 rng(11);
  for (int i = 0; i < 20000; ++i) {
    const auto u = static_cast<std::uint32_t>(rng());
    float f;
    std::memcpy(&f, &u, sizeof f);
    if (std::isnan(f)) continue;
    // Reference: the two neighbouring BF16 values, nearest wins, ties to the even pattern.
    const auto lo = static_cast<std::uint16_t>(u >> 16);
    const auto hi = static_cast<std::uint16_t>(lo + 1);
    const double dlo = std::fabs(static_cast<double>(bf16_to_float(lo)) - f);
    const double vhi = static_cast<double>(bf16_to_float(hi));
    const double dhi = std::isnan(vhi) ? std::numeric_limits<double>::infinity()
                       : std::isinf(vhi)
                           ? (std::fabs(static_cast<double>(f)) >= std::ldexp(255.5, 120)
                                  ? 0.0
                                  : std::numeric_limits<double>::infinity())
                           : std::fabs(vhi - f);
    const std::uint16_t expected = dlo < dhi ? lo : dhi < dlo ? hi : ((lo & 1u) == 0 ? lo : hi);
    if (float_to_bf16(f) != expected) FAIL("x = " << f << " bits " << u);
  }
  CHECK(float_to_bf16(1.0f) == 0x3f80);
  CHECK(float_to_bf16(3.14159265f) == 0x4049);
}
