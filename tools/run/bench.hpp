#pragma once
// mbok-run bench: prompt processing and generation speed of a model, the way llama.cpp's
// llama-bench reports them (pp<P>: P random tokens in one prefill; tg<N>: N tokens decoded one
// at a time after a one-token prompt), each the best of `reps` runs, and the read bandwidth of
// this machine measured in the same process with the same threads, so decode speed is also
// given as a share of its memory limit (weight and KV-cache bytes read per token /
// bandwidth).

#include <mbok/llama/model.hpp>
#include <mbok/parallel.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <random>
#include <vector>

namespace mbok::tools {

struct BenchResult {
  double prefill_tokens_per_s = 0;
  double decode_tokens_per_s = 0;
  double bytes_per_token = 0;  // weights + the KV cache at the middle of the decode run
  double read_gb_per_s = 0;    // streaming read of a 1 GiB buffer
  double limit_tokens_per_s() const { return read_gb_per_s * 1e9 / bytes_per_token; }
};

namespace bench_detail {

using Clock = std::chrono::steady_clock;
inline double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Sum of the 64-bit words of [p, p + words): a read stream the compiler vectorizes, fast
// enough that DRAM, not the core, limits it (with 256-bit loads where the CPU has AVX2: the
// 128-bit loop of the baseline x86-64 target falls short of a Zen core's bandwidth).
__attribute__((always_inline)) inline std::uint64_t read_words_generic(const std::uint64_t* p,
                                                                       std::size_t words) {
  std::uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (std::size_t i = 0; i + 4 <= words; i += 4) {
    s0 += p[i];
    s1 += p[i + 1];
    s2 += p[i + 2];
    s3 += p[i + 3];
  }
  return s0 + s1 + s2 + s3;
}
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// The same loop inlined into an AVX2 function, so it is vectorized with 256-bit loads.
__attribute__((target("avx2"))) inline std::uint64_t read_words_avx2(const std::uint64_t* p,
                                                                     std::size_t words) {
  return read_words_generic(p, words);
}
#endif
inline std::uint64_t read_words(const std::uint64_t* p, std::size_t words) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (__builtin_cpu_supports("avx2")) return read_words_avx2(p, words);
#endif
  return read_words_generic(p, words);
}

// Best of `reps` streaming reads of a 1 GiB buffer split over the library's threads, GB/s.
inline double read_bandwidth_gbs(int reps) {
  const std::size_t words = (std::size_t{1} << 30) / 8, chunks = 64, per = words / chunks;
  std::unique_ptr<std::uint64_t[]> buf(new std::uint64_t[words]);
  mbok::parallel_for(0, chunks, 1, [&](std::size_t c0, std::size_t c1) {
    for (std::size_t c = c0; c < c1; ++c)
      for (std::size_t i = c * per; i < (c + 1) * per; ++i) buf[i] = i;  // touch every page
  });
  double best = 0;
  std::vector<std::uint64_t> part(chunks);
  static volatile std::uint64_t sink = 0;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    mbok::parallel_for(0, chunks, 1, [&](std::size_t c0, std::size_t c1) {
      for (std::size_t c = c0; c < c1; ++c) part[c] = read_words(buf.get() + c * per, per);
    });
    const double s = seconds_since(t0);
    for (std::uint64_t v : part) sink = sink + v;
    best = std::max(best, double(words * 8) / s / 1e9);
  }
  return best;
}

}  // namespace bench_detail

/// Runs the benchmark: `prompt` tokens of prefill and `decode` tokens of generation, `reps`
/// times each (best kept). Token ids are random (seed 1): speed does not depend on them.
inline BenchResult run_bench(const mbok::llama::LlamaModel& model, std::int64_t prompt,
                             std::int64_t decode, int reps) {
  using namespace bench_detail;
  const auto& cfg = model.config();
  std::mt19937 rng(1);
  std::uniform_int_distribution<std::int32_t> token(0,
                                                    static_cast<std::int32_t>(cfg.vocab_size - 1));
  std::vector<std::int32_t> tokens(static_cast<std::size_t>(std::max(prompt, decode + 1)));
  for (auto& t : tokens) t = token(rng);
  std::vector<float> logits(static_cast<std::size_t>(cfg.vocab_size));
  BenchResult r;
  mbok::llama::KvCache cache = model.make_cache(std::max(prompt, decode + 1));
  for (int rep = 0; rep < reps; ++rep) {
    if (prompt > 0) {
      cache.clear();
      const auto t0 = Clock::now();
      model.forward_last(tokens.data(), static_cast<std::size_t>(prompt), cache, logits.data());
      r.prefill_tokens_per_s = std::max(r.prefill_tokens_per_s, double(prompt) / seconds_since(t0));
    }
    if (decode > 0) {
      cache.clear();
      model.forward_last(tokens.data(), 1, cache, logits.data());
      const auto t0 = Clock::now();
      for (std::int64_t i = 1; i <= decode; ++i)
        model.forward_last(tokens.data() + i, 1, cache, logits.data());
      r.decode_tokens_per_s = std::max(r.decode_tokens_per_s, double(decode) / seconds_since(t0));
    }
  }
  // Keys and values of every layer read once per decoded token, at the run's mean length.
  const double kv_per_token =
      2.0 * double(cfg.num_hidden_layers) * double(cfg.kv_size()) * sizeof(float);
  r.bytes_per_token =
      double(model.footprint().bytes_per_token) + kv_per_token * (1.0 + double(decode) / 2);
  r.read_gb_per_s = read_bandwidth_gbs(3);
  return r;
}

}  // namespace mbok::tools
