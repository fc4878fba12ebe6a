#pragma once
/// \file
/// `Sampler`: picks the next token from logits: greedy (temperature 0, the default), or
/// sampling at a temperature from the top-k tokens and, of those, the smallest set whose
/// probability reaches top-p (nucleus), with a seeded generator so a run repeats exactly.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "../error.hpp"

namespace mbok {
namespace llama {

/// How `Sampler` picks a token.
struct SamplerOptions {
  double temperature = 0;  ///< 0: greedy (the largest logit, the lowest id among equals)
  std::size_t top_k = 0;   ///< 0: every token; else only the k most likely
  double top_p = 1;        ///< in (0, 1]: the nucleus of that much probability
  std::uint64_t seed = 0;  ///< of the generator (sampling only)
};

class Sampler {
 public:
  /// Throws `InvalidArgument` for a negative or non-finite temperature or top_p outside (0, 1].
  explicit Sampler(const SamplerOptions& options = {}) : o_(options), rng_(options.seed) {
    detail::require(std::isfinite(o_.temperature) && o_.temperature >= 0,
                    "Sampler: temperature must be >= 0, got ", o_.temperature);
    detail::require(std::isfinite(o_.top_p) && o_.top_p > 0 && o_.top_p <= 1,
                    "Sampler: top_p must be in (0, 1], got ", o_.top_p);
  }

  /// The next token for `logits` (vocab floats). Throws `InvalidArgument` for vocab = 0 or
  /// a non-finite logit.
  std::int32_t sample(const float* logits, std::size_t vocab) {
    detail::require(vocab > 0 && logits != nullptr, "Sampler: no logits");
    for (std::size_t v = 0; v < vocab; ++v)
      detail::require(std::isfinite(logits[v]), "Sampler: logit ", v, " is not finite");
    if (o_.temperature == 0)
      return static_cast<std::int32_t>(std::max_element(logits, logits + vocab) - logits);
    order_.resize(vocab);
    std::iota(order_.begin(), order_.end(), std::int32_t{0});
    const std::size_t k = o_.top_k == 0 ? vocab : std::min(o_.top_k, vocab);
    // Most likely first; equal logits by id so that the result does not depend on the sort.
    auto more_likely = [logits](std::int32_t a, std::int32_t b) {
      return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
    };
    std::partial_sort(order_.begin(), order_.begin() + static_cast<std::ptrdiff_t>(k), order_.end(),
                      more_likely);
    order_.resize(k);
    probs_.resize(k);
    const double peak = logits[order_[0]];
    double sum = 0;
    for (std::size_t i = 0; i < k; ++i)
      sum += probs_[i] = std::exp((logits[order_[i]] - peak) / o_.temperature);
    std::size_t keep = k;
    if (o_.top_p < 1) {
      double mass = 0;
      for (std::size_t i = 0; i < k; ++i) {
        mass += probs_[i] / sum;
        if (mass >= o_.top_p) {
          keep = i + 1;
          break;
        }
      }
    }
    std::discrete_distribution<std::size_t> pick(
        probs_.begin(), probs_.begin() + static_cast<std::ptrdiff_t>(keep));
    return order_[pick(rng_)];
  }

 private:
  SamplerOptions o_;
  std::mt19937_64 rng_;
  std::vector<std::int32_t> order_;
  std::vector<double> probs_;
};

}  // namespace llama
}  // namespace mbok
