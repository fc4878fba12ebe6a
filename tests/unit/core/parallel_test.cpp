// parallel_for: its chunks cover the range once, in order, aligned, at least `grain` long,
// with the indices parallel_chunk_count promises, and the first exception comes back.
#include <mbok/parallel.hpp>

#include <atomic>
#include <cstddef>
#include <stdexcept>
#include <vector>

#include "support.hpp"
#include "threads_support.hpp"

using namespace mbok;

TEST_CASE("parallel_for splits a range into aligned, indexed chunks", "[threads][parallel]") {
  struct Case {
    std::size_t begin, end, grain, align;
  };
  for (const Case& s : {Case{0, 1000, 1, 1}, Case{5, 1005, 100, 16}, Case{0, 10, 100, 1},
                        Case{3, 4, 1, 1}, Case{0, 4097, 64, 16}}) {
    for (int threads : {1, 2, test::kManyThreads}) {
      INFO("[" << s.begin << ", " << s.end << "), grain " << s.grain << ", align " << s.align
               << ", " << threads << " threads");
      const test::ScopedThreads scoped(threads);
      const std::size_t count = parallel_chunk_count(s.begin, s.end, s.grain, s.align);
      REQUIRE(count >= 1);
      if (!test::have_threads()) REQUIRE(count == 1);
      std::vector<std::size_t> b(count, 0), e(count, 0);
      std::vector<int> seen(count, 0);
      std::atomic<bool> out_of_range{false};
      parallel_for(
          s.begin, s.end, s.grain,
          [&](std::size_t lo, std::size_t hi, std::size_t c) {
            if (c >= count) {  // Catch2's assertions are not thread-safe: checked below
              out_of_range = true;
              return;
            }
            b[c] = lo;
            e[c] = hi;
            ++seen[c];
          },
          s.align);
      REQUIRE_FALSE(out_of_range);
      std::size_t at = s.begin;
      for (std::size_t c = 0; c < count; ++c) {
        REQUIRE(seen[c] == 1);
        REQUIRE(b[c] == at);
        REQUIRE(e[c] > b[c]);
        if (c + 1 < count) {
          REQUIRE(e[c] - b[c] >= s.grain);
          REQUIRE((e[c] - s.begin) % s.align == 0);
        }
        at = e[c];
      }
      REQUIRE(at == s.end);
    }
  }
  REQUIRE(parallel_chunk_count(7, 7, 1) == 0);
}

TEST_CASE("parallel_for rethrows a chunk's exception", "[threads][parallel]") {
  const test::ScopedThreads scoped(test::kManyThreads);
  REQUIRE_THROWS_WITH(parallel_for(0, 100, 1,
                                   [](std::size_t lo, std::size_t) {
                                     if (lo == 0) throw std::runtime_error("chunk 0 failed");
                                   }),
                      "chunk 0 failed");
}
