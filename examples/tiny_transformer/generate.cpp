#include "generate.hpp"

#include <algorithm>
#include <vector>

namespace tiny {

std::string generate(const mbok::llama::LlamaModel& model, const mbok::Tokenizer& tokenizer,
                     const std::string& prompt, int count, mbok::llama::Sampler& sampler) {
  const auto ctx = std::size_t(model.config().max_position_embeddings);
  const auto vocab = std::size_t(model.config().vocab_size);
  std::vector<std::int32_t> history = tokenizer.encode(prompt.empty() ? std::string("\n") : prompt);
  if (history.size() > ctx / 2)
    history.erase(history.begin(), history.end() - std::ptrdiff_t(ctx / 2));
  history.reserve(history.size() + std::size_t(count));
  mbok::llama::KvCache cache = model.make_cache(std::int64_t(ctx));
  std::vector<float> logits(vocab);
  model.forward_last(history.data(), history.size(), cache, logits.data());
  mbok::DecodeStream stream(tokenizer);
  std::string text;
  for (int i = 0; i < count; ++i) {
    const std::int32_t next = sampler.sample(logits.data(), vocab);
    history.push_back(next);
    text += stream.push(next);
    if (std::size_t(cache.length()) == ctx) {
      cache.clear();
      const std::size_t keep = ctx / 2;
      model.forward_last(history.data() + history.size() - keep, keep, cache, logits.data());
    } else {
      model.forward_last(&history.back(), 1, cache, logits.data());
    }
  }
  return text + stream.flush();
}

}  // namespace tiny
