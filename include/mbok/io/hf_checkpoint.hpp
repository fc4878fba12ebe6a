#pragma once
/// \file
/// `HfCheckpoint`: a Hugging Face model directory read in place. The directory holds
/// `config.json` and the weights in one of two layouts:
///
/// - `model.safetensors`, one file; or
/// - `model.safetensors.index.json` = `{"metadata": {...}, "weight_map": {tensor: shard file}}`
///   and the shards it names (`model-00001-of-00003.safetensors`, ...), in the same directory.
///
/// and often `tokenizer.json`, `tokenizer_config.json`, `generation_config.json`. Every shard
/// is memory-mapped (`SafetensorsFile::open`): tensors are views into the mappings, no copy.
///
/// Opening validates the whole layout before returning, and throws `FormatError` naming the
/// directory and the file or tensor at fault:
/// - no config.json; neither layout, or both (`model.safetensors` next to an index: which one
///   is meant is ambiguous, so mbok refuses rather than guess);
/// - an index that is not JSON, has no `weight_map` object, names a shard by anything but a
///   plain file name in the directory (no '/', no "..");
/// - a shard named in the index that is missing or not a valid safetensors file;
/// - a tensor listed in the index but absent from its shard;
/// - a tensor present in two shards;
/// - a tensor of a shard that the index does not list. Transformers ignores such a tensor;
///   mbok refuses it: a shard that does not match its index is a mixed or half-copied
///   checkpoint, and loading it would silently run weights nobody listed.
///
/// Files in the directory that the index does not name (other formats, stale shards) are
/// ignored. The index's `metadata` (such as `total_size`) is informational and not checked.
/// Needs nlohmann/json.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "../config.hpp"
#include "../error.hpp"
#include "safetensors.hpp"

namespace mbok {

/// File names of a Hugging Face model directory.
inline constexpr const char* kHfConfigFile = "config.json";
inline constexpr const char* kHfSingleWeightsFile = "model.safetensors";
inline constexpr const char* kHfWeightsIndexFile = "model.safetensors.index.json";
inline constexpr const char* kHfTokenizerFile = "tokenizer.json";

/// A validated Hugging Face model directory (see the file comment). Copies share the
/// mappings.
class HfCheckpoint {
 public:
  /// Reads and validates `dir` (see the file comment). Throws `FormatError`.
  static HfCheckpoint open(const std::string& dir) {
    namespace fs = std::filesystem;
    HfCheckpoint c;
    c.dir_ = dir;
    std::error_code ec;
    c.require(fs::is_directory(dir, ec), "not a directory");
    c.require(fs::is_regular_file(c.path(kHfConfigFile), ec), "no ", kHfConfigFile);
    const bool single = fs::exists(c.path(kHfSingleWeightsFile), ec);
    const bool indexed = fs::exists(c.path(kHfWeightsIndexFile), ec);
    c.require(!(single && indexed), "both ", kHfSingleWeightsFile, " and ", kHfWeightsIndexFile,
              " are present; remove the one that is not meant");
    c.require(single || indexed, "no weights: expected ", kHfSingleWeightsFile, " or ",
              kHfWeightsIndexFile);
    if (single) {
      c.shard_names_.push_back(kHfSingleWeightsFile);
      c.shards_.push_back(SafetensorsFile::open(c.path(kHfSingleWeightsFile)));
      for (const TensorView& t : c.shards_[0].tensors()) c.where_.emplace(t.name, 0);
    } else {
      c.read_index();
    }
    return c;
  }

  /// The directory as given to `open`.
  const std::string& dir() const noexcept { return dir_; }
  /// True for the index + shards layout.
  bool sharded() const noexcept { return sharded_; }
  /// Paths of the weight files (one for the single-file layout), in index order of first use.
  std::vector<std::string> shard_paths() const {
    std::vector<std::string> out;
    for (const std::string& s : shard_names_) out.push_back(path(s));
    return out;
  }
  /// The mapped weight files, in the order of `shard_paths()`.
  const std::vector<SafetensorsFile>& shards() const noexcept { return shards_; }

  /// The tensor `name`, or nullptr.
  const TensorView* find(const std::string& name) const {
    const auto it = where_.find(name);
    return it == where_.end() ? nullptr : shards_[it->second].find(name);
  }
  /// The tensor `name`; throws `FormatError` naming it and the directory when absent.
  const TensorView& tensor(const std::string& name) const {
    const TensorView* t = find(name);
    require(t != nullptr, "no tensor '", name, "'");
    return *t;
  }
  bool contains(const std::string& name) const { return where_.count(name) != 0; }
  /// Every tensor name, sorted.
  std::vector<std::string> tensor_names() const {
    std::vector<std::string> out;
    out.reserve(where_.size());
    for (const auto& kv : where_) out.push_back(kv.first);
    return out;
  }
  std::size_t size() const noexcept { return where_.size(); }

  /// `<dir>/config.json`.
  std::string config_path() const { return path(kHfConfigFile); }
  /// The text of config.json. Throws `FormatError` when it cannot be read.
  std::string config_text() const { return read_text(config_path()); }
  /// `<dir>/tokenizer.json` when the directory has one.
  std::optional<std::string> tokenizer_path() const {
    std::error_code ec;
    const std::string p = path(kHfTokenizerFile);
    if (std::filesystem::is_regular_file(p, ec)) return p;
    return std::nullopt;
  }
  /// Bytes of all weight files together.
  std::uint64_t total_bytes() const noexcept {
    std::uint64_t n = 0;
    for (const SafetensorsFile& f : shards_) n += f.byte_size();
    return n;
  }

  /// `<dir>/<file>`.
  std::string path(const std::string& file) const {
    if (dir_.empty() || dir_.back() == '/') return dir_ + file;
    return dir_ + "/" + file;
  }

  /// A whole text file (config.json, tokenizer.json, ...). Throws `FormatError` naming it.
  static std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    detail::require_format(static_cast<bool>(in), "cannot open '", path, "'");
    std::ostringstream text;
    text << in.rdbuf();
    detail::require_format(!in.bad(), "cannot read '", path, "'");
    return text.str();
  }

 private:
  HfCheckpoint() = default;

  template <typename... Parts>
  void require(bool ok, const Parts&... parts) const {
    detail::require_format(ok, "Hugging Face checkpoint '", dir_, "': ", parts...);
  }

  void read_index() {
    sharded_ = true;
    const std::string index_path = path(kHfWeightsIndexFile);
    const std::string text = read_text(index_path);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      require(false, kHfWeightsIndexFile, " is not valid JSON (", e.what(), ")");
    }
    require(j.is_object(), kHfWeightsIndexFile, " must be a JSON object");
    const auto wm = j.find("weight_map");
    require(wm != j.end() && wm->is_object(), kHfWeightsIndexFile, " has no \"weight_map\" object");
    const auto md = j.find("metadata");
    require(md == j.end() || md->is_object() || md->is_null(), kHfWeightsIndexFile,
            ": \"metadata\" must be an object");
    std::map<std::string, std::size_t> shard_index;
    std::map<std::string, std::string> listed;  // tensor -> shard file
    for (const auto& item : wm->items()) {
      require(item.value().is_string(), kHfWeightsIndexFile, ": the shard of tensor '", item.key(),
              "' must be a file name");
      const std::string shard = item.value().get<std::string>();
      require(!shard.empty() && shard != "." && shard != ".." &&
                  shard.find('/') == std::string::npos && shard.find('\\') == std::string::npos,
              kHfWeightsIndexFile, ": tensor '", item.key(), "' names shard '", shard,
              "', which is not a plain file name in the directory");
      listed.emplace(item.key(), shard);
      if (shard_index.emplace(shard, shard_names_.size()).second) shard_names_.push_back(shard);
    }
    require(!listed.empty(), kHfWeightsIndexFile, ": \"weight_map\" is empty");
    for (const std::string& shard : shard_names_) {
      std::error_code ec;
      if (!std::filesystem::is_regular_file(path(shard), ec)) {
        std::string example;
        for (const auto& kv : listed)
          if (kv.second == shard) {
            example = kv.first;
            break;
          }
        require(false, "shard '", shard, "' named in ", kHfWeightsIndexFile, " (for tensor '",
                example, "') is missing");
      }
      shards_.push_back(SafetensorsFile::open(path(shard)));
    }
    // No tensor in two shards; every shard tensor listed, under its own shard.
    for (std::size_t s = 0; s < shards_.size(); ++s)
      for (const TensorView& t : shards_[s].tensors()) {
        const auto [it, fresh] = where_.emplace(t.name, s);
        require(fresh, "tensor '", t.name, "' is present in two shards, '",
                shard_names_[it->second], "' and '", shard_names_[s], "'");
      }
    for (const auto& [name, s] : where_) {
      const auto l = listed.find(name);
      require(l != listed.end(), "tensor '", name, "' of shard '", shard_names_[s],
              "' is not listed in ", kHfWeightsIndexFile,
              " (a shard that does not match its index)");
      require(l->second == shard_names_[s], "tensor '", name, "' is listed under shard '",
              l->second, "' but found in shard '", shard_names_[s], "'");
    }
    for (const auto& kv : listed)
      require(where_.count(kv.first) != 0, "tensor '", kv.first, "' is listed in ",
              kHfWeightsIndexFile, " under shard '", kv.second, "' but absent from it");
  }

  std::string dir_;
  bool sharded_ = false;
  std::vector<std::string> shard_names_;
  std::vector<SafetensorsFile> shards_;
  std::map<std::string, std::size_t> where_;  // tensor -> index into shards_
};

}  // namespace mbok
