// Integer kernels: XNOR/popcount GEMM (Boolean x Boolean), the fused int8 multi-kernel
// forward (K = 1, 2), one case per ISA available here and per thread count, next to the dense
// Eigen/OpenBLAS baselines of the same shapes (baselines.hpp); plus the instruction-rate
// ceilings of this core, on L1-resident data, so a kernel's rate reads as a fraction of peak:
// - ceiling_xnor: XOR + popcount + add (items = binary multiply-adds); avx512: VPOPCNTQ,
//   avx2: the VPSHUFB nibble lookup;
// - ceiling_i8_gemv: one weight expansion per multiply-add instruction (the GEMV inner loop;
//   items = weight multiply-adds); avx512: masked byte move + VPDPBUSD, avx2: bit-to-byte
//   expansion + VPMADDUBSW;
// - ceiling_i8_gemm: one weight expansion per 4 multiply-add instructions (weights reused
//   over 4 tokens);
// - ceiling_i8_lut_gemv: the table-lookup product's inner loop (lut_format.hpp) with exact
//   sums: avx512 (VBMI + VNNI): 2 index ops + 4 VPERMB + 2 byte adds + 2 VPDPBUSD per 512
//   weights, 4 row tiles sharing each table load; avx2: 3 index ops + 4 VPSHUFB + 3 byte adds
//   per 256 weights, then 2 unpacks + 2 VPMADDUBSW + 2 adds per 512 (two chunks' byte sums);
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

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
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

// ---- ceilings (L1-resident data): the inner loop of each kernel with nothing around it ----

#if MBOK_BENCH_X86_CEILINGS

// GCC's AVX-512 intrinsics start from a deliberately undefined vector, reported as
// uninitialized once inlined (GCC bug 105593), as in the library's avx512 region.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

struct AlignedBuffer {
  explicit AlignedBuffer(std::size_t bytes)
      : p(static_cast<std::uint8_t*>(::operator new(bytes, std::align_val_t(64)))) {
    for (std::size_t i = 0; i < bytes; ++i) p[i] = static_cast<std::uint8_t>(i * 2654435761u >> 13);
  }
  ~AlignedBuffer() { ::operator delete(p, std::align_val_t(64)); }
  std::uint8_t* p;
};

constexpr std::size_t kCeilingBytes = 16384;  // 256 vectors of 64 bytes: stays in L1

// 4 register-resident vectors x every vector of the buffer: 16 independent XOR + VPOPCNTQ +
// VPADDQ chains per 4 loads.
__attribute__((target("avx512f,avx512vpopcntdq"))) std::int64_t xnor_ceiling_pass(
    const std::uint8_t* data) {
  const __m512i a0 = _mm512_set1_epi64(0x0123456789abcdefll),
                a1 = _mm512_set1_epi64(0x1111222233334444ll);
  const __m512i a2 = _mm512_set1_epi64(0x5555666677778888ll),
                a3 = _mm512_set1_epi64(0x7a7b7c7d7e7f7071ll);
  __m512i acc[16];
  for (auto& v : acc) v = _mm512_setzero_si512();
  for (std::size_t q = 0; q < kCeilingBytes / 64; q += 4) {
    for (int r = 0; r < 4; ++r) {
      const __m512i b = _mm512_load_si512(data + (q + static_cast<std::size_t>(r)) * 64);
      acc[4 * r + 0] =
          _mm512_add_epi64(acc[4 * r + 0], _mm512_popcnt_epi64(_mm512_xor_si512(a0, b)));
      acc[4 * r + 1] =
          _mm512_add_epi64(acc[4 * r + 1], _mm512_popcnt_epi64(_mm512_xor_si512(a1, b)));
      acc[4 * r + 2] =
          _mm512_add_epi64(acc[4 * r + 2], _mm512_popcnt_epi64(_mm512_xor_si512(a2, b)));
      acc[4 * r + 3] =
          _mm512_add_epi64(acc[4 * r + 3], _mm512_popcnt_epi64(_mm512_xor_si512(a3, b)));
    }
  }
  __m512i s = acc[0];
  for (int i = 1; i < 16; ++i) s = _mm512_add_epi64(s, acc[i]);
  alignas(64) std::int64_t lanes[8];
  _mm512_store_si512(lanes, s);
  return lanes[0] + lanes[7];
}

// Weight masks and activations from L1; `Reuse` VPDPBUSD per masked byte move.
template <int Reuse>
__attribute__((target("avx512f,avx512bw,avx512vnni"))) std::int64_t i8_ceiling_pass(
    const std::uint8_t* data) {
  const __m512i ones = _mm512_set1_epi8(1);
  const std::uint64_t* masks = reinterpret_cast<const std::uint64_t*>(data);
  __m512i acc[8];
  for (auto& v : acc) v = _mm512_setzero_si512();
  constexpr std::size_t kVectors = kCeilingBytes / 64;
  for (std::size_t q = 0; q < kVectors; q += 8) {
    for (int r = 0; r < 8; r += Reuse) {
      const __m512i w =
          _mm512_maskz_mov_epi8(_cvtu64_mask64(masks[q + static_cast<std::size_t>(r)]), ones);
      for (int u = 0; u < Reuse; ++u)
        acc[r + u] = _mm512_dpbusd_epi32(
            acc[r + u], w, _mm512_load_si512(data + (q + static_cast<std::size_t>(r + u)) * 64));
    }
  }
  __m512i s = acc[0];
  for (int i = 1; i < 8; ++i) s = _mm512_add_epi32(s, acc[i]);
  alignas(64) std::int32_t lanes[16];
  _mm512_store_si512(lanes, s);
  return lanes[0] + lanes[15];
}

// AVX2 has no vector popcount: XOR, then the nibble lookup of the avx2 product (VPSHUFB x 2),
// byte sums widened by VPSADBW every 8 loads. 2 register-resident vectors x every loaded one.
__attribute__((target("avx2"))) inline __m256i popcount_bytes_avx2(__m256i v, __m256i lut,
                                                                   __m256i low) {
  return _mm256_add_epi8(_mm256_shuffle_epi8(lut, _mm256_and_si256(v, low)),
                         _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), low)));
}

__attribute__((target("avx2"))) std::int64_t xnor_ceiling_pass_avx2(const std::uint8_t* data) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2,
                                       1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0f), zero = _mm256_setzero_si256();
  const __m256i a0 = _mm256_set1_epi64x(0x0123456789abcdefll),
                a1 = _mm256_set1_epi64x(0x5555666677778888ll);
  __m256i total = zero;
  constexpr std::size_t kVectors = kCeilingBytes / 32;
  for (std::size_t q0 = 0; q0 < kVectors; q0 += 16) {
    __m256i acc[4] = {zero, zero, zero, zero};
    for (std::size_t q = q0; q < q0 + 16; q += 2) {
      const __m256i b0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(data + q * 32));
      const __m256i b1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(data + (q + 1) * 32));
      acc[0] = _mm256_add_epi8(acc[0], popcount_bytes_avx2(_mm256_xor_si256(a0, b0), lut, low));
      acc[1] = _mm256_add_epi8(acc[1], popcount_bytes_avx2(_mm256_xor_si256(a1, b0), lut, low));
      acc[2] = _mm256_add_epi8(acc[2], popcount_bytes_avx2(_mm256_xor_si256(a0, b1), lut, low));
      acc[3] = _mm256_add_epi8(acc[3], popcount_bytes_avx2(_mm256_xor_si256(a1, b1), lut, low));
    }
    for (const __m256i& v : acc) total = _mm256_add_epi64(total, _mm256_sad_epu8(v, zero));
  }
  alignas(32) std::int64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), total);
  return lanes[0] + lanes[3];
}

// The avx2 int8 inner loop: 32 weight bits expanded to 0/1 bytes (broadcast, VPSHUFB, AND,
// MIN), then `Reuse` VPMADDUBSW + VPADDW with activations per expansion.
template <int Reuse>
__attribute__((target("avx2"))) std::int64_t i8_ceiling_pass_avx2(const std::uint8_t* data) {
  const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2,
                                          2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  const __m256i bit_of_byte = _mm256_set1_epi64x(0x8040201008040201ll), ones8 = _mm256_set1_epi8(1);
  const std::uint32_t* masks = reinterpret_cast<const std::uint32_t*>(data);
  __m256i acc[8];
  for (auto& v : acc) v = _mm256_setzero_si256();
  constexpr std::size_t kVectors = kCeilingBytes / 32;
  for (std::size_t q = 0; q < kVectors; q += 8) {
    for (int r = 0; r < 8; r += Reuse) {
      const __m256i b = _mm256_shuffle_epi8(
          _mm256_set1_epi32(static_cast<int>(masks[q + static_cast<std::size_t>(r)])), spread);
      const __m256i w = _mm256_min_epu8(_mm256_and_si256(b, bit_of_byte), ones8);
      for (int u = 0; u < Reuse; ++u)
        acc[r + u] = _mm256_add_epi16(
            acc[r + u],
            _mm256_maddubs_epi16(w, _mm256_load_si256(reinterpret_cast<const __m256i*>(
                                        data + (q + static_cast<std::size_t>(r + u)) * 32))));
    }
  }
  __m256i s = acc[0];
  for (int i = 1; i < 8; ++i) s = _mm256_add_epi16(s, acc[i]);
  alignas(32) std::int16_t lanes[16];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), s);
  return lanes[0] + lanes[15];
}

// The LUT inner loop (avx512, VBMI + VNNI): tables of 16 columns x 2 chunks (4 vectors,
// loaded once per 4 tiles) and 4 tiles of weights from L1; 512 weights per weight vector.
__attribute__((target("avx512f,avx512bw,avx512vnni,avx512vbmi"))) std::int64_t lut_ceiling_pass(
    const std::uint8_t* data) {
  const __m512i nib = _mm512_set1_epi8(0x0f), group = _mm512_set1_epi32(0x30201000);
  const __m512i ones = _mm512_set1_epi8(1), sixteen = _mm512_set1_epi8(16);
  __m512i acc[4];
  for (auto& v : acc) v = _mm512_setzero_si512();
  constexpr std::size_t kVectors = kCeilingBytes / 64;
  for (std::size_t q = 0; q < kVectors; q += 4) {
    // Tables: 4 vectors of a 4 KiB window (L1), weights: the 4 vectors at q.
    const std::uint8_t* ts = data + (q % 16) * 256;
    const __m512i la = _mm512_load_si512(ts), ha = _mm512_load_si512(ts + 64);
    const __m512i lb = _mm512_load_si512(ts + 128), hb = _mm512_load_si512(ts + 192);
    for (int r = 0; r < 4; ++r) {
      const __m512i w = _mm512_load_si512(data + (q + static_cast<std::size_t>(r)) * 64);
      const __m512i lo = _mm512_ternarylogic_epi32(w, nib, group, 0xea);
      const __m512i hi = _mm512_ternarylogic_epi32(_mm512_srli_epi16(w, 4), nib, group, 0xea);
      const __m512i l =
          _mm512_add_epi8(_mm512_permutexvar_epi8(lo, la), _mm512_permutexvar_epi8(hi, lb));
      const __m512i h =
          _mm512_add_epi8(_mm512_permutexvar_epi8(lo, ha), _mm512_permutexvar_epi8(hi, hb));
      acc[r] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(acc[r], l, ones), h, sixteen);
    }
  }
  const __m512i s =
      _mm512_add_epi32(_mm512_add_epi32(acc[0], acc[1]), _mm512_add_epi32(acc[2], acc[3]));
  alignas(64) std::int32_t lanes[16];
  _mm512_store_si512(lanes, s);
  return lanes[0] + lanes[15];
}

// The LUT inner loop (avx2): 4 tiles share each table load; 256 weights per weight vector;
// 16-bit sums widened once per pass (32 chunks x 2040 fit in 16 bits: a pass has 128).
__attribute__((target("avx2"))) inline __m256i load256(const std::uint8_t* p) {
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(p));
}

__attribute__((target("avx2"))) std::int64_t lut_ceiling_pass_avx2(const std::uint8_t* data) {
  const __m256i nib = _mm256_set1_epi8(0x0f), pair = _mm256_set1_epi16(0x1001);
  const __m256i zero = _mm256_setzero_si256();
  __m256i total = zero;
  constexpr std::size_t kVectors = kCeilingBytes / 32;
  for (std::size_t q0 = 0; q0 < kVectors; q0 += 128) {
    __m256i a[4][2];
    for (auto& r : a) r[0] = r[1] = zero;
    // Per step: 4 tiles x 2 chunks (the kernel's byte sums over a pair of chunks).
    for (std::size_t q = q0; q < q0 + 128; q += 8) {
      const std::uint8_t* tc = data + (q % 32) * 128;
      const __m256i l01 = load256(tc), l23 = load256(tc + 32), h01 = load256(tc + 64),
                    h23 = load256(tc + 96);
      const __m256i m01 = load256(tc + 128), m23 = load256(tc + 160);
      const __m256i g01 = load256(tc + 192), g23 = load256(tc + 224);
      for (int r = 0; r < 4; ++r) {
        const std::uint8_t* wr = data + (q + 2 * static_cast<std::size_t>(r)) * 32;
        const __m256i w = load256(wr), v = load256(wr + 32);
        const __m256i wl = _mm256_and_si256(w, nib);
        const __m256i wh = _mm256_and_si256(_mm256_srli_epi16(w, 4), nib);
        const __m256i vl = _mm256_and_si256(v, nib);
        const __m256i vh = _mm256_and_si256(_mm256_srli_epi16(v, 4), nib);
        const __m256i l = _mm256_add_epi8(
            _mm256_add_epi8(_mm256_shuffle_epi8(l01, wl), _mm256_shuffle_epi8(l23, wh)),
            _mm256_add_epi8(_mm256_shuffle_epi8(m01, vl), _mm256_shuffle_epi8(m23, vh)));
        const __m256i h = _mm256_add_epi8(
            _mm256_add_epi8(_mm256_shuffle_epi8(h01, wl), _mm256_shuffle_epi8(h23, wh)),
            _mm256_add_epi8(_mm256_shuffle_epi8(g01, vl), _mm256_shuffle_epi8(g23, vh)));
        a[r][0] = _mm256_add_epi16(a[r][0], _mm256_maddubs_epi16(_mm256_unpacklo_epi8(l, h), pair));
        a[r][1] = _mm256_add_epi16(a[r][1], _mm256_maddubs_epi16(_mm256_unpackhi_epi8(l, h), pair));
      }
    }
    for (auto& r : a)
      for (auto& v : r) total = _mm256_add_epi32(total, _mm256_unpacklo_epi16(v, zero));
  }
  alignas(32) std::int32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), total);
  return lanes[0] + lanes[7];
}

// One core reading a buffer far larger than the last-level cache: 4 independent adds per
// 128 bytes (the loads, not the adds, limit it).
// Streams a buffer of `bytes` once per iteration, split in equal parts over `threads`
// (mbok::parallel_for): 256 MiB is DRAM bandwidth, 8 MiB the last-level cache's (the size of
// the weights of a 4096 x 11008 product at K = 1 to 2), which limits the cache-resident
// products' scaling over threads.
void bandwidth_case(benchmark::State& state, std::size_t bytes, int threads) {
  static std::map<std::size_t, AlignedBuffer*> buffers;  // kept for the whole run
  AlignedBuffer*& buf = buffers[bytes];
  if (buf == nullptr) buf = new AlignedBuffer(bytes);
  mbok::bench::set_threads(threads);
  const std::size_t parts = static_cast<std::size_t>(threads), part = bytes / parts;
  std::vector<std::int64_t> sinks(parts);
  for (auto _ : state) {
    mbok::parallel_for(
        0, parts, 1,
        [&](std::size_t p0, std::size_t p1) {
          for (std::size_t p = p0; p < p1; ++p)
            sinks[p] += mbok::bench::read_stream(buf->p + p * part, part);
        },
        1);
    benchmark::DoNotOptimize(sinks.data());
  }
  mbok::bench::set_threads(1);
  state.SetBytesProcessed(static_cast<std::int64_t>(static_cast<double>(state.iterations()) *
                                                    static_cast<double>(bytes)));
  state.SetLabel("avx2");
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

template <typename Pass>
void ceiling_case(benchmark::State& state, Pass pass, double items_per_pass, const char* isa) {
  AlignedBuffer buf(kCeilingBytes);
  std::int64_t sink = 0;
  for (auto _ : state) {
    for (int rep = 0; rep < 64; ++rep) sink += pass(buf.p);
    benchmark::DoNotOptimize(sink);
  }
  state.SetItemsProcessed(
      static_cast<std::int64_t>(static_cast<double>(state.iterations()) * 64 * items_per_pass));
  state.SetLabel(isa);
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

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
                          {11008, 4096, {1, 32, 128}},
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
      ceiling_case(st, &xnor_ceiling_pass_avx2, 512.0 * 2 * 256, "avx2");
    })->Unit(benchmark::kMicrosecond);
    // Per pass: 512 VPMADDUBSW x 32 multiply-adds.
    benchmark::RegisterBenchmark("ceiling_i8_gemv/avx2/l1/t:1/threads:1", [](benchmark::State& st) {
      ceiling_case(st, &i8_ceiling_pass_avx2<1>, 512.0 * 32, "avx2");
    })->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark("ceiling_i8_gemm/avx2/l1/t:4/threads:1", [](benchmark::State& st) {
      ceiling_case(st, &i8_ceiling_pass_avx2<4>, 512.0 * 32, "avx2");
    })->Unit(benchmark::kMicrosecond);
    // Per pass: 512 weight vectors x 256 weights.
    benchmark::RegisterBenchmark(
        "ceiling_i8_lut_gemv/avx2/l1/t:1/threads:1",
        [](benchmark::State& st) { ceiling_case(st, &lut_ceiling_pass_avx2, 512.0 * 256, "avx2"); })
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
    // Per pass: 256 loaded vectors x 4 register vectors x 512 bit pairs.
    benchmark::RegisterBenchmark("ceiling_xnor/avx512/l1/t:1/threads:1", [](benchmark::State& st) {
      ceiling_case(st, &xnor_ceiling_pass, 256.0 * 4 * 512, "avx512");
    })->Unit(benchmark::kMicrosecond);
    if (mbok::cpu_features().avx512vnni) {
      // Per pass: 256 VPDPBUSD x 64 multiply-adds.
      benchmark::RegisterBenchmark(
          "ceiling_i8_gemv/avx512/l1/t:1/threads:1",
          [](benchmark::State& st) { ceiling_case(st, &i8_ceiling_pass<1>, 256.0 * 64, "avx512"); })
          ->Unit(benchmark::kMicrosecond);
      benchmark::RegisterBenchmark(
          "ceiling_i8_gemm/avx512/l1/t:4/threads:1",
          [](benchmark::State& st) { ceiling_case(st, &i8_ceiling_pass<4>, 256.0 * 64, "avx512"); })
          ->Unit(benchmark::kMicrosecond);
      if (mbok::cpu_features().avx512vbmi)
        // Per pass: 256 weight vectors x 512 weights.
        benchmark::RegisterBenchmark("ceiling_i8_lut_gemv/avx512/l1/t:1/threads:1",
                                     [](benchmark::State& st) {
                                       ceiling_case(st, &lut_ceiling_pass, 256.0 * 512, "avx512");
                                     })
            ->Unit(benchmark::kMicrosecond);
    }
  }
#endif
  return true;
}();

}  // namespace
