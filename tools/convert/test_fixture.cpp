// Test helper for mbok-convert: `make FILE` writes a small full-precision model (F32, F16 and
// BF16 matrices, a bias, a norm, embeddings and an output head); `verify MBOK SOURCE REPORT`
// loads the converted file and checks each layer against its source matrix and the report;
// `verify-hf MBOK DIR K` checks the conversion of a Hugging Face checkpoint directory: the
// blocks' linear layers converted with K kernels, every other tensor kept byte for byte, and
// config.json and tokenizer.json carried in the metadata; `truncate FILE SIZE` cuts a file.
#include <mbok/half.hpp>
#include <mbok/io/mbok_format.hpp>
#include <mbok/llama/hf_model.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <regex>

namespace {

using namespace mbok;

Tensor matrix(DType dtype, std::int64_t rows, std::int64_t cols, std::mt19937& rng, float scale) {
  std::normal_distribution<float> d(0.0f, scale);
  Tensor t;
  t.dtype = dtype;
  t.shape = cols > 0 ? std::vector<std::int64_t>{rows, cols} : std::vector<std::int64_t>{rows};
  const std::size_t n = t.numel();
  for (std::size_t i = 0; i < n; ++i) {
    // Columns of different scale make K matter differently per layer.
    const float x = d(rng) * (1.0f + 0.5f * static_cast<float>(i % 7));
    if (dtype == DType::f32) {
      std::uint8_t b[4];
      std::memcpy(b, &x, 4);
      t.bytes.insert(t.bytes.end(), b, b + 4);
    } else {
      const std::uint16_t h = dtype == DType::f16 ? float_to_f16(x) : float_to_bf16(x);
      t.bytes.push_back(static_cast<std::uint8_t>(h & 0xff));
      t.bytes.push_back(static_cast<std::uint8_t>(h >> 8));
    }
  }
  return t;
}

int make(const std::string& path) {
  std::mt19937 rng(17);
  StateDict s;
  s["model.embed_tokens.weight"] = matrix(DType::f32, 50, 24, rng, 1.0f);
  s["model.layers.0.self_attn.q_proj.weight"] = matrix(DType::f32, 24, 24, rng, 0.2f);
  s["model.layers.0.self_attn.q_proj.bias"] = matrix(DType::f32, 24, 0, rng, 0.1f);
  s["model.layers.0.mlp.up_proj.weight"] = matrix(DType::f16, 70, 24, rng, 0.2f);
  s["model.layers.0.mlp.down_proj.weight"] = matrix(DType::bf16, 24, 70, rng, 0.05f);
  s["model.norm.weight"] = matrix(DType::f32, 24, 0, rng, 1.0f);
  s["lm_head.weight"] = matrix(DType::f32, 50, 24, rng, 1.0f);
  save_state_dict(path, s, {{"format", "pt"}});
  return 0;
}

int verify(const std::string& mbok_path, const std::string& source_path,
           const std::string& report_path) {
  const MbokModel model = MbokModel::open(mbok_path);
  const SafetensorsFile source = SafetensorsFile::open(source_path);
  std::ifstream in(report_path);
  const nlohmann::json report = nlohmann::json::parse(in);
  int failures = 0;
  auto check = [&](bool ok, const std::string& what) {
    if (!ok) {
      std::cerr << "verify: " << what << "\n";
      ++failures;
    }
  };
  check(report["layers"].size() == model.layers().size(), "layer count differs from the report");
  for (const auto& entry : report["layers"]) {
    const std::string name = entry["layer"].get<std::string>();
    const MbokLayerInfo& info = model.layer(name);
    const MultiKernelWeights<float> w = model.load_weights<float>(name);
    check(w.num_kernels() == entry["kernels"].get<std::size_t>(),
          name + ": K differs from the report");
    for (std::size_t k = 0; k < w.num_kernels(); ++k)
      check(w.kernel(k).is_borrowed(), name + ": kernel copied");
    const double e = w.relative_error(source.at(info.source).to_matrix());
    check(std::fabs(e - entry["relative_error"].get<double>()) <= 1e-3 * e + 1e-6,
          name + ": relative error " + std::to_string(e) + " differs from the report");
    check(e < 1.0, name + ": error not below 1");
  }
  for (const char* kept : {"model.embed_tokens.weight", "lm_head.weight", "model.norm.weight"})
    check(model.file().at(kept).to_tensor().bytes == source.at(kept).to_tensor().bytes,
          std::string(kept) + " not kept as it was");
  check(
      model.layer("model.layers.0.self_attn.q_proj").bias == "model.layers.0.self_attn.q_proj.bias",
      "q_proj bias not recorded");
  std::cout << "verified " << model.layers().size() << " layers\n";
  return failures == 0 ? 0 : 1;
}

int verify_hf(const std::string& mbok_path, const std::string& dir, std::size_t kernels) {
  const MbokModel model = MbokModel::open(mbok_path);
  const llama::LlamaCheckpoint source = llama::open_llama_checkpoint(dir);
  int failures = 0;
  auto check = [&](bool ok, const std::string& what) {
    if (!ok) {
      std::cerr << "verify-hf: " << what << "\n";
      ++failures;
    }
  };
  std::size_t expected_layers = 0;
  const std::regex block(llama::kBlockLinearPattern);
  for (const auto& [name, shape] : llama::expected_tensor_shapes(source.config)) {
    const TensorView& t = source.checkpoint.tensor(name);
    if (std::regex_search(name, block)) {
      ++expected_layers;
      const std::string layer = name.substr(0, name.size() - 7);  // no ".weight"
      if (!model.has_layer(layer)) {
        check(false, layer + ": not converted");
        continue;
      }
      const MbokLayerInfo& info = model.layer(layer);
      check(info.source == name, layer + ": source is '" + info.source + "'");
      check(info.num_kernels == kernels, layer + ": K = " + std::to_string(info.num_kernels));
      check(info.out_features == static_cast<std::size_t>(shape[0]) &&
                info.in_features == static_cast<std::size_t>(shape[1]),
            layer + ": shape differs");
      const MultiKernelWeights<float> w = model.load_weights<float>(layer);
      for (std::size_t k = 0; k < w.num_kernels(); ++k)
        check(w.kernel(k).is_borrowed(), layer + ": kernel copied");
      const double e = w.relative_error(t.to_matrix());
      check(std::fabs(e - info.relative_error) <= 1e-3 * e + 1e-6,
            layer + ": relative error " + std::to_string(e) + " differs from the recorded one");
      // Gaussian matrices: about 0.6 at K = 1, 0.36 at K = 2, lower beyond.
      check(e < (kernels == 1 ? 0.7 : 0.45), layer + ": relative error " + std::to_string(e));
    } else {
      const TensorView* kept = model.file().find(name);
      check(kept != nullptr && kept->dtype == t.dtype && kept->shape == t.shape &&
                kept->to_tensor().bytes == t.to_tensor().bytes,
            name + ": not kept as it was");
    }
  }
  check(model.layers().size() == expected_layers, std::to_string(model.layers().size()) +
                                                      " layers, expected " +
                                                      std::to_string(expected_layers));
  const Metadata& md = model.file().metadata();
  const auto config = md.find("config.json");
  check(config != md.end() &&
            llama::LlamaConfig::from_json(nlohmann::json::parse(config->second)).to_json() ==
                source.config.to_json(),
        "metadata config.json missing or different");
  const auto tokenizer = md.find("tokenizer.json");
  if (const auto path = source.checkpoint.tokenizer_path())
    check(tokenizer != md.end() && tokenizer->second == HfCheckpoint::read_text(*path),
          "metadata tokenizer.json missing or different");
  else
    check(tokenizer == md.end(), "metadata tokenizer.json without a tokenizer");
  std::cout << "verified " << model.layers().size() << " layers of " << dir << "\n";
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "make" && argc == 3) return make(argv[2]);
    if (mode == "verify" && argc == 5) return verify(argv[2], argv[3], argv[4]);
    if (mode == "truncate" && argc == 4) {  // a damaged copy for the error tests
      std::filesystem::resize_file(argv[2], std::stoull(argv[3]));
      return 0;
    }
    if (mode == "verify-hf" && argc == 5)
      return verify_hf(argv[2], argv[3], static_cast<std::size_t>(std::stoul(argv[4])));
    std::cerr
        << "usage: test_fixture make FILE | verify MBOK SOURCE REPORT | verify-hf MBOK DIR K\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "test_fixture: " << e.what() << "\n";
    return 1;
  }
}
