// Limits of the readers and writers: the safetensors writer never makes a file its reader
// refuses (sizes checked the same way, rank limited), the readers bound tensor rank while
// they parse, and they refuse paths that are not regular files (a FIFO would block forever).

#include <mbok/io/mbok_format.hpp>
#include <mbok/io/safetensors.hpp>

#include <chrono>
#include <future>
#include <string>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "io_support.hpp"
#include "support.hpp"

using namespace mbok;
using test::require_format_error;

TEST_CASE("the safetensors writer refuses sizes that wrap, as its reader does",
          "[safetensors][overflow]") {
  SafetensorsWriter w;
  // 2^62 F32 elements need 2^64 bytes: numel * 4 wraps to 0, which matched an empty buffer.
  CHECK_THROWS_WITH(w.add("big", DType::f32, {std::int64_t{1} << 62}, nullptr, 0),
                    test::contains("overflows"));
  CHECK_THROWS_AS(
      w.add("big2", DType::f64, {std::int64_t{1} << 31, std::int64_t{1} << 30}, nullptr, 0),
      InvalidArgument);
  Tensor t;
  t.dtype = DType::i32;
  t.shape = {std::int64_t{1} << 62};
  StateDict dict{{"wrapped", t}};
  CHECK_THROWS_AS(save_state_dict("/nonexistent-dir/never-written", dict), InvalidArgument);
  // What the reader says about the same header.
  const auto bytes = test::raw_safetensors(
      R"({"big":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}})");
  require_format_error([&] { SafetensorsFile::from_memory(bytes.data(), bytes.size()); },
                       {"overflows"});
}

TEST_CASE("tensor rank is limited to 8 on read and write", "[safetensors][limits]") {
  const std::string eight = "[1,1,1,1,1,1,1,1]", nine = "[1,1,1,1,1,1,1,1,1]";
  const std::vector<std::uint8_t> one_byte = {7};
  const auto ok = test::raw_safetensors(
      R"({"t":{"dtype":"U8","shape":)" + eight + R"(,"data_offsets":[0,1]}})", one_byte);
  CHECK(SafetensorsFile::from_memory(ok.data(), ok.size()).at("t").shape.size() == 8);
  const auto bad = test::raw_safetensors(
      R"({"t":{"dtype":"U8","shape":)" + nine + R"(,"data_offsets":[0,1]}})", one_byte);
  require_format_error([&] { SafetensorsFile::from_memory(bad.data(), bad.size()); },
                       {"more than 8 elements", "rank 8"});
  // A header that is one long array of zero dimensions is refused while it is parsed, at
  // the ninth element, not after building millions of JSON values.
  std::string zeros = R"({"t":{"dtype":"U8","data_offsets":[0,0],"shape":[0)";
  for (int i = 0; i < 2000000; ++i) zeros += ",0";
  zeros += "]}}";
  const auto huge = test::raw_safetensors(zeros);
  const auto start = std::chrono::steady_clock::now();
  require_format_error([&] { SafetensorsFile::from_memory(huge.data(), huge.size()); },
                       {"more than 8"});
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
  // Arrays nested in metadata-like places count too.
  const auto nested = test::raw_safetensors(
      R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":[[1,2,3,4,5,6,7,8,9]]}})",
      one_byte);
  require_format_error([&] { SafetensorsFile::from_memory(nested.data(), nested.size()); },
                       {"more than 8"});

  SafetensorsWriter w;
  const std::uint8_t b = 1;
  CHECK_NOTHROW(w.add("r8", DType::u8, {1, 1, 1, 1, 1, 1, 1, 1}, &b, 1));
  CHECK_THROWS_WITH(w.add("r9", DType::u8, {1, 1, 1, 1, 1, 1, 1, 1, 1}, &b, 1),
                    test::contains("rank 9"));
}

TEST_CASE("readers refuse a FIFO, a directory or a device at once", "[safetensors][limits]") {
  test::TempDir dir;
  const std::string fifo = dir.file("model.safetensors");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  // Run on another thread so a reader that blocks fails the test instead of hanging it
  // (the thread is then released by opening the FIFO for writing).
  auto attempt = [](const std::string& path, auto&& open) {
    return std::async(std::launch::async, [path, open] {
      try {
        open(path);
      } catch (const FormatError& e) {
        return std::string(e.what());
      }
      return std::string("no error");
    });
  };
  auto open_st = [](const std::string& p) { SafetensorsFile::open(p); };
  auto open_mbok = [](const std::string& p) { MbokModel::open(p); };
  auto open_dict = [](const std::string& p) { load_state_dict(p); };
  for (const std::string& path : {fifo, dir.path(), std::string("/dev/null")}) {
    for (int reader = 0; reader < 3; ++reader) {
      INFO(path << " reader " << reader);
      auto result = reader == 0   ? attempt(path, open_st)
                    : reader == 1 ? attempt(path, open_mbok)
                                  : attempt(path, open_dict);
      if (result.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
        FAIL_CHECK("the reader blocked on " << path);
        const int fd = ::open(path.c_str(), O_WRONLY | O_NONBLOCK);  // release it
        result.wait();
        if (fd >= 0) ::close(fd);
        continue;
      }
      const std::string what = result.get();
      CHECK_THAT(what, test::contains("'" + path + "'"));
      CHECK_THAT(what, test::contains("not a regular file"));
    }
  }
}
