#pragma once
/// \file
/// `load_pretrained(path)`: a LLaMA-family model and its tokenizer from either kind of file
/// mbok runs:
/// - a Hugging Face checkpoint directory (config.json, model.safetensors or an index and its
///   shards, tokenizer.json): the float model, every projection dense (the teacher);
/// - an mbok file written by `mbok-convert` from such a directory: the converted projections
///   as `BooleanLinear` layers, the configuration and the tokenizer from its metadata keys
///   "config.json" and "tokenizer.json".
/// Needs nlohmann/json and PCRE2 (the tokenizer).

#include <filesystem>
#include <optional>
#include <string>
#include <utility>

#include "../error.hpp"
#include "../io/mbok_format.hpp"
#include "../tokenizer/tokenizer.hpp"
#include "hf_model.hpp"
#include "model.hpp"

namespace mbok {
namespace llama {

/// A model ready to run, with where it came from.
struct PretrainedModel {
  LlamaModel model;
  std::optional<Tokenizer> tokenizer;  ///< absent when the directory or file has none
  bool converted = false;              ///< true for an mbok file (Boolean projections)
  std::string path;
};

/// Loads `path` (see the file comment); `options` choose how Boolean layers run. Throws
/// `FormatError` naming the file and what is wrong: a path that is neither a directory nor a
/// readable mbok file, a checkpoint that disagrees with its config.json, an unsupported
/// configuration, an unreadable tokenizer.
inline PretrainedModel load_pretrained(const std::string& path, const ModelOptions& options = {}) {
  namespace fs = std::filesystem;
  std::error_code ec;
  PretrainedModel out;
  out.path = path;
  if (fs::is_directory(path, ec)) {
    const LlamaCheckpoint ckpt = open_llama_checkpoint(path);
    out.model = LlamaModel::from_tensors(
        ckpt.config, [&ckpt](const std::string& name) { return ckpt.checkpoint.find(name); },
        options);
    if (const auto tok = ckpt.checkpoint.tokenizer_path())
      out.tokenizer = Tokenizer::from_file(*tok);
    return out;
  }
  detail::require_format(fs::is_regular_file(path, ec), "'", path,
                         "' is neither a Hugging Face checkpoint directory nor an mbok file");
  const MbokModel file = MbokModel::open(path);
  out.model = LlamaModel::from_mbok(file, options);
  out.converted = true;
  const auto& metadata = file.file().metadata();
  if (const auto it = metadata.find("tokenizer.json"); it != metadata.end())
    out.tokenizer = Tokenizer::from_json(it->second, path + " (tokenizer.json)");
  return out;
}

}  // namespace llama
}  // namespace mbok
