// Integer kernels: XNOR/popcount GEMM (Boolean x Boolean), the fused int8 multi-kernel
// forward (K = 1, 2), one case per ISA available here and per thread count, next to the dense
// Eigen/OpenBLAS baselines of the same shapes (baselines.hpp); plus the instruction-rate
// ceilings of this core: each product's own register tile (the function the product calls,
// detail/products/<isa>/) on L1-resident operands, so a kernel's rate reads as a fraction of
// what its inner loop reaches when memory costs nothing:
// - ceiling_xnor: the XNOR tile, XOR + popcount + add (items = binary multiply-adds); avx512:
//   VPOPCNTQ, 4 x 4 rows; avx2: the VPSHUFB nibble lookup, 2 x 4 rows;
// - ceiling_i8_gemv: the int8 tile of one token x 8 weight rows (items = weight
//   multiply-adds); avx512: masked byte move + VPDPBUSD (VNNI), avx2: bit-to-byte expansion +
//   VPMADDUBSW;
// - ceiling_i8_gemm: the tiles of 4 tokens x 4 weight rows (avx512: one 4 x 4 tile, avx2: two
//   2 x 4 tiles), each expanded weight reused over the tokens;
// - ceiling_i8_lut_gemv: the table-lookup product's tiles (lut_format.hpp), one token:
//   avx512 (VBMI + VNNI): 2 index ops + 4 VPERMB + 2 byte adds + 2 VPDPBUSD per 512 weights,
//   8 row tiles sharing each table load; avx2: 3 index ops + 4 VPSHUFB + 3 byte adds per 256
//   weights, then 2 unpacks + 2 VPMADDUBSW + 2 adds per 512 (two chunks' byte sums), 4 tiles;
// - ceiling_i8_lut_gemm: the many-token table-lookup product's register block (avx512, from
//   lut_prefill_min_tokens tokens on): 4 tiles x 2 tokens, the 3 index ops of each weight
//   vector shared by both tokens;
// - bandwidth_read: 1 or 2 threads streaming 256 MiB (far beyond the last-level cache), so
//   GEMV rows, which read each weight byte once, read as a fraction of memory bandwidth, and
//   8 MiB (held in the last-level cache), the limit of cache-resident products;
// - fork_join: mbok::parallel_for with empty bodies on 1 and 2 threads, the fixed cost of
//   spreading one call over threads.
// The fused forward runs three ways: "<isa>" (no prepared weights: the masked product),
// "<isa>-masked" and "<isa>-lut" (Int8PreparedWeights with the algorithm forced).
#include <benchmark/benchmark.h>

#include <mbok/activations.hpp>
#include <mbok/forward_int8.hpp>
#include <mbok/isa.hpp>
#include <mbok/multi_kernel_weights.hpp>
#include <mbok/parallel.hpp>
#include <mbok/products.hpp>

// The ceilings call the x86 products' tiles (compiled in with the avx2 and avx512 tables).
#if MBOK_HAS_X86_KERNELS
#include <mbok/detail/base/aligned_buffer.hpp>
#define MBOK_BENCH_X86_CEILINGS 1
#endif

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <tuple>
#include <vector>

#include "baselines.hpp"

namespace {

using mbok::bench::case_name;
using mbok::bench::random_floats;

mbok::BitMatrix random_bits(std::size_t rows, std::size_t cols, std::uint64_t seed) {
  const std::vector<float> dense = random_floats(rows * cols, seed);
  return mbok::BitMatrix::pack(dense.data(), rows, cols, cols, "bench bits");
}

// ---- XNOR GEMM: C (t x m) = n - 2 popcount(A_i xor B_j) ----

struct XnorProblem {
  mbok::BitMatrix a, b;
  std::vector<std::int32_t> c;
};

XnorProblem& xnor_problem(std::size_t m, std::size_t n, std::size_t t) {
  static std::map<std::tuple<std::size_t, std::size_t, std::size_t>, std::unique_ptr<XnorProblem>>
      cache;
  auto& slot = cache[{m, n, t}];
  if (!slot) {
    slot = std::make_unique<XnorProblem>();
    slot->a = random_bits(t, n, 10);
    slot->b = random_bits(m, n, 11);
    slot->c.assign(t * m, 0);
  }
  return *slot;
}

void xnor_case(benchmark::State& state, mbok::Isa isa, std::size_t m, std::size_t n, std::size_t t,
               int threads) {
  XnorProblem& p = xnor_problem(m, n, t);
  mbok::bench::set_threads(threads);
  const mbok::ScopedIsaLimit limit(isa);
  const mbok::ProductSet ks;
  for (auto _ : state) {
    ks.xnor_gemm(p.a, p.b, p.c.data(), m);
    benchmark::DoNotOptimize(p.c.data());
    benchmark::ClobberMemory();
  }
  const double iters = static_cast<double>(state.iterations());
  state.SetItemsProcessed(static_cast<std::int64_t>(iters * static_cast<double>(t * m * n)));
  state.SetBytesProcessed(static_cast<std::int64_t>(
      iters * (static_cast<double>((t + m) * n) / 8.0 + 4.0 * static_cast<double>(t * m))));
  state.SetLabel(mbok::isa_name(ks.isa()));
  mbok::bench::set_threads(1);
}

// ---- fused int8 forward ----

struct ForwardProblem {
  mbok::MultiKernelWeights<float> w;
  std::vector<float> x, y;
  mbok::Int8ForwardWorkspace ws;
};

ForwardProblem& forward_problem(std::size_t m, std::size_t n, std::size_t kernels, std::size_t t) {
  static std::map<std::tuple<std::size_t, std::size_t, std::size_t, std::size_t>,
                  std::unique_ptr<ForwardProblem>>
      cache;
  auto& slot = cache[{m, n, kernels, t}];
  if (!slot) {
    slot = std::make_unique<ForwardProblem>();
    slot->w = mbok::MultiKernelWeights<float>(m, n);
    for (std::size_t k = 0; k < kernels; ++k) {
      const std::vector<float> s_out = random_floats(m, 200 + k), s_in = random_floats(n, 300 + k);
      slot->w.add_kernel(
          random_bits(m, n, 100 + k),
          Eigen::Map<const Eigen::VectorXf>(s_out.data(), static_cast<Eigen::Index>(m)),
          Eigen::Map<const Eigen::VectorXf>(s_in.data(), static_cast<Eigen::Index>(n)));
    }
    slot->x = random_floats(t * n, 400);
    slot->y.assign(t * m, 0.0f);
  }
  return *slot;
}

// Whole call, quantization included (what an engine pays per layer and step).
void forward_case(benchmark::State& state, mbok::Isa isa, std::size_t m, std::size_t n,
                  std::size_t kernels, std::size_t t, int threads) {
  ForwardProblem& p = forward_problem(m, n, kernels, t);
  mbok::bench::set_threads(threads);
  const mbok::ScopedIsaLimit limit(isa);
  const mbok::ProductSet ks;
  for (auto _ : state) {
    mbok::prepare_int8_forward(p.w, p.x.data(), n, t, p.ws);
    mbok::multi_kernel_forward_int8(p.w, p.ws, p.y.data(), m, ks);
    benchmark::DoNotOptimize(p.y.data());
    benchmark::ClobberMemory();
  }
  const double iters = static_cast<double>(state.iterations());
  const double weight_bytes = static_cast<double>(kernels) *
                              (static_cast<double>(m * n) / 8.0 + 4.0 * static_cast<double>(m + n));
  state.SetItemsProcessed(static_cast<std::int64_t>(iters * static_cast<double>(t * m * n)));
  state.SetBytesProcessed(
      static_cast<std::int64_t>(iters * (weight_bytes + 4.0 * static_cast<double>(t * (m + n)))));
  state.SetLabel(
      mbok::isa_name(ks.isa()) +
      std::string(isa == mbok::Isa::avx512 && mbok::cpu_features().avx512vnni ? "+vnni" : ""));
  mbok::bench::set_threads(1);
}

// Prepared weights per (shape, K, ISA): repacked once, outside the timed loop.
mbok::Int8PreparedWeights& prepared(ForwardProblem& p, mbok::Isa isa) {
  static std::map<std::pair<const ForwardProblem*, mbok::Isa>,
                  std::unique_ptr<mbok::Int8PreparedWeights>>
      cache;
  auto& slot = cache[{&p, isa}];
  if (!slot) slot = std::make_unique<mbok::Int8PreparedWeights>(p.w, mbok::ProductSet(isa));
  return *slot;
}

// Whole call with prepared weights and the algorithm forced (quantization and tables
// included).
void forward_prepared_case(benchmark::State& state, mbok::Isa isa, std::size_t m, std::size_t n,
                           std::size_t kernels, std::size_t t, int threads,
                           mbok::Int8Algorithm algorithm) {
  ForwardProblem& p = forward_problem(m, n, kernels, t);
  mbok::bench::set_threads(threads);
  const mbok::Int8PreparedWeights& pw = prepared(p, isa);
  for (auto _ : state) {
    mbok::multi_kernel_forward_int8(p.w, pw, p.x.data(), n, t, p.y.data(), m, p.ws, algorithm);
    benchmark::DoNotOptimize(p.y.data());
    benchmark::ClobberMemory();
  }
  const double iters = static_cast<double>(state.iterations());
  const double weight_bytes = static_cast<double>(kernels) *
                              (static_cast<double>(m * n) / 8.0 + 4.0 * static_cast<double>(m + n));
  state.SetItemsProcessed(static_cast<std::int64_t>(iters * static_cast<double>(t * m * n)));
  state.SetBytesProcessed(
      static_cast<std::int64_t>(iters * (weight_bytes + 4.0 * static_cast<double>(t * (m + n)))));
  const bool vbmi = pw.kernel(0).view().layout == mbok::detail::LutLayout::interleave4;
  state.SetLabel(mbok::isa_name(isa) +
                 std::string(algorithm == mbok::Int8Algorithm::lut
                                 ? (isa == mbok::Isa::avx512 && vbmi ? "+lut-vbmi" : "+lut")
                                 : "+masked"));
  mbok::bench::set_threads(1);
}

// ---- ceilings: each product's own inner tile on L1-resident operands ----
//
// A ceiling calls the tile function its product runs (detail/products/<isa>/), so the two
// cannot drift apart, on operands that stay in L1: the rate the product would reach if its
// weights and activations cost nothing to bring in. A call runs thousands of vector
// operations, so calling the tile out of line (the bench is not compiled for the ISA) costs
// little.

#if MBOK_BENCH_X86_CEILINGS

namespace x512 = mbok::detail::avx512;
namespace x2 = mbok::detail::avx2;

// The operands of one tile call: 16 KiB, within the L1D of every AVX2 core (32 or 48 KiB) with
// room to spare for the stack and the results.
constexpr std::size_t kCeilingBytes = 16384;

// `bytes` pseudo-random bytes at a 64-byte-aligned address.
mbok::detail::AlignedBuffer<std::uint8_t> random_bytes(std::size_t bytes) {
  auto buf = mbok::detail::AlignedBuffer<std::uint8_t>::uninitialized(bytes);
  for (std::size_t i = 0; i < bytes; ++i)
    buf.data()[i] = static_cast<std::uint8_t>(i * 2654435761u >> 13);
  return buf;
}

// XNOR: the product's TI x TJ tile over rows of `kChunks` vector chunks (ChunkWords words
// each), activation rows then weight rows in the buffer. Items: binary multiply-adds.
template <std::size_t TI, std::size_t TJ, std::size_t ChunkWords, auto Tile>
struct XnorCeiling {
  static constexpr std::size_t kRowBytes =
      kCeilingBytes / (TI + TJ) / (ChunkWords * 8) * (ChunkWords * 8);
  static constexpr std::size_t kChunks = kRowBytes / (ChunkWords * 8);
  static constexpr double kItems = static_cast<double>(TI * TJ * kRowBytes * 8);
  static std::int64_t pass(const std::uint8_t* data) {
    const std::uint64_t* rows[TI + TJ];
    for (std::size_t r = 0; r < TI + TJ; ++r)
      rows[r] = reinterpret_cast<const std::uint64_t*>(data + r * kRowBytes);
    std::int32_t c[TI * TJ];
    Tile(rows, rows + TI, kChunks, static_cast<std::int32_t>(kRowBytes * 8), c, TJ);
    return c[0] + c[TI * TJ - 1];
  }
};
using XnorCeilingAvx512 = XnorCeiling<
    x512::kXnorTileI, x512::kXnorTileJ, x512::kXnorChunkWords,
    &x512::xnor_tile<static_cast<int>(x512::kXnorTileI), static_cast<int>(x512::kXnorTileJ)>>;
using XnorCeilingAvx2 =
    XnorCeiling<x2::kXnorTileI, x2::kXnorTileJ, x2::kXnorChunkWords,
                &x2::xnor_tile<static_cast<int>(x2::kXnorTileI), static_cast<int>(x2::kXnorTileJ)>>;

// int8 (masked sums): `Calls` tiles of TI tokens over the same TJ weight rows (the product's
// tile loop for TI x Calls tokens within one L1 block), rows of `kWords` 64-bit weight words.
// Items: weight multiply-adds.
template <std::size_t TI, std::size_t TJ, std::size_t Calls, auto Tile>
struct I8Ceiling {
  static constexpr std::size_t kTokens = TI * Calls;
  static constexpr std::size_t kWords = kCeilingBytes / (kTokens * 64 + TJ * 8);
  static constexpr double kItems = static_cast<double>(kTokens * TJ * kWords * 64);
  static std::int64_t pass(const std::uint8_t* data) {
    const std::int8_t* x[kTokens];
    for (std::size_t i = 0; i < kTokens; ++i)
      x[i] = reinterpret_cast<const std::int8_t*>(data + i * kWords * 64);
    const std::uint64_t* w[TJ];
    for (std::size_t j = 0; j < TJ; ++j)
      w[j] = reinterpret_cast<const std::uint64_t*>(data + kTokens * kWords * 64 + j * kWords * 8);
    const std::int32_t totals[kTokens] = {};
    std::int32_t y[kTokens * TJ];
    for (std::size_t c = 0; c < Calls; ++c)
      Tile(x + c * TI, w, kWords, totals + c * TI, y + c * TI * TJ, TJ, static_cast<int>(TJ));
    return y[0] + y[kTokens * TJ - 1];
  }
};
// The tiles the products run for one token (1 x 8) and for many (avx512 4 x 4, avx2 2 x 4).
using I8GemvCeilingAvx512 = I8Ceiling<1, 8, 1, &x512::i8_tile<1, 8, true>>;
using I8GemmCeilingAvx512 = I8Ceiling<4, 4, 1, &x512::i8_tile<4, 4, true>>;
using I8GemvCeilingAvx2 = I8Ceiling<1, 8, 1, &x2::i8_tile<1, 8>>;
using I8GemmCeilingAvx2 = I8Ceiling<2, 4, 2, &x2::i8_tile<2, 4>>;

// Table lookup, one token: the product's R tiles of 16 rows over `kSteps` steps (a step: one
// load of each tile's weights, 64 bytes on avx512, 32 on avx2), the token's tables first in the
// buffer. The tiles' prefetch streams run on into the same tiles (next = wt), in L1.
// Items: weights (avx512: 512 per weight vector, avx2: 256).
struct LutCeilingAvx512 {
  static constexpr std::size_t R = x512::kLutVbmiTiles;
  // Per step: 2 chunks' tables (256 bytes) and 64 bytes per tile.
  static constexpr std::size_t kSteps = kCeilingBytes / (2 * mbok::detail::kLutChunkBytes + R * 64);
  static constexpr double kItems = static_cast<double>(R * kSteps * 512);
  static std::int64_t pass(const std::uint8_t* data) {
    const std::uint8_t* wt[R];
    for (std::size_t r = 0; r < R; ++r)
      wt[r] = data + 2 * mbok::detail::kLutChunkBytes * kSteps + r * 64 * kSteps;
    __m512i out[R];
    x512::lut_tiles_vbmi<static_cast<int>(R)>(data, wt, wt, kSteps, out);
    std::int32_t first[R];
    for (std::size_t r = 0; r < R; ++r) std::memcpy(&first[r], &out[r], sizeof(std::int32_t));
    return first[0] + first[R - 1];
  }
};
// Table lookup, many tokens: the prefill product's register block of R tiles x T tokens over
// `kSteps` steps, the tokens' tables first in the buffer. Items: weights x tokens.
struct LutPrefillCeilingAvx512 {
  static constexpr std::size_t R = static_cast<std::size_t>(x512::kLutPrefillTiles);
  static constexpr std::size_t T = static_cast<std::size_t>(x512::kLutPrefillTokens);
  static constexpr std::size_t kSteps =
      kCeilingBytes / (T * 2 * mbok::detail::kLutChunkBytes + R * 64);
  static constexpr double kItems = static_cast<double>(R * T * kSteps * 512);
  static std::int64_t pass(const std::uint8_t* data) {
    const std::uint8_t *tab[T], *wt[R];
    for (std::size_t i = 0; i < T; ++i)
      tab[i] = data + i * 2 * mbok::detail::kLutChunkBytes * kSteps;
    for (std::size_t r = 0; r < R; ++r)
      wt[r] = data + T * 2 * mbok::detail::kLutChunkBytes * kSteps + r * 64 * kSteps;
    alignas(64) __m512i acc[R * T];
    std::memset(acc, 0, sizeof acc);
    x512::lut_prefill_block<static_cast<int>(R), static_cast<int>(T)>(tab, wt, kSteps, acc);
    std::int32_t first[2];
    std::memcpy(&first[0], &acc[0], sizeof(std::int32_t));
    std::memcpy(&first[1], &acc[R * T - 1], sizeof(std::int32_t));
    return first[0] + first[1];
  }
};
struct LutCeilingAvx2 {
  static constexpr std::size_t R = x2::kLutShufTiles;
  // Per chunk: its tables (128 bytes) and 32 bytes per tile; chunks come in pairs.
  static constexpr std::size_t kChunks =
      kCeilingBytes / (mbok::detail::kLutChunkBytes + R * 32) / 2 * 2;
  static constexpr double kItems = static_cast<double>(R * kChunks * 256);
  static std::int64_t pass(const std::uint8_t* data) {
    const std::uint8_t* wt[R];
    for (std::size_t r = 0; r < R; ++r)
      wt[r] = data + mbok::detail::kLutChunkBytes * kChunks + r * 32 * kChunks;
    __m256i acc[R][4];
    x2::lut_tiles_shuf_all<static_cast<int>(R)>(data, wt, wt, kChunks, acc);
    std::int32_t first[R];
    for (std::size_t r = 0; r < R; ++r) std::memcpy(&first[r], &acc[r][0], sizeof(std::int32_t));
    return first[0] + first[R - 1];
  }
};

// One core reading a buffer far larger than the last-level cache: 4 independent adds per
// 128 bytes (the loads, not the adds, limit it).
// Streams a buffer of `bytes` once per iteration, split in equal parts over `threads`
// (mbok::parallel_for): 256 MiB is DRAM bandwidth, 8 MiB the last-level cache's (the size of
// the weights of a 4096 x 11008 product at K = 1 to 2), which limits the cache-resident
// products' scaling over threads.
void bandwidth_case(benchmark::State& state, std::size_t bytes, int threads) {
  static std::map<std::size_t, mbok::detail::AlignedBuffer<std::uint8_t>> buffers;  // whole run
  auto found = buffers.find(bytes);
  if (found == buffers.end()) found = buffers.emplace(bytes, random_bytes(bytes)).first;
  const std::uint8_t* buf = found->second.data();
  mbok::bench::set_threads(threads);
  const std::size_t parts = static_cast<std::size_t>(threads), part = bytes / parts;
  std::vector<std::int64_t> sinks(parts);
  for (auto _ : state) {
    mbok::parallel_for(
        0, parts, 1,
        [&](std::size_t p0, std::size_t p1) {
          for (std::size_t p = p0; p < p1; ++p)
            sinks[p] += mbok::bench::read_stream(buf + p * part, part);
        },
        1);
    benchmark::DoNotOptimize(sinks.data());
  }
  mbok::bench::set_threads(1);
  state.SetBytesProcessed(static_cast<std::int64_t>(static_cast<double>(state.iterations()) *
                                                    static_cast<double>(bytes)));
  state.SetLabel("avx2");
}

// Per-token int8 quantization of t tokens of n features times s_in (what the int8 forward
// runs once per kernel before its products), on one ISA's products.
void quantize_case(benchmark::State& state, mbok::Isa isa, std::size_t n, std::size_t t) {
  const std::vector<float> x = random_floats(t * n, 410), s_in = random_floats(n, 411);
  const mbok::ProductSet ks(isa);
  mbok::QuantizedActivations q;
  for (auto _ : state) {
    ks.quantize_activations(x.data(), n, t, n, q, s_in.data());
    benchmark::DoNotOptimize(q.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(t * n));
  state.SetLabel(mbok::isa_name(isa));
}

// The fixed cost of spreading a call over threads: mbok::parallel_for over `threads` chunks
// whose bodies do almost nothing, so the time per call is waking the other threads and
// joining them. A product that takes T us on one thread cannot take less than T / threads +
// this on `threads`.
void fork_join_case(benchmark::State& state, int threads) {
  mbok::bench::set_threads(threads);
  std::vector<std::int64_t> sinks(static_cast<std::size_t>(threads));
  for (auto _ : state) {
    mbok::parallel_for(0, sinks.size(), 1, [&](std::size_t p0, std::size_t p1) {
      for (std::size_t p = p0; p < p1; ++p) ++sinks[p];
    });
    benchmark::DoNotOptimize(sinks.data());
  }
  mbok::bench::set_threads(1);
}

template <typename Ceiling>
void ceiling_case(benchmark::State& state, const char* isa) {
  const auto buf = random_bytes(kCeilingBytes);
  const std::uint8_t* data = buf.data();
  std::int64_t sink = 0;
  for (auto _ : state) {
    for (int rep = 0; rep < 64; ++rep) {
      // The operands may have changed, as far as the compiler knows: every pass runs (a tile
      // reads only its operands and writes only its results, so equal calls could be merged).
      benchmark::DoNotOptimize(data);
      benchmark::ClobberMemory();
      sink += Ceiling::pass(data);
    }
    benchmark::DoNotOptimize(sink);
  }
  state.SetItemsProcessed(
      static_cast<std::int64_t>(static_cast<double>(state.iterations()) * 64 * Ceiling::kItems));
  state.SetLabel(isa);
}

#endif

const bool registered = [] {
  // XNOR GEMM: t x m x n, square.
  for (std::size_t s : {1024u, 4096u})
    for (int threads : {1, 2}) {
      mbok::bench::register_dense_baselines(s, s, s, threads);
      for (mbok::Isa isa : mbok::available_isas()) {
        if (isa == mbok::Isa::scalar && s > 1024) continue;
        benchmark::RegisterBenchmark(
            case_name("xnor_gemm", mbok::isa_name(isa), s, s, s, threads).c_str(),
            [=](benchmark::State& st) { xnor_case(st, isa, s, s, s, threads); })
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
      }
    }

  // Fused int8 forward.
  struct Shape {
    std::size_t m, n;
    std::vector<std::size_t> tokens;
  };
  const Shape shapes[] = {{128, 128, {1, 8}},
                          {4096, 4096, {1, 8, 32, 128, 512}},
                          {4096, 11008, {1, 32}},
                          {11008, 4096, {1, 32, 128, 512}},
                          // The MUL_MAT shape of ggml's `test-backend-ops perf`, for comparisons
                          // with llama.cpp's kernels run beside this benchmark.
                          {4096, 14336, {1, 8}}};
  for (const Shape& s : shapes)
    for (std::size_t t : s.tokens)
      for (int threads : {1, 2}) {
        mbok::bench::register_dense_baselines(s.m, s.n, t, threads);
        for (mbok::Isa isa : mbok::available_isas()) {
          if (isa == mbok::Isa::scalar && (t > 8 || s.m != s.n)) continue;
          for (std::size_t kernels : {1, 2}) {
            const std::string family = "forward_i8_k" + std::to_string(kernels);
            benchmark::RegisterBenchmark(
                case_name(family, mbok::isa_name(isa), s.m, s.n, t, threads).c_str(),
                [=](benchmark::State& st) { forward_case(st, isa, s.m, s.n, kernels, t, threads); })
                ->UseRealTime()
                ->Unit(benchmark::kMicrosecond);
            for (const auto algorithm : {mbok::Int8Algorithm::masked, mbok::Int8Algorithm::lut}) {
              const std::string impl =
                  mbok::isa_name(isa) +
                  std::string(algorithm == mbok::Int8Algorithm::lut ? "-lut" : "-masked");
              benchmark::RegisterBenchmark(case_name(family, impl, s.m, s.n, t, threads).c_str(),
                                           [=](benchmark::State& st) {
                                             forward_prepared_case(st, isa, s.m, s.n, kernels, t,
                                                                   threads, algorithm);
                                           })
                  ->UseRealTime()
                  ->Unit(benchmark::kMicrosecond);
            }
          }
        }
      }

  for (std::size_t t : {1u, 128u})
    for (mbok::Isa isa : mbok::available_isas())
      benchmark::RegisterBenchmark(
          case_name("quantize_i8", mbok::isa_name(isa), 1, 4096, t, 1).c_str(),
          [=](benchmark::State& st) { quantize_case(st, isa, 4096, t); })
          ->Unit(benchmark::kMicrosecond);

  for (int threads : {1, 2})
    benchmark::RegisterBenchmark(
        ("fork_join/parallel_for/t:1/threads:" + std::to_string(threads)).c_str(),
        [=](benchmark::State& st) { fork_join_case(st, threads); })
        ->Unit(benchmark::kMicrosecond)
        ->UseRealTime();

#if MBOK_BENCH_X86_CEILINGS
  if (mbok::isa_available(mbok::Isa::avx2)) {
    // Per pass: 512 loaded vectors x 2 register vectors x 256 bit pairs.
    benchmark::RegisterBenchmark("ceiling_xnor/avx2/l1/t:1/threads:1", [](benchmark::State& st) {
      ceiling_case<XnorCeilingAvx2>(st, "avx2");
    })->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark("ceiling_i8_gemv/avx2/l1/t:1/threads:1", [](benchmark::State& st) {
      ceiling_case<I8GemvCeilingAvx2>(st, "avx2");
    })->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark("ceiling_i8_gemm/avx2/l1/t:4/threads:1", [](benchmark::State& st) {
      ceiling_case<I8GemmCeilingAvx2>(st, "avx2");
    })->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(
        "ceiling_i8_lut_gemv/avx2/l1/t:1/threads:1",
        [](benchmark::State& st) { ceiling_case<LutCeilingAvx2>(st, "avx2"); })
        ->Unit(benchmark::kMicrosecond);
    for (const auto& [mib, threads] :
         std::vector<std::pair<std::size_t, int>>{{256, 1}, {256, 2}, {8, 1}, {8, 2}}) {
      const std::size_t bytes = mib << 20;
      const std::string name = "bandwidth_read/avx2/" + std::to_string(mib) +
                               "MiB/t:1/threads:" + std::to_string(threads);
      benchmark::RegisterBenchmark(
          name.c_str(), [=](benchmark::State& st) { bandwidth_case(st, bytes, threads); })
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime();
    }
  }
  if (mbok::isa_available(mbok::Isa::avx512)) {
    benchmark::RegisterBenchmark("ceiling_xnor/avx512/l1/t:1/threads:1", [](benchmark::State& st) {
      ceiling_case<XnorCeilingAvx512>(st, "avx512");
    })->Unit(benchmark::kMicrosecond);
    // The VNNI variant of the int8 tile and the VBMI table lookup: what the products run here.
    if (mbok::cpu_features().avx512vnni) {
      benchmark::RegisterBenchmark(
          "ceiling_i8_gemv/avx512/l1/t:1/threads:1",
          [](benchmark::State& st) { ceiling_case<I8GemvCeilingAvx512>(st, "avx512"); })
          ->Unit(benchmark::kMicrosecond);
      benchmark::RegisterBenchmark(
          "ceiling_i8_gemm/avx512/l1/t:4/threads:1",
          [](benchmark::State& st) { ceiling_case<I8GemmCeilingAvx512>(st, "avx512"); })
          ->Unit(benchmark::kMicrosecond);
      if (x512::lut_uses_vbmi())
        benchmark::RegisterBenchmark(
            "ceiling_i8_lut_gemv/avx512/l1/t:1/threads:1",
            [](benchmark::State& st) { ceiling_case<LutCeilingAvx512>(st, "avx512"); })
            ->Unit(benchmark::kMicrosecond);
      if (x512::lut_uses_vbmi())
        benchmark::RegisterBenchmark(
            "ceiling_i8_lut_gemm/avx512/l1/t:2/threads:1",
            [](benchmark::State& st) { ceiling_case<LutPrefillCeilingAvx512>(st, "avx512"); })
            ->Unit(benchmark::kMicrosecond);
    }
  }
#endif
  return true;
}();

}  // namespace
