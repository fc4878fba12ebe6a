// Packed layers in mbok files (format version 3): the inference form written, mapped back and
// run with no copy in the ISA's layout (repacked once in another), unpacked exactly for
// training, and refused with the reason when broken (a padding bit, a wrong shape, an unknown
// layout, a packed layer in a version 2 file).
#include <mbok/io/mbok_format.hpp>
#include <mbok/io/mbok_linear.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "io_support.hpp"
#include "support.hpp"

using namespace mbok;
using test::require_format_error;

namespace {

// Bytes of a file with packed layer "p" (17 x 70, K = 2, packed on `ks`, with a bias) and a
// layer of bits "b".
struct Files {
  MultiKernelWeights<float> p = test::random_kernel_weights(17, 70, 2),
                            b = test::random_kernel_weights(9, 40, 1);
  Eigen::VectorXf bias = test::random_matrix(17, 1).col(0);
  std::vector<std::uint8_t> bytes(const ProductSet& ks) const {
    const PackedLinear packed(p, Eigen::VectorXf(), ks);
    MbokWriter w;
    add_packed_layer(w, "p", packed, {"p.bias", "p.weight", 0.5});
    w.add_tensor("p.bias", Tensor::from_eigen(bias));
    w.add_layer("b", this->b);
    return w.to_bytes();
  }
};

nlohmann::json header_of(const std::vector<std::uint8_t>& bytes) {
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= std::uint64_t{bytes[static_cast<std::size_t>(i)]} << (8 * i);
  return nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<long>(n));
}

}  // namespace

TEST_CASE("packed layers map back borrowed, run as the layer and unpack exactly",
          "[mbok_format][packed]") {
  const Files f;
  test::for_each_isa([&](Isa) {
    const ProductSet ks;
    test::TempDir dir;
    const std::string path = dir.file("packed.mbok");
    test::write_bytes(path, f.bytes(ks));
    const MbokModel model = MbokModel::open(path);
    CHECK(model.format_version() == 3);
    CHECK(model.layer("p").packed);
    CHECK(model.layer("p").packed_layout == ks.lut_layout());
    CHECK_FALSE(model.layer("b").packed);
    CHECK(model.other_tensors() == std::vector<std::string>{"p.bias"});
    // The inference form borrows the mapped kernels in its own layout.
    const PackedLinear loaded = load_packed_linear(model, "p", ks);
    for (std::size_t k = 0; k < 2; ++k) CHECK(loaded.packed().kernel(k).is_borrowed());
    CHECK(loaded.bias() == f.bias);
    // Training gets the bits back exactly; the forward equals the layer's.
    const BooleanLinear<float> trainable = load_boolean_linear<float>(model, "p");
    for (std::size_t k = 0; k < 2; ++k) {
      CHECK(trainable.kernel(k) == f.p.kernel(k));
      CHECK(trainable.s_out(k) == f.p.s_out(k));
      CHECK(trainable.s_in(k) == f.p.s_in(k));
    }
    const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> x =
        test::random_matrix(3, 70);
    std::vector<float> got(3 * 17);
    Int8ForwardWorkspace ws;
    loaded.forward_int8(x.data(), 70, 3, got.data(), 17, ws);
    std::vector<float> want(3 * 17);
    multi_kernel_forward_int8(f.p, Int8PreparedWeights(f.p, ks), x.data(), 70, 3, want.data(), 17,
                              Int8Algorithm::lut);
    for (std::size_t i = 0; i < 3; ++i)
      for (std::size_t j = 0; j < 17; ++j) want[i * 17 + j] += f.bias[static_cast<Eigen::Index>(j)];
    CHECK(got == want);
    // A layer of bits loads packed too (packed on load), and the other layout is repacked.
    CHECK(model.load_packed("b", ks).kernel(0).unpack() == f.b.kernel(0));
    const ProductSet other = ks.lut_layout() == LutLayout::interleave4 && isa_available(Isa::avx2)
                                 ? ProductSet(Isa::avx2)
                                 : ProductSet(Isa::scalar);
    const Int8PreparedWeights again = model.load_packed("p", other);
    CHECK(again.kernel(1).is_borrowed() == (other.lut_layout() == ks.lut_layout()));
    CHECK(again.kernel(1).unpack() == f.p.kernel(1));
  });
}

TEST_CASE("files of bits stay version 2; packed files say version 3", "[mbok_format][packed]") {
  MbokWriter bits_only;
  const MultiKernelWeights<float> w = test::random_kernel_weights(4, 8, 1);
  bits_only.add_layer("b", w);
  const auto header = header_of(bits_only.to_bytes());
  CHECK(header["__metadata__"]["format_version"] == "2");
  const auto layers = nlohmann::json::parse(header["__metadata__"]["layers"].get<std::string>());
  CHECK(layers["b"]["kernel_layout"] == "bits");

  const Files f;
  const auto packed_header = header_of(f.bytes(ProductSet(Isa::scalar)));
  CHECK(packed_header["__metadata__"]["format_version"] == "3");
  const auto& t = packed_header["p.kernels.1.packed"];
  CHECK(t["dtype"] == "U8");
  CHECK(t["shape"] == nlohmann::json::array({2, 2 * 96}));  // ceil(17 / 16) tiles, 2 * cols32
}

TEST_CASE("broken packed layers are refused with the reason", "[mbok_format][packed]") {
  const Files f;
  const std::vector<std::uint8_t> good = f.bytes(ProductSet(Isa::scalar));
  const nlohmann::json header = header_of(good);
  std::uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i)
    header_len |= std::uint64_t{good[static_cast<std::size_t>(i)]} << (8 * i);
  const std::size_t data = 8 + header_len;
  const auto& t = header["p.kernels.0.packed"];
  const std::size_t begin = t["data_offsets"][0].get<std::size_t>();

  // A bit in the padding rows (rows 17..31 of the second tile).
  std::vector<std::uint8_t> bytes = good;
  const detail::LutNibble at = detail::lut_nibble(LutLayout::interleave4, 20 % 16, 0);
  bytes[data + begin + 2 * 96 + at.byte] |= 1;
  require_format_error([&] { MbokModel::from_memory(bytes.data(), bytes.size()); },
                       {"layer 'p'", "p.kernels.0.packed", "padding bit set in row 20"});

  // The record's layout must be known, and packed layers need version 3.
  auto with_metadata = [&](const std::string& key, const std::string& value) {
    nlohmann::json h = header;
    if (key == "layers") {
      h["__metadata__"]["layers"] = value;
    } else {
      h["__metadata__"][key] = value;
    }
    const std::string text = h.dump();
    std::vector<std::uint8_t> out = test::raw_safetensors(
        text, std::vector<std::uint8_t>(good.begin() + static_cast<long>(data), good.end()));
    return out;
  };
  nlohmann::json layers =
      nlohmann::json::parse(header["__metadata__"]["layers"].get<std::string>());
  layers["p"]["kernel_layout"] = "zigzag";
  const auto unknown = with_metadata("layers", layers.dump());
  require_format_error([&] { MbokModel::from_memory(unknown.data(), unknown.size()); },
                       {"layer 'p'", "kernel_layout", "interleave4"});
  const auto old = with_metadata("format_version", "2");
  require_format_error([&] { MbokModel::from_memory(old.data(), old.size()); },
                       {"layer 'p'", "before format version 3"});
  // A shape that does not match the record.
  layers = nlohmann::json::parse(header["__metadata__"]["layers"].get<std::string>());
  layers["p"]["shape"] = nlohmann::json::array({40, 70});
  const auto wrong = with_metadata("layers", layers.dump());
  require_format_error([&] { MbokModel::from_memory(wrong.data(), wrong.size()); },
                       {"layer 'p'", "must be U8 [3, 192]"});
}
