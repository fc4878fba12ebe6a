// The mbok model format: a small synthetic model converted with SVID, written, mapped back;
// every layer equals its multi-kernel reconstruction, kernels are borrowed from the map, the
// file is plain safetensors, and broken files are refused with the reason.
#include <mbok/io/mbok_format.hpp>
#include <mbok/io/mbok_linear.hpp>
#include <mbok/svid.hpp>

#include <cmath>
#include <limits>

#include "io_support.hpp"
#include "support.hpp"

using namespace mbok;
using test::require_format_error;

namespace {

struct Model {
  Eigen::MatrixXf q, up;
  Eigen::VectorXf q_bias;
  Eigen::MatrixXf embed;
  SvidResult<float> q_svid, up_svid;
  SvidResult<double> up_svid_d;
};

Model make_model() {
  Model m;
  m.q = test::random_matrix(33, 70);
  m.up = test::random_matrix(65, 513, 0.1f);
  m.q_bias = test::random_matrix(33, 1).col(0);
  m.embed = test::random_matrix(11, 6);
  m.q_svid = svid<float>(m.q, 2);
  m.up_svid = svid<float>(m.up, 3);
  m.up_svid_d = svid<double>(m.up, 1);
  return m;
}

std::vector<std::uint8_t> model_bytes(const Model& m, MbokWriter& w) {
  w.add_layer("layers.0.q", m.q_svid.weights,
              {"layers.0.q.bias", "layers.0.q.weight", m.q_svid.relative_residual.back()});
  w.add_tensor("layers.0.q.bias", Tensor::from_eigen(m.q_bias));
  w.add_layer("layers.0.up", m.up_svid.weights);
  w.add_layer("layers.0.up64", m.up_svid_d.weights);
  w.add_tensor("embed.weight", Tensor::from_eigen(m.embed));
  w.set_metadata("model", "synthetic");
  return w.to_bytes();
}

}  // namespace

TEST_CASE("an mbok file maps back to the same layers, kernels borrowed", "[mbok_format]") {
  const Model m = make_model();
  test::TempDir dir;
  const std::string path = dir.file("model.mbok.safetensors");
  {
    MbokWriter w;
    model_bytes(m, w);
    w.write(path);
  }
  const MbokModel model = MbokModel::open(path);
  REQUIRE(model.layers().size() == 3);
  CHECK(model.file().data_offset() % 64 == 0);
  CHECK(model.file().metadata().at("model") == "synthetic");
  CHECK(model.file().metadata().at("format") == "mbok");

  const MbokLayerInfo& q = model.layer("layers.0.q");
  CHECK(q.out_features == 33);
  CHECK(q.in_features == 70);
  CHECK(q.num_kernels == 2);
  CHECK(q.bias == "layers.0.q.bias");
  CHECK(q.source == "layers.0.q.weight");
  CHECK(q.relative_error == Approx(m.q_svid.relative_residual.back()));
  CHECK(std::isnan(model.layer("layers.0.up").relative_error));

  const auto check_layer = [&](const std::string& name, const MultiKernelWeights<float>& ref) {
    INFO(name);
    const MultiKernelWeights<float> w = model.load_weights<float>(name);
    REQUIRE(w.num_kernels() == ref.num_kernels());
    for (std::size_t k = 0; k < w.num_kernels(); ++k) {
      CHECK(w.kernel(k).is_borrowed());
      const auto addr = reinterpret_cast<const std::uint8_t*>(w.kernel(k).data());
      CHECK(addr >= model.file().bytes());
      CHECK(addr < model.file().bytes() + model.file().byte_size());
      CHECK(w.kernel(k) == ref.kernel(k));
      CHECK(w.s_out(k) == ref.s_out(k));
      CHECK(w.s_in(k) == ref.s_in(k));
    }
    // The forward of the loaded layer (dense reconstruction times activations) matches the
    // reference reconstruction exactly.
    const Eigen::MatrixXf x = test::random_matrix(ref.in_features(), 4);
    CHECK((w.reconstruct() * x).isApprox(ref.reconstruct() * x, 1e-6f));
    CHECK(w.reconstruct() == ref.reconstruct());
  };
  check_layer("layers.0.q", m.q_svid.weights);
  check_layer("layers.0.up", m.up_svid.weights);
  // The error recorded at conversion is the loaded layer's error.
  CHECK(model.load_weights<float>("layers.0.q").relative_error(m.q) ==
        Approx(m.q_svid.relative_residual.back()).epsilon(1e-4));

  // F64 scales keep their precision; loading as float converts them.
  const MultiKernelWeights<double> d = model.load_weights<double>("layers.0.up64");
  CHECK(d.s_out(0) == m.up_svid_d.weights.s_out(0));
  CHECK(model.load_weights<float>("layers.0.up64")
            .s_in(0)
            .isApprox(m.up_svid_d.weights.s_in(0).cast<float>()));

  CHECK(model.bias("layers.0.q") == m.q_bias);
  CHECK(model.bias("layers.0.up").size() == 0);
  CHECK(model.other_tensors() == std::vector<std::string>{"embed.weight", "layers.0.q.bias"});
  CHECK(model.file().at("embed.weight").to_matrix() == m.embed);

  // Kernels keep the map alive after the model is gone; a write copies first.
  MultiKernelWeights<float> kept = model.load_weights<float>("layers.0.q");
  {
    const MbokModel other = MbokModel::open(path);
    kept = other.load_weights<float>("layers.0.q");
  }
  CHECK(kept.kernel(0) == m.q_svid.weights.kernel(0));
  kept.kernel(0).flip(0, 0);
  CHECK_FALSE(kept.kernel(0).is_borrowed());
  CHECK(kept.kernel(0) != m.q_svid.weights.kernel(0));
  CHECK(model.load_weights<float>("layers.0.q").kernel(0) == m.q_svid.weights.kernel(0));
}

TEST_CASE("a layer's tensors have one name in files, state dicts and checkpoints",
          "[mbok_format]") {
  CHECK(kernel_tensor_name("", 0, KernelTensor::bits) == "kernels.0.bits");
  CHECK(kernel_tensor_name("L.", 3, KernelTensor::s_in) == "L.kernels.3.s_in");
  CHECK(mbok_kernel_name("L", 1) == kernel_tensor_name("L.", 1, KernelTensor::bits));
  CHECK(mbok_s_out_name("L", 1) == kernel_tensor_name("L.", 1, KernelTensor::s_out));
  CHECK(mbok_s_in_name("L", 1) == kernel_tensor_name("L.", 1, KernelTensor::s_in));
  CHECK(mbok_packed_name("L", 2) == "L.kernels.2.packed");
  CHECK(mbok_kernel_name("L", 1, 1) == "L.kernel.1");  // format version 1
  CHECK(mbok_s_out_name("L", 1, 1) == "L.s_out.1");
  CHECK(mbok_s_in_name("L", 1, 1) == "L.s_in.1");

  // A layer's exported state and its mbok file hold the same names.
  BooleanLinear<float> layer(svid<float>(Eigen::MatrixXf::Random(5, 70), 2).weights);
  StateDict dict;
  layer.export_state(dict, "L.");
  MbokWriter writer;
  writer.add_layer("L", layer.weights());
  const std::vector<std::uint8_t> bytes = writer.to_bytes();
  const MbokModel model = MbokModel::from_memory(bytes.data(), bytes.size());
  for (const auto& [name, tensor] : dict) CHECK(model.file().find(name) != nullptr);
}

TEST_CASE("an mbok file is plain safetensors, readable without the mbok reader", "[mbok_format]") {
  const Model m = make_model();
  MbokWriter w;
  const auto bytes = model_bytes(m, w);
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[static_cast<std::size_t>(i)];
  const auto header = nlohmann::json::parse(
      std::string(bytes.begin() + 8, bytes.begin() + 8 + static_cast<long>(n)));
  const auto& kernel = header["layers.0.up.kernels.2.bits"];
  CHECK(kernel["dtype"] == "U8");
  CHECK(kernel["shape"] == nlohmann::json::array({65, 128}));  // 513 bits pad to 1024
  const auto layers = nlohmann::json::parse(header["__metadata__"]["layers"].get<std::string>());
  CHECK(layers["layers.0.up"]["kernels"] == 3);
  CHECK(layers["layers.0.up"]["shape"] == nlohmann::json::array({65, 513}));
  CHECK(header["__metadata__"]["bit_layout"] == kMbokBitLayout);
  // Row 5 of kernel 2 in the file is row 5 of the packed kernel, bit for bit.
  const std::size_t begin = kernel["data_offsets"][0].get<std::size_t>();
  const BitMatrix& ref = m.up_svid.weights.kernel(2);
  CHECK(std::memcmp(bytes.data() + 8 + n + begin + 5 * 128, ref.view().row(5), 128) == 0);
  // From an unaligned buffer the kernels are copied, with the same values.
  std::vector<std::uint8_t> shifted(bytes.size() + 1);
  std::memcpy(shifted.data() + 1, bytes.data(), bytes.size());
  const MbokModel model = MbokModel::from_memory(shifted.data() + 1, bytes.size());
  const auto up = model.load_weights<float>("layers.0.up");
  CHECK_FALSE(up.kernel(0).is_borrowed());
  CHECK(up.reconstruct() == m.up_svid.weights.reconstruct());
}

TEST_CASE("broken mbok files are refused with the reason", "[mbok_format]") {
  const auto q = svid<float>(test::random_matrix(5, 9), 2);
  auto build = [&](auto&& edit, int version = kMbokFormatVersion) {
    StateDict dict;
    for (std::size_t k = 0; k < 2; ++k) {
      const BitMatrix& b = q.weights.kernel(k);
      Tensor t;
      t.dtype = DType::u8;
      t.shape = std::vector<std::int64_t>{5, 64};
      t.bytes.assign(reinterpret_cast<const std::uint8_t*>(b.data()),
                     reinterpret_cast<const std::uint8_t*>(b.data()) + 5 * 64);
      dict[mbok_kernel_name("l", k, version)] = t;
      dict[mbok_s_out_name("l", k, version)] = Tensor::from_eigen(q.weights.s_out(k));
      dict[mbok_s_in_name("l", k, version)] = Tensor::from_eigen(q.weights.s_in(k));
    }
    Metadata md = {
        {"format", "mbok"},
        {"format_version", std::to_string(version)},
        {"bit_layout", kMbokBitLayout},
        {"layers",
         R"({"l":{"shape":[5,9],"kernels":2,"scale_dtype":"F32","bias":"","source":""}})"}};
    edit(dict, md);
    SafetensorsWriter w;
    w.add(dict);
    w.set_metadata(md);
    return w.to_bytes();
  };
  auto expect_bad = [&](auto&& edit, const std::vector<std::string>& parts) {
    const auto bytes = build(edit);
    require_format_error([&] { MbokModel::from_memory(bytes.data(), bytes.size()); }, parts);
  };
  const auto ok = build([](StateDict&, Metadata&) {});
  CHECK(MbokModel::from_memory(ok.data(), ok.size()).load_weights("l").reconstruct() ==
        q.weights.reconstruct());
  // Version 1 named the tensors l.kernel.<k>, l.s_out.<k>, l.s_in.<k>: still read, and only
  // under those names.
  const auto v1 = build([](StateDict&, Metadata&) {}, 1);
  const MbokModel old = MbokModel::from_memory(v1.data(), v1.size());
  CHECK(old.format_version() == 1);
  CHECK(old.file().find("l.kernel.1") != nullptr);
  CHECK(old.load_weights("l").reconstruct() == q.weights.reconstruct());
  CHECK(old.other_tensors().empty());
  expect_bad([](StateDict&, Metadata& md) { md["format_version"] = "1"; },
             {"layer 'l'", "missing tensor 'l.kernel.0'"});

  expect_bad([](StateDict&, Metadata& md) { md.erase("format"); }, {"not an mbok model", "format"});
  expect_bad([](StateDict&, Metadata& md) { md["format"] = "gguf"; }, {"format is 'gguf'"});
  expect_bad([](StateDict&, Metadata& md) { md["format_version"] = "4"; },
             {"version '4' is not supported"});
  expect_bad([](StateDict&, Metadata& md) { md["bit_layout"] = "msb first"; },
             {"unknown bit layout"});
  expect_bad([](StateDict&, Metadata& md) { md["layers"] = "{"; }, {"not valid JSON"});
  expect_bad([](StateDict&, Metadata& md) { md["layers"] = R"({"l":{},"l":{}})"; },
             {"duplicate key 'l'"});
  expect_bad([](StateDict&, Metadata& md) { md["layers"] = R"({"l":3})"; },
             {"layer 'l'", "must be an object"});
  expect_bad([](StateDict&,
                Metadata& md) { md["layers"] = R"({"l":{"shape":[5,9],"scale_dtype":"F32"}})"; },
             {"layer 'l'", "missing \"kernels\""});
  expect_bad(
      [](StateDict&, Metadata& md) {
        md["layers"] = R"({"l":{"shape":[5],"kernels":2,"scale_dtype":"F32"}})";
      },
      {"layer 'l'", "[rows, cols]"});
  expect_bad(
      [](StateDict&, Metadata& md) {
        md["layers"] = R"({"l":{"shape":[5,9],"kernels":2,"scale_dtype":"I8"}})";
      },
      {"layer 'l'", "scale_dtype"});
  expect_bad(
      [](StateDict&, Metadata& md) {
        md["layers"] = R"({"l":{"shape":[5,9],"kernels":3,"scale_dtype":"F32"}})";
      },
      {"layer 'l'", "missing tensor 'l.kernels.2.bits'"});
  expect_bad(
      [](StateDict&, Metadata& md) {
        md["layers"] = R"({"l":{"shape":[5,900],"kernels":2,"scale_dtype":"F32"}})";
      },
      {"layer 'l'", "'l.kernels.0.bits' must be U8 [5, 128]", "got U8 [5, 64]"});
  expect_bad(
      [](StateDict&, Metadata& md) {
        md["layers"] = R"({"l":{"shape":[5,9],"kernels":0,"scale_dtype":"F32"}})";
      },
      {"layer 'l'", "0 kernels"});
  expect_bad(
      [](StateDict&, Metadata& md) {
        md["layers"] = R"({"l":{"shape":[5,9],"kernels":1,"scale_dtype":"F32","bias":"nope"}})";
      },
      {"layer 'l'", "missing bias tensor 'nope'"});
  expect_bad([](StateDict& d,
                Metadata&) { d["l.kernels.1.bits"].bytes[64 + 1] = 0x02; },  // row 1, column 9
             {"layer 'l'", "padding bit set in row 1"});
  expect_bad([](StateDict& d, Metadata&) { d["l.kernels.0.bits"].bytes[63] = 0x80; },
             {"padding bit set in row 0"});
  expect_bad([](StateDict& d, Metadata&) { d.erase("l.kernels.1.s_in"); },
             {"missing tensor 'l.kernels.1.s_in'"});
  expect_bad(
      [](StateDict& d, Metadata&) {
        d["l.kernels.0.s_out"] = Tensor::from_eigen(Eigen::VectorXd::Ones(5));
      },
      {"'l.kernels.0.s_out' must be F32 [5]", "got F64 [5]"});
  expect_bad(
      [](StateDict& d, Metadata&) {
        const float inf = std::numeric_limits<float>::infinity();
        std::memcpy(d["l.kernels.0.s_in"].bytes.data() + 8, &inf, 4);
      },
      {"'l.kernels.0.s_in' element 2 is not finite"});
  require_format_error([&] { MbokModel::from_memory(ok.data(), ok.size()).layer("zz"); },
                       {"no layer 'zz'"});
  // F64 scales beyond float's range load as double but not as float (found by fuzzing).
  const auto wide = build([](StateDict& d, Metadata& md) {
    md["layers"] = R"({"l":{"shape":[5,9],"kernels":2,"scale_dtype":"F64"}})";
    for (int k = 0; k < 2; ++k) {
      d["l.kernels." + std::to_string(k) + ".s_out"] =
          Tensor::from_eigen(Eigen::VectorXd::Constant(5, 1e300));
      d["l.kernels." + std::to_string(k) + ".s_in"] =
          Tensor::from_eigen(Eigen::VectorXd::Constant(9, 1.0));
    }
  });
  const MbokModel wide_model = MbokModel::from_memory(wide.data(), wide.size());
  CHECK(wide_model.load_weights<double>("l").s_out(0)(0) == 1e300);
  require_format_error([&] { wide_model.load_weights<float>("l"); },
                       {"'l.kernels.0.s_out' does not fit in float"});
}

TEST_CASE("the mbok writer refuses bad layers", "[mbok_format]") {
  const auto q = svid<float>(test::random_matrix(4, 8), 1);
  MbokWriter w;
  w.add_layer("a", q.weights);
  CHECK_THROWS_AS(w.add_layer("a", q.weights), InvalidArgument);
  const MultiKernelWeights<float> empty(4, 8);
  CHECK_THROWS_AS(w.add_layer("b", empty), InvalidArgument);
  CHECK_THROWS_AS(w.set_metadata("layers", "{}"), InvalidArgument);
  MbokLayerOptions o;
  o.bias = "missing";
  w.add_layer("c", q.weights, o);
  CHECK_THROWS_AS(w.to_bytes(), InvalidArgument);
}

TEST_CASE("mbok layers load as BooleanLinear whose forward matches the reconstruction",
          "[mbok_format]") {
  const Model m = make_model();
  test::TempDir dir;
  const std::string path = dir.file("linear.safetensors");
  {
    MbokWriter w;
    model_bytes(m, w);
    w.write(path);
  }
  const MbokModel model = MbokModel::open(path);
  for (const char* name : {"layers.0.q", "layers.0.up"}) {
    INFO(name);
    const BooleanLinear<float> layer = load_boolean_linear<float>(model, name);
    const MultiKernelWeights<float>& ref =
        std::string(name) == "layers.0.q" ? m.q_svid.weights : m.up_svid.weights;
    for (std::size_t k = 0; k < layer.num_kernels(); ++k)
      CHECK(layer.weights().kernel(k).is_borrowed());
    using RowMatrix = BooleanLinear<float>::RowMatrix;
    const RowMatrix x = test::random_matrix(5, ref.in_features());
    RowMatrix expected = x * ref.reconstruct().transpose();
    if (layer.has_bias()) expected.rowwise() += m.q_bias.transpose();
    const RowMatrix y = layer.forward(x);
    CHECK(layer.has_bias() == (std::string(name) == "layers.0.q"));
    CHECK((y - expected).cwiseAbs().maxCoeff() <= 1e-4f * (1.0f + expected.cwiseAbs().maxCoeff()));
  }
  require_format_error([&] { load_boolean_linear<float>(model, "nope"); }, {"no layer 'nope'"});
}

// The reader's padding check at every padding bit of every row: a check loop that stops one
// row, one byte or one bit short (or starts one late) leaves a position where a set bit loads.
TEST_CASE("a set padding bit is refused at every position of every row", "[mbok_format]") {
  struct Shape {
    std::size_t m, n;
  };
  // n = 9: a partial first byte; n = 511: one padding bit; n = 520: two 512-bit blocks.
  for (const Shape s : {Shape{7, 9}, Shape{3, 511}, Shape{4, 520}}) {
    INFO("m = " << s.m << ", n = " << s.n);
    MultiKernelWeights<float> w(s.m, s.n);
    w.add_kernel(test::random_bits(s.m, s.n), Eigen::VectorXf::Ones(static_cast<Eigen::Index>(s.m)),
                 Eigen::VectorXf::Ones(static_cast<Eigen::Index>(s.n)));
    MbokWriter writer;
    writer.add_layer("l", w);
    const std::vector<std::uint8_t> ok = writer.to_bytes();
    const MbokModel model = MbokModel::from_memory(ok.data(), ok.size());
    const TensorView* t = model.file().find("l.kernels.0.bits");
    REQUIRE(t != nullptr);
    const auto offset = static_cast<std::size_t>(t->data - ok.data());
    const std::size_t row_bytes = padded_row_words(s.n) * 8;
    REQUIRE(offset + s.m * row_bytes <= ok.size());
    std::vector<std::uint8_t> bytes = ok;
    for (std::size_t i = 0; i < s.m; ++i) {
      // The last real column flipped: still a valid file.
      bytes[offset + i * row_bytes + (s.n - 1) / 8] ^= std::uint8_t(1u << ((s.n - 1) % 8));
      CHECK_NOTHROW(MbokModel::from_memory(bytes.data(), bytes.size()));
      bytes = ok;
      std::size_t refused = 0;
      for (std::size_t c = s.n; c < row_bytes * 8; ++c) {
        std::uint8_t& byte = bytes[offset + i * row_bytes + c / 8];
        byte ^= std::uint8_t(1u << (c % 8));
        try {
          MbokModel::from_memory(bytes.data(), bytes.size());
          FAIL_CHECK("row " << i << ", padding column " << c << " accepted");
        } catch (const FormatError& e) {
          const std::string want = "padding bit set in row " + std::to_string(i) + " ";
          if (std::string(e.what()).find(want) == std::string::npos)
            FAIL_CHECK("row " << i << ", column " << c << ": " << e.what());
          ++refused;
        }
        byte ^= std::uint8_t(1u << (c % 8));
      }
      CHECK(refused == row_bytes * 8 - s.n);
    }
  }
}

// The size products of the writer and the reader (a kernel's bytes, the rows' offsets) are
// checked: a shape whose padded row or kernel size wraps std::size_t throws instead of
// becoming a small allocation or an offset into the wrong bytes.
TEST_CASE("mbok kernel sizes are checked products", "[mbok_format]") {
  CHECK(detail::mbok_row_bytes(1) == 64);
  CHECK(detail::mbok_row_bytes(512) == 64);
  CHECK(detail::mbok_row_bytes(513) == 128);
  CHECK(detail::mbok_kernel_bytes(7, 520) == 7 * 128);
  const std::size_t max = std::numeric_limits<std::size_t>::max();
  CHECK_THROWS_AS(detail::mbok_row_bytes(max), InvalidArgument);  // n + 511 wraps
  CHECK_THROWS_AS(detail::mbok_row_bytes(max - 510), InvalidArgument);
  CHECK(detail::mbok_row_bytes(max - 511) == max / 512 * 64);  // the largest n that pads
  CHECK_THROWS_AS(detail::mbok_kernel_bytes(max / 64 + 1, 1), InvalidArgument);
  CHECK(detail::mbok_kernel_bytes(max / 64, 1) == max / 64 * 64);
  CHECK_THROWS_WITH(detail::mbok_kernel_bytes(max / 128 + 1, 513),
                    test::contains("overflows the address space"));
}

// Many kernels: a layer with K = 64 (32 bits per weight, more than any budget uses) round-trips
// kernel by kernel, and a record claiming one kernel more than the file holds is refused.
TEST_CASE("a layer with many kernels round-trips", "[mbok_format]") {
  const std::size_t m = 5, n = 70, k_count = 64;
  MultiKernelWeights<float> w(m, n);
  for (std::size_t k = 0; k < k_count; ++k)
    w.add_kernel(test::random_bits(m, n), test::random_matrix(m, 1).col(0),
                 test::random_matrix(n, 1).col(0));
  MbokWriter writer;
  writer.add_layer("l", w);
  const std::vector<std::uint8_t> bytes = writer.to_bytes();
  const MbokModel model = MbokModel::from_memory(bytes.data(), bytes.size());
  const MultiKernelWeights<float> back = model.load_weights("l");
  REQUIRE(back.num_kernels() == k_count);
  for (std::size_t k = 0; k < k_count; ++k) {
    CHECK(back.kernel(k) == w.kernel(k));
    CHECK(back.s_out(k) == w.s_out(k));
    CHECK(back.s_in(k) == w.s_in(k));
  }
  CHECK(back.reconstruct() == w.reconstruct());
  // The same file with "kernels": 65.
  SafetensorsFile file = SafetensorsFile::from_memory(bytes.data(), bytes.size());
  StateDict dict;
  for (const TensorView& t : file.tensors()) dict[t.name] = t.to_tensor();
  Metadata md = file.metadata();
  const std::string layers = md.at("layers");
  const auto at = layers.find("\"kernels\":64");
  REQUIRE(at != std::string::npos);
  md["layers"] = layers.substr(0, at) + "\"kernels\":65" + layers.substr(at + 12);
  SafetensorsWriter bad;
  bad.add(dict);
  bad.set_metadata(md);
  const std::vector<std::uint8_t> more = bad.to_bytes();
  test::require_format_error([&] { MbokModel::from_memory(more.data(), more.size()); },
                             {"missing tensor 'l.kernels.64.bits'"});
}
