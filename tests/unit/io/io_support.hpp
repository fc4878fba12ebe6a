#pragma once
// Helpers for the io tests: safetensors bytes built by hand from the published format (not
// with mbok's writer), temporary folders, and a check that a call fails with a FormatError
// whose message says what is wrong.

#include <mbok/error.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "catch.hpp"

namespace mbok::test {

/// 8-byte little-endian N, the N header bytes, then `data`.
inline std::vector<std::uint8_t> raw_safetensors(const std::string& header,
                                                 const std::vector<std::uint8_t>& data = {}) {
  std::vector<std::uint8_t> out;
  const std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(n >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

/// Little-endian bytes of a value.
template <typename T>
void append_le(std::vector<std::uint8_t>& out, T value) {
  std::uint8_t b[sizeof(T)];
  std::memcpy(b, &value, sizeof(T));  // this library supports little-endian hosts only
  out.insert(out.end(), b, b + sizeof(T));
}

/// A fresh folder under the system's temporary directory, removed at scope exit.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base && *base ? base : "/tmp") + "/mbok-io-XXXXXX";
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    REQUIRE(::mkdtemp(buf.data()) != nullptr);
    path_ = buf.data();
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline void write_bytes(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

inline std::vector<std::uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<std::uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

/// Runs `f`, which must throw `mbok::FormatError` with every one of `parts` in its message.
template <typename F>
void require_format_error(F&& f, const std::vector<std::string>& parts) {
  bool threw = false;
  try {
    f();
  } catch (const FormatError& e) {
    threw = true;
    INFO("message: " << e.what());
    for (const auto& part : parts) CHECK_THAT(std::string(e.what()), contains(part));
  }
  CHECK(threw);
}

}  // namespace mbok::test
