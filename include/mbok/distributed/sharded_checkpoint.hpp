#pragma once
/// \file
/// Sharded checkpoints of data-parallel training: reading them, with or without MPI.
///
/// `DataParallelTrainer::save_sharded` (mpi.hpp) writes, next to a manifest at the path it is
/// given, one file per rank holding that rank's row slices of the Boolean accumulators:
///
/// - `<manifest>.shard-<r>-of-<P>-<16 hex>`: an mbok checkpoint (io/checkpoint.hpp: atomic
///   write, XXH3 checksum of the whole file) holding `<prefix>boolean.<name>.accumulator` of
///   shape [rows of rank r's slice, cols] for every tensor where rank r holds rows. The hex
///   digits name the save (the same for every shard of one save), so a new save never
///   overwrites the shards an older manifest names.
/// - `<manifest>`: an mbok checkpoint holding everything else, replicated on every rank (each
///   tensor's beta and fixed-point scale, the step, the seed, the accumulator type, AdamW's
///   state, and whatever the caller added: the model), with metadata `mbok.shards` (P),
///   `mbok.shard.<r>` (the shard's file name and its checksum, the 16 hex digits stored in
///   it) and `mbok.slices.<accumulator key>` ("rows cols s_0 s_1 ... s_P": shard r holds rows
///   [s_r, s_r+1)).
///
/// The manifest is written last, atomically: until it is renamed into place the old manifest
/// and its shards stay a complete checkpoint; afterwards the old shards are removed. A shard
/// that is missing, corrupt, or from another save (its checksum differs from the one the
/// manifest names) is refused with a `FormatError` naming its file.
///
/// `ShardedCheckpoint` reads a manifest and, on demand, the shards that hold given rows: a
/// rank of a P'-rank run reads only the shards that overlap its own slices. `assemble()` turns
/// the whole thing into the one-process layout (`BooleanOptimizer::export_state` under
/// `<prefix>boolean.`), for a run without MPI. Needs no MPI.

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "../error.hpp"
#include "../io/checkpoint.hpp"
#include "../state_dict.hpp"

namespace mbok::distributed {

/// The sharded layout's own metadata keys start with this: `mbok.shards`, `mbok.shard`,
/// `mbok.shard.<r>` and `mbok.slices.<key>` are reserved (a caller's key may be any other,
/// e.g. `mbok.finetune.settings`).
inline constexpr const char* kShardedKeyPrefix = "mbok.";

namespace detail {

// Only the layout's own keys: callers (mbok-run) keep other "mbok." keys of their own.
inline bool is_sharded_key(const std::string& key) {
  const std::string p = kShardedKeyPrefix;
  return key == p + "shards" || key == p + "shard" || key.rfind(p + "shard.", 0) == 0 ||
         key.rfind(p + "slices.", 0) == 0;
}

inline std::string file_name_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

inline std::string directory_prefix_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash + 1);
}

// The checksum digits a version-2 checkpoint stores at its fixed offset ("" when the file
// cannot be read or is too short): what the manifest records for each shard.
inline std::string stored_checksum(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return {};
  char digits[mbok::detail::kChecksumDigits];
  const bool ok = std::fseek(f, static_cast<long>(mbok::detail::kChecksumAt), SEEK_SET) == 0 &&
                  std::fread(digits, 1, sizeof digits, f) == sizeof digits;
  std::fclose(f);
  return ok ? std::string(digits, sizeof digits) : std::string();
}

}  // namespace detail

/// A sharded checkpoint opened for reading (see the file comment). Not thread-safe.
class ShardedCheckpoint {
 public:
  /// True when the checkpoint at `path` (already loaded as `manifest`) is a manifest of a
  /// sharded checkpoint rather than a one-process checkpoint.
  static bool is_manifest(const Checkpoint& manifest) {
    return manifest.metadata.count(std::string(kShardedKeyPrefix) + "shards") != 0;
  }

  /// Reads and checks the manifest at `path` (the checkpoint's checksum, then its shard list
  /// and slices); the shards are read later, as their rows are asked for. Throws `FormatError`
  /// naming the file for a missing, corrupt or malformed manifest, or a one-process
  /// checkpoint.
  explicit ShardedCheckpoint(const std::string& path)
      : ShardedCheckpoint(path, load_checkpoint(path)) {}

  /// The same, from a manifest already loaded from `path`.
  ShardedCheckpoint(const std::string& path, Checkpoint manifest) : path_(path) {
    const std::string own = kShardedKeyPrefix;
    const auto shards_it = manifest.metadata.find(own + "shards");
    mbok::detail::require_format(shards_it != manifest.metadata.end(), "checkpoint '", path,
                                 "' is not the manifest of a sharded checkpoint");
    shards_ = parse_count(shards_it->second, "mbok.shards");
    mbok::detail::require_format(shards_ >= 1 && shards_ <= (1u << 20), "sharded checkpoint '",
                                 path, "': bad shard count ", shards_it->second);
    files_.resize(shards_);
    checksums_.resize(shards_);
    for (std::size_t r = 0; r < shards_; ++r) {
      const auto it = manifest.metadata.find(own + "shard." + std::to_string(r));
      mbok::detail::require_format(it != manifest.metadata.end(), "sharded checkpoint '", path,
                                   "': the manifest names no file for shard ", r, " of ", shards_);
      std::istringstream in(it->second);
      in >> files_[r] >> checksums_[r];
      mbok::detail::require_format(!files_[r].empty() && files_[r].find('/') == std::string::npos &&
                                       checksums_[r].size() == mbok::detail::kChecksumDigits,
                                   "sharded checkpoint '", path, "': bad entry for shard ", r,
                                   ": '", it->second, "'");
    }
    const std::string slices = own + "slices.";
    for (const auto& [key, value] : manifest.metadata) {
      if (key.rfind(slices, 0) != 0) continue;
      Slices s;
      std::istringstream in(value);
      in >> s.rows >> s.cols;
      for (std::size_t v = 0; in >> v;) s.splits.push_back(v);
      bool ok = s.splits.size() == shards_ + 1 && s.splits.front() == 0 &&
                s.splits.back() == s.rows && s.cols > 0;
      for (std::size_t r = 0; ok && r < shards_; ++r) ok = s.splits[r] <= s.splits[r + 1];
      mbok::detail::require_format(ok, "sharded checkpoint '", path, "': bad slices of '",
                                   key.substr(slices.size()), "': '", value, "'");
      slices_[key.substr(slices.size())] = std::move(s);
    }
    for (auto it = manifest.metadata.begin(); it != manifest.metadata.end();)
      it = detail::is_sharded_key(it->first) ? manifest.metadata.erase(it) : std::next(it);
    manifest_ = std::move(manifest);
  }

  /// The manifest's tensors (the replicated optimizer state and the caller's, e.g. the
  /// model) and the caller's metadata (the format's keys removed).
  const Checkpoint& manifest() const noexcept { return manifest_; }
  /// The number of shards (the rank count of the run that saved it).
  std::size_t shards() const noexcept { return shards_; }
  /// The path of shard `r`'s file.
  std::string shard_path(std::size_t r) const {
    return detail::directory_prefix_of(path_) + files_.at(r);
  }
  /// The sharded tensors' keys (`<prefix>boolean.<name>.accumulator`) and their whole shapes.
  std::vector<std::pair<std::string, std::pair<std::size_t, std::size_t>>> tensors() const {
    std::vector<std::pair<std::string, std::pair<std::size_t, std::size_t>>> out;
    for (const auto& [key, s] : slices_) out.push_back({key, {s.rows, s.cols}});
    return out;
  }

  /// Rows [r0, r1) of the sharded tensor `key`, of dtype `dtype` and `cols` columns, read
  /// from the shards that hold them (each shard read and checked once). Throws `FormatError`
  /// naming the manifest and the tensor when it has no such tensor or another shape, and
  /// naming the shard's file when that is missing, corrupt, from another save or holds a
  /// tensor of another shape or dtype.
  Tensor rows(const std::string& key, std::size_t r0, std::size_t r1, DType dtype,
              std::size_t cols) {
    const auto it = slices_.find(key);
    mbok::detail::require_format(it != slices_.end(), "sharded checkpoint '", path_,
                                 "': no sharded tensor '", key, "'");
    const Slices& s = it->second;
    mbok::detail::require_format(s.cols == cols && r0 <= r1 && r1 <= s.rows, "sharded checkpoint '",
                                 path_, "': '", key, "' is ", s.rows, " x ", s.cols, ", rows [", r0,
                                 ", ", r1, ") of ", cols, " columns asked for");
    const std::size_t row_bytes = cols * dtype_size(dtype);
    Tensor out;
    out.dtype = dtype;
    out.shape = {static_cast<std::int64_t>(r1 - r0), static_cast<std::int64_t>(cols)};
    out.bytes.resize((r1 - r0) * row_bytes);
    for (std::size_t r = 0; r < shards_; ++r) {
      const std::size_t a = std::max(r0, s.splits[r]), b = std::min(r1, s.splits[r + 1]);
      if (a >= b) continue;
      const Checkpoint& shard = load_shard(r);
      const auto t = shard.state.find(key);
      const std::size_t held = s.splits[r + 1] - s.splits[r];
      mbok::detail::require_format(
          t != shard.state.end() && t->second.dtype == dtype &&
              t->second.shape == std::vector<std::int64_t>{static_cast<std::int64_t>(held),
                                                           static_cast<std::int64_t>(cols)} &&
              t->second.bytes.size() == held * row_bytes,
          "sharded checkpoint '", path_, "': shard ", r, " of ", shards_, " ('", shard_path(r),
          "') does not hold rows [", s.splits[r], ", ", s.splits[r + 1], ") of '", key, "' as ",
          dtype_name(dtype), " (a shard of another run or layout)");
      std::memcpy(out.bytes.data() + (a - r0) * row_bytes,
                  t->second.bytes.data() + (a - s.splits[r]) * row_bytes, (b - a) * row_bytes);
    }
    return out;
  }

  /// The whole checkpoint in the one-process layout: the manifest's tensors plus every
  /// sharded tensor whole (each shard read and checked). For a run without MPI, or a tool.
  /// Throws `FormatError` as `rows`.
  StateDict assemble() {
    StateDict out = manifest_.state;
    for (const auto& [key, s] : slices_) {
      DType dtype = DType::f32;
      bool found = false;
      for (std::size_t r = 0; r < shards_ && !found; ++r)
        if (s.splits[r + 1] > s.splits[r]) {
          const Checkpoint& shard = load_shard(r);
          const auto t = shard.state.find(key);
          mbok::detail::require_format(t != shard.state.end(), "sharded checkpoint '", path_,
                                       "': shard ", r, " of ", shards_, " ('", shard_path(r),
                                       "') does not hold '", key, "'");
          dtype = t->second.dtype;
          found = true;
        }
      out[key] = rows(key, 0, s.rows, dtype, s.cols);
    }
    return out;
  }

 private:
  struct Slices {
    std::size_t rows = 0, cols = 0;
    std::vector<std::size_t> splits;  // shards + 1 row indices
  };

  static std::size_t parse_count(const std::string& text, const char* what) {
    std::size_t v = 0;
    std::istringstream in(text);
    in >> v;
    mbok::detail::require_format(!in.fail(), "sharded checkpoint: bad ", what, " '", text, "'");
    return v;
  }

  // Shard r, read and checked against the manifest on first use.
  const Checkpoint& load_shard(std::size_t r) {
    const auto it = loaded_.find(r);
    if (it != loaded_.end()) return it->second;
    const std::string file = shard_path(r);
    const std::string what = mbok::detail::concat("sharded checkpoint '", path_, "': shard ", r,
                                                  " of ", shards_, " ('", file, "')");
    std::FILE* f = std::fopen(file.c_str(), "rb");
    mbok::detail::require_format(f != nullptr, what, " is missing: ", std::strerror(errno));
    std::fclose(f);
    const std::string stored = detail::stored_checksum(file);
    mbok::detail::require_format(
        stored == checksums_[r], what, " is not the file the manifest names (its checksum is '",
        stored, "', the manifest's '", checksums_[r], "'): from another save, or corrupt");
    Checkpoint shard;
    try {
      shard = load_checkpoint(file);  // verifies the whole file against its checksum
    } catch (const FormatError& e) {
      throw FormatError(what + " is corrupt: " + e.what());
    }
    return loaded_.emplace(r, std::move(shard)).first->second;
  }

  std::string path_;
  Checkpoint manifest_;
  std::size_t shards_ = 0;
  std::vector<std::string> files_, checksums_;
  std::map<std::string, Slices> slices_;
  std::map<std::size_t, Checkpoint> loaded_;
};

/// Removes the shard files of sharded saves to `path` (`<file name of path>.shard-*` in its
/// directory), except those of the save named by `keep` (its 16 hex digits; empty: keep
/// none). For a program that replaces a sharded checkpoint with a one-file one, and for
/// `save_sharded` once its manifest is in place. Best effort: a file that cannot be removed
/// stays (no manifest names it, so it is never read); temporary files of writes in progress
/// are left alone.
inline void remove_shards(const std::string& path, const std::string& keep = "") {
  namespace fs = std::filesystem;
  const std::string base = detail::file_name_of(path);
  const std::string dir = detail::directory_prefix_of(path);
  const std::string start = base + ".shard-", tail = keep.empty() ? "" : "-" + keep;
  std::error_code ec;
  for (fs::directory_iterator it(dir.empty() ? "." : dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(start, 0) != 0 || name.find(".mbok-tmp-") != std::string::npos) continue;
    if (!tail.empty() && name.size() >= tail.size() &&
        name.compare(name.size() - tail.size(), tail.size(), tail) == 0)
      continue;
    std::error_code ignored;
    fs::remove(it->path(), ignored);
  }
}

/// Loads a checkpoint in either layout into the one-process layout: a one-process checkpoint
/// as `load_checkpoint` does, a sharded one's manifest with every shard assembled
/// (`ShardedCheckpoint::assemble`). For resuming a run saved on any number of ranks in one
/// process, without MPI. Throws `FormatError` as `load_checkpoint` and `ShardedCheckpoint`.
inline Checkpoint load_any_checkpoint(const std::string& path) {
  Checkpoint ckpt = load_checkpoint(path);
  if (!ShardedCheckpoint::is_manifest(ckpt)) return ckpt;
  ShardedCheckpoint sharded(path, std::move(ckpt));
  Checkpoint out;
  out.state = sharded.assemble();
  out.metadata = sharded.manifest().metadata;
  return out;
}

}  // namespace mbok::distributed
