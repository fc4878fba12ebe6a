#pragma once
/// \file
/// Crash-safe finetuning checkpoints: one safetensors file holding a `StateDict` the caller
/// assembles (Boolean kernels, scales, optimizer accumulators and beta, AdamW moments, the
/// step, RNG state, data position: each object exports its own state into it) plus string
/// metadata.
///
/// Saving writes a temporary file in the same directory, flushes it to disk, renames it over
/// the old checkpoint and flushes the directory: a crash or a kill at any moment leaves the
/// previous checkpoint or the new one, complete. Loading verifies a checksum of the whole
/// file and then validates its structure before returning anything. Resuming is
/// bit-identical when the caller restores all the state it saved.
///
/// `__metadata__` keys "format" ("mbok-checkpoint"), "format_version" ("2"), "checksum" and
/// "tensors" are the format's own; every other key is the caller's.
///
/// Checksum (format version 2): XXH3-64 (xxHash) of every byte of the file (size field,
/// JSON header with all metadata, data section), computed with the 16 hex digits of the
/// checksum itself set to '0'. The writer puts `"__metadata__"` first in the header and
/// "checksum" first in it, so the digits always sit at bytes [37, 53) of the file and the
/// reader checks them before it parses anything: any corruption, even one that leaves valid
/// JSON, reads as "checksum does not match". Version 1 files (a 64-bit FNV-style hash of the
/// tensors only, metadata not covered) are still read, with their own weaker check; saving
/// always writes version 2. Needs xxhash.h (Debian: libxxhash-dev; CMake: `mbok::xxhash`),
/// used header-only.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "../error.hpp"
#include "../state_dict.hpp"
#include "mmap.hpp"
#include "safetensors.hpp"

#if !defined(XXH_INLINE_ALL)
#define XXH_INLINE_ALL  // header-only: no library to link
#define MBOK_DEFINED_XXH_INLINE_ALL
#endif
#include <xxhash.h>
#if defined(MBOK_DEFINED_XXH_INLINE_ALL)
#undef XXH_INLINE_ALL
#undef MBOK_DEFINED_XXH_INLINE_ALL
#endif

namespace mbok {

inline constexpr const char* kCheckpointFormatName = "mbok-checkpoint";
inline constexpr int kCheckpointFormatVersion = 2;
/// The oldest format version `load_checkpoint` still reads.
inline constexpr int kCheckpointOldestReadableVersion = 1;

/// A loaded checkpoint.
struct Checkpoint {
  StateDict state;    ///< every tensor saved
  Metadata metadata;  ///< the caller's metadata (the format's own keys removed)
};

namespace detail {

// Where the checksum's 16 hex digits sit in a version-2 checkpoint: right after this prefix,
// which starts the JSON header at byte 8 (see the file comment).
inline constexpr char kChecksumPrefix[] = "{\"__metadata__\":{\"checksum\":\"";
inline constexpr std::size_t kChecksumAt = 8 + sizeof(kChecksumPrefix) - 1;  // 37
inline constexpr std::size_t kChecksumDigits = 16;

inline std::string hex64(std::uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// XXH3-64 over a stream of chunks.
class Xxh3 {
 public:
  Xxh3() noexcept { XXH3_64bits_reset(&state_); }
  void add(const void* data, std::size_t size) noexcept {
    if (size > 0) XXH3_64bits_update(&state_, data, size);
  }
  std::uint64_t digest() const noexcept { return XXH3_64bits_digest(&state_); }

 private:
  XXH3_state_t state_;
};

// The version-2 checksum of a file's bytes (the digits at kChecksumAt count as '0's).
// Files too short to hold the digits get the hash of their bytes, which never matches.
inline std::uint64_t file_checksum(const std::uint8_t* data, std::size_t size) noexcept {
  Xxh3 h;
  if (size < kChecksumAt + kChecksumDigits) {
    h.add(data, size);
    return ~h.digest();
  }
  static constexpr char kZeros[kChecksumDigits + 1] = "0000000000000000";
  h.add(data, kChecksumAt);
  h.add(kZeros, kChecksumDigits);
  h.add(data + kChecksumAt + kChecksumDigits, size - kChecksumAt - kChecksumDigits);
  return h.digest();
}

// The digits stored at kChecksumAt, printable characters only (for messages).
inline std::string stored_checksum_text(const std::uint8_t* data, std::size_t size) {
  if (size < kChecksumAt + kChecksumDigits) return "none";
  std::string out;
  for (std::size_t i = 0; i < kChecksumDigits; ++i) {
    const auto c = static_cast<char>(data[kChecksumAt + i]);
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  return out;
}

// Format version 1: 64-bit FNV-1a over 8-byte words of the tensors (names, dtypes, shapes,
// bytes), metadata not covered. Kept only to read old files.
class LegacyChecksum {
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
  std::uint64_t value() const noexcept { return h_; }

 private:
  static constexpr std::uint64_t kPrime = 0x100000001b3ull;
  std::uint64_t h_ = 0xcbf29ce484222325ull;
};

inline std::string legacy_state_checksum(const StateDict& state) {
  LegacyChecksum c;
  for (const auto& [name, t] : state) {  // std::map: sorted by name, independent of the file layout
    c.add(name.data(), name.size());
    const auto code = static_cast<std::uint8_t>(t.dtype);
    c.add(&code, 1);
    c.add(t.shape.data(), t.shape.size() * sizeof(std::int64_t));
    c.add(t.bytes.data(), t.bytes.size());
  }
  return hex64(c.value());
}

// True when the header's first bytes differ from kChecksumPrefix in at most two bytes: a
// version-2 checkpoint whose prefix itself was damaged.
inline bool near_checksum_prefix(const std::uint8_t* data, std::size_t size) noexcept {
  if (size < kChecksumAt) return false;
  int differ = 0;
  for (std::size_t i = 8; i < kChecksumAt; ++i)
    differ += data[i] != static_cast<std::uint8_t>(kChecksumPrefix[i - 8]);
  return differ <= 2;
}

inline bool is_checkpoint_key(const std::string& key) {
  return key == "format" || key == "format_version" || key == "checksum" || key == "tensors";
}

}  // namespace detail

/// Saves `state` and `metadata` to `path` atomically (the old file, if any, is replaced only
/// once the new one is complete and on disk; `sync` = false skips the flushes, for tests).
/// Throws `InvalidArgument` for a malformed tensor or a reserved metadata key, `FormatError`
/// on I/O errors (the old checkpoint is then untouched).
inline void save_checkpoint(const std::string& path, const StateDict& state,
                            const Metadata& metadata = {}, bool sync = true) {
  for (const auto& kv : metadata)
    detail::require(!detail::is_checkpoint_key(kv.first), "checkpoint: metadata key '", kv.first,
                    "' is reserved by the format");
  SafetensorsWriter writer;
  writer.add(state);
  writer.set_metadata(metadata);
  writer.set_metadata("format", kCheckpointFormatName);
  writer.set_metadata("format_version", std::to_string(kCheckpointFormatVersion));
  writer.set_metadata("tensors", std::to_string(state.size()));
  // Hash the file as it will be written, with '0's for the digits, then write it with the
  // digits (same length, so nothing else moves).
  writer.set_metadata_first("checksum", std::string(detail::kChecksumDigits, '0'));
  detail::Xxh3 hash;
  std::size_t at = 0;
  bool prefix_ok = true;
  writer.stream([&](const void* data, std::size_t size) {
    // The prefix lies in the first chunks (8-byte size field, then the header).
    const auto* p = static_cast<const std::uint8_t*>(data);
    for (std::size_t i = 0; i < size && at + i < detail::kChecksumAt; ++i)
      if (at + i >= 8)
        prefix_ok =
            prefix_ok && p[i] == static_cast<std::uint8_t>(detail::kChecksumPrefix[at + i - 8]);
    at += size;
    hash.add(data, size);
  });
  if (!prefix_ok)  // the layout contract with SafetensorsWriter broke: never write such a file
    throw std::logic_error("mbok: checkpoint: the checksum is not at its fixed offset");
  writer.set_metadata_first("checksum", detail::hex64(hash.digest()));
  writer.write(path, sync);
}

/// Loads the checkpoint at `path`: verifies the checksum of the whole file first, then the
/// safetensors structure, the format name and version and the tensor count. Throws
/// `FormatError` naming the file and what is wrong ("checksum does not match" for any
/// corruption of a version-2 file); nothing is returned unless everything checks.
inline Checkpoint load_checkpoint(const std::string& path) {
  const std::shared_ptr<const MappedFile> map = MappedFile::open(path);
  const std::uint8_t* bytes = map->data();
  const std::size_t size = map->size();
  const std::string computed = detail::hex64(detail::file_checksum(bytes, size));
  const std::string stored = detail::stored_checksum_text(bytes, size);
  const bool sum_ok = stored == computed;
  auto mismatch = [&](const std::string& why) {
    return FormatError(detail::concat("mbok: checkpoint '", path,
                                      "': checksum does not match (stored ", stored, ", computed ",
                                      computed, "): the file is corrupt", why));
  };
  std::optional<SafetensorsFile> parsed;
  try {
    parsed.emplace(SafetensorsFile::from_memory(bytes, size, map, path));
  } catch (const FormatError& e) {
    if (sum_ok) throw;
    throw mismatch(detail::concat(" or not an mbok checkpoint (", e.what(), ")"));
  }
  const Metadata& md = parsed->metadata();
  auto find = [&](const char* key) {
    const auto it = md.find(key);
    return it == md.end() ? std::string() : it->second;
  };
  Checkpoint out;
  if (!sum_ok && find("format") == kCheckpointFormatName && find("format_version") == "1") {
    // Version 1 checked only the tensors, with a weak hash; still read for old runs.
    out.state = parsed->to_state_dict();
    const std::string sum = detail::legacy_state_checksum(out.state);
    detail::require_format(find("checksum") == sum, "checkpoint '", path,
                           "': checksum does not match (format version 1: stored ",
                           find("checksum"), ", computed ", sum, "): the file is corrupt");
  } else {
    // A file with a checksum entry, or whose header starts (nearly) like a version-2
    // checkpoint, that fails the check is corrupt, whatever else it seems to say.
    if (!sum_ok && (md.count("checksum") != 0 || detail::near_checksum_prefix(bytes, size)))
      throw mismatch("");
    auto get = [&](const char* key) {
      detail::require_format(md.count(key) != 0, "checkpoint '", path,
                             "': not an mbok checkpoint (no \"", key, "\" in __metadata__)");
      return find(key);
    };
    detail::require_format(get("format") == kCheckpointFormatName, "checkpoint '", path,
                           "': format is '", get("format"), "', expected '", kCheckpointFormatName,
                           "'");
    detail::require_format(get("format_version") == std::to_string(kCheckpointFormatVersion),
                           "checkpoint '", path, "': format version '", get("format_version"),
                           "' is not supported (this reader knows versions ",
                           kCheckpointOldestReadableVersion, " to ", kCheckpointFormatVersion, ")");
    if (!sum_ok) throw mismatch("");
    out.state = parsed->to_state_dict();
  }
  detail::require_format(find("tensors") == std::to_string(out.state.size()), "checkpoint '", path,
                         "': holds ", out.state.size(), " tensors, its metadata says ",
                         find("tensors"));
  for (const auto& kv : md)
    if (!detail::is_checkpoint_key(kv.first)) out.metadata.insert(kv);
  return out;
}

}  // namespace mbok
