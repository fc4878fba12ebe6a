#include "model_io.hpp"

#include <mbok/boolean_linear.hpp>
#include <mbok/io/safetensors.hpp>

#include <fstream>

namespace tiny {

bool file_exists(const std::string& path) { return std::ifstream(path).good(); }

namespace {

// Options of the Boolean layers: which kernels train ("last" or "all").
mbok::BooleanLinearOptions boolean_options(const std::string& train_kernels, std::size_t k) {
  mbok::BooleanLinearOptions o;
  if (train_kernels == "all") {
    o.trainable_kernels.clear();
    for (std::size_t i = 0; i < k; ++i) o.trainable_kernels.push_back(long(i));
  } else {
    o.trainable_kernels = {-1};
  }
  return o;
}

// Reads a model file and checks that it was made for `config`.
mbok::StateDict read_model_file(const std::string& path, const ModelConfig& config) {
  if (!file_exists(path)) throw ModelFileError("model file '" + path + "' does not exist");
  mbok::Metadata meta;
  mbok::StateDict dict;
  try {
    dict = mbok::load_state_dict(path, &meta);
  } catch (const std::exception& e) {
    throw ModelFileError("model file '" + path + "' cannot be read: " + e.what());
  }
  const auto it = meta.find("tiny.config");
  if (it == meta.end())
    throw ModelFileError("model file '" + path +
                         "' is not a tiny_transformer model (no tiny.config metadata)");
  if (it->second != config.describe())
    throw ModelFileError("model file '" + path + "' was made for configuration " + it->second +
                         ", this run uses " + config.describe());
  return dict;
}

}  // namespace

void save_model(const Transformer<float>& model, const std::string& path, const std::string& kind,
                mbok::Metadata extra) {
  extra["tiny.config"] = model.config().describe();
  extra["tiny.kind"] = kind;
  mbok::save_state_dict(path, model.state(), extra);
}

std::unique_ptr<Transformer<float>> load_dense_model(const std::string& path,
                                                     const ModelConfig& config) {
  const auto dict = read_model_file(path, config);
  auto model = std::make_unique<Transformer<float>>(config);
  try {
    model->load_state(dict);
  } catch (const std::exception& e) {
    throw ModelFileError("model file '" + path +
                         "' does not hold a full-precision model: " + e.what());
  }
  return model;
}

namespace {

// The teacher from `teacher_path` with every linear layer replaced by make(its dense weight,
// plan[name] kernels).
template <typename Make>
std::unique_ptr<Transformer<float>> with_replaced_linears(const std::string& teacher_path,
                                                          const ModelConfig& config,
                                                          const KernelPlan& plan, Make&& make) {
  auto model = load_dense_model(teacher_path, config);
  model->for_each_linear([&](const std::string& name, std::unique_ptr<Linear<float>>& layer) {
    layer = make(layer->dense_weight(), std::size_t(plan.at(name)));
  });
  return model;
}

}  // namespace

std::unique_ptr<Transformer<float>> convert_model(const std::string& teacher_path,
                                                  const ModelConfig& config, const KernelPlan& plan,
                                                  const std::string& train_kernels) {
  return with_replaced_linears(teacher_path, config, plan, [&](const Mat<float>& w, std::size_t k) {
    return std::make_unique<BoolLinear<float>>(mbok::BooleanLinear<float>::from_dense(
        w, k, std::nullopt, boolean_options(train_kernels, k)));
  });
}

std::unique_ptr<Transformer<float>> load_boolean_model(const std::string& path,
                                                       const ModelConfig& config,
                                                       const std::string& train_kernels) {
  const auto dict = read_model_file(path, config);
  auto model = std::make_unique<Transformer<float>>(config);
  try {
    model->for_each_linear([&](const std::string& name, std::unique_ptr<Linear<float>>& layer) {
      const std::string prefix = name + ".";
      std::size_t k = 0;
      while (dict.count(prefix + "kernels." + std::to_string(k) + ".bits")) ++k;
      if (k == 0) throw ModelFileError("no Boolean kernels for layer '" + name + "'");
      layer = std::make_unique<BoolLinear<float>>(
          mbok::BooleanLinear<float>::from_state(dict, prefix, boolean_options(train_kernels, k)));
    });
    model->load_state(dict);
  } catch (const std::exception& e) {
    throw ModelFileError("model file '" + path + "' does not hold a Boolean model: " + e.what());
  }
  return model;
}

std::unique_ptr<Transformer<float>> latent_model(const std::string& teacher_path,
                                                 const ModelConfig& config, const KernelPlan& plan,
                                                 const std::string& train_kernels) {
  return with_replaced_linears(teacher_path, config, plan, [&](const Mat<float>& w, std::size_t k) {
    std::vector<bool> trainable(k, train_kernels == "all");
    trainable.back() = true;
    return std::make_unique<LatentLinear<float>>(w, k, trainable);
  });
}

void set_inference_kernel(Transformer<float>& model, InferenceKernel mode) {
  model.for_each_linear([&](const std::string&, std::unique_ptr<Linear<float>>& layer) {
    if (auto* b = dynamic_cast<BoolLinear<float>*>(layer.get())) b->set_inference_kernel(mode);
  });
}

}  // namespace tiny
