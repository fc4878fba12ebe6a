#pragma once
// Helpers for the [threads] tests: run a computation on one thread and on several, through
// the OpenMP thread count that parallel_for reads (omp_get_max_threads), and observe (through
// the library's detail::parallel_for_max_chunks, not by recomputing a product's grain) that
// the run on several threads really split into chunks.

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

// The most chunks one parallel_for call ran while `compute()` ran.
template <typename Compute>
auto observe_chunks(Compute&& compute, std::size_t& chunks) {
  detail::parallel_for_max_chunks().store(0);
  auto result = compute();
  chunks = std::max<std::size_t>(1, detail::parallel_for_max_chunks().load());
  return result;
}

// Runs `compute()` (which returns its results) on one thread and on kManyThreads threads and
// returns both, one-thread first. Requires that the one-thread run never split and that the
// many-thread run had a parallel_for that ran at least two chunks (observed, so a shape that
// fits one chunk fails here instead of comparing one serial run with another).
template <typename Compute>
auto one_and_many(Compute&& compute) {
  std::size_t chunks_one = 0, chunks_many = 0;
  ScopedThreads one(1);
  auto single = observe_chunks(compute, chunks_one);
  ScopedThreads many(kManyThreads);
  auto multi = observe_chunks(compute, chunks_many);
  REQUIRE(chunks_one == 1);
  REQUIRE(chunks_many >= 2);
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
