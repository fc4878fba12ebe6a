#pragma once
// Text generation with the model's key/value cache.

#include <cstdint>
#include <string>

#include "model.hpp"

namespace tiny {

/// Samples `count` bytes after `prompt` (temperature > 0; 0 = greedy); the cache restarts
/// from the last half context when it fills. Returns the generated text.
std::string generate(Transformer<float>& model, const std::string& prompt, int count,
                     double temperature, std::uint64_t seed);

}  // namespace tiny
