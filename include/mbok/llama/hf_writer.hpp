#pragma once
/// \file
/// Writes a LLaMA-family model as a Hugging Face checkpoint directory (what
/// `HfCheckpoint::open` / `open_llama_checkpoint` read, and what transformers loads):
/// `config.json` (`LlamaConfig::to_json()`), the weights as `model.safetensors` or, above a
/// shard size, as HF's shards `model-00001-of-0000N.safetensors` with
/// `model.safetensors.index.json`, and `tokenizer.json` when given.
///
/// Tensors are given as `HfTensor`s: a name, a shape and a function that produces the
/// elements in row-major order, a range at a time. The writer converts them chunk by chunk
/// into the file's dtype (F32, F16 or BF16; float -> 16-bit rounds to nearest, ties to even,
/// as PyTorch does) and streams them to disk, so a checkpoint of any size is written in a
/// few MB of memory: `random_llama_tensors` makes a 7B-shaped random checkpoint that is never
/// in memory at all. Needs nlohmann/json.
///
/// Every file is written atomically (a temporary file renamed over the target; see
/// detail/io/atomic_file.hpp), in the order: weight files, the index, tokenizer.json,
/// config.json. Nothing is written before all tensors are checked against
/// `expected_tensor_shapes(config)`. Afterwards the other layout's files of an earlier
/// checkpoint in the same directory are removed (`model.safetensors` when writing shards;
/// the index and HF-named shards not written now when writing one file), so the directory
/// always opens as the checkpoint just written.

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "../error.hpp"
#include "../half.hpp"
#include "../io/hf_checkpoint.hpp"
#include "../io/safetensors.hpp"
#include "../parallel.hpp"
#include "../state_dict.hpp"
#include "config.hpp"
#include "tensor_names.hpp"

namespace mbok {
namespace llama {

/// One tensor to write. `fill(first, count, out)` stores elements [first, first + count) of
/// the row-major tensor as floats at `out`; it is called for consecutive ranges, possibly from
/// several threads at once for disjoint ranges.
struct HfTensor {
  std::string name;
  std::vector<std::int64_t> shape;
  std::function<void(std::size_t first, std::size_t count, float* out)> fill;

  std::size_t numel() const noexcept {
    std::size_t n = 1;
    for (auto d : shape) n *= static_cast<std::size_t>(d);
    return n;
  }
};

/// A tensor over row-major floats the caller keeps alive until written.
inline HfTensor hf_tensor_view(std::string name, std::vector<std::int64_t> shape,
                               const float* data) {
  HfTensor t;
  t.name = std::move(name);
  t.shape = std::move(shape);
  t.fill = [data](std::size_t first, std::size_t count, float* out) {
    if (count > 0) std::memcpy(out, data + first, count * sizeof(float));
  };
  return t;
}

/// The float tensors of `dict` (F32, F64, F16, BF16) by reference: `dict` must outlive the
/// write. Throws `InvalidArgument` for a tensor of another dtype.
inline std::vector<HfTensor> hf_tensors_from(const StateDict& dict) {
  std::vector<HfTensor> out;
  for (const auto& [name, tensor] : dict) {
    const Tensor* t = &tensor;
    detail::require(t->dtype == DType::f32 || t->dtype == DType::f64 || t->dtype == DType::f16 ||
                        t->dtype == DType::bf16,
                    "write_hf_checkpoint: tensor '", name, "' has dtype ", dtype_name(t->dtype),
                    ", expected a float dtype");
    HfTensor h;
    h.name = name;
    h.shape = t->shape;
    h.fill = [t](std::size_t first, std::size_t count, float* out) {
      const std::uint8_t* p = t->bytes.data() + first * dtype_size(t->dtype);
      for (std::size_t i = 0; i < count; ++i) {
        switch (t->dtype) {
          case DType::f32:
            std::memcpy(&out[i], p + 4 * i, 4);
            break;
          case DType::f64: {
            double d;
            std::memcpy(&d, p + 8 * i, 8);
            out[i] = static_cast<float>(d);
            break;
          }
          default: {
            std::uint16_t b;
            std::memcpy(&b, p + 2 * i, 2);
            out[i] = t->dtype == DType::f16 ? f16_to_float(b) : bf16_to_float(b);
          }
        }
      }
    };
    out.push_back(std::move(h));
  }
  return out;
}

namespace detail_hf {

inline std::uint64_t mix64(std::uint64_t x) noexcept {  // splitmix64's finalizer
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

inline std::uint64_t hash_name(const std::string& s) noexcept {  // FNV-1a
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// About N(0, 1) from element `i` of stream `key`: the sum of four 16-bit uniforms (mean 2,
// variance 1/3) centred and scaled. A pure function of (key, i), so any range of a tensor is
// generated on its own, from any thread, and the same seed gives the same checkpoint.
inline float noise(std::uint64_t key, std::uint64_t i) noexcept {
  const std::uint64_t r = mix64(key ^ mix64(i));
  const float s =
      static_cast<float>((r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) + (r >> 48)) +
      2.0f;  // + 4 * 0.5: the centres of the 65536 bins
  return (s * (1.0f / 65536.0f) - 2.0f) * 1.7320508f;
}

}  // namespace detail_hf

/// A random checkpoint of `config`'s shapes (`expected_tensor_shapes`), generated on demand
/// (nothing is held in memory): weights and biases about N(0, std^2) (biases std / 10), norm
/// weights 1 + N(0, 0.02^2). The values are a function of `seed` and the tensor's name.
inline std::vector<HfTensor> random_llama_tensors(const LlamaConfig& config, std::uint64_t seed,
                                                  float std = 0.02f) {
  config.validate();
  detail::require(std::isfinite(std) && std >= 0, "random_llama_tensors: std must be >= 0, got ",
                  std);
  std::vector<HfTensor> out;
  for (auto& [name, shape] : expected_tensor_shapes(config)) {
    HfTensor t;
    t.name = name;
    t.shape = shape;
    const std::uint64_t key = detail_hf::mix64(seed) ^ detail_hf::hash_name(name);
    const bool norm = name.find("norm.weight") != std::string::npos;
    const bool bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    const float scale = norm ? 0.02f : bias ? std / 10 : std;
    const float offset = norm ? 1.0f : 0.0f;
    t.fill = [key, scale, offset](std::size_t first, std::size_t count, float* o) {
      for (std::size_t i = 0; i < count; ++i)
        o[i] = offset + scale * detail_hf::noise(key, first + i);
    };
    out.push_back(std::move(t));
  }
  return out;
}

/// Progress of a write: bytes of tensor data written so far, of the total, and the tensor
/// being written.
using HfWriteProgress = std::function<void(std::uint64_t done_bytes, std::uint64_t total_bytes,
                                           const std::string& tensor)>;

/// HF's name of shard `i` (0-based) of `n`: "model-00001-of-00003.safetensors".
inline std::string hf_shard_name(std::size_t i, std::size_t n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", i + 1, n);
  return buf;
}

/// What `write_hf_checkpoint` wrote.
struct HfWriteResult {
  std::vector<std::string> weight_files;  ///< file names in the directory, in order
  std::uint64_t tensor_bytes = 0;         ///< the index's "total_size"
};

/// Writes `tensors` (they must be exactly `expected_tensor_shapes(config)`, in any order) as
/// a checkpoint directory `dir` (created if needed) in `dtype` (F32, F16 or BF16). With
/// `max_shard_bytes` > 0, tensors go in HF's order into shards of at most that many bytes of
/// tensor data (a larger tensor gets a shard of its own), named and indexed as HF does; with
/// 0, one `model.safetensors`. `tokenizer_json`, when given, is written verbatim. Throws
/// `InvalidArgument` for a config that does not validate, a bad dtype, or a missing, extra or
/// misshapen tensor (before anything is written), and `FormatError` on I/O errors.
inline HfWriteResult write_hf_checkpoint(
    const std::string& dir, const LlamaConfig& config, const std::vector<HfTensor>& tensors,
    DType dtype = DType::bf16, std::uint64_t max_shard_bytes = 0,
    const std::optional<std::string>& tokenizer_json = std::nullopt,
    const HfWriteProgress& progress = {}, bool sync = true) {
  namespace fs = std::filesystem;
  config.validate();
  detail::require(dtype == DType::f32 || dtype == DType::f16 || dtype == DType::bf16,
                  "write_hf_checkpoint: dtype must be F32, F16 or BF16, got ", dtype_name(dtype));
  // The tensors, in HF's order, checked against the configuration.
  std::map<std::string, const HfTensor*> by_name;
  for (const HfTensor& t : tensors) {
    detail::require(by_name.emplace(t.name, &t).second, "write_hf_checkpoint: tensor '", t.name,
                    "' given twice");
    detail::require(static_cast<bool>(t.fill), "write_hf_checkpoint: tensor '", t.name,
                    "' has no data");
  }
  std::vector<const HfTensor*> order;
  for (const auto& [name, shape] : expected_tensor_shapes(config)) {
    const auto it = by_name.find(name);
    detail::require(it != by_name.end(), "write_hf_checkpoint: tensor '", name, "' (shape ",
                    detail::shape_text(shape), ") is missing; the configuration implies it");
    detail::require(it->second->shape == shape, "write_hf_checkpoint: tensor '", name,
                    "' has shape ", detail::shape_text(it->second->shape), ", expected ",
                    detail::shape_text(shape));
    order.push_back(it->second);
    by_name.erase(it);
  }
  detail::require(by_name.empty(), "write_hf_checkpoint: tensor '",
                  by_name.empty() ? std::string() : by_name.begin()->first,
                  "' is not part of the model the configuration describes");

  // Shards: consecutive tensors up to max_shard_bytes of data each.
  const std::size_t esize = dtype_size(dtype);
  std::vector<std::vector<const HfTensor*>> shards(1);
  std::uint64_t in_shard = 0, total = 0;
  for (const HfTensor* t : order) {
    const std::uint64_t bytes = t->numel() * esize;
    if (max_shard_bytes > 0 && !shards.back().empty() && in_shard + bytes > max_shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(t);
    in_shard += bytes;
    total += bytes;
  }
  const bool sharded = max_shard_bytes > 0;

  std::error_code ec;
  fs::create_directories(dir, ec);
  detail::require_format(fs::is_directory(dir), "write_hf_checkpoint: cannot create directory '",
                         dir, "'", ec ? ": " + ec.message() : std::string());
  auto path = [&](const std::string& file) {
    return dir.empty() || dir.back() == '/' ? dir + file : dir + "/" + file;
  };

  HfWriteResult result;
  result.tensor_bytes = total;
  std::uint64_t done = 0;
  constexpr std::size_t kChunk = std::size_t{1} << 20;  // elements converted at a time
  std::vector<float> buf(kChunk);
  std::vector<std::uint8_t> bytes(kChunk * esize);
  nlohmann::json weight_map = nlohmann::json::object();
  for (std::size_t s = 0; s < shards.size(); ++s) {
    const std::string file = sharded ? hf_shard_name(s, shards.size()) : kHfSingleWeightsFile;
    // Header: tensors in file order, data offsets from the start of the data section.
    nlohmann::json header = nlohmann::json::object();
    header["__metadata__"] = {{"format", "pt"}};
    std::uint64_t offset = 0;
    for (const HfTensor* t : shards[s]) {
      const std::uint64_t n = t->numel() * esize;
      header[t->name] = {{"dtype", dtype_name(dtype)},
                         {"shape", t->shape},
                         {"data_offsets", {offset, offset + n}}};
      offset += n;
      weight_map[t->name] = file;
    }
    std::string text = header.dump();
    text.append(
        (kSafetensorsAlignment - (8 + text.size()) % kSafetensorsAlignment) % kSafetensorsAlignment,
        ' ');
    detail::write_file_atomically(
        path(file),
        [&](detail::FileSink& sink) {
          std::uint8_t size_field[8];
          for (int i = 0; i < 8; ++i)
            size_field[i] = static_cast<std::uint8_t>(std::uint64_t{text.size()} >> (8 * i));
          sink.write(size_field, 8);
          sink.write(text.data(), text.size());
          for (const HfTensor* t : shards[s]) {
            const std::size_t numel = t->numel();
            for (std::size_t first = 0; first < numel; first += kChunk) {
              const std::size_t count = std::min(kChunk, numel - first);
              parallel_for(0, count, 1 << 16, [&](std::size_t b, std::size_t e) {
                t->fill(first + b, e - b, buf.data() + b);
                for (std::size_t i = b; i < e; ++i) {
                  if (dtype == DType::f32) {
                    std::memcpy(&bytes[4 * i], &buf[i], 4);
                  } else {
                    const std::uint16_t h =
                        dtype == DType::f16 ? float_to_f16(buf[i]) : float_to_bf16(buf[i]);
                    bytes[2 * i] = static_cast<std::uint8_t>(h & 0xff);
                    bytes[2 * i + 1] = static_cast<std::uint8_t>(h >> 8);
                  }
                }
              });
              sink.write(bytes.data(), count * esize);
              done += count * esize;
              if (progress) progress(done, total, t->name);
            }
          }
        },
        sync);
    result.weight_files.push_back(file);
  }

  // The index (sharded) and the removal of the other layout's files.
  if (sharded) {
    const nlohmann::json index = {{"metadata", {{"total_size", total}}},
                                  {"weight_map", weight_map}};
    const std::string text = index.dump(2) + "\n";
    detail::write_file_atomically(
        path(kHfWeightsIndexFile),
        [&](detail::FileSink& sink) { sink.write(text.data(), text.size()); }, sync);
    fs::remove(path(kHfSingleWeightsFile), ec);
  } else {
    fs::remove(path(kHfWeightsIndexFile), ec);
  }
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const bool hf_shard = name.size() == 32 && name.compare(0, 6, "model-") == 0 &&
                          name.compare(11, 4, "-of-") == 0 &&
                          name.compare(20, 12, ".safetensors") == 0;
    if (hf_shard && std::find(result.weight_files.begin(), result.weight_files.end(), name) ==
                        result.weight_files.end())
      fs::remove(entry.path(), ec);
  }

  auto write_text = [&](const std::string& file, const std::string& text) {
    detail::write_file_atomically(
        path(file), [&](detail::FileSink& sink) { sink.write(text.data(), text.size()); }, sync);
  };
  if (tokenizer_json) write_text(kHfTokenizerFile, *tokenizer_json);
  write_text(kHfConfigFile, config.to_json().dump(2) + "\n");
  return result;
}

/// The same from a `StateDict` of float tensors (any float dtype; converted to `dtype`).
inline HfWriteResult write_hf_checkpoint(
    const std::string& dir, const LlamaConfig& config, const StateDict& tensors,
    DType dtype = DType::bf16, std::uint64_t max_shard_bytes = 0,
    const std::optional<std::string>& tokenizer_json = std::nullopt,
    const HfWriteProgress& progress = {}, bool sync = true) {
  return write_hf_checkpoint(dir, config, hf_tensors_from(tensors), dtype, max_shard_bytes,
                             tokenizer_json, progress, sync);
}

}  // namespace llama
}  // namespace mbok
