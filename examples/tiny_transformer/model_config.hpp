#pragma once
// The model's shape: a tiny LLaMA (RMSNorm, RoPE, grouped-query attention, SwiGLU) over a
// byte-level BPE vocabulary trained on the corpus.

#include <mbok/llama/config.hpp>

#include <string>

#include "common.hpp"

namespace tiny {

/// Shape of the model (the vocabulary size comes from the tokenizer).
struct ModelConfig {
  Index d_model = 128;
  Index layers = 3;
  Index heads = 4;
  Index kv_heads = 2;
  Index intermediate = 352;  ///< SwiGLU width (about 8/3 d_model, a multiple of 32)
  Index context = 64;        ///< tokens
  Index merges = 500;        ///< BPE merges learned on the corpus (vocabulary 256 + merges + 2)

  /// Throws `mbok::InvalidArgument` for a size <= 0, a context < 2, a width that the heads
  /// do not divide into even head dimensions, or kv heads that do not divide the heads.
  void validate() const;
  /// "d<d_model>-l<layers>-h<heads>/<kv_heads>-i<intermediate>-c<context>-v<merges>" (names
  /// files and checkpoints).
  std::string describe() const;
  /// The Hugging Face configuration of this shape with `vocab` tokens (tied embeddings).
  mbok::llama::LlamaConfig llama(Index vocab) const;
};

}  // namespace tiny
