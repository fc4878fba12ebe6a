#pragma once
// What mbok-convert does, apart from its command line: pick the matrices to convert, run
// successive SVID on each, choose K per layer (fixed, or under a bit budget), write the mbok
// file and describe the result.
//
// The input is a safetensors file or a Hugging Face LLaMA-family checkpoint directory
// (config.json + model.safetensors or index + shards, checked against the configuration by
// llama::open_llama_checkpoint). For a directory the default selection is the linear layers
// of the decoder blocks, and the output also carries config.json and tokenizer.json in its
// metadata (keys "config.json", "tokenizer.json") so the converted model runs on its own.
//
// With a packed layout (--packed) the layers are written in the inference form: kernels packed
// for the table-lookup products (format version 3), which a decoder on an ISA of that layout
// maps and runs with no repack. An mbok file as input is rewritten in the layout asked for
// (bits or packed), everything else kept.
//
// Memory: matrices are converted one at a time (one float copy of the matrix being
// converted); the kernels of every layer are held until the file is written; the input
// stays mapped, and the pages of a matrix already converted are dropped from the process
// (they are read again from the file only if written out).

#include <common/progress_bar.hpp>
#include <mbok/io/hf_checkpoint.hpp>
#include <mbok/io/mbok_format.hpp>
#include <mbok/io/mbok_linear.hpp>
#include <mbok/kernel_allocation.hpp>
#include <mbok/llama/hf_model.hpp>
#include <mbok/svid.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <vector>

namespace mbok::tools {

// Embeddings and the output head stay in full precision unless asked for: tensors whose
// name has one of these words as a dot- or underscore-separated part.
inline const char* const kDefaultExclude =
    R"((^|[._])(embed|embeddings|embed_tokens|wte|wpe|tok_embeddings|word_embeddings|lm_head|output|head)([._]|$))";

struct ConvertOptions {
  std::string input;
  std::string output;
  std::size_t kernels = 2;                // used when bits is unset
  std::optional<double> bits;             // average kernel bits per converted weight
  std::size_t max_kernels = 4;            // with bits
  std::string include;                    // regex over tensor names; empty: ".*" for a file,
                                          // the blocks' linear layers for a directory
  std::string exclude = kDefaultExclude;  // regex over tensor names
  std::string importance_file;            // JSON {name: weight}
  std::string report_file;                // JSON copy of the table
  std::string packed;                     // "": bits; "native", "interleave4", "lanes16"
  bool progress = true;
};

// The kernels whose packing has the layout `name` ("native": this CPU's).
inline ProductSet packing_kernels(const std::string& name) {
  if (name == "native") return ProductSet();
  LutLayout layout{};
  detail::require(parse_lut_layout(name, layout),
                  "--packed must be native, interleave4 or lanes16, got '", name, "'");
  if (layout == LutLayout::interleave4) return ProductSet(Isa::scalar);  // every ISA but AVX2's
  detail::require(isa_available(Isa::avx2), "--packed lanes16 needs an AVX2 CPU to pack on");
  return ProductSet(Isa::avx2);
}

struct LayerResult {
  std::string tensor;  // source tensor name
  std::string layer;   // layer name in the output
  std::size_t rows = 0, cols = 0;
  std::size_t kernels = 0;
  double relative_error = 0;
  double bits_per_weight = 0;  // kernels + scales
  double importance = 1;
};

struct ConvertResult {
  std::vector<LayerResult> layers;
  std::size_t kept_tensors = 0;
  std::size_t file_bytes = 0;
  std::size_t input_bytes = 0;
  double converted_weights = 0;
  double average_bits = 0;         // kernels + scales, per converted weight
  double average_kernel_bits = 0;  // kernels only
  double objective = 0;            // sum h e f (method.md section 5)
};

inline std::string layer_name_of(const std::string& tensor) {
  const std::string suffix = ".weight";
  if (tensor.size() > suffix.size() &&
      tensor.compare(tensor.size() - suffix.size(), suffix.size(), suffix) == 0)
    return tensor.substr(0, tensor.size() - suffix.size());
  return tensor;
}

inline bool is_float(DType d) {
  return d == DType::f32 || d == DType::f64 || d == DType::f16 || d == DType::bf16;
}

// The input: a mapped safetensors file, or a checked checkpoint directory.
struct ConvertInput {
  std::optional<SafetensorsFile> file;
  std::optional<llama::LlamaCheckpoint> checkpoint;
  std::vector<const TensorView*> tensors;  // file order, or HF's order for a directory
  std::uint64_t bytes = 0;

  static ConvertInput open(const std::string& path) {
    ConvertInput in;
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) {
      in.checkpoint = llama::open_llama_checkpoint(path);
      const HfCheckpoint& c = in.checkpoint->checkpoint;
      std::map<std::string, bool> placed;
      for (const auto& [name, shape] : llama::expected_tensor_shapes(in.checkpoint->config)) {
        in.tensors.push_back(&c.tensor(name));
        placed[name] = true;
      }
      for (const std::string& name : c.tensor_names())
        if (!placed.count(name)) in.tensors.push_back(&c.tensor(name));
      in.bytes = c.total_bytes();
    } else {
      in.file = SafetensorsFile::open(path);
      for (const TensorView& t : in.file->tensors()) in.tensors.push_back(&t);
      in.bytes = in.file->byte_size();
    }
    return in;
  }
  const TensorView* find(const std::string& name) const {
    return checkpoint ? checkpoint->checkpoint.find(name) : file->find(name);
  }
};

inline std::map<std::string, double> read_importance(const std::string& path) {
  std::map<std::string, double> out;
  if (path.empty()) return out;
  std::ifstream in(path);
  detail::require(static_cast<bool>(in), "cannot open importance file '", path, "'");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(
        detail::concat("importance file '", path, "' is not valid JSON (", e.what(), ")"));
  }
  detail::require_format(j.is_object(), "importance file '", path,
                         "' must be a JSON object {name: weight}");
  for (const auto& item : j.items()) {
    detail::require_format(item.value().is_number() && item.value().get<double>() >= 0,
                           "importance file '", path, "': weight of '", item.key(),
                           "' must be a non-negative number");
    out[item.key()] = item.value().get<double>();
  }
  return out;
}

// Rewrites an mbok file with its layers in the layout o.packed asks for (bits when empty):
// every other tensor, the layers' records and the user metadata are kept.
inline ConvertResult relayout(const ConvertOptions& o, const MbokModel& model) {
  ConvertResult result;
  MbokWriter writer;
  std::vector<MultiKernelWeights<float>> bits;
  std::vector<PackedLinear> packed;
  const std::optional<ProductSet> ks =
      o.packed.empty() ? std::nullopt : std::optional<ProductSet>(packing_kernels(o.packed));
  for (const MbokLayerInfo& info : model.layers()) {
    detail::require(info.scale_dtype == DType::f32 || o.packed.empty(), "layer '", info.name,
                    "' has F64 scales; packed layers hold F32");
    if (ks)
      packed.push_back(PackedLinear(model.load_packed(info.name, *ks),
                                    model.load_scales(info.name, true),
                                    model.load_scales(info.name, false)));
    else
      bits.push_back(model.load_weights<float>(info.name));
  }
  for (const std::string& name : model.other_tensors()) {
    writer.add_tensor(model.file().at(name));
    ++result.kept_tensors;
  }
  for (std::size_t i = 0; i < model.layers().size(); ++i) {
    const MbokLayerInfo& info = model.layers()[i];
    MbokLayerOptions lo;
    lo.bias = info.bias;
    lo.source = info.source;
    lo.relative_error = info.relative_error;
    if (ks)
      add_packed_layer(writer, info.name, packed[i], lo);
    else
      writer.add_layer(info.name, bits[i], lo);
    LayerResult lr;
    lr.tensor = info.source;
    lr.layer = info.name;
    lr.rows = info.out_features;
    lr.cols = info.in_features;
    lr.kernels = info.num_kernels;
    lr.relative_error = info.relative_error;
    const double n = static_cast<double>(lr.rows) * static_cast<double>(lr.cols);
    lr.bits_per_weight =
        static_cast<double>(lr.kernels) * (1.0 + 32.0 * static_cast<double>(lr.rows + lr.cols) / n);
    result.converted_weights += n;
    result.average_kernel_bits += static_cast<double>(lr.kernels) * n;
    result.average_bits += lr.bits_per_weight * n;
    result.layers.push_back(lr);
  }
  if (result.converted_weights > 0) {
    result.average_kernel_bits /= result.converted_weights;
    result.average_bits /= result.converted_weights;
  }
  for (const auto& [key, value] : model.file().metadata())
    if (key != "format" && key != "format_version" && key != "bit_layout" && key != "layers")
      writer.set_metadata(key, value);
  result.input_bytes = model.file().byte_size();
  result.file_bytes = writer.file_size();
  writer.write(o.output);
  return result;
}

inline ConvertResult convert(const ConvertOptions& o, std::ostream& progress_out) {
  std::error_code ec;
  if (!std::filesystem::is_directory(o.input, ec)) {  // an mbok file: change its layout only
    SafetensorsFile file = SafetensorsFile::open(o.input);
    const auto format = file.metadata().find("format");
    if (format != file.metadata().end() && format->second == kMbokFormatName)
      return relayout(o, MbokModel(std::move(file)));
  }
  const bool directory = std::filesystem::is_directory(o.input, ec);
  const std::string include_text = !o.include.empty() ? o.include
                                   : directory        ? llama::kBlockLinearPattern
                                                      : ".*";
  std::regex include, exclude;
  try {
    include = std::regex(include_text);
    exclude = std::regex(o.exclude);
  } catch (const std::regex_error& e) {
    throw InvalidArgument(detail::concat("invalid --include/--exclude pattern: ", e.what()));
  }
  detail::require(o.kernels >= 1, "--kernels must be >= 1");
  if (o.bits) {
    detail::require(*o.bits >= 1.0, "--bits must be >= 1 (one kernel per layer), got ", *o.bits);
    detail::require(o.max_kernels >= 1, "--max-kernels must be >= 1");
  }
  const ConvertInput in = ConvertInput::open(o.input);
  std::map<std::string, double> importance = read_importance(o.importance_file);

  std::vector<const TensorView*> selected;
  for (const TensorView* t : in.tensors)
    if (t->shape.size() == 2 && t->numel() > 0 && is_float(t->dtype) &&
        std::regex_search(t->name, include) && !std::regex_search(t->name, exclude))
      selected.push_back(t);
  detail::require(!selected.empty(), "no matrix of '", o.input,
                  "' matches the selection (2-D float tensors, --include '", include_text,
                  "', --exclude '", o.exclude, "')");
  {  // every name in the importance file is a converted matrix (checked before any work)
    std::map<std::string, double> unknown = importance;
    for (const TensorView* t : selected)
      for (const std::string& key : {t->name, layer_name_of(t->name)}) unknown.erase(key);
    for (const auto& left : unknown)
      detail::require(false, "importance file names '", left.first,
                      "', which is not a converted matrix");
  }

  ConvertResult result;
  result.input_bytes = static_cast<std::size_t>(in.bytes);
  std::vector<LayerErrorCurve> curves;
  // One SVID fit at a time: the float copy of a matrix lives only while it is fitted; the
  // fits (kernels + scales) stay until the file is written.
  std::vector<SvidResult<float>> fits;
  fits.reserve(selected.size());
  const std::size_t k_fit = o.bits ? o.max_kernels : o.kernels;
  {
    mbok_examples::ProgressBar bar(progress_out, "svid", selected.size(),
                                   o.progress && mbok_examples::ProgressBar::stderr_is_terminal());
    for (std::size_t i = 0; i < selected.size(); ++i) {
      const TensorView& t = *selected[i];
      if (o.progress) bar.update(i, t.name);
      {
        const Eigen::MatrixXf w = t.to_matrix();
        detail::require_format(w.allFinite(), "tensor '", t.name, "' of '", o.input,
                               "' is not finite");
        detail::require_format(w.squaredNorm() > 0, "tensor '", t.name, "' of '", o.input,
                               "' is all zeros");
        fits.push_back(svid<float>(w, k_fit));
      }
      release_pages(t);
      LayerResult lr;
      lr.tensor = t.name;
      lr.layer = layer_name_of(t.name);
      lr.rows = static_cast<std::size_t>(t.shape[0]);
      lr.cols = static_cast<std::size_t>(t.shape[1]);
      for (const std::string& key : {lr.tensor, lr.layer}) {
        const auto it = importance.find(key);
        if (it != importance.end()) {
          lr.importance = it->second;
          importance.erase(it);
        }
      }
      result.layers.push_back(lr);
      curves.push_back({t.name, lr.rows * lr.cols, fits.back().relative_residual, lr.importance});
    }
    if (o.progress) bar.finish();
  }

  std::vector<std::size_t> ks(selected.size(), o.kernels);
  if (o.bits) ks = allocate_kernels(curves, *o.bits, o.max_kernels).kernels;
  result.objective = allocation_objective(curves, ks);

  // Keep the first K_l kernels of each fit (successive SVID: they are the K_l-kernel fit),
  // moved out of the fit: no copy of any kernel.
  std::vector<MultiKernelWeights<float>> layers;
  layers.reserve(selected.size());
  MbokWriter writer;
  std::map<std::string, bool> converted;
  for (const TensorView* t : selected) converted[t->name] = true;
  double kernel_bits = 0, all_bits = 0;
  for (std::size_t i = 0; i < selected.size(); ++i) {
    LayerResult& lr = result.layers[i];
    MultiKernelWeights<float>& full = fits[i].weights;
    MultiKernelWeights<float> w(lr.rows, lr.cols);
    for (std::size_t k = 0; k < ks[i]; ++k)
      w.add_kernel(std::move(full.kernel(k)), std::move(full.s_out(k)), std::move(full.s_in(k)));
    lr.kernels = ks[i];
    lr.relative_error = fits[i].relative_residual[ks[i] - 1];
    lr.bits_per_weight = w.bits_per_weight();
    const double n = static_cast<double>(lr.rows * lr.cols);
    result.converted_weights += n;
    kernel_bits += static_cast<double>(ks[i]) * n;
    all_bits += lr.bits_per_weight * n;
    layers.push_back(std::move(w));
    fits[i] = SvidResult<float>();  // frees the kernels beyond K_l
  }
  result.average_kernel_bits = kernel_bits / result.converted_weights;
  result.average_bits = all_bits / result.converted_weights;

  for (const TensorView* t : in.tensors)
    if (!converted.count(t->name)) {
      writer.add_tensor(*t);
      ++result.kept_tensors;
    }
  std::vector<PackedLinear> packed;  // the writer holds layers by reference until written
  if (!o.packed.empty()) {
    const ProductSet ks = packing_kernels(o.packed);
    for (const auto& w : layers) packed.emplace_back(w, Eigen::VectorXf(), ks);
  }
  for (std::size_t i = 0; i < selected.size(); ++i) {
    const LayerResult& lr = result.layers[i];
    MbokLayerOptions lo;
    lo.source = lr.tensor;
    lo.relative_error = lr.relative_error;
    const TensorView* bias = in.find(lr.layer + ".bias");
    if (lr.layer != lr.tensor && bias &&
        bias->shape == std::vector<std::int64_t>{static_cast<std::int64_t>(lr.rows)} &&
        is_float(bias->dtype))
      lo.bias = bias->name;
    if (packed.empty())
      writer.add_layer(lr.layer, layers[i], lo);
    else
      add_packed_layer(writer, lr.layer, packed[i], lo);
  }
  writer.set_metadata("converted_by", "mbok-convert");
  writer.set_metadata("source_file", o.input);
  if (in.checkpoint) {
    writer.set_metadata(kHfConfigFile, in.checkpoint->config.to_json().dump());
    if (const auto tokenizer = in.checkpoint->checkpoint.tokenizer_path())
      writer.set_metadata(kHfTokenizerFile, HfCheckpoint::read_text(*tokenizer));
  }
  result.file_bytes = writer.file_size();
  writer.write(o.output);
  return result;
}

inline nlohmann::json report_json(const ConvertOptions& o, const ConvertResult& r) {
  nlohmann::json layers = nlohmann::json::array();
  for (const LayerResult& l : r.layers)
    layers.push_back({{"layer", l.layer},
                      {"tensor", l.tensor},
                      {"shape", {l.rows, l.cols}},
                      {"kernels", l.kernels},
                      {"relative_error", l.relative_error},
                      {"bits_per_weight", l.bits_per_weight},
                      {"importance", l.importance}});
  nlohmann::json j = {{"input", o.input},
                      {"output", o.output},
                      {"mode", o.bits ? "bits" : "kernels"},
                      {"layers", layers},
                      {"totals",
                       {{"converted_layers", r.layers.size()},
                        {"kept_tensors", r.kept_tensors},
                        {"converted_weights", r.converted_weights},
                        {"average_kernel_bits", r.average_kernel_bits},
                        {"average_bits_per_weight", r.average_bits},
                        {"objective", r.objective},
                        {"input_bytes", r.input_bytes},
                        {"file_bytes", r.file_bytes}}}};
  if (o.bits) {
    j["budget_bits"] = *o.bits;
    j["max_kernels"] = o.max_kernels;
  } else {
    j["kernels"] = o.kernels;
  }
  return j;
}

}  // namespace mbok::tools
