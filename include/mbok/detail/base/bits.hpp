#pragma once
#include "../guard.hpp"

#include <cstddef>
#include <cstdint>

namespace mbok::detail {

inline int popcount64(std::uint64_t x) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_popcountll(x);
#else
  x = x - ((x >> 1) & 0x5555555555555555ull);
  x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
  x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0Full;
  return static_cast<int>((x * 0x0101010101010101ull) >> 56);
#endif
}

/// Mask of the bits of word `w` (of a row of `cols` bits) that hold columns.
inline constexpr std::uint64_t used_bits_mask(std::size_t cols, std::size_t w) noexcept {
  const std::size_t first = w * 64;
  if (first + 64 <= cols) return ~0ull;
  if (first >= cols) return 0;
  return (1ull << (cols - first)) - 1;
}

/// In-place transpose of a 64 x 64 bit block: bit j of a[i] moves to bit i of a[j].
inline void transpose_64x64(std::uint64_t a[64]) noexcept {
  std::uint64_t m = 0x00000000FFFFFFFFull;
  for (int j = 32; j != 0; j >>= 1, m ^= (m << j)) {
    for (int k = 0; k < 64; k = ((k | j) + 1) & ~j) {
      const std::uint64_t t = ((a[k] >> j) ^ a[k | j]) & m;
      a[k] ^= t << j;
      a[k | j] ^= t;
    }
  }
}

}  // namespace mbok::detail
