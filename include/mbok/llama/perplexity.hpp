#pragma once
/// \file
/// Perplexity of a LLaMA model over a token sequence, by the one definition mbok's tools
/// report and other programs check against:
///
///     the tokens are cut into consecutive non-overlapping windows of `context` tokens (a last
///     partial window is dropped); in each window every token after the first is predicted
///     from its prefix in that window; perplexity = exp(mean negative log-likelihood) over
///     those (windows * (context - 1)) predictions.
///
/// Each window is one batched forward (a prefill) on a cleared cache; log-softmax and the sum
/// of the log-likelihoods run in double.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "../error.hpp"
#include "model.hpp"

namespace mbok {
namespace llama {

/// The outcome of `perplexity`.
struct PerplexityResult {
  std::size_t windows = 0;      ///< windows evaluated
  std::size_t predictions = 0;  ///< tokens predicted: windows * (context - 1)
  double mean_nll = 0;          ///< mean negative log-likelihood, in nats
  double perplexity() const { return std::exp(mean_nll); }
};

/// Negative log-likelihood of `target` under the logits `row` (vocab floats), in double.
inline double token_nll(const float* row, std::size_t vocab, std::int32_t target) {
  double peak = row[0];
  for (std::size_t v = 1; v < vocab; ++v) peak = std::max(peak, static_cast<double>(row[v]));
  double sum = 0;
  for (std::size_t v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(row[v]) - peak);
  return peak + std::log(sum) - static_cast<double>(row[static_cast<std::size_t>(target)]);
}

/// Perplexity of `model` over `tokens` (see the file comment). `progress(done, total)` is
/// called after each window when given. Throws `InvalidArgument` for context < 2, fewer
/// tokens than one window, a context beyond the model's `max_position_embeddings`, or a token
/// out of the vocabulary; `FormatError` when the model produces a non-finite logit.
inline PerplexityResult perplexity(
    const LlamaModel& model, const std::vector<std::int32_t>& tokens, std::int64_t context,
    const std::function<void(std::size_t, std::size_t)>& progress = {}) {
  detail::require(context >= 2, "perplexity: context must be at least 2 tokens, got ", context);
  detail::require(context <= model.config().max_position_embeddings, "perplexity: context ",
                  context, " exceeds the model's max_position_embeddings (",
                  model.config().max_position_embeddings, ")");
  const std::size_t c = static_cast<std::size_t>(context);
  const std::size_t windows = tokens.size() / c;
  detail::require(windows >= 1, "perplexity: the text has ", tokens.size(),
                  " tokens, fewer than one window of ", context);
  const std::size_t vocab = static_cast<std::size_t>(model.config().vocab_size);
  KvCache cache = model.make_cache(context);
  std::vector<std::int32_t> window(c);
  double total = 0;
  for (std::size_t w = 0; w < windows; ++w) {
    std::copy(tokens.begin() + static_cast<std::ptrdiff_t>(w * c),
              tokens.begin() + static_cast<std::ptrdiff_t>((w + 1) * c), window.begin());
    cache.clear();
    const LlamaModel::Logits logits = model.forward(window, cache);
    for (std::size_t i = 0; i + 1 < c; ++i) {
      const double nll = token_nll(logits.data() + i * vocab, vocab, window[i + 1]);
      detail::require_format(std::isfinite(nll), "perplexity: non-finite logits in window ", w,
                             " at position ", i);
      total += nll;
    }
    if (progress) progress(w + 1, windows);
  }
  PerplexityResult r;
  r.windows = windows;
  r.predictions = windows * (c - 1);
  r.mean_nll = total / static_cast<double>(r.predictions);
  return r;
}

}  // namespace llama
}  // namespace mbok
