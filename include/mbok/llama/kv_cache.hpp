#pragma once
/// \file
/// `KvCache`: the keys (rotated) and values of every layer for the tokens a sequence has seen,
/// preallocated for `max_tokens`, plus the scratch buffers a forward reuses (so a decode step
/// allocates nothing). One cache per sequence; a model's `forward` on distinct caches may run
/// concurrently.
///
/// Layout: per layer and kv head, `max_tokens` rows of head_dim floats (keys and values
/// apart), so attention for one kv head streams its keys and values contiguously.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../error.hpp"
#include "../forward_int8.hpp"
#include "config.hpp"

namespace mbok {
namespace llama {

class LlamaModel;

namespace internal {
// Buffers one forward call uses; they only grow, so steady decoding allocates nothing.
struct ForwardScratch {
  std::vector<float> x, h, q, k, v, attn, gate, up, out, rope;
  std::vector<std::vector<float>> scores;  // one per attention chunk
  Int8ForwardWorkspace int8;
  static float* ensure(std::vector<float>& b, std::size_t n) {
    if (b.size() < n) b.resize(n);
    return b.data();
  }
};
}  // namespace internal

/// Keys and values of one sequence (see the file comment). Movable and copyable (a copy
/// forks the sequence).
class KvCache {
 public:
  KvCache() = default;
  /// A cache for `max_tokens` positions of a model shaped like `config` (all memory taken
  /// now: 2 * layers * max_tokens * kv_heads * head_dim floats). Throws `InvalidArgument`
  /// for max_tokens <= 0.
  KvCache(const LlamaConfig& config, std::int64_t max_tokens)
      : layers_(static_cast<std::size_t>(config.num_hidden_layers)),
        kv_heads_(static_cast<std::size_t>(config.num_key_value_heads)),
        head_dim_(static_cast<std::size_t>(config.head_dim)) {
    mbok::detail::require(max_tokens > 0, "llama KvCache: max_tokens must be positive, got ",
                          max_tokens);
    capacity_ = static_cast<std::size_t>(max_tokens);
    const std::size_t n = layers_ * kv_heads_ * capacity_ * head_dim_;
    keys_.assign(n, 0.0f);
    values_.assign(n, 0.0f);
  }

  /// Tokens held (the position of the next token).
  std::int64_t length() const noexcept { return static_cast<std::int64_t>(length_); }
  /// Tokens it can hold.
  std::int64_t max_tokens() const noexcept { return static_cast<std::int64_t>(capacity_); }
  std::size_t num_layers() const noexcept { return layers_; }
  std::size_t num_kv_heads() const noexcept { return kv_heads_; }
  std::size_t head_dim() const noexcept { return head_dim_; }
  /// Bytes of keys and values held for the current length (what attention reads per token).
  std::size_t used_bytes() const noexcept {
    return 2 * layers_ * kv_heads_ * length_ * head_dim_ * sizeof(float);
  }

  /// Forgets every token (keeps the memory).
  void clear() noexcept { length_ = 0; }
  /// Keeps the first `n` tokens (n <= length()), e.g. to rewind after a rejected draft.
  void truncate(std::int64_t n) {
    mbok::detail::require(n >= 0 && static_cast<std::size_t>(n) <= length_,
                          "llama KvCache: cannot truncate ", length_, " tokens to ", n);
    length_ = static_cast<std::size_t>(n);
  }

  /// Keys of `layer`, kv head `g`: max_tokens rows of head_dim floats (rows < length() valid).
  float* keys(std::size_t layer, std::size_t g) noexcept { return keys_.data() + offset(layer, g); }
  const float* keys(std::size_t layer, std::size_t g) const noexcept {
    return keys_.data() + offset(layer, g);
  }
  /// Values, laid out as the keys.
  float* values(std::size_t layer, std::size_t g) noexcept {
    return values_.data() + offset(layer, g);
  }
  const float* values(std::size_t layer, std::size_t g) const noexcept {
    return values_.data() + offset(layer, g);
  }

 private:
  friend class LlamaModel;
  std::size_t offset(std::size_t layer, std::size_t g) const noexcept {
    return (layer * kv_heads_ + g) * capacity_ * head_dim_;
  }
  void set_length(std::size_t n) noexcept { length_ = n; }

  std::size_t layers_ = 0, kv_heads_ = 0, head_dim_ = 0, capacity_ = 0, length_ = 0;
  std::vector<float> keys_, values_;
  internal::ForwardScratch scratch_;
};

}  // namespace llama
}  // namespace mbok
