#pragma once
#include "../guard.hpp"

// The one owning buffer of 64-byte-aligned memory: bit matrices, int8 activations, repacked
// weights, lookup tables, the float products' panels and the per-thread scratch all live in
// one. 64 bytes is the alignment of the bit-layout contract (design.md), so every SIMD load
// of a whole row or vector is aligned, and a cache line is never shared by two buffers.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

#include "checked.hpp"

namespace mbok::detail {

inline constexpr std::size_t kAlignedBufferAlignment = 64;  // bytes

/// An owning, move-only array of `T` (a trivial type) at a 64-byte-aligned address.
///
/// Storage is allocated in whole 64-byte lines: `capacity()` (elements) is `size()` rounded
/// up to a line, and the memory between them belongs to the buffer (readable, writable).
/// `size()` is the count last asked for. A buffer of no elements holds no memory
/// (`data()` is null). Sizes are checked: a count whose bytes overflow the address space
/// throws `InvalidArgument` before anything is allocated; allocation failure throws
/// `std::bad_alloc`. Either way the buffer is unchanged (strong guarantee).
template <typename T>
class AlignedBuffer {
  static_assert(std::is_trivial<T>::value, "AlignedBuffer holds trivial types only");
  static_assert(alignof(T) <= kAlignedBufferAlignment, "over-aligned element type");

 public:
  /// No memory, size 0.
  AlignedBuffer() noexcept = default;

  /// `count` elements whose values are unspecified (scratch written before it is read).
  static AlignedBuffer uninitialized(std::size_t count) {
    AlignedBuffer b;
    b.allocate(count);
    return b;
  }
  /// `count` elements, all bits zero (the whole capacity, rounding included).
  static AlignedBuffer zeroed(std::size_t count) {
    AlignedBuffer b = uninitialized(count);
    b.fill_zero();
    return b;
  }

  AlignedBuffer(AlignedBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)),
        size_(std::exchange(other.size_, 0)),
        capacity_(std::exchange(other.capacity_, 0)) {}
  AlignedBuffer& operator=(AlignedBuffer&& other) noexcept {
    AlignedBuffer moved(std::move(other));
    swap(moved);
    return *this;
  }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer() { release(); }

  void swap(AlignedBuffer& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
    std::swap(capacity_, other.capacity_);
  }

  T* data() noexcept { return data_; }
  const T* data() const noexcept { return data_; }
  /// Elements last asked for (`uninitialized`, `zeroed` or `grow`).
  std::size_t size() const noexcept { return size_; }
  /// Elements the memory holds: size() rounded up to whole 64-byte lines.
  std::size_t capacity() const noexcept { return capacity_; }
  bool empty() const noexcept { return size_ == 0; }

  /// Room for `count` elements, for scratch reused call after call: when count exceeds
  /// capacity() the memory is replaced by new memory of unspecified values (the old values
  /// are not copied: a caller that grows rewrites what it reads), else it is kept as it is.
  /// size() becomes count. Returns data().
  T* grow(std::size_t count) {
    if (count > capacity_) {
      AlignedBuffer bigger = uninitialized(count);
      swap(bigger);
    }
    size_ = count;
    return data_;
  }

  /// Sets every byte of the capacity to zero.
  void fill_zero() noexcept {
    if (data_ != nullptr) std::memset(static_cast<void*>(data_), 0, capacity_ * sizeof(T));
  }

  /// Frees the memory: size and capacity 0.
  void reset() noexcept {
    release();
    data_ = nullptr;
    size_ = capacity_ = 0;
  }

 private:
  // Allocates whole lines for `count` elements into an empty buffer.
  void allocate(std::size_t count) {
    if (count == 0) return;
    const std::size_t bytes = mul_or_throw({count, sizeof(T)}, "aligned buffer of ", count,
                                           " elements of ", sizeof(T), " bytes");
    std::size_t rounded = 0;
    if (!checked_add(bytes, kAlignedBufferAlignment - 1, rounded))
      throw InvalidArgument(
          concat("mbok: aligned buffer of ", bytes, " bytes overflows the address space"));
    rounded = rounded / kAlignedBufferAlignment * kAlignedBufferAlignment;
    data_ = static_cast<T*>(::operator new(rounded, std::align_val_t(kAlignedBufferAlignment)));
    size_ = count;
    capacity_ = rounded / sizeof(T);
  }

  void release() noexcept {
    if (data_ != nullptr)
      ::operator delete(static_cast<void*>(data_), std::align_val_t(kAlignedBufferAlignment));
  }

  T* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

}  // namespace mbok::detail
