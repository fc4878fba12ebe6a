#pragma once
// Model files: safetensors with the model's tensors and metadata naming the configuration
// and kind, so a file made for another configuration is refused with a clear message.
// Builds teachers (dense layers), Boolean students (SVID or saved kernels) and latent
// baselines.

#include <mbok/io/safetensors.hpp>
#include <mbok/state_dict.hpp>

#include <map>
#include <memory>
#include <stdexcept>
#include <string>

#include "boolean_layers.hpp"
#include "model.hpp"

namespace tiny {

/// A model file is missing, of the wrong kind or made for another configuration.
class ModelFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Whether `path` can be opened for reading.
bool file_exists(const std::string& path);

/// Saves `model` with metadata naming its configuration and `kind` (plus `extra`).
void save_model(const Transformer<float>& model, const std::string& path, const std::string& kind,
                mbok::Metadata extra = {});

/// The teacher (full-precision layers) from a file.
std::unique_ptr<Transformer<float>> load_dense_model(const std::string& path,
                                                     const ModelConfig& config);

/// Kernels per linear layer ("blocks.0.attn.q" -> K).
using KernelPlan = std::map<std::string, int>;

/// A Boolean student: the teacher's embeddings, norms and head, and every linear layer
/// converted by successive SVID into plan[name] kernels.
std::unique_ptr<Transformer<float>> convert_model(const std::string& teacher_path,
                                                  const ModelConfig& config, const KernelPlan& plan,
                                                  const std::string& train_kernels);

/// A Boolean model saved by `save_model` (K per layer read from the file).
std::unique_ptr<Transformer<float>> load_boolean_model(const std::string& path,
                                                       const ModelConfig& config,
                                                       const std::string& train_kernels = "last");

/// The latent-weight baseline initialised from the teacher with the same SVID.
std::unique_ptr<Transformer<float>> latent_model(const std::string& teacher_path,
                                                 const ModelConfig& config, const KernelPlan& plan,
                                                 const std::string& train_kernels);

/// Sets how every Boolean layer runs at inference.
void set_inference_kernel(Transformer<float>& model, InferenceKernel mode);

}  // namespace tiny
