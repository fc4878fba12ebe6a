#pragma once
// Helpers for the llama_train tests: small random LLaMA models built in memory, and a
// central finite-difference check over named parameters.

#include <mbok/llama/train/train.hpp>

#include <Eigen/Core>

#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace mbok::test {

using llama::LinearLayer;
using llama::LlamaConfig;
using llama::LlamaModel;

inline LlamaConfig tiny_train_config() {
  LlamaConfig c;
  c.vocab_size = 23;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 6;
  c.max_position_embeddings = 64;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 100.0;
  return c;
}

/// A random float model of `c` (N(0, std) weights, norms near 1).
inline LlamaModel random_model(const LlamaConfig& c, std::uint64_t seed, float std = 0.3f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> n(0.0f, std);
  auto mat = [&](std::int64_t r, std::int64_t k) {
    llama::RowMatrix m(r, k);
    for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = n(rng);
    return m;
  };
  auto vec = [&](std::int64_t size, float base, float spread) {
    Eigen::VectorXf v(size);
    for (Eigen::Index i = 0; i < v.size(); ++i) v[i] = base + spread * n(rng);
    return v;
  };
  const std::int64_t h = c.hidden_size, q = c.q_size(), kv = c.kv_size(), f = c.intermediate_size;
  std::vector<llama::LlamaBlock> blocks(static_cast<std::size_t>(c.num_hidden_layers));
  for (std::size_t l = 0; l < blocks.size(); ++l) {
    auto& b = blocks[l];
    b.input_layernorm = vec(h, 1.0f, 0.3f);
    b.post_attention_layernorm = vec(h, 1.0f, 0.3f);
    auto lin = [&](const char* name, std::int64_t out, std::int64_t in, bool bias) {
      return LinearLayer::dense(mat(out, in), bias ? vec(out, 0.0f, 1.0f) : Eigen::VectorXf(),
                                llama::block_linear_name(std::int64_t(l), name));
    };
    b.q_proj = lin("self_attn.q_proj", q, h, c.attention_bias);
    b.k_proj = lin("self_attn.k_proj", kv, h, c.attention_bias);
    b.v_proj = lin("self_attn.v_proj", kv, h, c.attention_bias);
    b.o_proj = lin("self_attn.o_proj", h, q, c.attention_bias);
    b.gate_proj = lin("mlp.gate_proj", f, h, c.mlp_bias);
    b.up_proj = lin("mlp.up_proj", f, h, c.mlp_bias);
    b.down_proj = lin("mlp.down_proj", h, f, c.mlp_bias);
  }
  llama::RowMatrix emb = mat(c.vocab_size, h);
  llama::RowMatrix head;
  if (!c.tie_word_embeddings) head = mat(c.vocab_size, h);
  return LlamaModel(c, std::move(emb), std::move(blocks), vec(h, 1.0f, 0.2f), std::move(head));
}

inline std::vector<std::int32_t> random_tokens(std::size_t n, std::int64_t vocab,
                                               std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::int32_t> t(n);
  for (auto& x : t) x = static_cast<std::int32_t>(rng() % static_cast<std::uint64_t>(vocab));
  return t;
}

/// Largest |analytic - numeric| / max(1, |numeric|) over up to `samples` elements of each
/// parameter, with central differences of step `h`; `loss()` recomputes the loss.
inline double max_gradient_error(std::vector<BasicParameter<double>>& params,
                                 const std::function<double()>& loss, std::size_t samples = 6,
                                 double h = 1e-5, std::string* worst = nullptr) {
  double err = 0;
  std::mt19937_64 rng(5);
  for (auto& p : params) {
    for (std::size_t s = 0; s < std::min(samples, p.size); ++s) {
      const std::size_t i = samples >= p.size ? s : static_cast<std::size_t>(rng() % p.size);
      const double analytic = p.grad[i];
      const double old = p.value[i];
      p.value[i] = old + h;
      const double up = loss();
      p.value[i] = old - h;
      const double down = loss();
      p.value[i] = old;
      const double numeric = (up - down) / (2 * h);
      const double e = std::abs(analytic - numeric) / std::max(1.0, std::abs(numeric));
      if (e > err) {
        err = e;
        if (worst)
          *worst = p.name + "[" + std::to_string(i) + "] analytic " + std::to_string(analytic) +
                   " numeric " + std::to_string(numeric);
      }
    }
  }
  return err;
}

}  // namespace mbok::test
