#include "model_config.hpp"

#include <mbok/error.hpp>

#include <sstream>

namespace tiny {

void ModelConfig::validate() const {
  if (!(d_model > 0 && layers > 0 && heads > 0 && kv_heads > 0 && intermediate > 0 && context > 1 &&
        merges >= 0))
    throw mbok::InvalidArgument("model config: every size must be positive (context > 1)");
  if (d_model % heads != 0 || (d_model / heads) % 2 != 0)
    throw mbok::InvalidArgument("model config: d_model " + std::to_string(d_model) +
                                " is not a multiple of heads " + std::to_string(heads) +
                                " with an even head dimension");
  if (heads % kv_heads != 0)
    throw mbok::InvalidArgument("model config: kv heads " + std::to_string(kv_heads) +
                                " do not divide heads " + std::to_string(heads));
}

std::string ModelConfig::describe() const {
  std::ostringstream s;
  s << "d" << d_model << "-l" << layers << "-h" << heads << "/" << kv_heads << "-i" << intermediate
    << "-c" << context << "-v" << merges;
  return s.str();
}

mbok::llama::LlamaConfig ModelConfig::llama(Index vocab) const {
  mbok::llama::LlamaConfig c;
  c.vocab_size = vocab;
  c.hidden_size = d_model;
  c.intermediate_size = intermediate;
  c.num_hidden_layers = layers;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  c.head_dim = d_model / heads;
  c.max_position_embeddings = context;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  c.tie_word_embeddings = true;
  c.bos_token_ids = {vocab - 2};  // the tokenizer's "<s>" and "</s>", its last two ids
  c.eos_token_ids = {vocab - 1};
  c.validate();
  return c;
}

}  // namespace tiny
