#include "generate.hpp"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace tiny {

std::string generate(Transformer<float>& model, const std::string& prompt, int count,
                     double temperature, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  const Index ctx = model.config().context;
  std::string text = prompt.empty() ? std::string("\n") : prompt;
  auto state = model.start_decoding();
  Vec<float> logits;
  auto feed_window = [&]() {
    state = model.start_decoding();
    const std::size_t keep = std::min<std::size_t>(text.size(), std::size_t(ctx / 2));
    for (std::size_t i = text.size() - keep; i < text.size(); ++i)
      model.decode_step(state, std::uint8_t(text[i]), logits);
  };
  feed_window();
  std::vector<double> p(kVocab);
  for (int i = 0; i < count; ++i) {
    int next = 0;
    if (temperature <= 0) {
      logits.maxCoeff(&next);
    } else {
      const double mx = double(logits.maxCoeff());
      for (Index j = 0; j < kVocab; ++j)
        p[std::size_t(j)] = std::exp((double(logits(j)) - mx) / temperature);
      next = std::discrete_distribution<int>(p.begin(), p.end())(rng);
    }
    text.push_back(char(next));
    if (state.length == ctx)
      feed_window();
    else
      model.decode_step(state, std::uint8_t(next), logits);
  }
  return text.substr(prompt.empty() ? 1 : prompt.size());
}

}  // namespace tiny
