#pragma once
// Text generation with the library's LLaMA decoder, KV cache, Sampler and DecodeStream (what
// mbok-run generate does, with a context that restarts when it fills).

#include <mbok/llama/model.hpp>
#include <mbok/llama/sampler.hpp>
#include <mbok/tokenizer/tokenizer.hpp>

#include <string>

namespace tiny {

/// Samples `count` tokens after `prompt` with `sampler`; when the cache (the model's
/// max_position_embeddings) fills, it restarts on the last half of the tokens. Returns the
/// generated text (the prompt excluded).
std::string generate(const mbok::llama::LlamaModel& model, const mbok::Tokenizer& tokenizer,
                     const std::string& prompt, int count, mbok::llama::Sampler& sampler);

}  // namespace tiny
