#pragma once
/// \file
/// The default threading: `parallel_for` over an index range. With OpenMP enabled in the
/// user's build (`-fopenmp`, or `OpenMP::OpenMP_CXX`) it splits the range across OpenMP
/// threads; without it the range runs serially. Engines with their own thread pools call the
/// kernels' row-range entry points instead.

#include <algorithm>
#include <cstddef>
#include <exception>

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

/// Calls `body(begin_i, end_i)` on disjoint chunks covering [begin, end), each at least
/// `grain` long (except possibly the last) and, when `align` > 1, starting at multiples of
/// `align` from `begin`. Runs serially when the range is small, when called from inside a
/// parallel region, or without OpenMP. The first exception thrown by a chunk is rethrown.
template <typename Body>
void parallel_for(std::size_t begin, std::size_t end, std::size_t grain, Body&& body,
                  std::size_t align = 1) {
  if (end <= begin) return;
#if defined(_OPENMP)
  const std::size_t n = end - begin;
  grain = std::max<std::size_t>(grain, 1);
  align = std::max<std::size_t>(align, 1);
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  std::size_t chunks = std::min<std::size_t>(static_cast<std::size_t>(std::max(threads, 1)),
                                             (n + grain - 1) / grain);
  if (chunks > 1) {
    std::size_t chunk = (n + chunks - 1) / chunks;
    chunk = (chunk + align - 1) / align * align;
    chunks = (n + chunk - 1) / chunk;
    std::exception_ptr error;
#pragma omp parallel for num_threads(static_cast<int>(chunks)) schedule(static, 1)
    for (long long c = 0; c < static_cast<long long>(chunks); ++c) {
      const std::size_t b = begin + static_cast<std::size_t>(c) * chunk;
      const std::size_t e = std::min(end, b + chunk);
      try {
        body(b, e);
      } catch (...) {
#pragma omp critical(mbok_parallel_for_error)
        if (!error) error = std::current_exception();
      }
    }
    if (error) std::rethrow_exception(error);
    return;
  }
#else
  (void)grain;
  (void)align;
#endif
  body(begin, end);
}

}  // namespace mbok
