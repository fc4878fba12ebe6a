#pragma once
/// \file
/// A LLaMA-family Hugging Face checkpoint directory opened and checked against its
/// config.json: `open_llama_checkpoint(dir)` gives the `LlamaConfig` and the mapped tensors,
/// with every tensor the configuration implies (`expected_tensor_shapes`) present, of a float
/// dtype and of the right shape. Needs nlohmann/json.

#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "../io/hf_checkpoint.hpp"
#include "config.hpp"
#include "tensor_names.hpp"

namespace mbok {
namespace llama {

/// A checkpoint directory with its configuration.
struct LlamaCheckpoint {
  LlamaConfig config;
  HfCheckpoint checkpoint;
};

/// True for tensors a checkpoint may hold that never change the model: rotary inverse
/// frequencies saved as buffers by older transformers versions (`*.rotary_emb.inv_freq`),
/// recomputed from the configuration.
inline bool is_ignored_llama_tensor(const std::string& name) {
  const std::string suffix = ".rotary_emb.inv_freq";
  return name.size() > suffix.size() &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// Checks the tensors of `ckpt` against `config`. Throws `FormatError` naming the directory,
/// the tensor and, for a shape, the expected and the actual one, when:
/// - a tensor of `expected_tensor_shapes(config)` is missing, has another shape, or is not
///   F32, F16 or BF16 (F64 is accepted too);
/// - a tensor is neither expected nor ignorable (`is_ignored_llama_tensor`): the
///   configuration would not use it, so checkpoint and config.json do not describe the same
///   model. With `tie_word_embeddings`, an `lm_head.weight` of the embedding's shape is
///   accepted (some exporters store the tied copy) and unused.
inline void check_llama_tensors(const LlamaConfig& config, const HfCheckpoint& ckpt) {
  auto fail = [&](const std::string& what) {
    throw FormatError("mbok: Hugging Face checkpoint '" + ckpt.dir() + "': " + what);
  };
  auto shape_text = [](const std::vector<std::int64_t>& s) { return detail::shape_text(s); };
  std::set<std::string> expected;
  for (const auto& [name, shape] : expected_tensor_shapes(config)) {
    expected.insert(name);
    const TensorView* t = ckpt.find(name);
    if (t == nullptr)
      fail("tensor '" + name + "' (shape " + shape_text(shape) +
           ") is missing; config.json implies it");
    if (t->shape != shape)
      fail("tensor '" + name + "' has shape " + shape_text(t->shape) + ", expected " +
           shape_text(shape) + " from config.json");
    if (t->dtype != DType::f32 && t->dtype != DType::f16 && t->dtype != DType::bf16 &&
        t->dtype != DType::f64)
      fail("tensor '" + name + "' has dtype " + dtype_name(t->dtype) +
           ", expected F32, F16 or BF16");
  }
  for (const std::string& name : ckpt.tensor_names()) {
    if (expected.count(name) || is_ignored_llama_tensor(name)) continue;
    if (name == "lm_head.weight" && config.tie_word_embeddings) {
      const std::vector<std::int64_t> want = {config.vocab_size, config.hidden_size};
      if (ckpt.tensor(name).shape != want)
        fail("tensor 'lm_head.weight' has shape " + shape_text(ckpt.tensor(name).shape) +
             ", expected " + shape_text(want));
      continue;
    }
    fail("tensor '" + name + "' is not part of the model config.json describes");
  }
}

/// Opens `dir` (`HfCheckpoint::open`), reads its config.json (`LlamaConfig::from_file`) and
/// checks the tensors against it (`check_llama_tensors`). Throws `FormatError`.
inline LlamaCheckpoint open_llama_checkpoint(const std::string& dir) {
  HfCheckpoint ckpt = HfCheckpoint::open(dir);
  LlamaConfig config = LlamaConfig::from_file(ckpt.config_path());
  check_llama_tensors(config, ckpt);
  return {std::move(config), std::move(ckpt)};
}

}  // namespace llama
}  // namespace mbok
