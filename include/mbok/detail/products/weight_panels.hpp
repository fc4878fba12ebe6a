#pragma once
#include "../guard.hpp"

// What the dense float products of the training step share (no intrinsics): the kernels' view
// of a multi-kernel weight.

#include <cstddef>
#include <cstdint>

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

}  // namespace mbok::detail
