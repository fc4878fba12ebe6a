#pragma once
/// \file
/// `LlamaConfig`: the architecture of a LLaMA-family decoder as Hugging Face's `config.json`
/// describes it (model types "llama" and "mistral"), read strictly: every key is either
/// understood, or known not to change the model (bookkeeping such as "architectures" or
/// "torch_dtype"), or the read fails with `FormatError` naming it. A key that would make
/// mbok run a different model than the checkpoint's author meant is never ignored.
///
/// The model it describes (HF's `LlamaForCausalLM`): token embedding; per layer
/// x += o(attn(rope(q(rms(x))), rope(k(rms(x))), v(rms(x)))) with grouped-query attention,
/// then x += down(silu(gate(rms(x))) * up(rms(x))); final RMSNorm; output head (tied to the
/// embedding or not). RoPE uses HF's rotate-half convention over the first and second half of
/// each head. Needs nlohmann/json.

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "../error.hpp"

namespace mbok {
namespace llama {

/// Frequency scaling of rotary embeddings (`rope_scaling` / `rope_parameters`).
struct RopeScaling {
  enum class Type { none, linear, llama3 };
  Type type = Type::none;
  double factor = 1.0;                                ///< linear and llama3
  double low_freq_factor = 1.0;                       ///< llama3
  double high_freq_factor = 4.0;                      ///< llama3
  std::int64_t original_max_position_embeddings = 0;  ///< llama3
};

/// The architecture of a LLaMA-family model. Sizes are positive; head_dim * heads need not
/// equal hidden_size (HF allows an explicit `head_dim`).
struct LlamaConfig {
  std::string model_type = "llama";  ///< "llama" or "mistral"
  std::int64_t vocab_size = 0;
  std::int64_t hidden_size = 0;
  std::int64_t intermediate_size = 0;
  std::int64_t num_hidden_layers = 0;
  std::int64_t num_attention_heads = 0;
  std::int64_t num_key_value_heads = 0;  ///< divides num_attention_heads (GQA); = heads for MHA
  std::int64_t head_dim = 0;             ///< even; hidden_size / heads unless given
  std::int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  ///< q, k, v and o projections have biases
  bool mlp_bias = false;        ///< gate, up and down projections have biases
  std::int64_t sliding_window =
      0;  ///< 0: full causal attention; else each query sees this many keys
  std::vector<std::int64_t> bos_token_ids, eos_token_ids;  ///< as given (may be empty)

  /// Throws `InvalidArgument` naming the field when the sizes do not make a model.
  void validate() const {
    auto positive = [](std::int64_t v, const char* name) {
      detail::require(v > 0, "LlamaConfig: ", name, " must be positive, got ", v);
    };
    positive(vocab_size, "vocab_size");
    positive(hidden_size, "hidden_size");
    positive(intermediate_size, "intermediate_size");
    positive(num_hidden_layers, "num_hidden_layers");
    positive(num_attention_heads, "num_attention_heads");
    positive(num_key_value_heads, "num_key_value_heads");
    positive(head_dim, "head_dim");
    positive(max_position_embeddings, "max_position_embeddings");
    detail::require(num_attention_heads % num_key_value_heads == 0,
                    "LlamaConfig: num_attention_heads (", num_attention_heads,
                    ") is not a multiple of num_key_value_heads (", num_key_value_heads, ")");
    detail::require(head_dim % 2 == 0,
                    "LlamaConfig: head_dim must be even for rotary embeddings, got ", head_dim);
    detail::require(std::isfinite(rms_norm_eps) && rms_norm_eps > 0,
                    "LlamaConfig: rms_norm_eps must be positive");
    detail::require(std::isfinite(rope_theta) && rope_theta > 1,
                    "LlamaConfig: rope_theta must be > 1");
    detail::require(sliding_window >= 0, "LlamaConfig: sliding_window must be >= 0");
    if (rope_scaling.type != RopeScaling::Type::none)
      detail::require(std::isfinite(rope_scaling.factor) && rope_scaling.factor >= 1,
                      "LlamaConfig: rope_scaling.factor must be >= 1");
    if (rope_scaling.type == RopeScaling::Type::llama3) {
      detail::require(rope_scaling.high_freq_factor > rope_scaling.low_freq_factor &&
                          rope_scaling.low_freq_factor > 0,
                      "LlamaConfig: rope_scaling needs 0 < low_freq_factor < high_freq_factor");
      positive(rope_scaling.original_max_position_embeddings,
               "rope_scaling.original_max_position_embeddings");
    }
  }

  std::int64_t q_size() const { return num_attention_heads * head_dim; }
  std::int64_t kv_size() const { return num_key_value_heads * head_dim; }

  /// The inverse frequencies of the rotary embedding (head_dim / 2 entries), scaling included,
  /// in double: inv_freq[i] = rope_theta^(-2i / head_dim), then HF's scaling rule.
  std::vector<double> rope_inverse_frequencies() const {
    const std::int64_t half = head_dim / 2;
    std::vector<double> f(static_cast<std::size_t>(half));
    const double pi = 3.14159265358979323846;
    for (std::int64_t i = 0; i < half; ++i) {
      double inv = std::pow(rope_theta, -2.0 * double(i) / double(head_dim));
      if (rope_scaling.type == RopeScaling::Type::linear) {
        inv /= rope_scaling.factor;
      } else if (rope_scaling.type == RopeScaling::Type::llama3) {
        // transformers' _compute_llama3_parameters: long wavelengths slow down by `factor`,
        // short ones stay, and the band between is interpolated smoothly.
        const double old_ctx = double(rope_scaling.original_max_position_embeddings);
        const double low_wavelen = old_ctx / rope_scaling.low_freq_factor;
        const double high_wavelen = old_ctx / rope_scaling.high_freq_factor;
        const double wavelen = 2 * pi / inv;
        if (wavelen > low_wavelen) {
          inv /= rope_scaling.factor;
        } else if (wavelen >= high_wavelen) {
          const double smooth = (old_ctx / wavelen - rope_scaling.low_freq_factor) /
                                (rope_scaling.high_freq_factor - rope_scaling.low_freq_factor);
          inv = (1 - smooth) * inv / rope_scaling.factor + smooth * inv;
        }
      }
      f[static_cast<std::size_t>(i)] = inv;
    }
    return f;
  }

  /// Reads a parsed `config.json`. `source` names it in errors. Throws `FormatError` for a
  /// missing or mistyped key, an unsupported model type or feature (naming the key), and
  /// `InvalidArgument` via `validate()` for sizes that do not make a model.
  static LlamaConfig from_json(const nlohmann::json& j, const std::string& source = "config.json") {
    auto fail = [&](const std::string& what) -> void {
      throw FormatError("mbok: " + source + ": " + what);
    };
    if (!j.is_object()) fail("not a JSON object");
    // Keys that describe how the checkpoint was made or stored, never the function it computes.
    static const std::set<std::string> bookkeeping = {"_name_or_path",
                                                      "architectures",
                                                      "torch_dtype",
                                                      "dtype",
                                                      "transformers_version",
                                                      "initializer_range",
                                                      "use_cache",
                                                      "pad_token_id",
                                                      "sep_token_id",
                                                      "attention_dropout",
                                                      "pretraining_tp",
                                                      "tokenizer_class",
                                                      "output_attentions",
                                                      "output_hidden_states",
                                                      "return_dict",
                                                      "torchscript",
                                                      "is_encoder_decoder",
                                                      "is_decoder",
                                                      "add_cross_attention",
                                                      "id2label",
                                                      "label2id",
                                                      "problem_type",
                                                      "chunk_size_feed_forward",
                                                      "tie_encoder_decoder",
                                                      "prefix",
                                                      "task_specific_params",
                                                      "finetuning_task",
                                                      "bad_words_ids",
                                                      "begin_suppress_tokens",
                                                      "decoder_start_token_id",
                                                      "diversity_penalty",
                                                      "do_sample",
                                                      "early_stopping",
                                                      "encoder_no_repeat_ngram_size",
                                                      "exponential_decay_length_penalty",
                                                      "forced_bos_token_id",
                                                      "forced_eos_token_id",
                                                      "length_penalty",
                                                      "max_length",
                                                      "min_length",
                                                      "no_repeat_ngram_size",
                                                      "num_beam_groups",
                                                      "num_beams",
                                                      "num_return_sequences",
                                                      "output_scores",
                                                      "remove_invalid_values",
                                                      "repetition_penalty",
                                                      "return_dict_in_generate",
                                                      "suppress_tokens",
                                                      "temperature",
                                                      "top_k",
                                                      "top_p",
                                                      "typical_p",
                                                      "cross_attention_hidden_size",
                                                      "pruned_heads",
                                                      "tf_legacy_loss",
                                                      "use_bfloat16",
                                                      "max_window_layers",
                                                      "use_sliding_window",
                                                      "layer_types",
                                                      "embedding_multiplier_removed"};
    LlamaConfig c;
    auto get_int = [&](const char* key, bool required, std::int64_t fallback) -> std::int64_t {
      auto it = j.find(key);
      if (it == j.end() || it->is_null()) {
        if (required) fail(std::string("missing key \"") + key + "\"");
        return fallback;
      }
      if (!it->is_number_integer()) fail(std::string("\"") + key + "\" must be an integer");
      return it->get<std::int64_t>();
    };
    auto get_num = [&](const nlohmann::json& obj, const char* key, double fallback) -> double {
      auto it = obj.find(key);
      if (it == obj.end() || it->is_null()) return fallback;
      if (!it->is_number()) fail(std::string("\"") + key + "\" must be a number");
      return it->get<double>();
    };
    auto get_bool = [&](const char* key, bool fallback) -> bool {
      auto it = j.find(key);
      if (it == j.end() || it->is_null()) return fallback;
      if (!it->is_boolean()) fail(std::string("\"") + key + "\" must be true or false");
      return it->get<bool>();
    };
    auto get_ids = [&](const char* key) {
      std::vector<std::int64_t> ids;
      auto it = j.find(key);
      if (it == j.end() || it->is_null()) return ids;
      if (it->is_number_integer()) return std::vector<std::int64_t>{it->get<std::int64_t>()};
      if (!it->is_array())
        fail(std::string("\"") + key + "\" must be an integer or a list of integers");
      for (const auto& v : *it) {
        if (!v.is_number_integer()) fail(std::string("\"") + key + "\" must be a list of integers");
        ids.push_back(v.get<std::int64_t>());
      }
      return ids;
    };

    auto mt = j.find("model_type");
    if (mt == j.end() || !mt->is_string()) fail("missing key \"model_type\"");
    c.model_type = mt->get<std::string>();
    if (c.model_type != "llama" && c.model_type != "mistral")
      fail("model_type \"" + c.model_type + "\" is not supported (supported: llama, mistral)");

    c.vocab_size = get_int("vocab_size", true, 0);
    c.hidden_size = get_int("hidden_size", true, 0);
    c.intermediate_size = get_int("intermediate_size", true, 0);
    c.num_hidden_layers = get_int("num_hidden_layers", true, 0);
    c.num_attention_heads = get_int("num_attention_heads", true, 0);
    c.num_key_value_heads = get_int("num_key_value_heads", false, c.num_attention_heads);
    c.head_dim = get_int("head_dim", false,
                         c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0);
    c.max_position_embeddings = get_int("max_position_embeddings", true, 0);
    c.rms_norm_eps = get_num(j, "rms_norm_eps", 1e-6);
    c.tie_word_embeddings = get_bool("tie_word_embeddings", false);
    c.attention_bias = get_bool("attention_bias", false);
    c.mlp_bias = get_bool("mlp_bias", false);
    c.sliding_window = get_int("sliding_window", false, 0);
    c.bos_token_ids = get_ids("bos_token_id");
    c.eos_token_ids = get_ids("eos_token_id");

    if (auto act = j.find("hidden_act"); act != j.end()) {
      if (!act->is_string() ||
          (act->get<std::string>() != "silu" && act->get<std::string>() != "swish"))
        fail("hidden_act " + act->dump() + " is not supported (supported: \"silu\")");
    }
    if (auto tp = j.find("pretraining_tp");
        tp != j.end() && !tp->is_null() && !tp->is_number_integer())
      fail("\"pretraining_tp\" must be an integer");

    // RoPE: `rope_theta` + `rope_scaling` (transformers 4.x) or `rope_parameters` (5.x).
    c.rope_theta = get_num(j, "rope_theta", 10000.0);
    const nlohmann::json* rope = nullptr;
    std::string rope_key;
    for (const char* key : {"rope_scaling", "rope_parameters"}) {
      auto it = j.find(key);
      if (it == j.end() || it->is_null()) continue;
      if (!it->is_object()) fail(std::string("\"") + key + "\" must be an object");
      rope = &*it;
      rope_key = key;
    }
    if (rope) {
      c.rope_theta = get_num(*rope, "rope_theta", c.rope_theta);
      std::string type = "default";
      for (const char* key : {"rope_type", "type"}) {
        auto it = rope->find(key);
        if (it != rope->end() && it->is_string()) type = it->get<std::string>();
      }
      if (type == "default") {
        c.rope_scaling.type = RopeScaling::Type::none;
      } else if (type == "linear") {
        c.rope_scaling.type = RopeScaling::Type::linear;
        c.rope_scaling.factor = get_num(*rope, "factor", 1.0);
      } else if (type == "llama3") {
        c.rope_scaling.type = RopeScaling::Type::llama3;
        c.rope_scaling.factor = get_num(*rope, "factor", 1.0);
        c.rope_scaling.low_freq_factor = get_num(*rope, "low_freq_factor", 1.0);
        c.rope_scaling.high_freq_factor = get_num(*rope, "high_freq_factor", 4.0);
        auto it = rope->find("original_max_position_embeddings");
        if (it == rope->end() || !it->is_number_integer())
          fail(rope_key + ".original_max_position_embeddings is missing");
        c.rope_scaling.original_max_position_embeddings = it->get<std::int64_t>();
      } else {
        fail(rope_key + " type \"" + type +
             "\" is not supported (supported: default, linear, llama3)");
      }
      static const std::set<std::string> rope_keys = {"rope_type",
                                                      "type",
                                                      "rope_theta",
                                                      "factor",
                                                      "low_freq_factor",
                                                      "high_freq_factor",
                                                      "original_max_position_embeddings"};
      for (const auto& item : rope->items())
        if (!rope_keys.count(item.key())) fail(rope_key + "." + item.key() + " is not supported");
    }

    static const std::set<std::string> understood = {"model_type",
                                                     "vocab_size",
                                                     "hidden_size",
                                                     "intermediate_size",
                                                     "num_hidden_layers",
                                                     "num_attention_heads",
                                                     "num_key_value_heads",
                                                     "head_dim",
                                                     "max_position_embeddings",
                                                     "rms_norm_eps",
                                                     "tie_word_embeddings",
                                                     "attention_bias",
                                                     "mlp_bias",
                                                     "sliding_window",
                                                     "bos_token_id",
                                                     "eos_token_id",
                                                     "hidden_act",
                                                     "rope_theta",
                                                     "rope_scaling",
                                                     "rope_parameters"};
    for (const auto& item : j.items()) {
      if (understood.count(item.key()) || bookkeeping.count(item.key())) continue;
      fail("key \"" + item.key() +
           "\" is not supported (it may change the model; mbok reads only keys it " +
           "implements)");
    }
    if (c.sliding_window >= c.max_position_embeddings) c.sliding_window = 0;  // never reached
    try {
      c.validate();
    } catch (const InvalidArgument& e) {
      throw FormatError(std::string("mbok: ") + source + ": " + (e.what() + 6));
    }
    return c;
  }

  /// Reads `path` (a config.json). Throws `FormatError` naming the file.
  static LlamaConfig from_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw FormatError("mbok: cannot open " + path);
    std::ostringstream text;
    text << in.rdbuf();
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text.str());
    } catch (const nlohmann::json::exception& e) {
      throw FormatError("mbok: " + path + ": malformed JSON (" + e.what() + ")");
    }
    return from_json(j, path);
  }

  /// The configuration as HF's `config.json` writes it (reads back equal with `from_json`).
  nlohmann::json to_json() const {
    nlohmann::json j = {
        {"architectures", {model_type == "mistral" ? "MistralForCausalLM" : "LlamaForCausalLM"}},
        {"model_type", model_type},
        {"vocab_size", vocab_size},
        {"hidden_size", hidden_size},
        {"intermediate_size", intermediate_size},
        {"num_hidden_layers", num_hidden_layers},
        {"num_attention_heads", num_attention_heads},
        {"num_key_value_heads", num_key_value_heads},
        {"head_dim", head_dim},
        {"max_position_embeddings", max_position_embeddings},
        {"rms_norm_eps", rms_norm_eps},
        {"rope_theta", rope_theta},
        {"tie_word_embeddings", tie_word_embeddings},
        {"attention_bias", attention_bias},
        {"mlp_bias", mlp_bias},
        {"hidden_act", "silu"}};
    if (sliding_window > 0) j["sliding_window"] = sliding_window;
    if (rope_scaling.type == RopeScaling::Type::linear)
      j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", rope_scaling.factor}};
    if (rope_scaling.type == RopeScaling::Type::llama3)
      j["rope_scaling"] = {
          {"rope_type", "llama3"},
          {"factor", rope_scaling.factor},
          {"low_freq_factor", rope_scaling.low_freq_factor},
          {"high_freq_factor", rope_scaling.high_freq_factor},
          {"original_max_position_embeddings", rope_scaling.original_max_position_embeddings}};
    auto ids = [](const std::vector<std::int64_t>& v) {
      return v.size() == 1 ? nlohmann::json(v[0]) : nlohmann::json(v);
    };
    if (!bos_token_ids.empty()) j["bos_token_id"] = ids(bos_token_ids);
    if (!eos_token_ids.empty()) j["eos_token_id"] = ids(eos_token_ids);
    return j;
  }
};

}  // namespace llama
}  // namespace mbok
