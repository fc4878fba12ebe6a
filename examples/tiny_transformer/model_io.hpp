#pragma once
// Model files on the Hugging Face road: the teacher is a Hugging Face checkpoint directory
// (config.json, model.safetensors, tokenizer.json: `write_hf_checkpoint`), every Boolean
// model an mbok file in mbok-convert's layout (configuration and tokenizer in its metadata),
// both read back with the library's `load_pretrained`, which mbok-run uses too. Builds the
// trainable models on the library's `TrainableLlama`: the teacher (dense projections),
// Boolean students (SVID or saved kernels) and the latent-weight baseline.

#include <mbok/llama/pretrained.hpp>
#include <mbok/llama/train/model.hpp>

#include <map>
#include <stdexcept>
#include <string>

#include "latent_projection.hpp"
#include "model_config.hpp"

namespace tiny {

using Llama = mbok::llama::train::TrainableLlama<float>;

/// A model file is missing, unreadable or made for another configuration.
class ModelFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Whether `path` exists (a file or a directory).
bool file_exists(const std::string& path);

/// A new teacher of `config`'s shape: normal(0, 0.02) weights (output projections scaled by
/// 1 / sqrt(2 layers)), unit norms, from `seed`; every projection dense.
Llama random_teacher(const mbok::llama::LlamaConfig& config, std::uint64_t seed);

/// Writes `model` (dense) as a Hugging Face checkpoint directory with `tokenizer_json`.
void save_teacher(const Llama& model, const std::string& dir, const std::string& tokenizer_json);

/// Loads a teacher directory or an mbok file with `load_pretrained` and checks its
/// configuration against `expected`. Throws `ModelFileError` naming the path.
mbok::llama::PretrainedModel load_model(
    const std::string& path, const mbok::llama::LlamaConfig& expected,
    mbok::llama::Activations activations = mbok::llama::Activations::float32);

/// Kernels per projection ("model.layers.0.self_attn.q_proj" -> K).
using KernelPlan = std::map<std::string, int>;

/// Which kernels' bits train: "last", "all" or "none" (the scales-only ablation).
mbok::BooleanLinearOptions boolean_options(const std::string& train_kernels, std::size_t k);

/// A Boolean student: dense projections of `source` converted by successive SVID into
/// plan[name] kernels (mbok-convert's conversion), Boolean ones kept.
Llama boolean_model(const mbok::llama::LlamaModel& source, const KernelPlan& plan,
                    const std::string& train_kernels);

/// The latent-weight baseline from the teacher with the same SVID.
Llama latent_model(const mbok::llama::LlamaModel& teacher, const KernelPlan& plan,
                   const std::string& train_kernels);

/// The latent projections of a baseline model (in block order).
std::vector<LatentProjection<float>*> latent_projections(Llama& model);

/// Writes `model` as an mbok file (atomically) with the tokenizer and `tiny.*` metadata.
void save_mbok(const Llama& model, const std::string& path, const std::string& tokenizer_json,
               const std::string& kind,
               const std::vector<std::pair<std::string, std::string>>& extra = {});

}  // namespace tiny
