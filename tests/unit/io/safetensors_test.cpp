// Safetensors: hand-built fixtures from the published format, round trips of every dtype and
// odd shapes, layout and alignment of written files, and every malformed input rejected with
// a FormatError that says what is wrong.
#include <mbok/io/safetensors.hpp>

#include <cmath>
#include <limits>

#include "io_support.hpp"
#include "support.hpp"

using namespace mbok;
using test::raw_safetensors;
using test::require_format_error;

namespace {

SafetensorsFile parse(const std::vector<std::uint8_t>& bytes) {
  return SafetensorsFile::from_memory(bytes.data(), bytes.size(), nullptr, "fixture.safetensors");
}

void expect_bad(const std::vector<std::uint8_t>& bytes, const std::vector<std::string>& parts) {
  std::vector<std::string> all = parts;
  all.push_back("fixture.safetensors");
  require_format_error([&] { parse(bytes); }, all);
}

void expect_bad_header(const std::string& header, const std::vector<std::uint8_t>& data,
                       const std::vector<std::string>& parts) {
  INFO("header: " << header);
  expect_bad(raw_safetensors(header, data), parts);
}

std::vector<std::uint8_t> zeros(std::size_t n) { return std::vector<std::uint8_t>(n, 0); }

}  // namespace

TEST_CASE("a hand-written file from the format's description reads back", "[safetensors]") {
  // Two tensors: "b" F32 [2] = {1.5, -2} then "a" I32 [1, 2] = {7, -9}, in that data order;
  // the JSON lists them in the other order, with metadata and trailing-space padding.
  std::vector<std::uint8_t> data;
  test::append_le(data, 1.5f);
  test::append_le(data, -2.0f);
  test::append_le(data, std::int32_t{7});
  test::append_le(data, std::int32_t{-9});
  const std::string header =
      R"({"a":{"dtype":"I32","shape":[1,2],"data_offsets":[8,16]},)"
      R"("__metadata__":{"format":"pt","note":"h\u00e9"},)"
      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}     )";
  const auto bytes = raw_safetensors(header, data);
  const SafetensorsFile f = parse(bytes);
  REQUIRE(f.size() == 2);
  CHECK(f.tensors()[0].name == "b");  // file order
  CHECK(f.tensors()[1].name == "a");
  CHECK(f.data_offset() == 8 + header.size());
  CHECK(f.metadata().at("format") == "pt");
  CHECK(f.metadata().at("note") == "h\xc3\xa9");
  const TensorView& a = f.at("a");
  CHECK(a.dtype == DType::i32);
  CHECK(a.shape == std::vector<std::int64_t>{1, 2});
  CHECK(a.to_vector<std::int32_t>() == std::vector<std::int32_t>{7, -9});
  CHECK(a.to_vector<float>() == std::vector<float>{7.0f, -9.0f});
  CHECK(f.at("b").to_vector<double>() == std::vector<double>{1.5, -2.0});
  CHECK(f.at("b").offset == f.data_offset());
  CHECK_FALSE(f.contains("c"));
  require_format_error([&] { f.at("c"); }, {"no tensor 'c'"});
  require_format_error([&] { a.to_vector<std::int64_t>(); }, {"'a'", "I32", "expected I64"});
  require_format_error([&] { f.expect("a", DType::f32, {1, 2}); }, {"'a'", "dtype I32", "expected F32"});
  require_format_error([&] { f.expect("a", DType::i32, {2}); }, {"'a'", "shape [1, 2]", "expected [2]"});
}

TEST_CASE("F16 and BF16 tensors convert with subnormals, infinities and NaN", "[safetensors]") {
  const std::vector<std::uint16_t> h = {0x3c00, 0xc000, 0x0001, 0x03ff, 0x7bff, 0x7c00, 0xfc00, 0x7e00, 0x8000};
  const std::vector<std::uint16_t> b = {0x3f80, 0xc000, 0x0001, 0x7f7f, 0x7f80, 0xff80, 0x7fc0, 0x8000, 0x4049};
  std::vector<std::uint8_t> data;
  for (auto x : h) test::append_le(data, x);
  for (auto x : b) test::append_le(data, x);
  const auto bytes = raw_safetensors(
      R"({"h":{"dtype":"F16","shape":[9],"data_offsets":[0,18]},"b":{"dtype":"BF16","shape":[3,3],"data_offsets":[18,36]}})",
      data);
  const SafetensorsFile f = parse(bytes);
  const std::vector<float> hv = f.at("h").to_vector<float>();
  CHECK(hv[0] == 1.0f);
  CHECK(hv[1] == -2.0f);
  CHECK(hv[2] == std::ldexp(1.0f, -24));
  CHECK(hv[3] == std::ldexp(1023.0f, -24));
  CHECK(hv[4] == 65504.0f);
  CHECK(hv[5] == std::numeric_limits<float>::infinity());
  CHECK(hv[6] == -std::numeric_limits<float>::infinity());
  CHECK(std::isnan(hv[7]));
  CHECK(hv[8] == 0.0f);
  CHECK(std::signbit(hv[8]));
  const std::vector<double> bv = f.at("b").to_vector<double>();
  CHECK(bv[0] == 1.0);
  CHECK(bv[1] == -2.0);
  CHECK(bv[2] == std::ldexp(1.0, -133));  // smallest BF16 subnormal
  CHECK(bv[3] == std::ldexp(255.0, 120));  // largest finite BF16: (1 + 127/128) 2^127
  CHECK(std::isinf(bv[4]));
  CHECK(std::isinf(bv[5]));
  CHECK(bv[5] < 0);
  CHECK(std::isnan(bv[6]));
  CHECK(std::signbit(bv[7]));
  CHECK(bv[8] == 3.140625);
  const Eigen::MatrixXf m = f.at("b").to_matrix();
  CHECK(m.rows() == 3);
  CHECK(m.cols() == 3);
  CHECK(m(0, 1) == -2.0f);
  CHECK(m(2, 2) == 3.140625f);
}

TEST_CASE("every dtype and odd shapes round-trip through the writer", "[safetensors]") {
  test::TempDir dir;
  StateDict dict;
  std::mt19937_64& rng = test::rng();
  auto fill = [&](DType d, std::vector<std::int64_t> shape) {
    Tensor t;
    t.dtype = d;
    t.shape = std::move(shape);
    t.bytes.resize(t.numel() * dtype_size(d));
    for (auto& byte : t.bytes) byte = static_cast<std::uint8_t>(rng());
    return t;
  };
  const DType all[] = {DType::f64, DType::f32, DType::f16, DType::bf16, DType::i64, DType::i32, DType::i8, DType::u8};
  const std::vector<std::vector<std::int64_t>> shapes = {{}, {0}, {1}, {3}, {7, 3}, {3, 0, 2}, {2, 3, 5}, {1, 1, 1, 13}};
  int index = 0;
  for (DType d : all)
    for (const auto& s : shapes) dict["t" + std::to_string(index++) + "." + dtype_name(d)] = fill(d, s);
  const Metadata md = {{"k", "v"}, {"empty", ""}, {"utf8", "\xce\xbb"}};
  const std::string path = dir.file("all.safetensors");
  save_state_dict(path, dict, md);
  Metadata md_back;
  const StateDict back = load_state_dict(path, &md_back);
  CHECK(md_back == md);
  REQUIRE(back.size() == dict.size());
  for (const auto& [name, t] : dict) {
    INFO(name);
    const Tensor& u = back.at(name);
    CHECK(u.dtype == t.dtype);
    CHECK(u.shape == t.shape);
    CHECK(u.bytes == t.bytes);
  }
  // Written files are laid out for in-place use.
  const SafetensorsFile f = SafetensorsFile::open(path);
  CHECK(f.data_offset() % kSafetensorsAlignment == 0);
  CHECK(f.bytes()[f.data_offset() - 1] == ' ');  // padded with spaces, as the format allows
  for (const TensorView& t : f.tensors()) {
    INFO(t.name);
    CHECK(t.offset % dtype_size(t.dtype) == 0);
    if (t.size_bytes % 64 == 0) CHECK(t.offset % 64 == 0);
    CHECK(t.is_aligned(dtype_size(t.dtype)));
  }
  CHECK(reinterpret_cast<std::uintptr_t>(f.bytes()) % 4096 == 0);  // a page-aligned map
  CHECK(static_cast<const MappedFile*>(f.owner().get())->is_mapped());
}

TEST_CASE("the written header is the published format", "[safetensors]") {
  // Decoded here by hand, not with the reader.
  SafetensorsWriter w(128);
  const float v[3] = {1, 2, 3};
  const std::uint8_t u[2] = {9, 8};
  w.add("x", DType::f32, {3}, v, sizeof v);
  w.add("y", DType::u8, {1, 2}, u, sizeof u);
  w.set_metadata("m", "1");
  const auto bytes = w.to_bytes();
  REQUIRE(bytes.size() == w.file_size());
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[static_cast<std::size_t>(i)];
  CHECK((8 + n) % 128 == 0);
  REQUIRE(bytes.size() == 8 + n + 14);
  const auto json = nlohmann::json::parse(std::string(bytes.begin() + 8, bytes.begin() + 8 + static_cast<long>(n)));
  CHECK(json["__metadata__"]["m"] == "1");
  CHECK(json["x"]["dtype"] == "F32");
  CHECK(json["x"]["shape"] == nlohmann::json::array({3}));
  CHECK(json["x"]["data_offsets"] == nlohmann::json::array({0, 12}));
  CHECK(json["y"]["data_offsets"] == nlohmann::json::array({12, 14}));
  float back[3];
  std::memcpy(back, bytes.data() + 8 + n, sizeof back);
  CHECK(back[2] == 3.0f);
  CHECK(bytes[8 + n + 12] == 9);
}

TEST_CASE("the writer rejects bad tensors", "[safetensors]") {
  SafetensorsWriter w;
  const float v[2] = {0, 0};
  w.add("a", DType::f32, {2}, v, sizeof v);
  CHECK_THROWS_AS(w.add("a", DType::f32, {2}, v, sizeof v), InvalidArgument);
  CHECK_THROWS_AS(w.add("b", DType::f32, {3}, v, sizeof v), InvalidArgument);
  CHECK_THROWS_AS(w.add("c", DType::f32, {-2}, v, sizeof v), InvalidArgument);
  CHECK_THROWS_AS(w.add("__metadata__", DType::f32, {2}, v, sizeof v), InvalidArgument);
  CHECK_THROWS_AS(SafetensorsWriter(12), InvalidArgument);
  w.add("\xff", DType::f32, {2}, v, sizeof v);  // not UTF-8: refused when the header is made
  CHECK_THROWS_AS(w.to_bytes(), InvalidArgument);
}

TEST_CASE("a failed atomic write leaves the old file", "[safetensors]") {
  test::TempDir dir;
  const std::string path = dir.file("keep.safetensors");
  StateDict one;
  one["x"] = Tensor::scalar(1.0f);
  save_state_dict(path, one);
  StateDict bad;
  bad["y"] = Tensor::scalar(2.0f);
  bad["y"].bytes.pop_back();  // malformed: 3 bytes for an F32 scalar
  CHECK_THROWS_AS(save_state_dict(path, bad), InvalidArgument);
  CHECK(load_state_dict(path).count("x") == 1);
  require_format_error([&] { save_state_dict(dir.file("no/such/dir/f.safetensors"), one); },
                       {"cannot create", "no/such/dir"});
  require_format_error([&] { SafetensorsFile::open(dir.file("missing.safetensors")); },
                       {"cannot open", "missing.safetensors"});
  require_format_error([&] { SafetensorsFile::open(dir.path()); }, {"not a regular file"});
  // Only the final file remains: no temporary files are left behind.
  std::size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) files += e.is_regular_file();
  CHECK(files == 1);
}

TEST_CASE("errors name the file they come from", "[safetensors]") {
  test::TempDir dir;
  const std::string path = dir.file("broken.safetensors");
  test::write_bytes(path, raw_safetensors(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", zeros(4)));
  require_format_error([&] { SafetensorsFile::open(path); }, {path, "tensor 'w'", "out of range"});
}

TEST_CASE("truncation at every byte of a valid file is reported, never read past", "[safetensors]") {
  StateDict dict;
  dict["a"] = Tensor::scalar(std::int64_t{5});
  const float v[3] = {1, 2, 3};
  dict["b"] = Tensor::from(v, {3});
  SafetensorsWriter w(8);
  w.add(dict);
  w.set_metadata("k", "v");
  const auto full = w.to_bytes();
  CHECK_NOTHROW(parse(full));
  for (std::size_t len = 0; len < full.size(); ++len) {
    INFO("prefix of " << len << " bytes");
    // A copy of exactly `len` bytes, so ASan sees any read past the end.
    std::vector<std::uint8_t> cut(full.begin(), full.begin() + static_cast<long>(len));
    CHECK_THROWS_AS(parse(cut), FormatError);
  }
}

TEST_CASE("malformed sizes and headers", "[safetensors]") {
  expect_bad({}, {"truncated", "0 bytes"});
  expect_bad({1, 0, 0}, {"truncated", "3 bytes"});
  auto huge = raw_safetensors("{}");
  huge[5] = 1;  // N = 2^40 + 2
  expect_bad(huge, {"exceeds the limit"});
  auto past = raw_safetensors("{}");
  past[0] = 50;
  expect_bad(past, {"truncated", "header size 50", "10-byte file"});
  expect_bad(raw_safetensors(""), {"too small"});
  expect_bad(raw_safetensors("[1]"), {"must start with '{'"});
  expect_bad(raw_safetensors(R"({"a": )"), {"not valid JSON"});
  expect_bad(raw_safetensors("{\"\xc3\x28\":1}"), {"not valid JSON"});
  expect_bad(raw_safetensors(R"({"a":1} x)"), {"not valid JSON"});
  std::string deep = "{\"a\":";
  for (int i = 0; i < 50; ++i) deep += "[";
  for (int i = 0; i < 50; ++i) deep += "]";
  expect_bad(raw_safetensors(deep + "}"), {"nests deeper"});
  CHECK_NOTHROW(parse(raw_safetensors("{}")));  // an empty file of tensors is valid
  CHECK_NOTHROW(parse(raw_safetensors("{}        ")));
}

TEST_CASE("malformed entries", "[safetensors]") {
  const auto d8 = zeros(8);
  expect_bad_header(R"({"a":5})", {}, {"tensor 'a'", "must be an object"});
  expect_bad_header(R"({"a":{"shape":[2],"data_offsets":[0,8]}})", d8, {"'a'", "missing \"dtype\""});
  expect_bad_header(R"({"a":{"dtype":"F32","data_offsets":[0,8]}})", d8, {"'a'", "missing \"shape\""});
  expect_bad_header(R"({"a":{"dtype":"F32","shape":[2]}})", d8, {"'a'", "missing \"data_offsets\""});
  expect_bad_header(R"({"a":{"dtype":7,"shape":[2],"data_offsets":[0,8]}})", d8, {"'a'", "must be a string"});
  expect_bad_header(R"({"a":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,8]}})", d8,
                    {"'a'", "unsupported dtype 'F8_E4M3'"});
  expect_bad_header(R"({"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", d8, {"'a'", "must be an array"});
  expect_bad_header(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", d8, {"'a'", "negative shape dimension -2"});
  expect_bad_header(R"({"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", d8, {"'a'", "must be integers"});
  expect_bad_header(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", d8,
                    {"'a'", "overflows"});
  expect_bad_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", d8, {"'a'", "[begin, end]"});
  expect_bad_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,-8]}})", d8, {"'a'", "non-negative integer"});
  expect_bad_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", d8, {"'a'", "end before they begin"});
  expect_bad_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", zeros(4), {"'a'", "out of range", "holds 4 bytes"});
  expect_bad_header(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", d8, {"'a'", "need 12 bytes", "hold 8"});
  expect_bad_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                    d8, {"duplicate key 'a'"});
  expect_bad_header(R"({"a":{"dtype":"F32","dtype":"I32","shape":[2],"data_offsets":[0,8]}})", d8, {"duplicate key 'dtype'"});
  expect_bad_header(R"({"__metadata__":{"k":1}})", {}, {"__metadata__", "'k'", "must be a string"});
  expect_bad_header(R"({"__metadata__":[]})", {}, {"__metadata__ must be an object"});
}

TEST_CASE("tensors must tile the data section", "[safetensors]") {
  const char* two = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[%d,%d]},"b":{"dtype":"F32","shape":[2],"data_offsets":[%d,%d]}})";
  auto header = [&](int a0, int a1, int b0, int b1) {
    char buf[256];
    std::snprintf(buf, sizeof buf, two, a0, a1, b0, b1);
    return std::string(buf);
  };
  CHECK_NOTHROW(parse(raw_safetensors(header(8, 16, 0, 8), zeros(16))));
  expect_bad_header(header(0, 8, 4, 12), zeros(12), {"tensor 'b'", "overlap tensor 'a'"});
  expect_bad_header(header(0, 8, 0, 8), zeros(16), {"overlap"});
  expect_bad_header(header(0, 8, 12, 20), zeros(20), {"tensor 'b'", "hole", "[8, 12)"});
  expect_bad_header(header(4, 12, 12, 20), zeros(20), {"tensor 'a'", "hole", "[0, 4)"});
  expect_bad_header(header(0, 8, 8, 16), zeros(20), {"4 bytes at the end", "belong to no tensor"});
  expect_bad_header("{}", zeros(3), {"3 bytes at the end"});
  // Zero-size tensors may sit anywhere a tensor boundary is.
  CHECK_NOTHROW(parse(raw_safetensors(
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"e":{"dtype":"F32","shape":[0,4],"data_offsets":[8,8]}})",
      zeros(8))));
}
