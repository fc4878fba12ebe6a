// Test helper for mbok-convert: `make FILE` writes a small full-precision model (F32, F16 and
// BF16 matrices, a bias, a norm, embeddings and an output head); `verify MBOK SOURCE REPORT`
// loads the converted file and checks each layer against its source matrix and the report.
#include <mbok/half.hpp>
#include <mbok/io/mbok_format.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <iostream>
#include <random>

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

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "make" && argc == 3) return make(argv[2]);
    if (mode == "verify" && argc == 5) return verify(argv[2], argv[3], argv[4]);
    std::cerr << "usage: test_fixture make FILE | verify MBOK SOURCE REPORT\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "test_fixture: " << e.what() << "\n";
    return 1;
  }
}
