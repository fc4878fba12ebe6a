// detail::AlignedBuffer, the one owning buffer of 64-byte-aligned memory behind bit matrices,
// int8 activations, repacked weights, tables, panels and scratch: alignment, whole-line
// capacity, zeroing, moves, growth without copies, and sizes that overflow refused before
// anything changes. (A failed allocation while growing: kernels_int/tiny_activations_test.cpp,
// where allocations can be made to fail.)

#include <mbok/config.hpp>
#include <mbok/detail/base/aligned_buffer.hpp>

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "../../support.hpp"

namespace mbok::test {
namespace {

using detail::AlignedBuffer;

bool aligned64(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 64 == 0; }

template <typename T>
bool all_zero(const AlignedBuffer<T>& b) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(b.data());
  for (std::size_t i = 0; i < b.capacity() * sizeof(T); ++i)
    if (bytes[i] != 0) return false;
  return true;
}

static_assert(!std::is_copy_constructible<AlignedBuffer<float>>::value, "move-only");
static_assert(!std::is_copy_assignable<AlignedBuffer<float>>::value, "move-only");
static_assert(std::is_nothrow_move_constructible<AlignedBuffer<float>>::value, "");
static_assert(std::is_nothrow_move_assignable<AlignedBuffer<float>>::value, "");

TEST_CASE("AlignedBuffer: 64-byte aligned, capacity in whole lines", "[aligned-buffer]") {
  const AlignedBuffer<float> empty;
  CHECK(empty.data() == nullptr);
  CHECK(empty.size() == 0);
  CHECK(empty.capacity() == 0);
  CHECK(empty.empty());
  CHECK(AlignedBuffer<float>::uninitialized(0).data() == nullptr);
  CHECK(AlignedBuffer<float>::zeroed(0).capacity() == 0);

  for (std::size_t count : {1u, 15u, 16u, 17u, 100u, 4096u}) {
    const auto f = AlignedBuffer<float>::uninitialized(count);
    CHECK(aligned64(f.data()));
    CHECK(f.size() == count);
    CHECK(f.capacity() == (count + 15) / 16 * 16);  // 16 floats per line
    const auto b = AlignedBuffer<std::uint8_t>::uninitialized(count);
    CHECK(aligned64(b.data()));
    CHECK(b.capacity() == (count + 63) / 64 * 64);
    const auto w = AlignedBuffer<std::uint64_t>::uninitialized(count);
    CHECK(w.capacity() == (count + 7) / 8 * 8);
  }
}

TEST_CASE("AlignedBuffer: zeroed clears the whole capacity, writes stay in place",
          "[aligned-buffer]") {
  auto b = AlignedBuffer<std::int8_t>::zeroed(100);
  REQUIRE(b.capacity() == 128);
  CHECK(all_zero(b));
  for (std::size_t i = 0; i < b.capacity(); ++i) b.data()[i] = static_cast<std::int8_t>(i);
  CHECK(b.data()[127] == 127);
  b.fill_zero();
  CHECK(all_zero(b));
}

TEST_CASE("AlignedBuffer: moves hand the memory over", "[aligned-buffer]") {
  auto a = AlignedBuffer<float>::zeroed(40);
  a.data()[3] = 2.5f;
  const float* p = a.data();

  AlignedBuffer<float> b(std::move(a));
  CHECK(b.data() == p);
  CHECK(b.size() == 40);
  CHECK(b.capacity() == 48);
  CHECK(b.data()[3] == 2.5f);
  CHECK(a.data() == nullptr);  // NOLINT(bugprone-use-after-move): the moved-from state is defined
  CHECK(a.size() == 0);
  CHECK(a.capacity() == 0);

  auto c = AlignedBuffer<float>::uninitialized(3);
  c = std::move(b);
  CHECK(c.data() == p);
  CHECK(c.size() == 40);
  CHECK(b.data() == nullptr);  // NOLINT(bugprone-use-after-move)

  auto& self = c;
  c = std::move(self);
  CHECK(c.data() == p);
  CHECK(c.size() == 40);

  c.reset();
  CHECK(c.data() == nullptr);
  CHECK(c.capacity() == 0);
}

TEST_CASE("AlignedBuffer::grow keeps memory that fits and replaces memory that does not",
          "[aligned-buffer]") {
  AlignedBuffer<float> s;
  CHECK(s.grow(0) == nullptr);  // nothing asked, nothing allocated
  float* p = s.grow(20);
  REQUIRE(p != nullptr);
  CHECK(aligned64(p));
  CHECK(s.size() == 20);
  CHECK(s.capacity() == 32);
  p[31] = 7.0f;

  // Within the capacity: same memory, values kept, size follows the request.
  CHECK(s.grow(32) == p);
  CHECK(s.data()[31] == 7.0f);
  CHECK(s.grow(5) == p);
  CHECK(s.size() == 5);
  CHECK(s.capacity() == 32);

  // Beyond it: new memory, whole lines again.
  float* q = s.grow(33);
  CHECK(aligned64(q));
  CHECK(s.size() == 33);
  CHECK(s.capacity() == 48);
}

TEST_CASE("AlignedBuffer refuses sizes that overflow and stays as it was", "[aligned-buffer]") {
  CHECK_THROWS_AS(AlignedBuffer<float>::uninitialized(SIZE_MAX / 2), InvalidArgument);
  CHECK_THROWS_WITH(AlignedBuffer<std::uint64_t>::zeroed(SIZE_MAX / 4),
                    contains("overflows the address space"));
  // Bytes that fit but whose rounding to a whole line does not.
  CHECK_THROWS_AS(AlignedBuffer<std::uint8_t>::uninitialized(SIZE_MAX - 10), InvalidArgument);

  auto b = AlignedBuffer<float>::zeroed(10);
  const float* p = b.data();
  CHECK_THROWS_AS(b.grow(SIZE_MAX / 2), InvalidArgument);
  CHECK(b.data() == p);
  CHECK(b.size() == 10);
  CHECK(b.capacity() == 16);
  CHECK(all_zero(b));
}

}  // namespace
}  // namespace mbok::test
