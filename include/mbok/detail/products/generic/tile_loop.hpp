// The register-tile loop of the Boolean products, written once for every ISA (the way
// simdjson's generic/ code is): an ISA includes this file inside its own namespace and code
// region, so the loop is compiled for that ISA's target and the ISA's tiles inline into it,
// and each ISA's copy lives in its own namespace. It has no include guard of its own: it
// defines its contents once per ISA, the ISA being the one whose region is open. Include it as
//
//     namespace mbok::detail::avx2 {
//     #include "../generic/tile_loop.hpp"
//
// after <algorithm>, <cstddef>, <cstdint>, <type_traits> and ../table.hpp.

#if defined(MBOK_AVX2_REGION_OPEN)
#if !defined(MBOK_AVX2_TILE_LOOP)
#define MBOK_AVX2_TILE_LOOP
#define MBOK_TILE_LOOP_DEFINE
#endif
#elif defined(MBOK_AVX512_REGION_OPEN)
#if !defined(MBOK_AVX512_TILE_LOOP)
#define MBOK_AVX512_TILE_LOOP
#define MBOK_TILE_LOOP_DEFINE
#endif
#elif defined(MBOK_NEON_REGION_OPEN)
#if !defined(MBOK_NEON_TILE_LOOP)
#define MBOK_NEON_TILE_LOOP
#define MBOK_TILE_LOOP_DEFINE
#endif
#else
#error "mbok: generic/tile_loop.hpp belongs inside an ISA's code region (begin.hpp)"
#endif

// Marks the functions and lambdas between a product and its tiles that must inline into the
// product (sign_i8.hpp), so that the compiler weighs inlining each tile into the product as it
// would in a hand-written loop. The tile loop itself is left to the compiler: forcing it into
// xnor_gemm makes GCC spill registers in the avx512 4 x 4 tile.
#if !defined(MBOK_TILE_INLINE)
#define MBOK_TILE_INLINE __attribute__((always_inline))
#endif

#if defined(MBOK_TILE_LOOP_DEFINE)
#undef MBOK_TILE_LOOP_DEFINE

// Calls f(std::integral_constant<int, k>{}) with k = min(n, Max), for n >= 1: the real size
// of an edge tile as a template argument (the remainder switch of a tile loop).
template <int Max, typename F>
inline void with_tile_size(std::size_t n, F&& f) {
  if constexpr (Max <= 1) {
    f(std::integral_constant<int, 1>{});
  } else {
    if (n >= static_cast<std::size_t>(Max))
      f(std::integral_constant<int, Max>{});
    else
      with_tile_size<Max - 1>(n, f);
  }
}

// Weight rows per L1 block: about `bytes` of packed rows of `words` words each, a multiple of
// TileJ and at least one tile.
template <std::size_t TileJ>
inline std::size_t l1_block_rows(std::size_t bytes, std::size_t words) noexcept {
  return std::max<std::size_t>(TileJ,
                               (bytes / (std::max<std::size_t>(words, 1) * 8)) / TileJ * TileJ);
}

// Runs tile(i, ti, a_rows, j, tj, b_rows) over rows [0, rows) of A (`lda` elements apart,
// starting at `a`) and rows [j0, j1) of the bit matrix b. The rows of b are walked in blocks
// of `block` rows (pass j1 - j0 for no blocking); every tile of TileI rows of A passes over a
// block before the next one, in tiles of TileJ rows of b. An edge tile has ti < TileI or
// tj < TileJ real rows: its row arrays repeat the last real row, so a tile may always read
// TileI x TileJ rows and must write only the real ones.
template <std::size_t TileI, std::size_t TileJ, typename T, typename Tile>
inline void tile_loop(const T* a, std::size_t lda, std::size_t rows, BitMatrixView b,
                      std::size_t j0, std::size_t j1, std::size_t block, Tile&& tile) {
  if (rows == 0 || j1 <= j0) return;
  for (std::size_t jb = j0; jb < j1; jb += block) {
    const std::size_t je = std::min(j1, jb + block);
    for (std::size_t i = 0; i < rows; i += TileI) {
      const std::size_t ti = std::min(TileI, rows - i);
      const T* ar[TileI];
      for (std::size_t r = 0; r < TileI; ++r) ar[r] = a + (i + std::min(r, ti - 1)) * lda;
      for (std::size_t j = jb; j < je; j += TileJ) {
        const std::size_t tj = std::min(TileJ, je - j);
        const std::uint64_t* br[TileJ];
        for (std::size_t r = 0; r < TileJ; ++r) br[r] = b.row(j + std::min(r, tj - 1));
        tile(i, ti, static_cast<const T* const*>(ar), j, tj,
             static_cast<const std::uint64_t* const*>(br));
      }
    }
  }
}

#endif  // MBOK_TILE_LOOP_DEFINE
