#include "model_io.hpp"

#include <mbok/boolean_linear.hpp>

#include <filesystem>
#include <random>

namespace tiny {

namespace train = mbok::llama::train;
using mbok::llama::LlamaConfig;
using mbok::llama::LlamaModel;

bool file_exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::exists(path, ec);
}

Llama random_teacher(const LlamaConfig& c, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  auto random = [&](Index rows, Index cols, float scale) {
    mbok::llama::RowMatrix m(rows, cols);
    for (Index i = 0; i < m.size(); ++i) m.data()[i] = normal(rng) * scale;
    return m;
  };
  const float out_scale = 1.0f / std::sqrt(2.0f * float(c.num_hidden_layers));
  const Index h = c.hidden_size, q = c.q_size(), kv = c.kv_size(), ff = c.intermediate_size;
  std::vector<mbok::llama::LlamaBlock> blocks(std::size_t(c.num_hidden_layers));
  for (std::size_t l = 0; l < blocks.size(); ++l) {
    auto& b = blocks[l];
    b.input_layernorm = Eigen::VectorXf::Ones(h);
    b.post_attention_layernorm = Eigen::VectorXf::Ones(h);
    const auto name = [&](const char* which) {
      return mbok::llama::block_linear_name(Index(l), which);
    };
    using mbok::llama::LinearLayer;
    b.q_proj = LinearLayer::dense(random(q, h, 1), {}, name("self_attn.q_proj"));
    b.k_proj = LinearLayer::dense(random(kv, h, 1), {}, name("self_attn.k_proj"));
    b.v_proj = LinearLayer::dense(random(kv, h, 1), {}, name("self_attn.v_proj"));
    b.o_proj = LinearLayer::dense(random(h, q, out_scale), {}, name("self_attn.o_proj"));
    b.gate_proj = LinearLayer::dense(random(ff, h, 1), {}, name("mlp.gate_proj"));
    b.up_proj = LinearLayer::dense(random(ff, h, 1), {}, name("mlp.up_proj"));
    b.down_proj = LinearLayer::dense(random(h, ff, out_scale), {}, name("mlp.down_proj"));
  }
  const LlamaModel model(c, random(c.vocab_size, h, 1), std::move(blocks), Eigen::VectorXf::Ones(h),
                         mbok::llama::RowMatrix());
  train::TrainableParts parts;
  parts.embedding = true;  // tied: the head trains with it
  return Llama(model, train::dense_projections<float>(), parts);
}

void save_teacher(const Llama& model, const std::string& dir, const std::string& tokenizer_json) {
  model.write_hf(dir, tokenizer_json);
}

mbok::llama::PretrainedModel load_model(const std::string& path, const LlamaConfig& expected,
                                        mbok::llama::Activations activations) {
  if (!file_exists(path)) throw ModelFileError("model '" + path + "' does not exist");
  mbok::llama::ModelOptions o;
  o.activations = activations;
  mbok::llama::PretrainedModel p;
  try {
    p = mbok::llama::load_pretrained(path, o);
  } catch (const std::exception& e) {
    throw ModelFileError("model '" + path + "' cannot be read: " + e.what());
  }
  if (p.model.config().to_json() != expected.to_json())
    throw ModelFileError("model '" + path + "' was made for another configuration (" +
                         p.model.config().to_json().dump() + "); this run uses " +
                         expected.to_json().dump());
  if (!p.tokenizer) throw ModelFileError("model '" + path + "' has no tokenizer.json");
  return p;
}

mbok::BooleanLinearOptions boolean_options(const std::string& train_kernels, std::size_t k) {
  mbok::BooleanLinearOptions o;
  o.trainable_kernels.clear();
  if (train_kernels == "all")
    for (std::size_t i = 0; i < k; ++i) o.trainable_kernels.push_back(long(i));
  else if (train_kernels == "last")
    o.trainable_kernels = {-1};
  else if (train_kernels != "none")
    throw mbok::InvalidArgument("trainable kernels must be last, all or none, got '" +
                                train_kernels + "'");
  return o;
}

Llama boolean_model(const LlamaModel& source, const KernelPlan& plan,
                    const std::string& train_kernels) {
  auto factory =
      [&](const std::string& name,
          const mbok::llama::LinearLayer& l) -> std::unique_ptr<train::Projection<float>> {
    if (l.is_boolean()) {
      mbok::MultiKernelWeights<float> w = l.to_boolean_linear().weights();
      return std::make_unique<train::BooleanProjection<float>>(mbok::BooleanLinear<float>(
          std::move(w), boolean_options(train_kernels, l.num_kernels())));
    }
    const auto k = std::size_t(plan.at(name));
    return std::make_unique<train::BooleanProjection<float>>(mbok::BooleanLinear<float>::from_dense(
        *l.dense_weight(), k, std::nullopt, boolean_options(train_kernels, k)));
  };
  return Llama(source, factory);
}

Llama latent_model(const LlamaModel& teacher, const KernelPlan& plan,
                   const std::string& train_kernels) {
  auto factory =
      [&](const std::string& name,
          const mbok::llama::LinearLayer& l) -> std::unique_ptr<train::Projection<float>> {
    const auto k = std::size_t(plan.at(name));
    std::vector<bool> trainable(k, train_kernels == "all");
    if (train_kernels == "last") trainable.back() = true;
    return std::make_unique<LatentProjection<float>>(*l.dense_weight(), k, trainable);
  };
  return Llama(teacher, factory);
}

std::vector<LatentProjection<float>*> latent_projections(Llama& model) {
  std::vector<LatentProjection<float>*> out;
  for (std::size_t l = 0; l < model.num_blocks(); ++l)
    for (std::size_t j = 0; j < train::projection_names().size(); ++j)
      if (auto* p = dynamic_cast<LatentProjection<float>*>(&model.projection(l, j)))
        out.push_back(p);
  return out;
}

void save_mbok(const Llama& model, const std::string& path, const std::string& tokenizer_json,
               const std::string& kind,
               const std::vector<std::pair<std::string, std::string>>& extra) {
  auto metadata = extra;
  metadata.emplace_back("tiny.kind", kind);
  model.write_mbok(path, tokenizer_json, metadata);
}

}  // namespace tiny
