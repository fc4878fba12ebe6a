#pragma once
// Helpers for the llama tests: small random checkpoints built in memory (SafetensorsWriter ->
// bytes -> SafetensorsFile::from_memory) in F32, F16 or BF16, and an independent
// double-precision reference of the LLaMA decoder that shares no code with mbok::llama (its
// own RMSNorm, RoPE with its own inverse frequencies and llama3 scaling, attention and
// SwiGLU on std::vector<double>), reading the same tensor values.

#include <mbok/half.hpp>
#include <mbok/io/safetensors.hpp>
#include <mbok/llama/config.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace mbok::test {

using llama::LlamaConfig;

/// A small configuration; callers change fields.
inline LlamaConfig small_config() {
  LlamaConfig c;
  c.vocab_size = 50;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.max_position_embeddings = 128;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  return c;
}

/// The tensors of a checkpoint of `c` in HF naming with their shapes (written here, not
/// taken from the library).
inline std::vector<std::pair<std::string, std::vector<std::int64_t>>> checkpoint_shapes(
    const LlamaConfig& c) {
  std::vector<std::pair<std::string, std::vector<std::int64_t>>> out;
  const std::int64_t h = c.hidden_size, q = c.num_attention_heads * c.head_dim,
                     kv = c.num_key_value_heads * c.head_dim, f = c.intermediate_size;
  out.push_back({"model.embed_tokens.weight", {c.vocab_size, h}});
  for (std::int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    auto lin = [&](const std::string& n, std::int64_t rows, std::int64_t cols, bool bias) {
      out.push_back({p + n + ".weight", {rows, cols}});
      if (bias) out.push_back({p + n + ".bias", {rows}});
    };
    out.push_back({p + "input_layernorm.weight", {h}});
    lin("self_attn.q_proj", q, h, c.attention_bias);
    lin("self_attn.k_proj", kv, h, c.attention_bias);
    lin("self_attn.v_proj", kv, h, c.attention_bias);
    lin("self_attn.o_proj", h, q, c.attention_bias);
    out.push_back({p + "post_attention_layernorm.weight", {h}});
    lin("mlp.gate_proj", f, h, c.mlp_bias);
    lin("mlp.up_proj", f, h, c.mlp_bias);
    lin("mlp.down_proj", h, f, c.mlp_bias);
  }
  out.push_back({"model.norm.weight", {h}});
  if (!c.tie_word_embeddings) out.push_back({"lm_head.weight", {c.vocab_size, h}});
  return out;
}

/// A float tensor of `dtype` from values (rounded to the dtype).
inline Tensor make_tensor(DType dtype, std::vector<std::int64_t> shape,
                          const std::vector<float>& values) {
  Tensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  for (float v : values) {
    if (dtype == DType::f32) {
      std::uint8_t b[4];
      std::memcpy(b, &v, 4);
      t.bytes.insert(t.bytes.end(), b, b + 4);
    } else {
      const std::uint16_t u = dtype == DType::f16 ? float_to_f16(v) : float_to_bf16(v);
      t.bytes.push_back(static_cast<std::uint8_t>(u & 0xff));
      t.bytes.push_back(static_cast<std::uint8_t>(u >> 8));
    }
  }
  return t;
}

/// Random values of a tensor named `name` with `numel` elements: norms near 1, biases small,
/// the embedding N(0, 1), linear weights N(0, 1 / in) so activations stay O(1).
inline std::vector<float> random_values(const std::string& name,
                                        const std::vector<std::int64_t>& shape, std::mt19937& rng) {
  std::size_t numel = 1;
  for (auto d : shape) numel *= static_cast<std::size_t>(d);
  std::normal_distribution<float> n01(0.0f, 1.0f);
  std::vector<float> v(numel);
  const bool norm = name.find("norm") != std::string::npos;
  const bool bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
  const bool embed = name == "model.embed_tokens.weight";
  const float scale = norm    ? 0.1f
                      : bias  ? 0.1f
                      : embed ? 1.0f
                              : 1.0f / std::sqrt(float(shape.back()));
  for (float& x : v) x = (norm ? 1.0f : 0.0f) + scale * n01(rng);
  return v;
}

/// A checkpoint in memory: its bytes and the validated file over them.
struct Checkpoint {
  LlamaConfig config;
  std::shared_ptr<std::vector<std::uint8_t>> bytes;
  std::optional<SafetensorsFile> file;

  const TensorView* find(const std::string& name) const { return file->find(name); }
  /// The lookup `LlamaModel::from_tensors` takes.
  std::function<const TensorView*(const std::string&)> lookup() const {
    return [this](const std::string& n) { return file->find(n); };
  }
};

/// Bytes of a safetensors file of `tensors`, mapped as a `Checkpoint`.
inline Checkpoint checkpoint_from(const LlamaConfig& c,
                                  const std::map<std::string, Tensor>& tensors) {
  SafetensorsWriter w;
  for (const auto& [name, t] : tensors) w.add(name, t);
  Checkpoint ck;
  ck.config = c;
  ck.bytes = std::make_shared<std::vector<std::uint8_t>>(w.to_bytes());
  ck.file =
      SafetensorsFile::from_memory(ck.bytes->data(), ck.bytes->size(), ck.bytes, "test checkpoint");
  return ck;
}

/// The random tensors of a checkpoint of `c` (values rounded to `dtype`).
inline std::map<std::string, Tensor> random_tensors(const LlamaConfig& c, DType dtype,
                                                    std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::map<std::string, Tensor> out;
  for (const auto& [name, shape] : checkpoint_shapes(c))
    out[name] = make_tensor(dtype, shape, random_values(name, shape, rng));
  return out;
}

inline Checkpoint random_checkpoint(const LlamaConfig& c, DType dtype, std::uint32_t seed) {
  return checkpoint_from(c, random_tensors(c, dtype, seed));
}

/// Random token ids below `vocab`.
inline std::vector<std::int32_t> random_tokens(std::size_t n, std::int64_t vocab,
                                               std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<std::int32_t> d(0, static_cast<std::int32_t>(vocab - 1));
  std::vector<std::int32_t> out(n);
  for (auto& t : out) t = d(rng);
  return out;
}

// ---- the double-precision reference ----------------------------------------------------------

using DMat = std::vector<std::vector<double>>;  // rows x cols

/// The reference decoder over tensors looked up by HF name (values read in double).
class ReferenceLlama {
 public:
  ReferenceLlama(LlamaConfig c, std::function<const TensorView*(const std::string&)> lookup)
      : c_(std::move(c)), lookup_(std::move(lookup)) {}

  /// Logits (T x vocab) of the whole sequence, recomputed from scratch.
  DMat logits(const std::vector<std::int32_t>& tokens) const {
    const std::size_t T = tokens.size(), H = std::size_t(c_.hidden_size);
    DMat x(T, std::vector<double>(H));
    const auto emb = values("model.embed_tokens.weight");
    for (std::size_t i = 0; i < T; ++i)
      for (std::size_t j = 0; j < H; ++j) x[i][j] = emb[std::size_t(tokens[i]) * H + j];
    for (std::int64_t l = 0; l < c_.num_hidden_layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      DMat hn = rms(x, values(p + "input_layernorm.weight"));
      DMat q = linear(hn, p + "self_attn.q_proj", c_.attention_bias);
      DMat k = linear(hn, p + "self_attn.k_proj", c_.attention_bias);
      DMat v = linear(hn, p + "self_attn.v_proj", c_.attention_bias);
      rope(q, c_.num_attention_heads);
      rope(k, c_.num_key_value_heads);
      DMat a = attention(q, k, v);
      add(x, linear(a, p + "self_attn.o_proj", c_.attention_bias));
      hn = rms(x, values(p + "post_attention_layernorm.weight"));
      DMat g = linear(hn, p + "mlp.gate_proj", c_.mlp_bias);
      const DMat u = linear(hn, p + "mlp.up_proj", c_.mlp_bias);
      for (std::size_t i = 0; i < T; ++i)
        for (std::size_t j = 0; j < g[i].size(); ++j)
          g[i][j] = g[i][j] / (1.0 + std::exp(-g[i][j])) * u[i][j];
      add(x, linear(g, p + "mlp.down_proj", c_.mlp_bias));
    }
    const DMat hn = rms(x, values("model.norm.weight"));
    return matmul_t(hn,
                    values(c_.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight"),
                    std::size_t(c_.vocab_size));
  }

  /// Inverse frequencies, written from HF's formulas (default, linear, llama3).
  std::vector<double> inv_freq() const {
    const std::size_t d = std::size_t(c_.head_dim);
    std::vector<double> f(d / 2);
    const double pi = std::acos(-1.0);
    for (std::size_t i = 0; i < d / 2; ++i) {
      f[i] = 1.0 / std::pow(c_.rope_theta, double(2 * i) / double(d));
      const auto& s = c_.rope_scaling;
      if (s.type == llama::RopeScaling::Type::linear) f[i] /= s.factor;
      if (s.type == llama::RopeScaling::Type::llama3) {
        const double old_ctx = double(s.original_max_position_embeddings);
        const double wavelen = 2 * pi / f[i];
        const double scaled = wavelen > old_ctx / s.low_freq_factor ? f[i] / s.factor : f[i];
        const double smooth =
            (old_ctx / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        const bool medium =
            !(wavelen < old_ctx / s.high_freq_factor) && !(wavelen > old_ctx / s.low_freq_factor);
        f[i] = medium ? (1 - smooth) * scaled / s.factor + smooth * scaled : scaled;
      }
    }
    return f;
  }

 private:
  std::vector<double> values(const std::string& name) const {
    const TensorView* t = lookup_(name);
    if (t == nullptr) throw std::runtime_error("reference: no tensor " + name);
    std::vector<double> v(t->numel());
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = t->element(i);
    return v;
  }
  // x (T x n) W^T for W (m x n, row-major).
  static DMat matmul_t(const DMat& x, const std::vector<double>& w, std::size_t m) {
    const std::size_t n = w.size() / m;
    DMat y(x.size(), std::vector<double>(m, 0.0));
    for (std::size_t i = 0; i < x.size(); ++i)
      for (std::size_t r = 0; r < m; ++r) {
        double s = 0;
        for (std::size_t j = 0; j < n; ++j) s += x[i][j] * w[r * n + j];
        y[i][r] = s;
      }
    return y;
  }
  DMat linear(const DMat& x, const std::string& name, bool bias) const {
    const TensorView* t = lookup_(name + ".weight");
    if (t == nullptr) throw std::runtime_error("reference: no tensor " + name);
    DMat y = matmul_t(x, values(name + ".weight"), std::size_t(t->shape[0]));
    if (bias) {
      const auto b = values(name + ".bias");
      for (auto& row : y)
        for (std::size_t j = 0; j < row.size(); ++j) row[j] += b[j];
    }
    return y;
  }
  DMat rms(const DMat& x, const std::vector<double>& w) const {
    DMat y = x;
    for (auto& row : y) {
      double ss = 0;
      for (double v : row) ss += v * v;
      const double r = 1.0 / std::sqrt(ss / double(row.size()) + c_.rms_norm_eps);
      for (std::size_t j = 0; j < row.size(); ++j) row[j] = row[j] * r * w[j];
    }
    return y;
  }
  static void add(DMat& x, const DMat& y) {
    for (std::size_t i = 0; i < x.size(); ++i)
      for (std::size_t j = 0; j < x[i].size(); ++j) x[i][j] += y[i][j];
  }
  void rope(DMat& x, std::int64_t heads) const {
    const std::size_t d = std::size_t(c_.head_dim), half = d / 2;
    const auto f = inv_freq();
    for (std::size_t pos = 0; pos < x.size(); ++pos)
      for (std::size_t h = 0; h < std::size_t(heads); ++h) {
        double* v = x[pos].data() + h * d;
        std::vector<double> rot(d);
        for (std::size_t i = 0; i < d; ++i) {
          const double a = double(pos) * f[i % half];
          const double rh = i < half ? -v[i + half] : v[i - half];  // rotate_half: cat(-x2, x1)
          rot[i] = v[i] * std::cos(a) + rh * std::sin(a);
        }
        std::copy(rot.begin(), rot.end(), v);
      }
  }
  DMat attention(const DMat& q, const DMat& k, const DMat& v) const {
    const std::size_t T = q.size(), d = std::size_t(c_.head_dim),
                      H = std::size_t(c_.num_attention_heads);
    const std::size_t group = H / std::size_t(c_.num_key_value_heads);
    DMat out(T, std::vector<double>(H * d, 0.0));
    for (std::size_t h = 0; h < H; ++h) {
      const std::size_t g = h / group;
      for (std::size_t i = 0; i < T; ++i) {
        std::vector<double> s;
        std::vector<std::size_t> js;
        for (std::size_t j = 0; j <= i; ++j) {
          if (c_.sliding_window > 0 && i - j >= std::size_t(c_.sliding_window)) continue;
          double dot = 0;
          for (std::size_t e = 0; e < d; ++e) dot += q[i][h * d + e] * k[j][g * d + e];
          s.push_back(dot / std::sqrt(double(d)));
          js.push_back(j);
        }
        const double mx = *std::max_element(s.begin(), s.end());
        double sum = 0;
        for (double& e : s) sum += (e = std::exp(e - mx));
        for (std::size_t n = 0; n < js.size(); ++n)
          for (std::size_t e = 0; e < d; ++e) out[i][h * d + e] += s[n] / sum * v[js[n]][g * d + e];
      }
    }
    return out;
  }

  LlamaConfig c_;
  std::function<const TensorView*(const std::string&)> lookup_;
};

/// max |a - b| / max |b| over all entries (a: the model's float logits, b: the reference).
template <typename Logits>
double max_relative_error(const Logits& a, const DMat& b) {
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < b.size(); ++i)
    for (std::size_t j = 0; j < b[i].size(); ++j) {
      diff = std::max(diff, std::abs(double(a(Eigen::Index(i), Eigen::Index(j))) - b[i][j]));
      scale = std::max(scale, std::abs(b[i][j]));
    }
  return diff / scale;
}

/// Perplexity of the sequence under logits (row i predicts token i + 1), in double.
template <typename Get>
double perplexity(std::size_t rows, std::size_t vocab, const std::vector<std::int32_t>& tokens,
                  Get&& logit) {
  double nll = 0;
  for (std::size_t i = 0; i + 1 < rows; ++i) {
    double mx = -1e300;
    for (std::size_t j = 0; j < vocab; ++j) mx = std::max(mx, double(logit(i, j)));
    double sum = 0;
    for (std::size_t j = 0; j < vocab; ++j) sum += std::exp(double(logit(i, j)) - mx);
    nll -= double(logit(i, std::size_t(tokens[i + 1]))) - mx - std::log(sum);
  }
  return std::exp(nll / double(rows - 1));
}

}  // namespace mbok::test
