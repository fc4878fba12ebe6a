// Checkpoints: round trip, corruption caught before anything is returned, bit-identical
// resumption of a small training loop, and a writer killed (SIGKILL) in the middle of saving
// leaves the previous checkpoint intact.
#include <mbok/io/checkpoint.hpp>

#include <algorithm>
#include <chrono>
#include <random>
#include <sstream>
#include <thread>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io_support.hpp"
#include "support.hpp"

using namespace mbok;
using test::require_format_error;

namespace {

// A toy training loop with every kind of state a finetuning run has: float parameters, an
// optimizer moment, packed bits, a step counter and an RNG.
struct Toy {
  Eigen::VectorXf w = Eigen::VectorXf::Zero(37);
  Eigen::VectorXf moment = Eigen::VectorXf::Zero(37);
  BitMatrix bits{3, 70};
  std::int64_t step = 0;
  std::mt19937_64 rng{42};

  void advance() {
    std::normal_distribution<float> noise(0.0f, 1.0f);
    for (Eigen::Index i = 0; i < w.size(); ++i) {
      const float g = w(i) - 1.0f + 0.1f * noise(rng);
      moment(i) = 0.9f * moment(i) + 0.1f * g * g;
      w(i) -= 0.05f * g / (std::sqrt(moment(i)) + 1e-8f);
    }
    bits.flip(static_cast<std::size_t>(rng() % 3), static_cast<std::size_t>(rng() % 70));
    ++step;
  }

  StateDict export_state() const {
    StateDict s;
    s["w"] = Tensor::from_eigen(w);
    s["moment"] = Tensor::from_eigen(moment);
    Tensor b;
    b.dtype = DType::u8;
    b.shape = {3, static_cast<std::int64_t>(bits.row_words() * 8)};
    const auto* p = reinterpret_cast<const std::uint8_t*>(bits.data());
    b.bytes.assign(p, p + bits.storage_bytes());
    s["bits"] = b;
    s["step"] = Tensor::scalar(step);
    std::ostringstream rng_text;
    rng_text << rng;
    const std::string text = rng_text.str();
    s["rng"] = Tensor::from(reinterpret_cast<const std::uint8_t*>(text.data()),
                            {static_cast<std::int64_t>(text.size())});
    return s;
  }

  void import_state(const StateDict& s) {
    read_tensor(s, "w", {37}, w.data());
    read_tensor(s, "moment", {37}, moment.data());
    const Tensor& b =
        expect_tensor(s, "bits", DType::u8, {3, static_cast<std::int64_t>(bits.row_words() * 8)});
    std::memcpy(bits.mutable_view().data(), b.bytes.data(), b.bytes.size());
    step = read_scalar<std::int64_t>(s, "step");
    const Tensor& r = s.at("rng");
    std::istringstream in(std::string(r.bytes.begin(), r.bytes.end()));
    in >> rng;
  }
};

StateDict big_state(std::uint32_t version, std::size_t floats) {
  std::vector<std::uint32_t> v(floats, version);
  StateDict s;
  s["payload"] = Tensor::from(reinterpret_cast<const std::uint8_t*>(v.data()),
                              {static_cast<std::int64_t>(floats * 4)});
  s["version"] = Tensor::scalar(static_cast<std::int64_t>(version));
  return s;
}

// The checkpoint at `path` is complete and consistent: every payload word equals its version.
std::int64_t check_intact(const std::string& path) {
  const Checkpoint c = load_checkpoint(path);
  const std::int64_t version = read_scalar<std::int64_t>(c.state, "version");
  const Tensor& p = c.state.at("payload");
  std::vector<std::uint32_t> words(p.bytes.size() / 4);
  std::memcpy(words.data(), p.bytes.data(), p.bytes.size());
  const bool whole = std::all_of(words.begin(), words.end(), [&](std::uint32_t w) {
    return w == static_cast<std::uint32_t>(version);
  });
  REQUIRE(whole);
  REQUIRE(c.metadata.at("writer") == "test");
  return version;
}

}  // namespace

TEST_CASE("a checkpoint round-trips state and metadata", "[checkpoint]") {
  test::TempDir dir;
  const std::string path = dir.file("ckpt.safetensors");
  Toy toy;
  for (int i = 0; i < 5; ++i) toy.advance();
  const StateDict state = toy.export_state();
  save_checkpoint(path, state, {{"step", "5"}, {"run", "toy"}});
  const Checkpoint c = load_checkpoint(path);
  CHECK(c.metadata == Metadata{{"step", "5"}, {"run", "toy"}});
  REQUIRE(c.state.size() == state.size());
  for (const auto& [name, t] : state) {
    CHECK(c.state.at(name).bytes == t.bytes);
    CHECK(c.state.at(name).shape == t.shape);
    CHECK(c.state.at(name).dtype == t.dtype);
  }
  // Saving again replaces it.
  toy.advance();
  save_checkpoint(path, toy.export_state(), {{"step", "6"}});
  CHECK(load_checkpoint(path).metadata.at("step") == "6");
  CHECK_THROWS_AS(save_checkpoint(path, state, {{"checksum", "x"}}), InvalidArgument);
  CHECK(load_checkpoint(path).metadata.at("step") == "6");
}

TEST_CASE("resuming from a checkpoint continues bit for bit", "[checkpoint]") {
  test::TempDir dir;
  const std::string path = dir.file("resume.safetensors");
  Toy straight;
  for (int i = 0; i < 40; ++i) straight.advance();

  Toy first;
  for (int i = 0; i < 17; ++i) first.advance();
  save_checkpoint(path, first.export_state());
  Toy resumed;  // a fresh process would start here
  resumed.import_state(load_checkpoint(path).state);
  for (int i = 17; i < 40; ++i) resumed.advance();

  CHECK(resumed.step == straight.step);
  CHECK(std::memcmp(resumed.w.data(), straight.w.data(), 37 * sizeof(float)) == 0);
  CHECK(std::memcmp(resumed.moment.data(), straight.moment.data(), 37 * sizeof(float)) == 0);
  CHECK(resumed.bits == straight.bits);
  CHECK(resumed.rng() == straight.rng());
}

TEST_CASE("a corrupt or foreign checkpoint is refused before anything is returned",
          "[checkpoint]") {
  test::TempDir dir;
  const std::string path = dir.file("c.safetensors");
  save_checkpoint(path, big_state(3, 1000), {{"writer", "test"}});
  const auto good = test::read_bytes(path);
  const SafetensorsFile f = SafetensorsFile::open(path);

  auto flipped = good;
  flipped[f.at("payload").offset + 123] ^= 0x10;
  test::write_bytes(path, flipped);
  require_format_error([&] { load_checkpoint(path); },
                       {path, "checksum does not match", "corrupt"});

  auto truncated = good;
  truncated.resize(good.size() - 100);
  test::write_bytes(path, truncated);
  require_format_error([&] { load_checkpoint(path); }, {path, "out of range"});

  const std::string other = dir.file("plain.safetensors");
  save_state_dict(other, big_state(1, 4));
  require_format_error([&] { load_checkpoint(other); }, {"not an mbok checkpoint", "format"});
  SafetensorsWriter w;
  const StateDict s = big_state(1, 4);
  w.add(s);
  w.set_metadata("format", "mbok-checkpoint");
  w.set_metadata("format_version", "7");
  w.write(other);
  require_format_error([&] { load_checkpoint(other); }, {"format version '7' is not supported"});
}

namespace {

// Several tensors of different dtypes, so every region of the file has something in it.
StateDict mixed_state() {
  StateDict s = big_state(9, 40);
  const std::vector<double> d = {1.5, -2.25, 3.0};
  s["doubles"] = Tensor::from(d.data(), {3});
  const std::vector<std::int8_t> i = {1, -2, 3, -4, 5};
  s["bytes"] = Tensor::from(i.data(), {5});
  return s;
}

}  // namespace

TEST_CASE("any one- or two-bit corruption of a checkpoint fails its checksum", "[checkpoint]") {
  test::TempDir dir;
  const std::string path = dir.file("c.safetensors");
  save_checkpoint(path, mixed_state(), {{"writer", "test"}, {"note", "resumable"}});
  const auto good = test::read_bytes(path);
  REQUIRE_NOTHROW(load_checkpoint(path));
  const SafetensorsFile f = SafetensorsFile::open(path);

  // Every region: the size field, the JSON header (the checksum itself, format keys, user
  // metadata, tensor records, padding) and each tensor's data.
  std::vector<std::pair<std::string, std::size_t>> regions = {{"size field", 0},
                                                              {"header start", 8},
                                                              {"checksum digits", 40},
                                                              {"header end", f.data_offset() - 1}};
  const std::string text(good.begin(), good.end());
  for (const char* needle : {"\"format\"", "mbok-checkpoint", "\"format_version\"", "\"tensors\"",
                             "resumable", "\"writer\"", "data_offsets", "\"payload\"", "F64"}) {
    const auto at = text.find(needle);
    REQUIRE(at != std::string::npos);
    REQUIRE(at < f.data_offset());
    regions.push_back({needle, at + 1});
  }
  for (const TensorView& t : f.tensors()) {
    regions.push_back({"data of " + t.name, t.offset});
    regions.push_back({"data of " + t.name, t.offset + t.size_bytes - 1});
  }
  std::size_t tried = 0;
  auto expect_corrupt = [&](const std::vector<std::uint8_t>& bytes, const std::string& what) {
    test::write_bytes(path, bytes);
    INFO(what);
    require_format_error([&] { load_checkpoint(path); }, {path, "checksum does not match"});
    ++tried;
  };
  for (const auto& [name, at] : regions)
    for (int bit = 0; bit < 8; ++bit) {
      auto one = good;
      one[at] ^= static_cast<std::uint8_t>(1u << bit);
      expect_corrupt(one, name + ": bit " + std::to_string(bit) + " of byte " + std::to_string(at));
      auto pair = one;  // with a second flip in the next byte
      pair[at + 1 < pair.size() ? at + 1 : at - 1] ^= static_cast<std::uint8_t>(0x80u >> bit);
      expect_corrupt(pair, name + ": byte pair at " + std::to_string(at));
    }
  // And one bit of every byte of the file.
  for (std::size_t at = 0; at < good.size(); ++at) {
    auto one = good;
    one[at] ^= static_cast<std::uint8_t>(1u << (at % 8));
    expect_corrupt(one, "bit " + std::to_string(at % 8) + " of byte " + std::to_string(at));
  }
  // The top bit of two words of a tensor: the old word-wise hash cancelled these.
  auto top = good;
  const std::size_t payload = f.at("payload").offset;
  top[payload + 7] ^= 0x80;
  top[payload + 15] ^= 0x80;
  expect_corrupt(top, "bit 63 of two words");
  // User metadata is covered too: the same length, one letter changed.
  std::string changed = text;
  changed.replace(changed.find("resumable"), 9, "resumablf");
  expect_corrupt(std::vector<std::uint8_t>(changed.begin(), changed.end()), "metadata value");
  CHECK(tried > 500);
  test::write_bytes(path, good);
  CHECK(load_checkpoint(path).metadata.at("note") == "resumable");
}

TEST_CASE("version-1 checkpoints are still read, with their own check", "[checkpoint]") {
  test::TempDir dir;
  const std::string path = dir.file("v1.safetensors");
  const StateDict state = mixed_state();
  SafetensorsWriter w;  // what the version-1 writer wrote
  w.add(state);
  w.set_metadata("run", "old");
  w.set_metadata("format", "mbok-checkpoint");
  w.set_metadata("format_version", "1");
  w.set_metadata("tensors", std::to_string(state.size()));
  w.set_metadata("checksum", detail::legacy_state_checksum(state));
  w.write(path);
  const Checkpoint c = load_checkpoint(path);
  CHECK(c.metadata == Metadata{{"run", "old"}});
  CHECK(c.state.at("doubles").bytes == state.at("doubles").bytes);

  auto bytes = test::read_bytes(path);
  bytes[SafetensorsFile::open(path).at("doubles").offset + 3] ^= 0x04;
  test::write_bytes(path, bytes);
  require_format_error([&] { load_checkpoint(path); },
                       {path, "checksum does not match", "version 1"});

  // Saving again writes the current version.
  save_checkpoint(path, state);
  CHECK(SafetensorsFile::open(path).metadata().at("format_version") ==
        std::to_string(kCheckpointFormatVersion));
}

TEST_CASE("a writer killed while saving leaves the previous checkpoint intact",
          "[checkpoint][slow]") {
  test::TempDir dir;
  const std::string path = dir.file("live.safetensors");
  constexpr std::size_t kFloats = 2 << 20;  // 8 MiB per checkpoint
  save_checkpoint(path, big_state(1, kFloats), {{"writer", "test"}});
  REQUIRE(check_intact(path) == 1);
  auto temp_files = [&] {
    int n = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir.path()))
      n += e.path().filename().string().find(".mbok-tmp-") != std::string::npos;
    return n;
  };

  std::mt19937 rng(5);
  std::int64_t last_seen = 1;
  int interrupted = 0;
  for (int round = 0; round < 8; ++round) {
    int done[2];
    REQUIRE(::pipe(done) == 0);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      // Save ever newer checkpoints until killed, telling the parent after each one; never
      // returns into the test runner.
      ::close(done[0]);
      for (std::uint32_t v = static_cast<std::uint32_t>(100 * (round + 1));; ++v) {
        try {
          save_checkpoint(path, big_state(v, kFloats), {{"writer", "test"}});
        } catch (...) {
          ::_exit(3);
        }
        const char c = 1;
        if (::write(done[1], &c, 1) != 1) ::_exit(4);
      }
    }
    ::close(done[1]);
    // Wait for one save to complete (so the file moves forward however slow the machine
    // is), then kill: in even rounds as soon as the next save's temporary file appears (in
    // the middle of writing it), in odd rounds at a random moment.
    char c = 0;
    REQUIRE(::read(done[0], &c, 1) == 1);
    if (round % 2 == 0) {
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      while (temp_files() == 0 && std::chrono::steady_clock::now() < give_up)
        std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(2 + rng() % 25));
    }
    ::kill(child, SIGKILL);
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    ::close(done[0]);
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);
    // A temporary file left behind means the kill landed in the middle of a save. It is not
    // removed here: the next save must clean it up.
    interrupted += temp_files() > 0;
    const std::int64_t version = check_intact(path);
    CHECK(version >= last_seen);  // the file only moves forward, and is always whole
    last_seen = version;
  }
  INFO("kills that interrupted a save: " << interrupted << " of 8");
  CHECK(interrupted >= 1);
  CHECK(last_seen > 1);
  // The killed writers' temporary files are gone after one more save.
  save_checkpoint(path, big_state(7, 16), {{"writer", "test"}});
  CHECK(temp_files() == 0);
  CHECK(check_intact(path) == 7);
}
