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
    s["rng"] = Tensor::from(reinterpret_cast<const std::uint8_t*>(text.data()), {static_cast<std::int64_t>(text.size())});
    return s;
  }

  void import_state(const StateDict& s) {
    read_tensor(s, "w", {37}, w.data());
    read_tensor(s, "moment", {37}, moment.data());
    const Tensor& b = expect_tensor(s, "bits", DType::u8, {3, static_cast<std::int64_t>(bits.row_words() * 8)});
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
  const bool whole = std::all_of(words.begin(), words.end(),
                                 [&](std::uint32_t w) { return w == static_cast<std::uint32_t>(version); });
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

TEST_CASE("a corrupt or foreign checkpoint is refused before anything is returned", "[checkpoint]") {
  test::TempDir dir;
  const std::string path = dir.file("c.safetensors");
  save_checkpoint(path, big_state(3, 1000), {{"writer", "test"}});
  const auto good = test::read_bytes(path);
  const SafetensorsFile f = SafetensorsFile::open(path);

  auto flipped = good;
  flipped[f.at("payload").offset + 123] ^= 0x10;
  test::write_bytes(path, flipped);
  require_format_error([&] { load_checkpoint(path); }, {path, "checksum mismatch", "corrupt"});

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

TEST_CASE("a writer killed while saving leaves the previous checkpoint intact", "[checkpoint][slow]") {
  test::TempDir dir;
  const std::string path = dir.file("live.safetensors");
  constexpr std::size_t kFloats = 2 << 20;  // 8 MiB per checkpoint
  save_checkpoint(path, big_state(1, kFloats), {{"writer", "test"}});
  REQUIRE(check_intact(path) == 1);

  std::mt19937 rng(5);
  std::int64_t last_seen = 1;
  int interrupted = 0;
  for (int round = 0; round < 6; ++round) {
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      // Save ever newer checkpoints until killed; never returns into the test runner.
      for (std::uint32_t v = static_cast<std::uint32_t>(100 * (round + 1));; ++v) {
        try {
          save_checkpoint(path, big_state(v, kFloats), {{"writer", "test"}});
        } catch (...) {
          ::_exit(3);
        }
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 60));
    ::kill(child, SIGKILL);
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);
    // A temporary file left behind means the kill landed in the middle of a save.
    for (const auto& e : std::filesystem::directory_iterator(dir.path()))
      if (e.path().filename().string().find(".tmp.") != std::string::npos) {
        ++interrupted;
        std::filesystem::remove(e.path());
      }
    const std::int64_t version = check_intact(path);
    CHECK(version >= last_seen);  // the file only moves forward, and is always whole
    last_seen = version;
  }
  INFO("kills that interrupted a save: " << interrupted << " of 6");
  CHECK(interrupted >= 1);
  CHECK(last_seen > 1);
}
