#pragma once
// A seam for allocation failures: replaces the global operator new and delete of the test
// binary with malloc and free, and lets a test make one allocation throw std::bad_alloc.
// Include it in exactly ONE .cpp of a test area (the replacements are the binary's own
// definitions, not inline). Every form of new and delete is replaced, so that the
// sanitizers' allocation-type checks see malloc matched with free.
//
//   test::FailAllocation fail(k);  // the allocation k + 1 from now throws (any thread), once
//   ... call ...                   // the guard's destructor disarms it

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace mbok::test {

// >= 0: allocations left before the one that fails; < 0: disarmed.
inline std::atomic<long>& allocation_countdown() {
  static std::atomic<long> countdown{-1};
  return countdown;
}

// True when this allocation is the one chosen to fail.
inline bool allocation_fails() noexcept {
  std::atomic<long>& c = allocation_countdown();
  return c.load(std::memory_order_relaxed) >= 0 && c.fetch_sub(1) == 0;
}

// Arms the failure of the allocation `skip` + 1 from now; disarms on destruction.
class FailAllocation {
 public:
  explicit FailAllocation(long skip) { allocation_countdown().store(skip); }
  ~FailAllocation() { allocation_countdown().store(-1); }
  FailAllocation(const FailAllocation&) = delete;
  FailAllocation& operator=(const FailAllocation&) = delete;
  // True when the chosen allocation has happened (and failed).
  static bool fired() noexcept { return allocation_countdown().load() < 0; }
};

inline void* seam_allocate(std::size_t size, std::size_t align) noexcept {
  if (allocation_fails()) return nullptr;
  if (size == 0) size = 1;
  if (align <= alignof(std::max_align_t)) return std::malloc(size);
  void* p = nullptr;
  return posix_memalign(&p, align, size) == 0 ? p : nullptr;
}

}  // namespace mbok::test

// free() of memory from this operator new is correct (it comes from malloc); GCC, seeing the
// inlined pair, would warn of a mismatch.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

void* operator new(std::size_t size) {
  if (void* p = mbok::test::seam_allocate(size, 0)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) {
  if (void* p = mbok::test::seam_allocate(size, 0)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t size, std::align_val_t align) {
  if (void* p = mbok::test::seam_allocate(size, static_cast<std::size_t>(align))) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size, std::align_val_t align) {
  if (void* p = mbok::test::seam_allocate(size, static_cast<std::size_t>(align))) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  return mbok::test::seam_allocate(size, 0);
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return mbok::test::seam_allocate(size, 0);
}
void* operator new(std::size_t size, std::align_val_t align, const std::nothrow_t&) noexcept {
  return mbok::test::seam_allocate(size, static_cast<std::size_t>(align));
}
void* operator new[](std::size_t size, std::align_val_t align, const std::nothrow_t&) noexcept {
  return mbok::test::seam_allocate(size, static_cast<std::size_t>(align));
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
