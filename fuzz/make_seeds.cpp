// Writes the seed corpus of the fuzz targets: small valid safetensors and mbok files.
// Usage: make_seeds DIR  (creates DIR/safetensors and DIR/mbok)
#include <mbok/io/mbok_format.hpp>
#include <mbok/io/mbok_linear.hpp>
#include <mbok/svid.hpp>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>

namespace {

void put(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_seeds DIR\n";
    return 2;
  }
  const std::string dir = argv[1];
  std::filesystem::create_directories(dir + "/safetensors");
  std::filesystem::create_directories(dir + "/mbok");
  std::mt19937 rng(1);
  std::normal_distribution<float> d;

  // safetensors: every dtype, scalars, empty tensors, metadata, two alignments.
  const mbok::DType all[] = {mbok::DType::f64,  mbok::DType::f32, mbok::DType::f16,
                             mbok::DType::bf16, mbok::DType::i64, mbok::DType::i32,
                             mbok::DType::i8,   mbok::DType::u8};
  int n = 0;
  for (std::size_t alignment : {8, 64}) {
    mbok::StateDict s;
    int i = 0;
    for (mbok::DType t : all) {
      mbok::Tensor x;
      x.dtype = t;
      x.shape = i % 3 == 0   ? std::vector<std::int64_t>{}
                : i % 3 == 1 ? std::vector<std::int64_t>{3}
                             : std::vector<std::int64_t>{2, 2};
      x.bytes.resize(x.numel() * mbok::dtype_size(t));
      for (auto& b : x.bytes) b = static_cast<std::uint8_t>(rng());
      s["t" + std::to_string(i++)] = x;
    }
    s["empty"].dtype = mbok::DType::f32;
    s["empty"].shape = std::vector<std::int64_t>{0, 4};
    mbok::SafetensorsWriter w(alignment);
    w.add(s);
    w.set_metadata("format", "pt");
    put(dir + "/safetensors/seed" + std::to_string(n++), w.to_bytes());
  }
  mbok::SafetensorsWriter empty;
  put(dir + "/safetensors/seed" + std::to_string(n++), empty.to_bytes());

  // mbok: small converted layers (odd widths, K = 1..3, F32 and F64 scales, a bias).
  Eigen::MatrixXf a(3, 9), b(2, 70);
  for (Eigen::Index i = 0; i < a.size(); ++i) a.data()[i] = d(rng);
  for (Eigen::Index i = 0; i < b.size(); ++i) b.data()[i] = d(rng);
  const auto fa = mbok::svid<float>(a, 2);
  const auto fb = mbok::svid<double>(b, 1);
  const auto fc = mbok::svid<float>(a, 3);
  {
    mbok::MbokWriter w;
    w.add_layer("a", fa.weights, {"a.bias", "a.weight", fa.relative_residual.back()});
    w.add_tensor("a.bias", mbok::Tensor::from_eigen(Eigen::VectorXf::Ones(3)));
    w.add_layer("b", fb.weights);
    put(dir + "/mbok/seed0", w.to_bytes());
  }
  {
    mbok::MbokWriter w;
    w.add_layer("c", fc.weights);
    put(dir + "/mbok/seed1", w.to_bytes());
  }
  {
    // Rows longer than one 512-bit block (two words of padding rows), so the zero-copy path
    // of the fuzzer reads borrowed multi-block rows.
    Eigen::MatrixXf e(2, 600);
    for (Eigen::Index i = 0; i < e.size(); ++i) e.data()[i] = d(rng);
    const auto fe = mbok::svid<float>(e, 2);
    mbok::MbokWriter w;
    w.add_layer("e", fe.weights);
    put(dir + "/mbok/seed2", w.to_bytes());
  }
  {
    // A packed layer (format version 3): 3 x 9 in one tile with padding rows and columns.
    const mbok::PackedLinear packed(fa.weights, Eigen::VectorXf(),
                                    mbok::ProductSet(mbok::Isa::scalar));
    mbok::MbokWriter w;
    mbok::add_packed_layer(w, "p", packed);
    w.add_layer("c", fc.weights);
    put(dir + "/mbok/seed3", w.to_bytes());
  }
  return 0;
}
