#pragma once
/// \file
/// The default threading: `parallel_for` over an index range. With OpenMP enabled in the
/// user's build (`-fopenmp`, or `OpenMP::OpenMP_CXX`) it splits the range across OpenMP
/// threads; without it the range runs serially. Engines with their own thread pools call the
/// kernels' row-range entry points instead.

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstddef>
#include <cstdlib>
#include <exception>
#include <string>
#include <type_traits>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace mbok {

/// Threads `parallel_for` may use (1 without OpenMP).
inline int max_threads() noexcept {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

namespace detail {
// How parallel_for splits [0, n): the number of chunks and their length (all but the last
// one exactly `chunk` long).
struct ChunkPlan {
  std::size_t chunks = 0, chunk = 0;
};
inline ChunkPlan plan_chunks(std::size_t n, std::size_t grain, std::size_t align,
                             int threads) noexcept {
  if (n == 0) return {};
  grain = std::max<std::size_t>(grain, 1);
  align = std::max<std::size_t>(align, 1);
  std::size_t chunks = std::min<std::size_t>(static_cast<std::size_t>(std::max(threads, 1)),
                                             (n + grain - 1) / grain);
  if (chunks <= 1) return {1, n};
  std::size_t chunk = (n + chunks - 1) / chunks;
  chunk = (chunk + align - 1) / align * align;
  return {(n + chunk - 1) / chunk, chunk};
}

// Observation hook for tests: the most chunks one parallel_for call has run (each chunk counted
// as it runs) since the value was last set to 0. Written once per call that splits, never by
// serial calls, so a test can observe that a product really ran on several threads instead of
// recomputing the product's grain.
inline std::atomic<std::size_t>& parallel_for_max_chunks() noexcept {
  static std::atomic<std::size_t> most{0};
  return most;
}

inline int parallel_for_threads() noexcept {
#if defined(_OPENMP)
  return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
  return 1;
#endif
}
}  // namespace detail

/// The number of chunks `parallel_for(begin, end, grain, body, align)` called from this
/// thread would make now (1 without OpenMP or inside a parallel region, 0 for an empty
/// range): callers that keep per-chunk scratch size it with this.
inline std::size_t parallel_chunk_count(std::size_t begin, std::size_t end, std::size_t grain,
                                        std::size_t align = 1) noexcept {
  if (end <= begin) return 0;
  return detail::plan_chunks(end - begin, grain, align, detail::parallel_for_threads()).chunks;
}

/// Whether the OpenMP runtime was told to put waiting threads to sleep at once
/// (`OMP_WAIT_POLICY=passive`, `GOMP_SPINCOUNT=0` or `KMP_BLOCKTIME=0` in the environment,
/// read once). Waking a sleeping thread costs tens of microseconds on a virtual machine (41-44
/// us per parallel region on an idle 2-vCPU KVM guest, against about 1 us with the runtimes'
/// default spin-then-sleep waits: docs/decode.md), so the products split small work across
/// threads only when this is false. False without OpenMP.
inline bool threads_wait_passively() {
#if defined(_OPENMP)
  static const bool passive = [] {
    auto is = [](const char* name, const char* value) {
      const char* v = std::getenv(name);
      if (v == nullptr) return false;
      std::string s(v);
      for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      s.erase(0, s.find_first_not_of(" \t"));
      s.erase(s.find_last_not_of(" \t") + 1);
      return s == value;
    };
    return is("OMP_WAIT_POLICY", "passive") || is("GOMP_SPINCOUNT", "0") ||
           is("KMP_BLOCKTIME", "0");
  }();
  return passive;
#else
  return false;
#endif
}

namespace detail {
// Grain (items per chunk) for splitting work of about `cost` elementary steps per item: at
// least `spinning` steps per chunk when idle threads spin, `woken` when they sleep and waking
// them costs tens of microseconds (threads_wait_passively()). The defaults suit a feature of
// a token: 2^16 steps are about 15 us of quantization.
inline std::size_t grain_for_cost(std::size_t cost, std::size_t spinning = std::size_t{1} << 16,
                                  std::size_t woken = std::size_t{1} << 18) {
  const std::size_t steps = threads_wait_passively() ? woken : spinning;
  return std::max<std::size_t>(1, steps / std::max<std::size_t>(cost, 1));
}
}  // namespace detail

/// Calls `body(begin_i, end_i)` on disjoint chunks covering [begin, end), each at least
/// `grain` long (except possibly the last) and, when `align` > 1, starting at multiples of
/// `align` from `begin`. Runs serially when the range is small, when called from inside a
/// parallel region, or without OpenMP. A body that also takes a third argument is called as
/// `body(begin_i, end_i, i)` with the chunk's index i < parallel_chunk_count(...), in range
/// order, so that it can use per-chunk scratch. The first exception thrown by a chunk is
/// rethrown.
template <typename Body>
void parallel_for(std::size_t begin, std::size_t end, std::size_t grain, Body&& body,
                  std::size_t align = 1) {
  if (end <= begin) return;
  auto call = [&body](std::size_t b, std::size_t e, std::size_t c) {
    if constexpr (std::is_invocable_v<Body&, std::size_t, std::size_t, std::size_t>)
      body(b, e, c);
    else
      body(b, e);
  };
#if defined(_OPENMP)
  const detail::ChunkPlan plan =
      detail::plan_chunks(end - begin, grain, align, detail::parallel_for_threads());
  if (plan.chunks > 1) {
    const int threads = static_cast<int>(plan.chunks);
    std::exception_ptr error;
    std::atomic<std::size_t> ran{0};
#pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (long long c = 0; c < static_cast<long long>(plan.chunks); ++c) {
      const std::size_t b = begin + static_cast<std::size_t>(c) * plan.chunk;
      const std::size_t e = std::min(end, b + plan.chunk);
      ran.fetch_add(1, std::memory_order_relaxed);
      try {
        call(b, e, static_cast<std::size_t>(c));
      } catch (...) {
#pragma omp critical(mbok_parallel_for_error)
        if (!error) error = std::current_exception();
      }
    }
    std::atomic<std::size_t>& most = detail::parallel_for_max_chunks();
    for (std::size_t seen = most.load(std::memory_order_relaxed), now = ran.load();
         now > seen && !most.compare_exchange_weak(seen, now, std::memory_order_relaxed);) {
    }
    if (error) std::rethrow_exception(error);
    return;
  }
#else
  (void)grain;
  (void)align;
#endif
  call(begin, end, 0);
}

}  // namespace mbok
