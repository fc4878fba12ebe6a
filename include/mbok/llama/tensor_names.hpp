#pragma once
/// \file
/// The tensors of a LLaMA-family checkpoint in Hugging Face's naming (`LlamaForCausalLM`'s
/// state dict), with the shape each must have for a `LlamaConfig`. One list shared by the
/// checkpoint reader (`open_llama_checkpoint`), the writer (`write_hf_checkpoint`) and the
/// model loader. Needs nlohmann/json (through config.hpp).

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "config.hpp"

namespace mbok {
namespace llama {

/// Every tensor a checkpoint of `c` holds, in HF's state-dict order, with its shape
/// (row-major, [out, in] for a linear layer's weight):
///
///     model.embed_tokens.weight                         [vocab, hidden]
///     model.layers.{i}.input_layernorm.weight           [hidden]
///     model.layers.{i}.self_attn.q_proj.weight          [q_size, hidden]   (+ .bias [q_size])
///     model.layers.{i}.self_attn.k_proj.weight          [kv_size, hidden]  (+ .bias [kv_size])
///     model.layers.{i}.self_attn.v_proj.weight          [kv_size, hidden]  (+ .bias [kv_size])
///     model.layers.{i}.self_attn.o_proj.weight          [hidden, q_size]   (+ .bias [hidden])
///     model.layers.{i}.post_attention_layernorm.weight  [hidden]
///     model.layers.{i}.mlp.gate_proj.weight             [inter, hidden]    (+ .bias [inter])
///     model.layers.{i}.mlp.up_proj.weight               [inter, hidden]    (+ .bias [inter])
///     model.layers.{i}.mlp.down_proj.weight             [hidden, inter]    (+ .bias [hidden])
///     model.norm.weight                                 [hidden]
///     lm_head.weight                                    [vocab, hidden]    (unless
///     tie_word_embeddings)
///
/// with the biases of the attention projections when `attention_bias` and of the MLP when
/// `mlp_bias`. q_size = heads * head_dim, kv_size = kv_heads * head_dim.
inline std::vector<std::pair<std::string, std::vector<std::int64_t>>> expected_tensor_shapes(
    const LlamaConfig& c) {
  using Shape = std::vector<std::int64_t>;
  std::vector<std::pair<std::string, Shape>> out;
  const std::int64_t h = c.hidden_size, q = c.q_size(), kv = c.kv_size(), f = c.intermediate_size;
  out.reserve(static_cast<std::size_t>(c.num_hidden_layers) * 16 + 3);
  out.emplace_back("model.embed_tokens.weight", Shape{c.vocab_size, h});
  for (std::int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    auto linear = [&](const std::string& name, std::int64_t rows, std::int64_t cols, bool bias) {
      out.emplace_back(p + name + ".weight", Shape{rows, cols});
      if (bias) out.emplace_back(p + name + ".bias", Shape{rows});
    };
    out.emplace_back(p + "input_layernorm.weight", Shape{h});
    linear("self_attn.q_proj", q, h, c.attention_bias);
    linear("self_attn.k_proj", kv, h, c.attention_bias);
    linear("self_attn.v_proj", kv, h, c.attention_bias);
    linear("self_attn.o_proj", h, q, c.attention_bias);
    out.emplace_back(p + "post_attention_layernorm.weight", Shape{h});
    linear("mlp.gate_proj", f, h, c.mlp_bias);
    linear("mlp.up_proj", f, h, c.mlp_bias);
    linear("mlp.down_proj", h, f, c.mlp_bias);
  }
  out.emplace_back("model.norm.weight", Shape{h});
  if (!c.tie_word_embeddings) out.emplace_back("lm_head.weight", Shape{c.vocab_size, h});
  return out;
}

/// The regular expression (ECMAScript) that names the linear layers' weights of the decoder
/// blocks, the matrices mbok converts by default: `model.layers.{i}.{self_attn,mlp}.*_proj.weight`.
inline constexpr const char* kBlockLinearPattern =
    R"(^model\.layers\.[0-9]+\.(self_attn|mlp)\.[a-z_]+_proj\.weight$)";

}  // namespace llama
}  // namespace mbok
