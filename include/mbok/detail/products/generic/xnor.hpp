// The Boolean x Boolean product (table entry xnor_gemm) from an ISA's tile, written once for
// every ISA. Included once per ISA inside its namespace and code region (see tile_loop.hpp),
// after the ISA has defined
//   kXnorTileI, kXnorTileJ    its register tile: activation rows x weight rows;
//   kXnorChunkWords           the 64-bit words of one vector chunk of a row;
//   xnor_tile<TI, TJ>(a, b, chunks, n, c, ldc)
//                             one tile of TI x TJ rows over `chunks` chunks, storing
//                             n - 2 popcount(a_i xor b_j) at c[i ldc + j].
// Weight rows are walked in blocks of about 24 KiB, which stay in L1 while every activation
// tile passes over them.

#include "tile_loop.hpp"

inline void xnor_gemm(BitMatrixView a, BitMatrixView b, std::int32_t* c, std::size_t ldc,
                      std::size_t j0, std::size_t j1) {
  const std::size_t words = a.row_words();
  const std::size_t chunks = words / kXnorChunkWords;
  const auto n = static_cast<std::int32_t>(a.cols());
  tile_loop<kXnorTileI, kXnorTileJ>(
      a.data(), a.stride_words(), a.rows(), b, j0, j1, l1_block_rows<kXnorTileJ>(24576, words),
      [&](std::size_t i, std::size_t ti, const std::uint64_t* const* ar, std::size_t j,
          std::size_t tj, const std::uint64_t* const* br) {
        std::int32_t* out = c + i * ldc + j;
        with_tile_size<kXnorTileI>(ti, [&](auto tile_i) {
          with_tile_size<kXnorTileJ>(tj, [&](auto tile_j) {
            xnor_tile<decltype(tile_i)::value, decltype(tile_j)::value>(ar, br, chunks, n, out,
                                                                        ldc);
          });
        });
      });
}
