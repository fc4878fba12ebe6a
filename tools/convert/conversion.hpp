#pragma once
// What mbok-convert does, apart from its command line: pick the matrices to convert, run
// successive SVID on each, choose K per layer (fixed, or under a bit budget), write the mbok
// file and describe the result.

#include <common/progress_bar.hpp>
#include <mbok/io/mbok_format.hpp>
#include <mbok/kernel_allocation.hpp>
#include <mbok/svid.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
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
  std::string include = ".*";             // regex over tensor names
  std::string exclude = kDefaultExclude;  // regex over tensor names
  std::string importance_file;            // JSON {name: weight}
  std::string report_file;                // JSON copy of the table
  bool progress = true;
};

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

inline ConvertResult convert(const ConvertOptions& o, std::ostream& progress_out) {
  std::regex include, exclude;
  try {
    include = std::regex(o.include);
    exclude = std::regex(o.exclude);
  } catch (const std::regex_error& e) {
    throw InvalidArgument(detail::concat("invalid --include/--exclude pattern: ", e.what()));
  }
  detail::require(o.kernels >= 1, "--kernels must be >= 1");
  if (o.bits) {
    detail::require(*o.bits >= 1.0, "--bits must be >= 1 (one kernel per layer), got ", *o.bits);
    detail::require(o.max_kernels >= 1, "--max-kernels must be >= 1");
  }
  const SafetensorsFile in = SafetensorsFile::open(o.input);
  std::map<std::string, double> importance = read_importance(o.importance_file);

  std::vector<const TensorView*> selected;
  for (const TensorView& t : in.tensors())
    if (t.shape.size() == 2 && t.numel() > 0 && is_float(t.dtype) &&
        std::regex_search(t.name, include) && !std::regex_search(t.name, exclude))
      selected.push_back(&t);
  detail::require(!selected.empty(), "no matrix of '", o.input,
                  "' matches the selection (2-D float tensors, --include '", o.include,
                  "', --exclude '", o.exclude, "')");

  ConvertResult result;
  result.input_bytes = in.byte_size();
  std::vector<LayerErrorCurve> curves;
  std::vector<SvidResult<float>> fits;
  const std::size_t k_fit = o.bits ? o.max_kernels : o.kernels;
  {
    mbok_examples::ProgressBar bar(progress_out, "svid", selected.size(),
                                   o.progress && mbok_examples::ProgressBar::stderr_is_terminal());
    for (std::size_t i = 0; i < selected.size(); ++i) {
      const TensorView& t = *selected[i];
      if (o.progress) bar.update(i, t.name);
      const Eigen::MatrixXf w = t.to_matrix();
      detail::require_format(w.allFinite(), "tensor '", t.name, "' of '", o.input,
                             "' is not finite");
      detail::require_format(w.squaredNorm() > 0, "tensor '", t.name, "' of '", o.input,
                             "' is all zeros");
      fits.push_back(svid<float>(w, k_fit));
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
  for (const auto& left : importance)
    detail::require(false, "importance file names '", left.first,
                    "', which is not a converted matrix");

  std::vector<std::size_t> ks(selected.size(), o.kernels);
  if (o.bits) ks = allocate_kernels(curves, *o.bits, o.max_kernels).kernels;
  result.objective = allocation_objective(curves, ks);

  // Keep the first K_l kernels of each fit (successive SVID: they are the K_l-kernel fit).
  std::vector<MultiKernelWeights<float>> layers;
  layers.reserve(selected.size());
  MbokWriter writer;
  std::map<std::string, bool> converted;
  for (const TensorView* t : selected) converted[t->name] = true;
  double kernel_bits = 0, all_bits = 0;
  for (std::size_t i = 0; i < selected.size(); ++i) {
    LayerResult& lr = result.layers[i];
    const MultiKernelWeights<float>& full = fits[i].weights;
    MultiKernelWeights<float> w(lr.rows, lr.cols);
    for (std::size_t k = 0; k < ks[i]; ++k)
      w.add_kernel(full.kernel(k), full.s_out(k), full.s_in(k));
    lr.kernels = ks[i];
    lr.relative_error = fits[i].relative_residual[ks[i] - 1];
    lr.bits_per_weight = w.bits_per_weight();
    const double n = static_cast<double>(lr.rows * lr.cols);
    result.converted_weights += n;
    kernel_bits += static_cast<double>(ks[i]) * n;
    all_bits += lr.bits_per_weight * n;
    layers.push_back(std::move(w));
  }
  result.average_kernel_bits = kernel_bits / result.converted_weights;
  result.average_bits = all_bits / result.converted_weights;

  for (const TensorView& t : in.tensors())
    if (!converted.count(t.name)) {
      writer.add_tensor(t);
      ++result.kept_tensors;
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
    writer.add_layer(lr.layer, layers[i], lo);
  }
  writer.set_metadata("converted_by", "mbok-convert");
  writer.set_metadata("source_file", o.input);
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
