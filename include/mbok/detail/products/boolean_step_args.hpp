#pragma once
#include "../guard.hpp"

// The arguments of the vectorized Boolean optimizer step (<isa>/boolean_step.hpp,
// scalar/training.hpp), shared by every ISA so that the optimizer fills them once.

#include <cstddef>
#include <cstdint>

namespace mbok::detail {

// Storage of the accumulators, as the step's template parameter.
enum class StepCodec { f32, f16, i8 };

struct BooleanStepArgs {
  std::uint64_t* bits;   // packed rows, `stride` words apart
  std::size_t stride;    // words
  const float* q;        // signal rows, `ld` apart
  std::size_t ld, cols;  // signal stride, columns
  void* acc;             // rows x cols accumulators, row-major
  float beta, eta, threshold;
  bool sign_only;
  float scale, inv;   // i8: the code step and its inverse
  std::uint64_t key;  // i8: the step's random key
};

}  // namespace mbok::detail
