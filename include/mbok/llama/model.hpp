#pragma once
/// \file
/// `LlamaModel`: the decoder HF's `LlamaForCausalLM` computes (inference), on mbok layers.
///
///     x = embed(tokens)
///     per block:  x += o(attn(rope(q(rms1(x))), rope(k(rms1(x))), v(rms1(x))))
///                 x += down(silu(gate(rms2(x))) * up(rms2(x)))
///     logits = head(rms(x))            (head = lm_head.weight, or the embedding when tied)
///
/// with grouped-query causal attention (rope.hpp, attention.hpp), RMSNorm (rms_norm.hpp), and
/// every block projection a `LinearLayer` (linear.hpp): dense float (the teacher) or
/// `BooleanLinear<float>` on its int8 or float path (`ModelOptions::activations`). Embedding
/// and norms are float; the head is float or, with `ModelOptions::head = HeadFormat::int8`,
/// int8 with one scale per row (`Int8Matrix`). Keys and values live in a `KvCache` (kv_cache.hpp):
/// one `forward` over t tokens runs each linear layer once on a t x in matrix (prefill), and a
/// forward of one token is a decode step that allocates nothing once its cache has seen one.
///
/// Training later: `forward` can return the residual stream after every block
/// (`hidden_states`) for a hidden-state loss against the teacher; a backward pass would keep
/// each block's inputs (the normed activations, q/k/v, attention probabilities, gate/up) per
/// call in a tape beside the cache and run `BooleanLinear::backward` on the Boolean layers.
/// Not implemented here.
///
/// Needs nlohmann/json (config.hpp, io/).

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../boolean_linear.hpp"
#include "../detail/base/finite.hpp"
#include "../error.hpp"
#include "../int8_matrix.hpp"
#include "../io/mbok_format.hpp"
#include "../io/mbok_linear.hpp"
#include "../io/safetensors.hpp"
#include "../parallel.hpp"
#include "../products.hpp"
#include "attention.hpp"
#include "config.hpp"
#include "embedding.hpp"
#include "kv_cache.hpp"
#include "linear.hpp"
#include "rms_norm.hpp"
#include "rope.hpp"

namespace mbok {
namespace llama {

/// How the output head is held. `float32`: as loaded. `int8`: quantized per row at load
/// (`Int8Matrix`, |error| <= half a step of the row's scale max|w| / 127), one byte per weight
/// instead of four; in a Boolean model the float head is otherwise the largest read of a
/// decode step (a 7B-shaped K=2 model reads 1.7 GB of kernels and 0.5 GB of float head). An
/// untied float head is released once quantized.
enum class HeadFormat { float32, int8 };

/// How a model runs.
struct ModelOptions {
  /// Activations of the Boolean layers (dense layers always run in float).
  Activations activations = Activations::float32;
  /// The output head's weights in memory (see `HeadFormat`).
  HeadFormat head = HeadFormat::float32;
};

/// One decoder block: its two norms' weights and seven projections.
struct LlamaBlock {
  Eigen::VectorXf input_layernorm, post_attention_layernorm;
  LinearLayer q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj;

  /// The projections in HF's order (q, k, v, o, gate, up, down).
  std::vector<const LinearLayer*> linears() const {
    return {&q_proj, &k_proj, &v_proj, &o_proj, &gate_proj, &up_proj, &down_proj};
  }
};

/// Sizes of a model, for reports.
struct ModelFootprint {
  /// Bytes of weights one decoded token reads: every block projection (bits + scales, or
  /// dense floats), the norms, the float head and one embedding row. The KV cache comes on
  /// top (`KvCache::used_bytes()`).
  std::size_t bytes_per_token = 0;
  /// Bytes of weights held (embedding and head once when tied; a borrowed embedding table
  /// counts one row).
  std::size_t resident_bytes = 0;
  std::size_t boolean_parameters = 0;      ///< weights of Boolean projections
  std::size_t dense_block_parameters = 0;  ///< weights of dense (float) projections
  std::size_t float_parameters = 0;        ///< embedding, norms, head (untied), biases
  std::size_t boolean_layers = 0, dense_layers = 0;
};

/// HF's name of projection `which` ("self_attn.q_proj", "mlp.down_proj", ...) of block `layer`,
/// without ".weight".
inline std::string block_linear_name(std::int64_t layer, const std::string& which) {
  return "model.layers." + std::to_string(layer) + "." + which;
}

/// The LLaMA decoder (see the file comment). `forward` is const: calls with distinct caches
/// may run concurrently. Copies share the weights.
class LlamaModel {
 public:
  using Logits = RowMatrix;  ///< tokens x vocab, row-major
  /// Returns the tensor of a HF name, or nullptr when there is none.
  using TensorLookup = std::function<const TensorView*(const std::string&)>;

  LlamaModel() = default;

  /// A model from its parts: `embedding` vocab x hidden, `blocks` (num_hidden_layers),
  /// `final_norm` hidden, `lm_head` vocab x hidden or empty when `config.tie_word_embeddings`.
  /// Throws `InvalidArgument` naming the part whose shape disagrees with `config`.
  LlamaModel(LlamaConfig config, RowMatrix embedding, std::vector<LlamaBlock> blocks,
             Eigen::VectorXf final_norm, RowMatrix lm_head)
      : LlamaModel(std::move(config), EmbeddingTable(std::move(embedding)), std::move(blocks),
                   std::move(final_norm), std::move(lm_head)) {}
  /// The same with the embeddings as an `EmbeddingTable` (borrowed from a file only when
  /// untied: a tied table is the float head too).
  LlamaModel(LlamaConfig config, EmbeddingTable embedding, std::vector<LlamaBlock> blocks,
             Eigen::VectorXf final_norm, RowMatrix lm_head)
      : config_(std::move(config)),
        embedding_(std::move(embedding)),
        blocks_(std::move(blocks)),
        final_norm_(std::move(final_norm)),
        lm_head_(std::move(lm_head)) {
    config_.validate();
    rope_ = Rope(config_);
    check_parts();
  }

  /// The dense float model (the teacher) from tensors with HF names (see `block_linear_name`;
  /// model.embed_tokens.weight, model.layers.{i}.{input,post_attention}_layernorm.weight,
  /// model.norm.weight, lm_head.weight unless tied, `.bias` of the projections when
  /// configured), of dtype F32, F16, BF16 or F64, converted to float. Throws `FormatError`
  /// naming a missing tensor, one of another dtype, a shape that disagrees with the config
  /// (both shapes named) or non-finite values.
  static LlamaModel from_tensors(const LlamaConfig& config, const TensorLookup& lookup,
                                 const ModelOptions& options = {}) {
    config.validate();
    Loader in{config, lookup, "llama"};
    std::vector<LlamaBlock> blocks(static_cast<std::size_t>(config.num_hidden_layers));
    for (std::int64_t l = 0; l < config.num_hidden_layers; ++l) {
      LlamaBlock& b = blocks[static_cast<std::size_t>(l)];
      in.norms(l, b);
      for (auto& [which, layer] : projections(b)) {
        const std::string name = block_linear_name(l, which);
        layer = in.dense_linear(name);
      }
    }
    return in.finish(std::move(blocks), options);
  }

  /// A converted model from an mbok file: layers named by the HF tensor name minus ".weight"
  /// (e.g. "model.layers.0.self_attn.q_proj") become `BooleanLinear` layers (kernels borrowed
  /// from a mapped file, run with `options.activations`); a block projection that is not a
  /// layer is read as a dense tensor "<name>.weight"; every other tensor by its HF name. The
  /// configuration is the metadata key "config.json" (the JSON of `LlamaConfig::to_json()`).
  /// A Boolean layer's bias is its own (the file's layer record) or the tensor "<name>.bias".
  /// Throws `FormatError` naming a missing config, layer or tensor, a shape that disagrees
  /// with the config, or a bias the config does not have.
  static LlamaModel from_mbok(const MbokModel& file, const ModelOptions& options = {}) {
    const std::string source = "mbok file '" + file.file().source() + "'";
    const auto it = file.file().metadata().find("config.json");
    mbok::detail::require_format(it != file.file().metadata().end(), source,
                                 ": no metadata \"config.json\" (the model's LlamaConfig)");
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(it->second);
    } catch (const nlohmann::json::exception& e) {
      throw FormatError("mbok: " + source + ": metadata \"config.json\" is not JSON (" + e.what() +
                        ")");
    }
    const LlamaConfig config = LlamaConfig::from_json(j, source + " config.json");
    const SafetensorsFile& st = file.file();
    Loader in{config, [&st](const std::string& n) { return st.find(n); }, source, st.owner()};
    std::vector<LlamaBlock> blocks(static_cast<std::size_t>(config.num_hidden_layers));
    for (std::int64_t l = 0; l < config.num_hidden_layers; ++l) {
      LlamaBlock& b = blocks[static_cast<std::size_t>(l)];
      in.norms(l, b);
      for (auto& [which, layer] : projections(b)) {
        const std::string name = block_linear_name(l, which);
        std::string layer_name = name;
        if (!file.has_layer(layer_name) && file.has_layer(name + ".weight"))
          layer_name = name + ".weight";
        if (file.has_layer(layer_name))
          layer = in.boolean_linear(file, layer_name, name, options.activations);
        else
          layer = in.dense_linear(name, " (neither an mbok layer nor a tensor)");
      }
    }
    return in.finish(std::move(blocks), options);
  }

  const LlamaConfig& config() const noexcept { return config_; }
  const std::vector<LlamaBlock>& blocks() const noexcept { return blocks_; }
  /// The token embeddings as floats (a copy; `embedding_table()` reads rows without one).
  RowMatrix embedding() const { return embedding_.matrix(); }
  const EmbeddingTable& embedding_table() const noexcept { return embedding_; }
  const Eigen::VectorXf& final_norm() const noexcept { return final_norm_; }
  /// The float output head (vocab x hidden): lm_head, or the embedding when tied. Throws
  /// `InvalidArgument` when an untied head was quantized (`quantize_head`) and released.
  const RowMatrix& head() const {
    mbok::detail::require(config_.tie_word_embeddings || lm_head_.size() != 0,
                          "llama model: the float head was released when it was quantized to "
                          "int8 (ModelOptions::head)");
    return config_.tie_word_embeddings ? embedding_.floats() : lm_head_;
  }
  /// The int8 head, or nullptr when the head runs in float.
  const Int8Matrix* int8_head() const noexcept { return head_i8_.get(); }

  /// Holds the head as int8 from now on (`HeadFormat::int8`); an untied float head is
  /// released. Idempotent. Copies made before keep their own float head.
  void quantize_head() {
    if (head_i8_) return;
    const RowMatrix& w = config_.tie_word_embeddings ? embedding_.floats() : lm_head_;
    head_i8_ = std::make_shared<const Int8Matrix>(Int8Matrix::quantize(
        w.data(), static_cast<std::size_t>(w.rows()), static_cast<std::size_t>(w.cols()),
        static_cast<std::size_t>(w.cols())));
    if (!config_.tie_word_embeddings) lm_head_ = RowMatrix();
  }

  /// An empty cache for up to `max_tokens` positions of this model.
  KvCache make_cache(std::int64_t max_tokens) const { return KvCache(config_, max_tokens); }

  /// Logits (t x vocab) of `tokens` appended after what `cache` holds (positions
  /// cache.length() ..), and the cache updated. When `hidden_states` is given it receives
  /// num_hidden_layers + 1 matrices (t x hidden): the embeddings, then the residual stream
  /// after each block (before the final norm). Throws `InvalidArgument` for a token id out of
  /// [0, vocab_size), a cache of another shape, or a context overflow (cache.length() + t >
  /// cache.max_tokens()); the cache is unchanged then.
  Logits forward(const std::vector<std::int32_t>& tokens, KvCache& cache,
                 std::vector<RowMatrix>* hidden_states = nullptr) const {
    Logits logits(static_cast<Eigen::Index>(tokens.size()),
                  static_cast<Eigen::Index>(config_.vocab_size));
    run(tokens.data(), tokens.size(), cache, logits.data(), false, hidden_states);
    return logits;
  }

  /// Logits of the last of `tokens` only (vocab entries): decode, and the end of a prefill
  /// (the head runs on one row). Errors as `forward`; `tokens` must not be empty.
  Eigen::VectorXf forward_last(const std::vector<std::int32_t>& tokens, KvCache& cache) const {
    Eigen::VectorXf logits(static_cast<Eigen::Index>(config_.vocab_size));
    forward_last(tokens.data(), tokens.size(), cache, logits.data());
    return logits;
  }
  /// The same into `logits` (vocab floats), allocating nothing once `cache` has seen t tokens.
  void forward_last(const std::int32_t* tokens, std::size_t t, KvCache& cache,
                    float* logits) const {
    mbok::detail::require(t > 0, "llama forward_last: no tokens");
    mbok::detail::require(logits != nullptr, "llama forward_last: null logits");
    run(tokens, t, cache, logits, true, nullptr);
  }

  /// Sizes for reports (see `ModelFootprint`).
  ModelFootprint footprint() const {
    ModelFootprint f;
    const std::size_t h = static_cast<std::size_t>(config_.hidden_size),
                      v = static_cast<std::size_t>(config_.vocab_size);
    std::size_t norms = h;
    for (const LlamaBlock& b : blocks_) {
      norms += 2 * h;
      for (const LinearLayer* l : b.linears()) {
        f.bytes_per_token += l->weight_bytes();
        f.resident_bytes += l->weight_bytes();
        if (l->is_boolean()) {
          f.boolean_parameters += l->parameters();
          ++f.boolean_layers;
          if (l->has_bias()) f.float_parameters += l->out_features();
        } else {
          f.dense_block_parameters += l->parameters();
          ++f.dense_layers;
          f.float_parameters += static_cast<std::size_t>(l->dense_bias().size());
        }
      }
    }
    f.float_parameters += norms + v * h * (config_.tie_word_embeddings ? 1 : 2);
    const std::size_t float_head = head_i8_ ? 0 : v * h;
    f.bytes_per_token += (norms + float_head + h) * sizeof(float);
    // A borrowed embedding table holds only the pages of the rows read (one row per token).
    f.resident_bytes += (norms + (config_.tie_word_embeddings ? 0 : float_head) +
                         (embedding_.is_borrowed() ? h : 0)) *
                            sizeof(float) +
                        embedding_.owned_bytes();
    if (head_i8_) {
      f.bytes_per_token += head_i8_->bytes();
      f.resident_bytes += head_i8_->bytes();
    }
    return f;
  }

 private:
  // The seven projections of a block with their HF names (relative to the block).
  static std::vector<std::pair<std::string, LinearLayer&>> projections(LlamaBlock& b) {
    return {{"self_attn.q_proj", b.q_proj}, {"self_attn.k_proj", b.k_proj},
            {"self_attn.v_proj", b.v_proj}, {"self_attn.o_proj", b.o_proj},
            {"mlp.gate_proj", b.gate_proj}, {"mlp.up_proj", b.up_proj},
            {"mlp.down_proj", b.down_proj}};
  }

  // [out, in] of projection `which` ("self_attn.q_proj", ...) and whether it has a bias.
  static std::pair<std::vector<std::int64_t>, bool> projection_shape(const LlamaConfig& c,
                                                                     const std::string& name) {
    const std::int64_t h = c.hidden_size, q = c.q_size(), kv = c.kv_size(), f = c.intermediate_size;
    auto ends = [&](const char* s) {
      const std::string suffix(s);
      return name.size() >= suffix.size() &&
             name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    if (ends("q_proj")) return {{q, h}, c.attention_bias};
    if (ends("k_proj") || ends("v_proj")) return {{kv, h}, c.attention_bias};
    if (ends("o_proj")) return {{h, q}, c.attention_bias};
    if (ends("gate_proj") || ends("up_proj")) return {{f, h}, c.mlp_bias};
    return {{h, f}, c.mlp_bias};  // down_proj
  }

  // Reads tensors by HF name, checked against the config.
  struct Loader {
    const LlamaConfig& config;
    TensorLookup lookup;
    std::string source;
    // Keeps the tensors' bytes alive when they may be borrowed (an mbok file), or null.
    std::shared_ptr<const void> owner = nullptr;

    const TensorView& tensor(const std::string& name, const std::vector<std::int64_t>& shape,
                             const char* missing_note = "") const {
      const TensorView* t = lookup(name);
      mbok::detail::require_format(t != nullptr, source, ": missing tensor '", name, "'",
                                   missing_note);
      mbok::detail::require_format(t->dtype == DType::f32 || t->dtype == DType::f16 ||
                                       t->dtype == DType::bf16 || t->dtype == DType::f64,
                                   source, ": tensor '", name, "' has dtype ", dtype_name(t->dtype),
                                   ", expected F32, F16, BF16 or F64");
      mbok::detail::require_format(t->shape == shape, source, ": tensor '", name, "' has shape ",
                                   mbok::detail::shape_text(t->shape), " but the config implies ",
                                   mbok::detail::shape_text(shape));
      return *t;
    }
    Eigen::VectorXf vector(const std::string& name, std::int64_t size) const {
      const TensorView& t = tensor(name, {size});
      const std::vector<float> v = t.to_vector<float>();
      release_pages(t);  // the floats are the only copy kept
      Eigen::VectorXf out =
          Eigen::Map<const Eigen::VectorXf>(v.data(), static_cast<Eigen::Index>(v.size()));
      mbok::detail::require_format(out.allFinite(), source, ": tensor '", name, "' is not finite");
      return out;
    }
    RowMatrix matrix(const std::string& name, std::int64_t rows, std::int64_t cols,
                     const char* missing_note = "") const {
      const TensorView& t = tensor(name, {rows, cols}, missing_note);
      RowMatrix out(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols));
      t.convert_into(out.data());
      release_pages(t);  // the floats are the only copy kept
      // In storage order: Eigen's allFinite() walks a row-major matrix by columns.
      mbok::detail::require_format(
          mbok::detail::all_finite(out.data(), static_cast<std::size_t>(rows),
                                   static_cast<std::size_t>(cols), static_cast<std::size_t>(cols)),
          source, ": tensor '", name, "' is not finite");
      return out;
    }
    void norms(std::int64_t l, LlamaBlock& b) const {
      b.input_layernorm =
          vector(block_linear_name(l, "input_layernorm.weight"), config.hidden_size);
      b.post_attention_layernorm =
          vector(block_linear_name(l, "post_attention_layernorm.weight"), config.hidden_size);
    }
    LinearLayer dense_linear(const std::string& name, const char* missing_note = "") const {
      const auto [shape, has_bias] = projection_shape(config, name);
      RowMatrix w = matrix(name + ".weight", shape[0], shape[1], missing_note);
      Eigen::VectorXf bias;
      if (has_bias) bias = vector(name + ".bias", shape[0]);
      return LinearLayer::dense(std::move(w), std::move(bias), name);
    }
    LinearLayer boolean_linear(const MbokModel& file, const std::string& layer_name,
                               const std::string& name, Activations activations) const {
      const auto [shape, has_bias] = projection_shape(config, name);
      const MbokLayerInfo& info = file.layer(layer_name);
      const std::vector<std::int64_t> got = {static_cast<std::int64_t>(info.out_features),
                                             static_cast<std::int64_t>(info.in_features)};
      mbok::detail::require_format(got == shape, source, ": layer '", layer_name, "' has shape ",
                                   mbok::detail::shape_text(got), " but the config implies ",
                                   mbok::detail::shape_text(shape));
      mbok::detail::require_format(info.bias.empty() || has_bias, source, ": layer '", layer_name,
                                   "' has a bias ('", info.bias,
                                   "') but the config has none (attention_bias / mlp_bias)");
      // A bias the config asks for but the layer's record does not name is the HF tensor.
      Eigen::VectorXf extra_bias;
      if (has_bias && info.bias.empty()) extra_bias = vector(name + ".bias", shape[0]);
      if (activations == Activations::int8) {
        // The inference form straight from the file: packed kernels are mapped, not copied.
        if (extra_bias.size() == 0)
          return LinearLayer::packed(load_packed_linear(file, layer_name), name);
        return LinearLayer::packed(
            PackedLinear(file.load_packed(layer_name), file.load_scales(layer_name, true),
                         file.load_scales(layer_name, false), std::move(extra_bias)),
            name);
      }
      if (extra_bias.size() == 0)
        return LinearLayer::boolean(load_boolean_linear<float>(file, layer_name), activations,
                                    name);
      return LinearLayer::boolean(
          BooleanLinear<float>(file.load_weights<float>(layer_name), std::move(extra_bias)),
          activations, name);
    }
    LlamaModel finish(std::vector<LlamaBlock> blocks, const ModelOptions& options) const {
      // Untied embeddings from a file are borrowed: a decoder reads one row per token.
      EmbeddingTable embedding =
          owner && !config.tie_word_embeddings
              ? EmbeddingTable::borrow(
                    tensor("model.embed_tokens.weight", {config.vocab_size, config.hidden_size}),
                    owner)
              : EmbeddingTable(
                    matrix("model.embed_tokens.weight", config.vocab_size, config.hidden_size));
      Eigen::VectorXf norm = vector("model.norm.weight", config.hidden_size);
      RowMatrix head;
      if (!config.tie_word_embeddings)
        head = matrix("lm_head.weight", config.vocab_size, config.hidden_size);
      LlamaModel model(config, std::move(embedding), std::move(blocks), std::move(norm),
                       std::move(head));
      if (options.head == HeadFormat::int8) model.quantize_head();
      return model;
    }
  };

  // logits (t x vocab, rows ldy apart) = x W^T for the int8 head W. Decode-sized t reads
  // each weight once through the dense int8 product; a longer run (perplexity) dequantizes
  // panels of rows into a per-thread buffer and multiplies them as a float GEMM.
  void int8_head_forward(const float* x, std::size_t ldx, std::size_t t, float* y,
                         std::size_t ldy) const {
    constexpr std::size_t kProductMaxTokens = 8, kPanelRows = 64;
    const Int8Matrix& w = *head_i8_;
    if (t <= kProductMaxTokens) {
      products_.dense_i8_gemm(x, ldx, t, w, y, ldy);
      return;
    }
    using CMap = Eigen::Map<const RowMatrix, 0, Eigen::OuterStride<>>;
    using Map = Eigen::Map<RowMatrix, 0, Eigen::OuterStride<>>;
    const auto rows = static_cast<Eigen::Index>(t), n = static_cast<Eigen::Index>(w.cols());
    const CMap xm(x, rows, n, Eigen::OuterStride<>(static_cast<Eigen::Index>(ldx)));
    parallel_for(0, w.rows(), kPanelRows, [&](std::size_t j0, std::size_t j1) {
      RowMatrix panel(static_cast<Eigen::Index>(std::min(kPanelRows, j1 - j0)), n);
      for (std::size_t p = j0; p < j1; p += kPanelRows) {
        const std::size_t p1 = std::min(j1, p + kPanelRows);
        const auto len = static_cast<Eigen::Index>(p1 - p);
        w.dequantize_rows(p, p1, panel.data(), w.cols());
        Map ym(y + p, rows, len, Eigen::OuterStride<>(static_cast<Eigen::Index>(ldy)));
        ym.noalias() = xm * panel.topRows(len).transpose();
      }
    });
  }

  void check_parts() const {
    const auto h = static_cast<Eigen::Index>(config_.hidden_size),
               v = static_cast<Eigen::Index>(config_.vocab_size);
    mbok::detail::require(embedding_.vocab() == static_cast<std::size_t>(v) &&
                              embedding_.hidden() == static_cast<std::size_t>(h),
                          "llama model: embedding is ", embedding_.vocab(), " x ",
                          embedding_.hidden(), ", the config implies ", v, " x ", h);
    mbok::detail::require(!config_.tie_word_embeddings || !embedding_.is_borrowed(),
                          "llama model: tied embeddings are the float head and must be held as "
                          "floats");
    mbok::detail::require(final_norm_.size() == h, "llama model: final norm has ",
                          final_norm_.size(), " entries, the config implies ", h);
    if (config_.tie_word_embeddings)
      mbok::detail::require(lm_head_.size() == 0,
                            "llama model: tied embeddings but an lm_head was given");
    else
      mbok::detail::require(lm_head_.rows() == v && lm_head_.cols() == h,
                            "llama model: lm_head is ", lm_head_.rows(), " x ", lm_head_.cols(),
                            ", the config implies ", v, " x ", h);
    mbok::detail::require(blocks_.size() == static_cast<std::size_t>(config_.num_hidden_layers),
                          "llama model: ", blocks_.size(), " blocks, the config implies ",
                          config_.num_hidden_layers);
    static const char* const names[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                        "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                        "mlp.down_proj"};
    for (std::size_t l = 0; l < blocks_.size(); ++l) {
      const LlamaBlock& b = blocks_[l];
      mbok::detail::require(b.input_layernorm.size() == h && b.post_attention_layernorm.size() == h,
                            "llama model: block ", l, " norms must have ", h, " entries");
      const std::vector<const LinearLayer*> layers = b.linears();
      for (std::size_t j = 0; j < layers.size(); ++j) {
        const std::vector<std::int64_t> shape = projection_shape(config_, names[j]).first;
        mbok::detail::require(static_cast<std::int64_t>(layers[j]->out_features()) == shape[0] &&
                                  static_cast<std::int64_t>(layers[j]->in_features()) == shape[1],
                              "llama model: block ", l, " ", names[j], " is ",
                              layers[j]->out_features(), " x ", layers[j]->in_features(),
                              ", the config implies ", shape[0], " x ", shape[1]);
      }
    }
  }

  // The forward of t tokens: logits of every token (t x vocab) or, with `last_only`, of the
  // last one (vocab), into `logits`.
  void run(const std::int32_t* tokens, std::size_t t, KvCache& cache, float* logits, bool last_only,
           std::vector<RowMatrix>* hidden) const {
    const LlamaConfig& c = config_;
    mbok::detail::require(!blocks_.empty(), "llama forward: the model is empty");
    mbok::detail::require(
        cache.num_layers() == blocks_.size() &&
            cache.num_kv_heads() == static_cast<std::size_t>(c.num_key_value_heads) &&
            cache.head_dim() == static_cast<std::size_t>(c.head_dim),
        "llama forward: the cache (", cache.num_layers(), " layers, ", cache.num_kv_heads(),
        " kv heads of ", cache.head_dim(), ") was not made for this model (", c.num_hidden_layers,
        ", ", c.num_key_value_heads, ", ", c.head_dim, ")");
    mbok::detail::require(t == 0 || tokens != nullptr, "llama forward: null tokens");
    for (std::size_t i = 0; i < t; ++i)
      mbok::detail::require(tokens[i] >= 0 && tokens[i] < c.vocab_size, "llama forward: token id ",
                            tokens[i], " at index ", i,
                            " is out of range [0, vocab_size = ", c.vocab_size, ")");
    const auto pos0 = static_cast<std::size_t>(cache.length());
    mbok::detail::require(pos0 + t <= static_cast<std::size_t>(cache.max_tokens()),
                          "llama forward: context overflow: the cache holds ", pos0, " tokens and ",
                          t, " more exceed its max_tokens = ", cache.max_tokens());
    if (t == 0) return;

    const auto h = static_cast<std::size_t>(c.hidden_size),
               f = static_cast<std::size_t>(c.intermediate_size);
    const auto qs = static_cast<std::size_t>(c.q_size()),
               kvs = static_cast<std::size_t>(c.kv_size());
    const auto d = static_cast<std::size_t>(c.head_dim),
               kvh = static_cast<std::size_t>(c.num_key_value_heads);
    const auto heads = static_cast<std::size_t>(c.num_attention_heads);
    internal::ForwardScratch& s = cache.scratch_;
    using internal::ForwardScratch;
    float* x = ForwardScratch::ensure(s.x, t * h);
    float* hn = ForwardScratch::ensure(s.h, t * h);
    float* q = ForwardScratch::ensure(s.q, t * qs);
    float* k = ForwardScratch::ensure(s.k, t * kvs);
    float* v = ForwardScratch::ensure(s.v, t * kvs);
    float* attn = ForwardScratch::ensure(s.attn, t * qs);
    float* gate = ForwardScratch::ensure(s.gate, t * f);
    float* up = ForwardScratch::ensure(s.up, t * f);
    float* out = ForwardScratch::ensure(s.out, t * h);
    float* cs = ForwardScratch::ensure(s.rope, t * d);

    for (std::size_t i = 0; i < t; ++i) {
      embedding_.row(tokens[i], x + i * h);
      rope_.angles(static_cast<std::int64_t>(pos0 + i), cs + i * d);
    }
    auto capture = [&](std::size_t index) {
      if (hidden == nullptr) return;
      (*hidden)[index] = Eigen::Map<const RowMatrix>(x, static_cast<Eigen::Index>(t),
                                                     static_cast<Eigen::Index>(h));
    };
    if (hidden != nullptr) hidden->assign(blocks_.size() + 1, RowMatrix());
    capture(0);
    const std::size_t row_grain = mbok::detail::grain_for_cost(4 * std::max(h, f));
    auto norm_rows = [&](const Eigen::VectorXf& w, std::size_t r0, std::size_t r1) {
      parallel_for(r0, r1, row_grain, [&](std::size_t i0, std::size_t i1) {
        rms_norm(x + i0 * h, h, i1 - i0, h, w.data(), c.rms_norm_eps, hn + i0 * h, h);
      });
    };
    auto add_residual = [&]() {
      const Eigen::Index n = static_cast<Eigen::Index>(t * h);
      Eigen::Map<Eigen::VectorXf>(x, n) += Eigen::Map<const Eigen::VectorXf>(out, n);
    };
    const AttentionShape shape{heads, kvh, d, static_cast<std::size_t>(c.sliding_window)};
    Int8ForwardWorkspace& ws = s.int8;

    for (std::size_t l = 0; l < blocks_.size(); ++l) {
      const LlamaBlock& b = blocks_[l];
      // Attention.
      norm_rows(b.input_layernorm, 0, t);
      b.q_proj.forward(hn, h, t, q, qs, ws);
      b.k_proj.forward(hn, h, t, k, kvs, ws);
      b.v_proj.forward(hn, h, t, v, kvs, ws);
      for (std::size_t i = 0; i < t; ++i) {
        rope_.rotate(q + i * qs, heads, cs + i * d);
        rope_.rotate(k + i * kvs, kvh, cs + i * d);
        for (std::size_t g = 0; g < kvh; ++g) {
          std::memcpy(cache.keys(l, g) + (pos0 + i) * d, k + i * kvs + g * d, d * sizeof(float));
          std::memcpy(cache.values(l, g) + (pos0 + i) * d, v + i * kvs + g * d, d * sizeof(float));
        }
      }
      causal_attention(shape, q, qs, t, pos0, cache, l, attn, qs, s.scores);
      b.o_proj.forward(attn, qs, t, out, h, ws);
      add_residual();
      // MLP.
      norm_rows(b.post_attention_layernorm, 0, t);
      b.gate_proj.forward(hn, h, t, gate, f, ws);
      b.up_proj.forward(hn, h, t, up, f, ws);
      parallel_for(0, t, row_grain, [&](std::size_t i0, std::size_t i1) {
        for (std::size_t j = i0 * f; j < i1 * f; ++j) {
          const float g = gate[j];
          gate[j] = g / (1.0f + std::exp(-g)) * up[j];
        }
      });
      b.down_proj.forward(gate, f, t, out, h, ws);
      add_residual();
      capture(l + 1);
    }
    // Final norm and head.
    const std::size_t first = last_only ? t - 1 : 0;
    norm_rows(final_norm_, first, t);
    if (head_i8_) {
      int8_head_forward(hn + first * h, h, t - first, logits,
                        static_cast<std::size_t>(c.vocab_size));
    } else {
      const Eigen::VectorXf no_bias;
      LinearLayer::dense_forward(head(), no_bias, hn + first * h, h, t - first, logits,
                                 static_cast<std::size_t>(c.vocab_size));
    }
    cache.set_length(pos0 + t);
  }

  LlamaConfig config_;
  EmbeddingTable embedding_;
  std::vector<LlamaBlock> blocks_;
  Eigen::VectorXf final_norm_;
  RowMatrix lm_head_;                          // empty when tied, or once quantized
  std::shared_ptr<const Int8Matrix> head_i8_;  // set by quantize_head
  ProductSet products_;
  Rope rope_;
};

}  // namespace llama
}  // namespace mbok
