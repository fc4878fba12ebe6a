#pragma once
// Helpers for the [threads] tests: run a computation on one thread and on several, through
// the OpenMP thread count that parallel_for reads (omp_get_max_threads), and compute how many
// chunks parallel_for makes of a range, so a test can assert that its shape really splits.

#include <mbok/parallel.hpp>

#include <algorithm>
#include <cstddef>
#include <utility>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "catch.hpp"

namespace mbok::test {

// More threads than this machine's cores is fine: the point is the split, not the speed.
inline constexpr int kManyThreads = 4;

// True when parallel_for can use threads in this build.
inline bool have_threads() {
#if defined(_OPENMP)
  return true;
#else
  return false;
#endif
}

// The thread count parallel_for uses, for one scope.
class ScopedThreads {
 public:
  explicit ScopedThreads(int threads) : previous_(max_threads()) {
#if defined(_OPENMP)
    omp_set_num_threads(threads);
#else
    (void)threads;
#endif
  }
  ~ScopedThreads() {
#if defined(_OPENMP)
    omp_set_num_threads(previous_);
#endif
  }
  ScopedThreads(const ScopedThreads&) = delete;
  ScopedThreads& operator=(const ScopedThreads&) = delete;

 private:
  int previous_;
};

// The chunks parallel_for(begin, begin + n, grain, body, align) makes on `threads` threads.
inline std::size_t parallel_chunks(std::size_t n, std::size_t grain, std::size_t align,
                                   int threads) {
  return detail::plan_chunks(n, grain, align, threads).chunks;
}

// Runs `compute()` (which returns its results) on one thread and on kManyThreads threads and
// returns both, one-thread first.
template <typename Compute>
auto one_and_many(Compute&& compute) {
  ScopedThreads one(1);
  auto single = compute();
  ScopedThreads many(kManyThreads);
  auto multi = compute();
  return std::make_pair(std::move(single), std::move(multi));
}

// Skips a [threads] test (with a note) in builds without OpenMP.
#define MBOK_REQUIRE_THREADS()                                                  \
  do {                                                                          \
    if (!::mbok::test::have_threads()) {                                        \
      WARN("built without OpenMP: parallel_for is serial, nothing to compare"); \
      return;                                                                   \
    }                                                                           \
  } while (0)

}  // namespace mbok::test
