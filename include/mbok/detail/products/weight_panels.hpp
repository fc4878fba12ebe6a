#pragma once
#include "../guard.hpp"

// What the avx2 and avx512 dense float products of the training step share (no intrinsics):
// the kernels' view of a multi-kernel weight and the aligned buffer a packed panel lives in.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace mbok::detail {

// The K kernels of a multi-kernel weight (m x n): bits[k] rows stride[k] words apart (bit set
// = -1, padding zero), s_out[k] (m), s_in[k] (n).
struct SignKernels {
  const std::uint64_t* const* bits;
  const std::size_t* stride;
  const float* const* s_out;
  const float* const* s_in;
  std::size_t count;
};

// A 64-byte-aligned float buffer of `count` values.
class AlignedPanel {
 public:
  explicit AlignedPanel(std::size_t count) : storage_(count + 16) {
    data_ = storage_.data();
    while (reinterpret_cast<std::uintptr_t>(data_) % 64 != 0) ++data_;
  }
  float* data() { return data_; }

 private:
  std::vector<float> storage_;
  float* data_;
};

}  // namespace mbok::detail
