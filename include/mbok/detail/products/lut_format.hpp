#pragma once
#include "../guard.hpp"

// The table-lookup (LUT) int8 product: the per-token table format every ISA shares and the
// repacked weight layouts (one per SIMD family), with the portable packer.
//
// Y = X W^T with w = 1 - 2 b (b = stored bit): y = sum(x) - 2 sel, sel = sum_{b_l = 1} x_l.
// Columns are cut into groups of 4; a group's 4 bits are a pattern p in [0, 16) and its share
// of sel is T(p) = sum_{bit k of p set} x_k, one of 16 values per token and group. An int8
// sum of 4 values spans [-512, 508], more than a byte, so each x is split exactly as
// x = 16 h + l with l = x & 15 in [0, 15] and h = x >> 4 (arithmetic) in [-8, 7]:
//   L(p) = sum_sel l      in [0, 60]   (u8)
//   H(p) = 32 + sum_sel h in [0, 60]   (u8, biased by 32 so both tables are unsigned)
// and T(p) = L(p) + 16 (H(p) - 32). Summed over the G = cols32 / 4 groups of a row,
//   acc = sum_groups (L + 16 H) = sel + 512 G = sel + 128 cols32,
//   y   = sum(x) - 2 sel = (sum(x) + 256 cols32) - 2 acc = base - 2 acc.
// Every step is exact integer arithmetic: |y| <= 128 n < 2^31 for n <= kMaxInt8Features,
// and acc, base are computed modulo 2^32 (wrapping vector adds, uint32 in scalar code), so
// y is exact even where an intermediate leaves the int32 range.
//
// Table format (all ISAs): per token, per chunk of 16 columns (4 groups), 128 bytes:
// L at [0, 64) and H at [64, 128), entry g * 16 + p for group g (columns 16 c + 4 g ..+3).
// Columns are padded to cols32 (a multiple of 32); padded activations are zero.
//
// Weight layouts: rows in tiles of 16 (kLutTileRows; rows past m are zero), 2 cols32 bytes
// per tile, each byte two 4-bit patterns of one row (low nibble first):
// - interleave4 (AVX-512 VBMI, NEON TBL, scalar): per 32 columns s, 64 bytes; byte
//   4 r + q holds row r's group q of chunk 2 s (low nibble) and of chunk 2 s + 1 (high), so a
//   64-byte table of 4 groups serves any byte (index = q * 16 + pattern) and the four lookups
//   of one row sit in one 32-bit lane;
// - lanes16 (AVX2 VPSHUFB: a 16-entry table per 128-bit lane): per chunk c, 32 bytes; byte
//   16 h + r holds row r's group h (low nibble) and group 2 + h (high nibble) of chunk c.

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "../../bit_matrix.hpp"

namespace mbok::detail {

enum class LutLayout : int { interleave4 = 0, lanes16 = 1 };

inline constexpr std::size_t kLutTileRows = 16;
inline constexpr std::size_t kLutChunkBytes = 128;  // table bytes per 16 columns and token
// Table bytes of the tokens one pass over the weights serves: about half of a 1 MiB L2, so
// that the tables stay there while every weight tile passes over them (at t = 128 and
// n = 4096 the tables of all tokens are 4 MiB).
inline constexpr std::size_t kLutTableBlockBytes = std::size_t{512} << 10;

inline constexpr std::size_t lut_cols32(std::size_t cols) noexcept { return (cols + 31) / 32 * 32; }
inline constexpr std::size_t lut_tiles(std::size_t rows) noexcept {
  return (rows + kLutTileRows - 1) / kLutTileRows;
}
// Table bytes of one token (a multiple of 64).
inline constexpr std::size_t lut_table_bytes(std::size_t cols) noexcept {
  return lut_cols32(cols) / 16 * kLutChunkBytes;
}

// Read-only view of repacked weights.
struct LutWeightsView {
  const std::uint8_t* data = nullptr;
  LutLayout layout = LutLayout::interleave4;
  std::size_t rows = 0, cols = 0;
  std::size_t cols32() const noexcept { return lut_cols32(cols); }
  std::size_t tile_bytes() const noexcept { return 2 * cols32(); }
  const std::uint8_t* tile(std::size_t i) const noexcept { return data + i * tile_bytes(); }
};

// The weights a kernel computing R tiles at a time reads at tiles [tb, tb + nt) (nt <= R; the
// last one repeated up to R) into wt, and the R tiles after them, which it prefetches as it
// ends these ones, into next (where they exist; else these tiles again).
template <std::size_t R>
inline void lut_tile_streams(const LutWeightsView& w, std::size_t tb, std::size_t nt,
                             const std::uint8_t** wt, const std::uint8_t** next) noexcept {
  const std::size_t stored = lut_tiles(w.rows);
  for (std::size_t r = 0; r < R; ++r) {
    wt[r] = w.tile(tb + (r < nt ? r : nt - 1));
    next[r] = tb + R + r < stored ? w.tile(tb + R + r) : wt[r];
  }
}

// Per-token tables: t tokens of `ld` bytes, plus base(i) = sum(x_i) + 256 cols32 (mod 2^32).
struct LutTablesView {
  const std::uint8_t* data = nullptr;
  const std::int32_t* base = nullptr;
  std::size_t tokens = 0, cols = 0, ld = 0;
  const std::uint8_t* token(std::size_t i) const noexcept { return data + i * ld; }
};

// The 4-bit pattern of row j, columns c..c+3 (c a multiple of 4); 0 past the matrix (the
// padding bits of a row are zero by the bit-layout contract).
inline unsigned lut_pattern(BitMatrixView w, std::size_t j, std::size_t c) noexcept {
  if (j >= w.rows() || c >= w.row_words() * 64) return 0;
  return static_cast<unsigned>(w.row(j)[c / 64] >> (c % 64)) & 15u;
}

// Repacks w into `out` (lut_tiles(rows) * 2 * cols32 bytes) in `layout`.
inline void lut_pack(BitMatrixView w, LutLayout layout, std::uint8_t* out) noexcept {
  const std::size_t cols32 = lut_cols32(w.cols());
  for (std::size_t tile = 0; tile < lut_tiles(w.rows()); ++tile) {
    std::uint8_t* o = out + tile * 2 * cols32;
    const std::size_t j0 = tile * kLutTileRows;
    if (layout == LutLayout::interleave4) {
      for (std::size_t s = 0; s < cols32 / 32; ++s)
        for (std::size_t p = 0; p < 64; ++p) {
          const std::size_t j = j0 + p / 4, c = 32 * s + 4 * (p % 4);
          o[64 * s + p] =
              static_cast<std::uint8_t>(lut_pattern(w, j, c) | (lut_pattern(w, j, c + 16) << 4));
        }
    } else {
      for (std::size_t c = 0; c < cols32 / 16; ++c)
        for (std::size_t p = 0; p < 32; ++p) {
          const std::size_t j = j0 + p % 16, col = 16 * c + 4 * (p / 16);
          o[32 * c + p] =
              static_cast<std::uint8_t>(lut_pattern(w, j, col) | (lut_pattern(w, j, col + 8) << 4));
        }
    }
  }
}

// Where the nibble of row j, columns c..c+3 (c a multiple of 4, c < cols32) sits in a
// packed tile: byte offset within the tile and shift (0 or 4). The two branches mirror
// lut_pack, so pack and unpack stay each other's inverse.
struct LutNibble {
  std::size_t byte;
  unsigned shift;
};
inline LutNibble lut_nibble(LutLayout layout, std::size_t r, std::size_t c) noexcept {
  if (layout == LutLayout::interleave4) {  // c = 32 s + 4 q (+ 16 for the high nibble)
    const std::size_t s = c / 32, within = c % 32;
    return {64 * s + 4 * r + (within % 16) / 4, within >= 16 ? 4u : 0u};
  }
  const std::size_t chunk = c / 16, within = c % 16;  // c = 16 chunk + 4 h (+ 8: high nibble)
  return {32 * chunk + 16 * ((within % 8) / 4) + r, within >= 8 ? 4u : 0u};
}

// The inverse of lut_pack: rows [row0, row0 + out.rows()) of w's bits into `out` (w.cols
// columns), padding columns of `out` zeroed. Exact: the repacking is a bijection on the bits.
inline void lut_unpack(const LutWeightsView& w, std::size_t row0,
                       MutableBitMatrixView out) noexcept {
  for (std::size_t i = 0; i < out.rows(); ++i) {
    std::uint64_t* row = out.row(i);
    const std::size_t j = row0 + i;
    const std::uint8_t* tile = w.tile(j / kLutTileRows);
    const std::size_t r = j % kLutTileRows;
    for (std::size_t word = 0; word < out.row_words(); ++word) {
      std::uint64_t bits = 0;
      for (std::size_t g = 0; g < 16; ++g) {
        const std::size_t c = 64 * word + 4 * g;
        if (c >= w.cols32()) break;
        const LutNibble at = lut_nibble(w.layout, r, c);
        bits |= static_cast<std::uint64_t>((tile[at.byte] >> at.shift) & 15u) << (4 * g);
      }
      // Columns past n stay zero even where the packed padding was not (the contract).
      const std::size_t valid =
          w.cols > 64 * word ? std::min<std::size_t>(w.cols - 64 * word, 64) : 0;
      row[word] = valid == 64 ? bits : bits & ((std::uint64_t{1} << valid) - 1);
    }
  }
}

// The first row of w (0 .. lut_tiles * 16) with a bit set where the matrix has no weight
// (rows >= w.rows in the last tile, columns >= w.cols), or SIZE_MAX when the padding is
// clean. Only padding is read: a tile's bytes for columns < cols are not touched, so a check
// of a mapped file reads the last tile and, when cols is not a multiple of 32, one 64-byte
// line per tile.
inline std::size_t lut_padding_row(const LutWeightsView& w) noexcept {
  const std::size_t tiles = lut_tiles(w.rows);
  auto nibble = [&](std::size_t j, std::size_t c) {
    const LutNibble at = lut_nibble(w.layout, j % kLutTileRows, c);
    return (w.tile(j / kLutTileRows)[at.byte] >> at.shift) & 15u;
  };
  const std::size_t first_group = w.cols / 4 * 4;
  const unsigned partial = w.cols % 4 == 0 ? 0u : (15u << (w.cols % 4)) & 15u;
  for (std::size_t j = 0; j < tiles * kLutTileRows; ++j) {
    if (j >= w.rows) {
      for (std::size_t c = 0; c < w.cols32(); c += 4)
        if (nibble(j, c) != 0) return j;
      continue;
    }
    for (std::size_t c = first_group; c < w.cols32(); c += 4)
      if ((nibble(j, c) & (c == first_group ? partial : 15u)) != 0) return j;
  }
  return static_cast<std::size_t>(-1);
}

}  // namespace mbok::detail
