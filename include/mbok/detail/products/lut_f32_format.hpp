#pragma once
#include "../guard.hpp"

// The table-lookup float product: float activations times the repacked weights of the int8
// table-lookup product (lut_format.hpp, either layout), so that weights kept only in that
// form run float activations too.
//
// y_j = sum_l v_l w_jl with w = 1 - 2 b (b = stored bit), v = x (.) s_in. Columns are cut
// into the groups of 4 of lut_format.hpp; a group's 4 bits are a pattern p in [0, 16) and its
// share of y is the signed sum
//   T(p) = (sigma_0 v_0 + sigma_1 v_1) + (sigma_2 v_2 + sigma_3 v_3),  sigma_k = bit k of p ? -1 :
//   1,
// computed in float in exactly this order by every ISA (so the tables are the same bits
// everywhere), and y_j = sum over the groups of T(p_jg), summed in float in the kernel's own
// order. T(p ^ 15) = -T(p) exactly (negation does not round), which lets 8-entry permutes
// serve 16 patterns.
//
// Error: each v_l = fl(x_l s_l) rounds once, takes part in two roundings inside T, and in at
// most G - 1 roundings of the sum over the G = ceil(n / 4) groups that hold features (padded
// groups are exact zeros), so |y' - y| <= gamma(G + 3) sum_l |x_l s_l| (gamma(k) = k u /
// (1 - k u), u = 2^-24), plus one subnormal per rounding where products underflow.
//
// Table format (all ISAs): per token, per group g (columns 4 g .. 4 g + 3, padded to cols32
// with zeros), 16 floats T(0) .. T(15) at 16 g: 64 bytes per group, 16 bytes per feature.

#include <cstddef>

#include "lut_format.hpp"

namespace mbok::detail {

// Floats of one token's tables (a multiple of 16: whole 64-byte lines).
inline constexpr std::size_t lut_f32_table_floats(std::size_t cols) noexcept {
  return lut_cols32(cols) * 4;
}

// Per-token float tables: t tokens, token i at data + i * ld (ld floats, a multiple of 16;
// 64-byte aligned).
struct LutTablesF32View {
  const float* data = nullptr;
  std::size_t tokens = 0, cols = 0, ld = 0;
  const float* token(std::size_t i) const noexcept { return data + i * ld; }
};

// The pattern of row r of a tile (16 rows, `tile` its bytes) for group g, in either layout.
inline unsigned lut_f32_pattern(LutLayout layout, const std::uint8_t* tile, std::size_t r,
                                std::size_t g) noexcept {
  if (layout == LutLayout::interleave4) {
    // Group g = 8 s + 4 h + q: byte 64 s + 4 r + q, nibble h.
    const std::size_t s = g / 8, h = (g % 8) / 4, q = g % 4;
    return (tile[64 * s + 4 * r + q] >> (4 * h)) & 15u;
  }
  // Group g = 4 c + 2 h + e: byte 32 c + 16 e + r, nibble h.
  const std::size_t c = g / 4, h = (g % 4) / 2, e = g % 2;
  return (tile[32 * c + 16 * e + r] >> (4 * h)) & 15u;
}

}  // namespace mbok::detail
