#pragma once
/// \file
/// Crash-safe finetuning checkpoints: one safetensors file holding a `StateDict` the caller
/// assembles (Boolean kernels, scales, optimizer accumulators and beta, AdamW moments, the
/// step, RNG state, data position: each object exports its own state into it) plus string
/// metadata.
///
/// Saving writes a temporary file in the same directory, flushes it to disk, renames it over
/// the old checkpoint and flushes the directory: a crash or a kill at any moment leaves the
/// previous checkpoint or the new one, complete. Loading validates the whole file and a
/// checksum of every tensor before returning anything. Resuming is bit-identical when the
/// caller restores all the state it saved.
///
/// `__metadata__` keys "format" ("mbok-checkpoint"), "format_version" ("1"), "checksum" and
/// "tensors" are the format's own; every other key is the caller's.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "../error.hpp"
#include "../state_dict.hpp"
#include "safetensors.hpp"

namespace mbok {

inline constexpr const char* kCheckpointFormatName = "mbok-checkpoint";
inline constexpr int kCheckpointFormatVersion = 1;

/// A loaded checkpoint.
struct Checkpoint {
  StateDict state;    ///< every tensor saved
  Metadata metadata;  ///< the caller's metadata (the format's own keys removed)
};

namespace detail {

// 64-bit FNV-1a over 8-byte words (bytes for the tail): fast enough to run over a whole
// checkpoint, and any change of a name, dtype, shape or byte changes it.
class Checksum {
 public:
  void add(const void* data, std::size_t size) noexcept {
    const auto* p = static_cast<const std::uint8_t*>(data);
    std::size_t i = 0;
    for (; i + 8 <= size; i += 8) {
      std::uint64_t w;
      std::memcpy(&w, p + i, 8);
      h_ = (h_ ^ w) * kPrime;
    }
    for (; i < size; ++i) h_ = (h_ ^ p[i]) * kPrime;
    h_ = (h_ ^ size) * kPrime;  // separates adjacent fields
  }
  std::string hex() const {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h_));
    return buf;
  }

 private:
  static constexpr std::uint64_t kPrime = 0x100000001b3ull;
  std::uint64_t h_ = 0xcbf29ce484222325ull;
};

inline std::string state_checksum(const StateDict& state) {
  Checksum c;
  for (const auto& [name, t] : state) {  // std::map: sorted by name, independent of the file layout
    c.add(name.data(), name.size());
    const auto code = static_cast<std::uint8_t>(t.dtype);
    c.add(&code, 1);
    c.add(t.shape.data(), t.shape.size() * sizeof(std::int64_t));
    c.add(t.bytes.data(), t.bytes.size());
  }
  return c.hex();
}

inline bool is_checkpoint_key(const std::string& key) {
  return key == "format" || key == "format_version" || key == "checksum" || key == "tensors";
}

}  // namespace detail

/// Saves `state` and `metadata` to `path` atomically (the old file, if any, is replaced only
/// once the new one is complete and on disk; `sync` = false skips the flushes, for tests).
/// Throws `InvalidArgument` for a malformed tensor or a reserved metadata key, `FormatError`
/// on I/O errors (the old checkpoint is then untouched).
inline void save_checkpoint(const std::string& path, const StateDict& state, const Metadata& metadata = {},
                            bool sync = true) {
  for (const auto& kv : metadata)
    detail::require(!detail::is_checkpoint_key(kv.first), "checkpoint: metadata key '", kv.first,
                    "' is reserved by the format");
  SafetensorsWriter writer;
  writer.add(state);
  writer.set_metadata(metadata);
  writer.set_metadata("format", kCheckpointFormatName);
  writer.set_metadata("format_version", std::to_string(kCheckpointFormatVersion));
  writer.set_metadata("tensors", std::to_string(state.size()));
  writer.set_metadata("checksum", detail::state_checksum(state));
  writer.write(path, sync);
}

/// Loads the checkpoint at `path`, verifying the safetensors structure, the format name and
/// version, the tensor count and the checksum. Throws `FormatError` naming the file and what
/// is wrong; nothing is returned unless everything checks.
inline Checkpoint load_checkpoint(const std::string& path) {
  const SafetensorsFile file = SafetensorsFile::open(path);
  const Metadata& md = file.metadata();
  auto get = [&](const char* key) {
    const auto it = md.find(key);
    detail::require_format(it != md.end(), "checkpoint '", path, "': not an mbok checkpoint (no \"",
                           key, "\" in __metadata__)");
    return it->second;
  };
  detail::require_format(get("format") == kCheckpointFormatName, "checkpoint '", path, "': format is '",
                         get("format"), "', expected '", kCheckpointFormatName, "'");
  detail::require_format(get("format_version") == std::to_string(kCheckpointFormatVersion), "checkpoint '",
                         path, "': format version '", get("format_version"),
                         "' is not supported (this reader knows version ", kCheckpointFormatVersion, ")");
  Checkpoint out;
  out.state = file.to_state_dict();
  detail::require_format(get("tensors") == std::to_string(out.state.size()), "checkpoint '", path,
                         "': holds ", out.state.size(), " tensors, its metadata says ", get("tensors"));
  const std::string sum = detail::state_checksum(out.state);
  detail::require_format(get("checksum") == sum, "checkpoint '", path, "': checksum mismatch (stored ",
                         get("checksum"), ", computed ", sum, "): the file is corrupt");
  for (const auto& kv : md)
    if (!detail::is_checkpoint_key(kv.first)) out.metadata.insert(kv);
  return out;
}

}  // namespace mbok
