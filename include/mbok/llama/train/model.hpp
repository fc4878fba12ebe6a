#pragma once
/// \file
/// `TrainableLlama<T>`: the LLaMA decoder of model.hpp with a tape-keeping forward and an
/// exact backward (embedding lookup, RMSNorm, RoPE, GQA causal attention, SwiGLU, residuals,
/// final norm, head), over batches of `sequences` sequences of `len` tokens each (rows x len
/// tokens, row-major; every sequence starts at position 0). Its seven projections per block
/// are `Projection<T>`s (projection.hpp): dense (pretraining a float model), Boolean
/// (finetuning in the Boolean domain), or any layer a caller implements.
///
/// Built from a `LlamaModel` with a `ProjectionFactory` (`dense_projections()`: every layer
/// dense, a Boolean one reconstructed; `boolean_projections(K)`: dense layers converted by
/// successive SVID to K kernels, Boolean ones kept as they are), and exported back:
/// `to_llama_model` (inference in memory), `write_mbok` (the layout mbok-convert writes,
/// metadata "config.json" and "tokenizer.json"), `write_hf` (dense models only).
///
/// What trains (`TrainableParts`): projections always (their `parameters()` and
/// `boolean_parameters()`), norms by default, embedding and head on request. `T = double`
/// serves the gradient checks. Needs nlohmann/json.

#include <Eigen/Core>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "../../error.hpp"
#include "../../io/mbok_format.hpp"
#include "../../parallel.hpp"
#include "../../state_dict.hpp"
#include "../../svid.hpp"
#include "../hf_writer.hpp"
#include "../model.hpp"
#include "ops.hpp"
#include "projection.hpp"

namespace mbok {
namespace llama {
namespace train {

/// HF's names of a block's projections, in the order of `LlamaBlock::linears()`.
inline const std::vector<std::string>& projection_names() {
  static const std::vector<std::string> names = {
      "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
      "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};
  return names;
}

/// Makes the trainable layer of projection `name` (HF name without ".weight") from the
/// model's layer.
template <typename T>
using ProjectionFactory =
    std::function<std::unique_ptr<Projection<T>>(const std::string& name, const LinearLayer&)>;

namespace detail {
template <typename T>
RowMatrixT<T> dense_of(const LinearLayer& l) {
  if (l.dense_weight()) return l.dense_weight()->template cast<T>();
  return l.to_boolean_linear().weights().reconstruct().template cast<T>();
}
template <typename T>
VectorT<T> bias_of(const LinearLayer& l) {
  if (l.dense_weight()) return l.dense_bias().template cast<T>();
  if (const PackedLinear* p = l.packed_layer()) return p->bias().template cast<T>();
  return l.boolean_layer()->bias().template cast<T>();
}
template <typename T>
BooleanLinear<T> boolean_copy(const BooleanLinear<float>& b, const BooleanLinearOptions& options) {
  MultiKernelWeights<T> w(b.out_features(), b.in_features());
  for (std::size_t k = 0; k < b.num_kernels(); ++k)
    w.add_kernel(b.kernel(k), b.s_out(k).template cast<T>(), b.s_in(k).template cast<T>());
  if (b.has_bias()) return BooleanLinear<T>(std::move(w), b.bias().template cast<T>(), options);
  return BooleanLinear<T>(std::move(w), options);
}
}  // namespace detail

/// Every projection dense (a Boolean layer becomes its reconstructed dense weight).
template <typename T>
ProjectionFactory<T> dense_projections() {
  return [](const std::string&, const LinearLayer& l) -> std::unique_ptr<Projection<T>> {
    return std::make_unique<DenseProjection<T>>(detail::dense_of<T>(l), detail::bias_of<T>(l));
  };
}

/// Dense layers converted by successive SVID into `kernels` kernels; Boolean layers kept as
/// they are (their K). `options` choose the trainable kernels (default: the last one).
template <typename T>
ProjectionFactory<T> boolean_projections(std::size_t kernels, BooleanLinearOptions options = {},
                                         SvidOptions svid_options = {}) {
  return [=](const std::string&, const LinearLayer& l) -> std::unique_ptr<Projection<T>> {
    if (l.is_boolean())
      return std::make_unique<BooleanProjection<T>>(
          detail::boolean_copy<T>(l.to_boolean_linear(), options));
    mbok::detail::require(kernels > 0, "boolean_projections: a dense layer ('", l.name(),
                          "') needs a kernel count K > 0 to be converted");
    std::optional<VectorT<T>> bias;
    if (l.dense_bias().size() > 0) bias = l.dense_bias().template cast<T>();
    const RowMatrixT<T> w = l.dense_weight()->template cast<T>();
    return std::make_unique<BooleanProjection<T>>(
        BooleanLinear<T>::from_dense(w, kernels, bias, options, svid_options));
  };
}

/// Which full-precision parts train besides the projections.
struct TrainableParts {
  bool norms = true;       ///< RMSNorm weights (each block's two and the final one)
  bool embedding = false;  ///< token embedding (and the head when tied)
  bool head = false;       ///< lm_head (untied models)
};

/// Told by `TrainableLlama::backward` as the backward goes, e.g. to start summing the
/// signals of finished blocks across processes while the blocks below them still run
/// (`mbok::distributed::DataParallelUpdate`).
class BackwardListener {
 public:
  virtual ~BackwardListener() = default;
  /// The trainable Boolean parameters [first, first + count) (indices into
  /// `TrainableLlama::boolean_parameters()`) hold their final signals: the rest of the
  /// backward does not write them. The backward reports each block's, last block first.
  virtual void signals_final(std::size_t first, std::size_t count) = 0;
  /// Called between the backward's products: a point to advance communication in flight.
  virtual void between_products() {}
};

/// One block of a trainable model.
template <typename T>
struct TrainBlock {
  VectorT<T> attn_norm, mlp_norm, g_attn_norm, g_mlp_norm;
  std::vector<std::unique_ptr<Projection<T>>> proj;  ///< q, k, v, o, gate, up, down
};

/// The trainable LLaMA (see the file comment). Not copyable (projections are owned); movable.
template <typename T>
class TrainableLlama {
 public:
  using Matrix = RowMatrixT<T>;
  using Vector = VectorT<T>;

  /// From an inference model, each projection made by `factory`.
  TrainableLlama(const LlamaModel& model, const ProjectionFactory<T>& factory,
                 TrainableParts parts = {})
      : config_(model.config()), parts_(parts) {
    embedding_ = model.embedding().template cast<T>();
    if (!config_.tie_word_embeddings) lm_head_ = model.head().template cast<T>();
    final_norm_ = model.final_norm().template cast<T>();
    blocks_.resize(model.blocks().size());
    for (std::size_t l = 0; l < blocks_.size(); ++l) {
      const LlamaBlock& src = model.blocks()[l];
      TrainBlock<T>& b = blocks_[l];
      b.attn_norm = src.input_layernorm.template cast<T>();
      b.mlp_norm = src.post_attention_layernorm.template cast<T>();
      const auto linears = src.linears();
      for (std::size_t j = 0; j < linears.size(); ++j) {
        const std::string name = block_linear_name(std::int64_t(l), projection_names()[j]);
        b.proj.push_back(factory(name, *linears[j]));
        mbok::detail::require(
            b.proj.back() && b.proj.back()->in_features() == linears[j]->in_features() &&
                b.proj.back()->out_features() == linears[j]->out_features(),
            "TrainableLlama: the factory's layer for '", name, "' has the wrong shape");
      }
    }
    init_grads();
  }
  TrainableLlama(TrainableLlama&&) = default;
  TrainableLlama& operator=(TrainableLlama&&) = default;

  const LlamaConfig& config() const noexcept { return config_; }
  const TrainableParts& trainable_parts() const noexcept { return parts_; }
  std::size_t num_blocks() const noexcept { return blocks_.size(); }
  TrainBlock<T>& block(std::size_t l) { return blocks_.at(l); }
  Projection<T>& projection(std::size_t l, std::size_t j) { return *blocks_.at(l).proj.at(j); }
  /// Replaces projection j of block l (same shape), e.g. by a caller's own layer.
  void set_projection(std::size_t l, std::size_t j, std::unique_ptr<Projection<T>> p) {
    mbok::detail::require(p && p->in_features() == projection(l, j).in_features() &&
                              p->out_features() == projection(l, j).out_features(),
                          "TrainableLlama::set_projection: wrong shape");
    blocks_[l].proj[j] = std::move(p);
  }
  Matrix& embedding() { return embedding_; }
  Matrix& head() { return config_.tie_word_embeddings ? embedding_ : lm_head_; }
  Vector& final_norm() { return final_norm_; }

  /// Forward of `tokens` (sequences x len ids, row-major) into `logits` (sequences * len x
  /// vocab). With `train` the tape for `backward` is kept. `hidden` (when not null) receives
  /// the residual stream after each block (num_blocks matrices, tokens x hidden), the
  /// counterpart of `LlamaModel::forward`'s hidden_states[1..]. Throws `InvalidArgument` for
  /// bad ids or a length beyond max_position_embeddings.
  void forward(const std::vector<std::int32_t>& tokens, std::size_t sequences, std::size_t len,
               Matrix& logits, bool train, std::vector<Matrix>* hidden = nullptr) {
    const LlamaConfig& c = config_;
    mbok::detail::require(sequences > 0 && len > 0 && tokens.size() == sequences * len,
                          "TrainableLlama forward: ", tokens.size(), " tokens for ", sequences,
                          " x ", len);
    mbok::detail::require(std::int64_t(len) <= c.max_position_embeddings,
                          "TrainableLlama forward: length ", len,
                          " exceeds max_position_embeddings ", c.max_position_embeddings);
    for (std::size_t i = 0; i < tokens.size(); ++i)
      mbok::detail::require(tokens[i] >= 0 && tokens[i] < c.vocab_size,
                            "TrainableLlama forward: token id ", tokens[i], " at index ", i,
                            " is out of range [0, ", c.vocab_size, ")");
    const auto rows = static_cast<Eigen::Index>(tokens.size());
    const auto h = static_cast<Eigen::Index>(c.hidden_size);
    if (rope_len_ != len) {
      rope_ = rope_table<T>(c, len);
      rope_len_ = len;
    }
    tokens_ = tokens;
    sequences_ = sequences;
    len_ = len;
    x_.resize(rows, h);
    for (Eigen::Index i = 0; i < rows; ++i) x_.row(i) = embedding_.row(tokens[std::size_t(i)]);
    if (tape_.size() != blocks_.size()) tape_.resize(blocks_.size());
    if (hidden) hidden->resize(blocks_.size());
    const TrainAttentionShape shape{std::size_t(c.num_attention_heads),
                                    std::size_t(c.num_key_value_heads),
                                    std::size_t(c.head_dim),
                                    std::size_t(c.sliding_window),
                                    sequences,
                                    len};
    for (std::size_t l = 0; l < blocks_.size(); ++l) {
      TrainBlock<T>& b = blocks_[l];
      Tape& t = tape_[l];
      // Attention.
      if (train) t.x1 = x_;
      rms_norm_forward(x_, b.attn_norm, c.rms_norm_eps, hn_, t.r1);
      b.proj[0]->forward(hn_, t.q, train);
      b.proj[1]->forward(hn_, t.k, train);
      b.proj[2]->forward(hn_, t.v, train);
      rope_apply(t.q, shape.heads, shape.head_dim, len, rope_, false);
      rope_apply(t.k, shape.kv_heads, shape.head_dim, len, rope_, false);
      t.attention.forward(shape, t.q, t.k, t.v, attn_, train);
      b.proj[3]->forward(attn_, out_, train);
      x_ += out_;
      // MLP.
      if (train) t.x2 = x_;
      rms_norm_forward(x_, b.mlp_norm, c.rms_norm_eps, hn_, t.r2);
      b.proj[4]->forward(hn_, t.gate, train);
      b.proj[5]->forward(hn_, t.up, train);
      swiglu_forward(t.gate, t.up, act_);
      b.proj[6]->forward(act_, out_, train);
      x_ += out_;
      if (hidden) (*hidden)[l] = x_;
    }
    if (train) xf_ = x_;
    rms_norm_forward(x_, final_norm_, c.rms_norm_eps, hf_, rf_);
    products_.nt(hf_, head(), logits);
    trained_forward_ = train;
  }

  /// Backward of the last train forward: `dlogits` (tokens x vocab) and, when not null,
  /// `dhidden` (num_blocks matrices, each empty or tokens x hidden: gradients of the
  /// hidden states `forward` returned). Adds to every stored gradient (`zero_grad` first).
  /// `listener` (when not null) hears of each block's signals as they become final.
  void backward(const Matrix& dlogits, const std::vector<Matrix>* dhidden = nullptr,
                BackwardListener* listener = nullptr) {
    mbok::detail::require(trained_forward_, "TrainableLlama backward: no train forward before it");
    const LlamaConfig& c = config_;
    const auto rows = static_cast<Eigen::Index>(tokens_.size());
    mbok::detail::require(dlogits.rows() == rows && dlogits.cols() == c.vocab_size,
                          "TrainableLlama backward: dlogits is ", dlogits.rows(), " x ",
                          dlogits.cols());
    mbok::detail::require(!dhidden || dhidden->size() == blocks_.size(),
                          "TrainableLlama backward: ", dhidden ? dhidden->size() : 0,
                          " hidden gradients for ", blocks_.size(), " blocks");
    // Head and final norm.
    if (config_.tie_word_embeddings) {
      if (parts_.embedding) products_.tn_add(dlogits, hf_, g_embedding_);
    } else if (parts_.head) {
      products_.tn_add(dlogits, hf_, g_lm_head_);
    }
    products_.nn(dlogits, head(), dhn_);
    rms_norm_backward(xf_, final_norm_, rf_, dhn_, dx_, parts_.norms ? &g_final_norm_ : nullptr);
    const std::size_t heads = std::size_t(c.num_attention_heads),
                      kvh = std::size_t(c.num_key_value_heads), d = std::size_t(c.head_dim);
    // Where each block's Boolean parameters start in boolean_parameters() (set_projection
    // may have changed them since the last backward).
    std::vector<std::size_t> first_boolean;
    if (listener) first_boolean = boolean_parameter_offsets();
    const auto between = [&] {
      if (listener) listener->between_products();
    };
    for (std::size_t l = blocks_.size(); l-- > 0;) {
      TrainBlock<T>& b = blocks_[l];
      Tape& t = tape_[l];
      if (dhidden && (*dhidden)[l].size() > 0) {
        mbok::detail::require((*dhidden)[l].rows() == rows && (*dhidden)[l].cols() == c.hidden_size,
                              "TrainableLlama backward: hidden gradient ", l,
                              " has the wrong shape");
        dx_ += (*dhidden)[l];
      }
      // MLP: x3 = x2 + down(silu(gate(n2)) * up(n2)).
      b.proj[6]->backward(dx_, dact_);
      between();
      swiglu_backward(t.gate, t.up, dact_, dgate_, dup_);
      b.proj[4]->backward(dgate_, dhn_);
      between();
      b.proj[5]->backward(dup_, dtmp_);
      between();
      dhn_ += dtmp_;
      rms_norm_backward(t.x2, b.mlp_norm, t.r2, dhn_, dtmp_,
                        parts_.norms ? &b.g_mlp_norm : nullptr);
      dx_ += dtmp_;
      // Attention: x2 = x1 + o(attn(rope(q(n1)), rope(k(n1)), v(n1))).
      b.proj[3]->backward(dx_, dattn_);
      between();
      t.attention.backward(t.q, t.k, t.v, dattn_, dq_, dk_, dv_);
      between();
      rope_apply(dq_, heads, d, len_, rope_, true);
      rope_apply(dk_, kvh, d, len_, rope_, true);
      b.proj[0]->backward(dq_, dhn_);
      between();
      b.proj[1]->backward(dk_, dtmp_);
      between();
      dhn_ += dtmp_;
      b.proj[2]->backward(dv_, dtmp_);
      dhn_ += dtmp_;
      // Block l's projections are done: their signals are final.
      if (listener && first_boolean[l + 1] > first_boolean[l])
        listener->signals_final(first_boolean[l], first_boolean[l + 1] - first_boolean[l]);
      rms_norm_backward(t.x1, b.attn_norm, t.r1, dhn_, dtmp_,
                        parts_.norms ? &b.g_attn_norm : nullptr);
      dx_ += dtmp_;
    }
    if (parts_.embedding)
      for (Eigen::Index i = 0; i < rows; ++i)
        g_embedding_.row(tokens_[std::size_t(i)]) += dx_.row(i);
  }

  /// Sets every gradient and signal to zero.
  void zero_grad() {
    for (auto& b : blocks_) {
      b.g_attn_norm.setZero();
      b.g_mlp_norm.setZero();
      for (auto& p : b.proj) p->zero_grad();
    }
    g_final_norm_.setZero();
    g_embedding_.setZero();
    g_lm_head_.setZero();
  }

  /// The full-precision trainable tensors (HF names: "model.layers.0.self_attn.q_proj." +
  /// part, "model.layers.0.input_layernorm.weight", "model.norm.weight",
  /// "model.embed_tokens.weight", "lm_head.weight"), per `TrainableParts`.
  std::vector<BasicParameter<T>> parameters() {
    std::vector<BasicParameter<T>> out;
    if (parts_.embedding)
      out.push_back(make_parameter("model.embed_tokens.weight", embedding_, g_embedding_, false));
    for (std::size_t l = 0; l < blocks_.size(); ++l) {
      TrainBlock<T>& b = blocks_[l];
      const std::string pre = "model.layers." + std::to_string(l) + ".";
      if (parts_.norms) {
        out.push_back(
            make_parameter(pre + "input_layernorm.weight", b.attn_norm, b.g_attn_norm, false));
        out.push_back(make_parameter(pre + "post_attention_layernorm.weight", b.mlp_norm,
                                     b.g_mlp_norm, false));
      }
      for (std::size_t j = 0; j < b.proj.size(); ++j)
        b.proj[j]->parameters(out, pre + projection_names()[j] + ".");
    }
    if (parts_.norms)
      out.push_back(make_parameter("model.norm.weight", final_norm_, g_final_norm_, false));
    if (parts_.head && !config_.tie_word_embeddings)
      out.push_back(make_parameter("lm_head.weight", lm_head_, g_lm_head_, true));
    return out;
  }

  /// The trainable Boolean kernels with their signals ("<layer>.kernels.<k>.bits").
  std::vector<BooleanParameter> boolean_parameters() {
    std::vector<BooleanParameter> out;
    for (std::size_t l = 0; l < blocks_.size(); ++l)
      for (std::size_t j = 0; j < blocks_[l].proj.size(); ++j)
        blocks_[l].proj[j]->boolean_parameters(
            out, block_linear_name(std::int64_t(l), projection_names()[j]) + ".");
    return out;
  }

  /// Where each block's trainable Boolean parameters start in `boolean_parameters()`:
  /// num_blocks + 1 offsets, the last one their number.
  std::vector<std::size_t> boolean_parameter_offsets() {
    std::vector<std::size_t> offsets{0};
    std::vector<BooleanParameter> block;
    for (std::size_t l = 0; l < blocks_.size(); ++l) {
      block.clear();
      for (auto& p : blocks_[l].proj) p->boolean_parameters(block, "");
      offsets.push_back(offsets.back() + block.size());
    }
    return offsets;
  }

  /// Everything that can change in training: every projection's state, the norms, and the
  /// embedding / head when they train. Names as in `parameters()`.
  void export_state(StateDict& dict, const std::string& prefix = "") const {
    for (std::size_t l = 0; l < blocks_.size(); ++l) {
      const TrainBlock<T>& b = blocks_[l];
      const std::string pre = prefix + "model.layers." + std::to_string(l) + ".";
      dict[pre + "input_layernorm.weight"] = Tensor::from_eigen(b.attn_norm);
      dict[pre + "post_attention_layernorm.weight"] = Tensor::from_eigen(b.mlp_norm);
      for (std::size_t j = 0; j < b.proj.size(); ++j)
        b.proj[j]->export_state(dict, pre + projection_names()[j] + ".");
    }
    dict[prefix + "model.norm.weight"] = Tensor::from_eigen(final_norm_);
    if (parts_.embedding)
      dict[prefix + "model.embed_tokens.weight"] =
          Tensor::from(embedding_.data(), {embedding_.rows(), embedding_.cols()});
    if (parts_.head && !config_.tie_word_embeddings)
      dict[prefix + "lm_head.weight"] =
          Tensor::from(lm_head_.data(), {lm_head_.rows(), lm_head_.cols()});
  }
  /// Restores `export_state`'s tensors (same model shape and trainable parts). Throws
  /// `FormatError` for a missing tensor or a wrong shape.
  void import_state(const StateDict& dict, const std::string& prefix = "") {
    auto vec = [&](const std::string& name, Vector& v) {
      Vector tmp(v.size());
      read_tensor(dict, prefix + name, {v.size()}, tmp.data());
      v = tmp;
    };
    auto mat = [&](const std::string& name, Matrix& m) {
      Matrix tmp(m.rows(), m.cols());
      read_tensor(dict, prefix + name, {m.rows(), m.cols()}, tmp.data());
      m = tmp;
    };
    for (std::size_t l = 0; l < blocks_.size(); ++l) {
      TrainBlock<T>& b = blocks_[l];
      const std::string pre = "model.layers." + std::to_string(l) + ".";
      vec(pre + "input_layernorm.weight", b.attn_norm);
      vec(pre + "post_attention_layernorm.weight", b.mlp_norm);
      for (std::size_t j = 0; j < b.proj.size(); ++j)
        b.proj[j]->import_state(dict, prefix + pre + projection_names()[j] + ".");
    }
    vec("model.norm.weight", final_norm_);
    if (parts_.embedding) mat("model.embed_tokens.weight", embedding_);
    if (parts_.head && !config_.tie_word_embeddings) mat("lm_head.weight", lm_head_);
  }

  /// The model for inference (float models): Boolean projections run with `activations`.
  LlamaModel to_llama_model(Activations activations = Activations::float32) const {
    static_assert(std::is_same_v<T, float>, "to_llama_model needs TrainableLlama<float>");
    std::vector<LlamaBlock> blocks(blocks_.size());
    for (std::size_t l = 0; l < blocks_.size(); ++l) {
      const TrainBlock<T>& b = blocks_[l];
      LlamaBlock& o = blocks[l];
      o.input_layernorm = b.attn_norm;
      o.post_attention_layernorm = b.mlp_norm;
      LinearLayer* dst[] = {&o.q_proj,    &o.k_proj,  &o.v_proj,   &o.o_proj,
                            &o.gate_proj, &o.up_proj, &o.down_proj};
      for (std::size_t j = 0; j < 7; ++j)
        *dst[j] = b.proj[j]->to_linear_layer(
            block_linear_name(std::int64_t(l), projection_names()[j]), activations);
    }
    return LlamaModel(config_, embedding_, std::move(blocks), final_norm_, lm_head_);
  }

  /// Writes the model as an mbok file (atomically): Boolean projections as layers, dense ones,
  /// the embedding, norms and head as tensors with HF names; metadata "config.json" and, when
  /// given, "tokenizer.json", plus `metadata`. Float models only.
  void write_mbok(const std::string& path,
                  const std::optional<std::string>& tokenizer_json = std::nullopt,
                  const std::vector<std::pair<std::string, std::string>>& metadata = {}) const {
    static_assert(std::is_same_v<T, float>, "write_mbok needs TrainableLlama<float>");
    MbokWriter writer;
    writer.add_tensor("model.embed_tokens.weight",
                      Tensor::from(embedding_.data(), {embedding_.rows(), embedding_.cols()}));
    for (std::size_t l = 0; l < blocks_.size(); ++l) {
      const TrainBlock<T>& b = blocks_[l];
      const std::string pre = "model.layers." + std::to_string(l) + ".";
      writer.add_tensor(pre + "input_layernorm.weight", Tensor::from_eigen(b.attn_norm));
      writer.add_tensor(pre + "post_attention_layernorm.weight", Tensor::from_eigen(b.mlp_norm));
      for (std::size_t j = 0; j < b.proj.size(); ++j)
        b.proj[j]->write_mbok(writer, pre + projection_names()[j]);
    }
    writer.add_tensor("model.norm.weight", Tensor::from_eigen(final_norm_));
    if (!config_.tie_word_embeddings)
      writer.add_tensor("lm_head.weight",
                        Tensor::from(lm_head_.data(), {lm_head_.rows(), lm_head_.cols()}));
    for (const auto& [k, v] : metadata) writer.set_metadata(k, v);
    writer.set_metadata("config.json", config_.to_json().dump());
    if (tokenizer_json) writer.set_metadata("tokenizer.json", *tokenizer_json);
    writer.write(path);
  }

  /// The float tensors of a dense model with HF names (Boolean projections are reconstructed).
  StateDict dense_tensors() const {
    StateDict dict;
    auto put_mat = [&](const std::string& name, const Matrix& m) {
      const RowMatrixT<float> f = m.template cast<float>();
      dict[name] = Tensor::from(f.data(), {f.rows(), f.cols()});
    };
    auto put_vec = [&](const std::string& name, const Vector& v) {
      const Eigen::VectorXf f = v.template cast<float>();
      dict[name] = Tensor::from_eigen(f);
    };
    put_mat("model.embed_tokens.weight", embedding_);
    for (std::size_t l = 0; l < blocks_.size(); ++l) {
      const TrainBlock<T>& b = blocks_[l];
      const std::string pre = "model.layers." + std::to_string(l) + ".";
      put_vec(pre + "input_layernorm.weight", b.attn_norm);
      put_vec(pre + "post_attention_layernorm.weight", b.mlp_norm);
      for (std::size_t j = 0; j < b.proj.size(); ++j) {
        put_mat(pre + projection_names()[j] + ".weight", b.proj[j]->dense_weight());
        const Vector bias = b.proj[j]->bias_vector();
        if (bias.size() > 0) put_vec(pre + projection_names()[j] + ".bias", bias);
      }
    }
    put_vec("model.norm.weight", final_norm_);
    if (!config_.tie_word_embeddings) put_mat("lm_head.weight", lm_head_);
    return dict;
  }

  /// Writes a Hugging Face directory (`write_hf_checkpoint`, F32 by default) of the dense
  /// model this one computes; Boolean projections are written reconstructed.
  HfWriteResult write_hf(const std::string& dir,
                         const std::optional<std::string>& tokenizer_json = std::nullopt,
                         DType dtype = DType::f32) const {
    const StateDict dict = dense_tensors();
    return write_hf_checkpoint(dir, config_, dict, dtype, 0, tokenizer_json);
  }

  /// Gradient of the embedding / head / norms (tests).
  const Matrix& embedding_grad() const { return g_embedding_; }

 private:
  struct Tape {
    Matrix x1, x2, q, k, v, gate, up;
    Vector r1, r2;
    CausalAttention<T> attention;
  };

  void init_grads() {
    for (auto& b : blocks_) {
      b.g_attn_norm = Vector::Zero(b.attn_norm.size());
      b.g_mlp_norm = Vector::Zero(b.mlp_norm.size());
    }
    g_final_norm_ = Vector::Zero(final_norm_.size());
    if (parts_.embedding) g_embedding_ = Matrix::Zero(embedding_.rows(), embedding_.cols());
    if (parts_.head && !config_.tie_word_embeddings)
      g_lm_head_ = Matrix::Zero(lm_head_.rows(), lm_head_.cols());
  }

  LlamaConfig config_;
  TrainableParts parts_;
  Matrix embedding_, lm_head_, g_embedding_, g_lm_head_;
  Vector final_norm_, g_final_norm_;
  std::vector<TrainBlock<T>> blocks_;
  // Tape and buffers (reused from step to step).
  std::vector<Tape> tape_;
  std::vector<std::int32_t> tokens_;
  std::size_t sequences_ = 0, len_ = 0, rope_len_ = 0;
  bool trained_forward_ = false;
  Matrix rope_, x_, hn_, attn_, out_, act_, xf_, hf_;
  Vector rf_;
  Matrix dx_, dhn_, dtmp_, dact_, dgate_, dup_, dattn_, dq_, dk_, dv_;
  DenseProducts<T> products_;
};

}  // namespace train
}  // namespace llama
}  // namespace mbok
