#pragma once
#include "../../guard.hpp"

// neon: Boolean x Boolean (XNOR/popcount): table entry xnor_gemm.
//
// CNT counts the ones of each byte; the four 128-bit chunks of a 512-bit unit are summed in
// byte lanes (at most 32 per lane), folded into 16-bit lanes with UADALP (at most 64 per unit
// and lane, so 1023 units fit), and into 32-bit lanes after each block of units. A tile of
// activation rows x weight rows reuses every loaded vector from a register, and weight rows
// are walked in L1-sized blocks.

#include <arm_neon.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "../table.hpp"

#include "begin.hpp"

namespace mbok::detail::neon {

// Units of 512 bits per 16-bit accumulation block: 1023 * 64 < 65536.
inline constexpr std::size_t kXnorUnitsPerBlock = 1023;

// One tile: TI activation rows x TJ weight rows over `units` 512-bit units.
template <int TI, int TJ>
inline void xnor_tile(const std::uint64_t* const* a, const std::uint64_t* const* b,
                      std::size_t units, std::int32_t n, std::int32_t* c,
                      std::size_t ldc) noexcept {
  uint32x4_t total[TI][TJ];
  for (int i = 0; i < TI; ++i)
    for (int j = 0; j < TJ; ++j) total[i][j] = vdupq_n_u32(0);
  for (std::size_t u0 = 0; u0 < units; u0 += kXnorUnitsPerBlock) {
    const std::size_t u1 = std::min(units, u0 + kXnorUnitsPerBlock);
    uint16x8_t acc[TI][TJ];
    for (int i = 0; i < TI; ++i)
      for (int j = 0; j < TJ; ++j) acc[i][j] = vdupq_n_u16(0);
    for (std::size_t u = u0; u < u1; ++u) {
      uint8x16_t sum[TI][TJ];
      for (int i = 0; i < TI; ++i)
        for (int j = 0; j < TJ; ++j) sum[i][j] = vdupq_n_u8(0);
      for (int q = 0; q < 4; ++q) {
        uint8x16_t av[TI];
        for (int i = 0; i < TI; ++i)
          av[i] = vreinterpretq_u8_u64(vld1q_u64(a[i] + u * 8 + static_cast<std::size_t>(q) * 2));
        for (int j = 0; j < TJ; ++j) {
          const uint8x16_t bv =
              vreinterpretq_u8_u64(vld1q_u64(b[j] + u * 8 + static_cast<std::size_t>(q) * 2));
          for (int i = 0; i < TI; ++i) {
            const uint8x16_t ones = vcntq_u8(veorq_u8(av[i], bv));
            sum[i][j] = vaddq_u8(sum[i][j], ones);
          }
        }
      }
      for (int i = 0; i < TI; ++i)
        for (int j = 0; j < TJ; ++j) acc[i][j] = vpadalq_u8(acc[i][j], sum[i][j]);
    }
    for (int i = 0; i < TI; ++i)
      for (int j = 0; j < TJ; ++j) total[i][j] = vpadalq_u16(total[i][j], acc[i][j]);
  }
  for (int i = 0; i < TI; ++i)
    for (int j = 0; j < TJ; ++j)
      // In int64: 2 popcount exceeds INT32_MAX from n > 2^30 on (the result itself fits).
      c[static_cast<std::size_t>(i) * ldc + static_cast<std::size_t>(j)] =
          static_cast<std::int32_t>(std::int64_t{n} -
                                    2 * static_cast<std::int64_t>(vaddvq_u32(total[i][j])));
}

// The register tile (activation rows x weight rows) and the words of one vector chunk.
inline constexpr std::size_t kXnorTileI = 2, kXnorTileJ = 4, kXnorChunkWords = 8;
#include "../generic/xnor.hpp"

inline constexpr void install_xnor(ProductTable& t) noexcept { t.xnor_gemm = &xnor_gemm; }

}  // namespace mbok::detail::neon

#include "end.hpp"
