// The int8 product (table entry sign_gemm_i8) of the ISAs that sum each token's activations
// first: with w = 1 - 2 b, sum_l x_l w_l = sum(x) - 2 sum_{b_l = 1} x_l, and a tile computes
// the second sum. Included once per ISA inside its namespace and code region (see
// tile_loop.hpp), after <vector> and the ISA's
//   i8_row_sum(x, words)      the sum of one padded activation row.
// One token (decoding) runs in tiles of 1 x 8 weight rows, more tokens in tiles of TileI x 4;
// weight rows are walked in blocks of about 16 KiB, which stay in L1 with a token tile.
// tile(TI, TJ, x_rows, w_rows, words, totals, y, ldy, tj) runs one tile of TI tokens x TJ
// weight rows (std::integral_constant values) and stores y[i ldy + j] for j < tj.

#include "tile_loop.hpp"

template <std::size_t TileI, typename Tile>
MBOK_TILE_INLINE inline void sign_gemm_i8_tiled(const std::int8_t* x, std::size_t ldx,
                                                std::size_t t, BitMatrixView w, std::int32_t* y,
                                                std::size_t ldy, std::size_t j0, std::size_t j1,
                                                Tile&& tile) {
  if (t == 0 || j1 <= j0) return;
  const std::size_t words = w.row_words();
  std::int32_t small[64];
  std::vector<std::int32_t> large;
  std::int32_t* totals = small;
  if (t > 64) {
    large.resize(t);
    totals = large.data();
  }
  for (std::size_t i = 0; i < t; ++i) totals[i] = i8_row_sum(x + i * ldx, words);
  const auto run = [&](auto tile_i, auto tile_j) MBOK_TILE_INLINE {
    constexpr std::size_t kTileI = decltype(tile_i)::value;
    constexpr std::size_t kTileJ = decltype(tile_j)::value;
    tile_loop<kTileI, kTileJ>(
        x, ldx, t, w, j0, j1, l1_block_rows<kTileJ>(16384, words),
        [&](std::size_t i, std::size_t ti, const std::int8_t* const* xr, std::size_t j,
            std::size_t tj, const std::uint64_t* const* wr) MBOK_TILE_INLINE {
          with_tile_size<static_cast<int>(kTileI)>(ti, [&](auto ti_c) MBOK_TILE_INLINE {
            tile(ti_c, tile_j, xr, wr, words, totals + i, y + i * ldy + j, ldy,
                 static_cast<int>(tj));
          });
        });
  };
  if (t == 1)
    run(std::integral_constant<std::size_t, 1>{}, std::integral_constant<std::size_t, 8>{});
  else
    run(std::integral_constant<std::size_t, TileI>{}, std::integral_constant<std::size_t, 4>{});
}
