#pragma once
/// \file
/// The mbok model format: a safetensors file (any safetensors tool can list it) holding, for
/// each converted layer `L` with K kernels of shape m x n,
///
///     L.kernels.<k>.bits    U8  [m, padded_row_words(n) * 8]   kernel k's packed bits, one
///                                                              padded row per output (the
///                                                              bit-layout contract)
///     L.kernels.<k>.s_out   F32 or F64 [m]
///     L.kernels.<k>.s_in    F32 or F64 [n]
///
/// the names `BooleanLinear::export_state` gives a layer's tensors under the prefix "L."
/// (`kernel_tensor_name`, kernel_tensors.hpp), so one naming holds in files, state dicts and
/// checkpoints, and one loader reads their bytes. Files of format version 1, which
/// named them `L.kernel.<k>`, `L.s_out.<k>` and `L.s_in.<k>`, are still read.
/// for k = 0..K-1, plus any other tensors kept as they are (biases, norms, embeddings, the
/// output head), in their own dtypes. The data section starts 64-byte aligned and kernel
/// tensors (whole 64-byte blocks) come first, so a mapped file's kernels meet the contract
/// and load as `BitMatrix::borrow` views with no copy.
///
/// A layer may instead hold its kernels packed for the table-lookup products (format version
/// 3; `PackedLinear`, the inference form):
///
///     L.kernels.<k>.packed  U8  [ceil(m / 16), 2 * ceil(n / 32) * 32]   one row per tile of
///                                                                       16 output rows, in
///                                                                       the record's layout
///
/// with F32 scales as above. A decoder on an ISA of that layout maps these bytes and runs
/// on them with no repack and no copy (`MbokModel::load_packed`); other ISAs repack once;
/// training unpacks them to bits exactly (`load_weights`).
///
/// `__metadata__` holds: "format" = "mbok", "format_version" = "2" (or "3" when a layer is
/// packed), "bit_layout" = `kMbokBitLayout`, and "layers" = a JSON object {L: {"shape": [m,
/// n], "kernels": K, "scale_dtype": "F32", "bias": tensor name or "", "source": original
/// tensor name, "relative_error": number or null, "kernel_layout": "bits" (the default when
/// absent), "interleave4" or "lanes16"}}. Other metadata keys are free for the user.

#include <Eigen/Core>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../bit_matrix.hpp"
#include "../detail/base/checked.hpp"
#include "../error.hpp"
#include "../forward_int8.hpp"
#include "../kernel_tensors.hpp"
#include "../multi_kernel_weights.hpp"
#include "../products.hpp"
#include "safetensors.hpp"

namespace mbok {

inline constexpr const char* kMbokFormatName = "mbok";
inline constexpr int kMbokFormatVersion = 3;
/// The version of files whose layers all hold bits (readers of version 2 read them).
inline constexpr int kMbokBitsFormatVersion = 2;
/// The oldest format version the reader accepts.
inline constexpr int kMbokOldestFormatVersion = 1;
/// The bit layout of kernel tensors, recorded in every file and checked on load.
inline constexpr const char* kMbokBitLayout =
    "bit 1 = -1, bit 0 = +1; uint64 little-endian words, least significant bit = lowest column; "
    "rows padded to 512 bits with zero bits";

/// What an mbok file says about one converted layer.
struct MbokLayerInfo {
  std::string name;                ///< tensor-name prefix of the layer
  std::size_t out_features = 0;    ///< m
  std::size_t in_features = 0;     ///< n
  std::size_t num_kernels = 0;     ///< K
  DType scale_dtype = DType::f32;  ///< F32 or F64
  std::string bias;                ///< name of the bias tensor ([m], float dtype) or ""
  std::string source;              ///< name of the tensor it was converted from, or ""
  double relative_error =
      std::numeric_limits<double>::quiet_NaN();      ///< at conversion; NaN if unknown
  bool packed = false;                               ///< kernels stored packed (`mbok_packed_name`)
  LutLayout packed_layout = LutLayout::interleave4;  ///< their layout, when packed
};

/// Optional facts recorded with a layer.
struct MbokLayerOptions {
  std::string bias;    ///< a tensor added to the same file (by `add_tensor`), [m]
  std::string source;  ///< the original tensor's name
  double relative_error = std::numeric_limits<double>::quiet_NaN();
};

/// Names of layer `name`'s tensors in files of format `version` (the current one by
/// default): `kernel_tensor_name(layer + ".", k, part)` (kernel_tensors.hpp) from version 2 on;
/// version 1 named them `L.kernel.<k>`, `L.s_out.<k>` and `L.s_in.<k>`.
inline std::string mbok_tensor_name(const std::string& layer, std::size_t k, KernelTensor part,
                                    int version = kMbokFormatVersion) {
  if (version != 1) return kernel_tensor_name(layer + ".", k, part);
  const char* old = part == KernelTensor::bits    ? ".kernel."
                    : part == KernelTensor::s_out ? ".s_out."
                                                  : ".s_in.";
  return layer + old + std::to_string(k);
}
inline std::string mbok_kernel_name(const std::string& layer, std::size_t k,
                                    int version = kMbokFormatVersion) {
  return mbok_tensor_name(layer, k, KernelTensor::bits, version);
}
inline std::string mbok_s_out_name(const std::string& layer, std::size_t k,
                                   int version = kMbokFormatVersion) {
  return mbok_tensor_name(layer, k, KernelTensor::s_out, version);
}
inline std::string mbok_s_in_name(const std::string& layer, std::size_t k,
                                  int version = kMbokFormatVersion) {
  return mbok_tensor_name(layer, k, KernelTensor::s_in, version);
}
/// Name of a packed layer's kernel k (format version 3).
inline std::string mbok_packed_name(const std::string& layer, std::size_t k) {
  return kernel_tensor_name(layer + ".", k, KernelTensor::packed);
}

namespace detail {
// The bytes of one padded row of n bits (padded_row_words(n) * 8) and of a kernel of m such
// rows, or InvalidArgument when a product (or the padding of n) overflows std::size_t. A
// kernel's byte count bounds every row offset i * row_bytes (i < m) computed from it.
inline std::size_t mbok_row_bytes(std::size_t n) {
  std::size_t padded = 0;
  if (!checked_add(n, kRowAlignBits - 1, padded))
    throw InvalidArgument(concat("mbok: a row of ", n, " bits overflows the address space"));
  return mul_or_throw({padded / kRowAlignBits, kRowAlignWords, 8}, "a row of ", n, " bits");
}
inline std::size_t mbok_kernel_bytes(std::size_t m, std::size_t n) {
  return mul_or_throw({m, mbok_row_bytes(n)}, "a kernel of ", m, " x ", n, " bits");
}
}  // namespace detail

/// Builds an mbok file. Layers and tensors are added by reference: they must stay alive and
/// unchanged until `write` / `to_bytes` returns.
class MbokWriter {
 public:
  /// Adds layer `name` (the kernels, their scales). Throws `InvalidArgument` for K = 0, a
  /// name used twice, or a bias that is not in the file by the time of writing.
  template <typename Scalar>
  void add_layer(const std::string& name, const MultiKernelWeights<Scalar>& w,
                 const MbokLayerOptions& options = {}) {
    static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double>,
                  "scales are float or double");
    detail::require(!name.empty(), "mbok writer: empty layer name");
    detail::require(w.num_kernels() > 0, "mbok writer: layer '", name, "' has no kernels");
    detail::require(layers_.count(name) == 0, "mbok writer: layer '", name, "' added twice");
    const std::size_t m = w.out_features(), n = w.in_features();
    const std::size_t row_words = padded_row_words(n);
    const std::size_t row_bytes = detail::mbok_row_bytes(n);
    const std::size_t kernel_bytes = detail::mbok_kernel_bytes(m, n);  // bounds i * row_bytes
    for (std::size_t k = 0; k < w.num_kernels(); ++k) {
      const BitMatrix& b = w.kernel(k);
      const std::vector<std::int64_t> kshape = {static_cast<std::int64_t>(m),
                                                static_cast<std::int64_t>(row_bytes)};
      if (b.stride_words() == row_words) {
        writer_.add(mbok_kernel_name(name, k), DType::u8, kshape, b.data(), kernel_bytes);
      } else {  // a strided view: store it with the natural stride
        Tensor t;
        t.dtype = DType::u8;
        t.shape = kshape;
        t.bytes.resize(kernel_bytes);
        for (std::size_t i = 0; i < m; ++i)
          std::memcpy(t.bytes.data() + i * row_bytes, b.view().row(i), row_bytes);
        writer_.add(mbok_kernel_name(name, k), std::move(t));
      }
      writer_.add(mbok_s_out_name(name, k), dtype_of<Scalar>(), {static_cast<std::int64_t>(m)},
                  w.s_out(k).data(), m * sizeof(Scalar));
      writer_.add(mbok_s_in_name(name, k), dtype_of<Scalar>(), {static_cast<std::int64_t>(n)},
                  w.s_in(k).data(), n * sizeof(Scalar));
    }
    layers_[name] = record(m, n, w.num_kernels(), dtype_of<Scalar>(), options, "bits");
  }

  /// Adds layer `name` with its kernels packed (`pw`, in its ISA's layout) and the F32 scales
  /// of `scales` (anything with s_out(k), s_in(k): `PackedLinear`). The file becomes format
  /// version 3. Throws `InvalidArgument` as `add_layer`, and for scales of another count.
  template <typename Scales>
  void add_packed_layer(const std::string& name, const Int8PreparedWeights& pw,
                        const Scales& scales, const MbokLayerOptions& options = {}) {
    detail::require(!name.empty(), "mbok writer: empty layer name");
    detail::require(pw.num_kernels() > 0, "mbok writer: layer '", name, "' has no kernels");
    detail::require(layers_.count(name) == 0, "mbok writer: layer '", name, "' added twice");
    const std::size_t m = pw.out_features(), n = pw.in_features();
    for (std::size_t k = 0; k < pw.num_kernels(); ++k) {
      const Int8LutWeights& kw = pw.kernel(k);
      detail::require(static_cast<std::size_t>(scales.s_out(k).size()) == m &&
                          static_cast<std::size_t>(scales.s_in(k).size()) == n,
                      "mbok writer: layer '", name, "' kernel ", k, " scales do not match ", m,
                      " x ", n);
      writer_.add(mbok_packed_name(name, k), DType::u8,
                  {static_cast<std::int64_t>(detail::lut_tiles(m)),
                   static_cast<std::int64_t>(kw.view().tile_bytes())},
                  kw.view().data, kw.bytes());
      writer_.add(mbok_s_out_name(name, k), DType::f32, {static_cast<std::int64_t>(m)},
                  scales.s_out(k).data(), m * sizeof(float));
      writer_.add(mbok_s_in_name(name, k), DType::f32, {static_cast<std::int64_t>(n)},
                  scales.s_in(k).data(), n * sizeof(float));
    }
    layers_[name] = record(m, n, pw.num_kernels(), DType::f32, options,
                           lut_layout_name(pw.products().lut_layout()));
    packed_ = true;
  }
  template <typename Scalar>
  void add_layer(const std::string&, MultiKernelWeights<Scalar>&&,
                 const MbokLayerOptions& = {}) = delete;
  template <typename Scales>
  void add_packed_layer(const std::string&, Int8PreparedWeights&&, const Scales&,
                        const MbokLayerOptions& = {}) = delete;

  /// Adds a tensor kept as it is, by reference (its file must stay open until written).
  void add_tensor(const TensorView& view) { writer_.add(view); }
  /// Adds a tensor kept as it is (copied).
  void add_tensor(std::string name, Tensor tensor) {
    writer_.add(std::move(name), std::move(tensor));
  }

  /// Free metadata; the keys "format", "format_version", "bit_layout" and "layers" are the
  /// format's own (`InvalidArgument`).
  void set_metadata(const std::string& key, const std::string& value) {
    detail::require(
        key != "format" && key != "format_version" && key != "bit_layout" && key != "layers",
        "mbok writer: metadata key '", key, "' is reserved by the format");
    user_metadata_[key] = value;
  }

  /// Writes the file atomically (see `SafetensorsWriter::write`).
  void write(const std::string& path, bool sync = true) { finish().write(path, sync); }
  /// The file as bytes.
  std::vector<std::uint8_t> to_bytes() { return finish().to_bytes(); }
  /// Bytes of the file.
  std::size_t file_size() { return finish().file_size(); }

 private:
  SafetensorsWriter& finish() {
    for (const auto& item : layers_.items()) {
      const std::string bias = item.value()["bias"].get<std::string>();
      detail::require(bias.empty() || names_bias_ok(bias), "mbok writer: layer '", item.key(),
                      "' names bias '", bias, "', which was not added");
    }
    writer_.set_metadata(user_metadata_);
    writer_.set_metadata("format", kMbokFormatName);
    writer_.set_metadata("format_version",
                         std::to_string(packed_ ? kMbokFormatVersion : kMbokBitsFormatVersion));
    writer_.set_metadata("bit_layout", kMbokBitLayout);
    writer_.set_metadata("layers", layers_.dump());
    return writer_;
  }
  bool names_bias_ok(const std::string& bias) const { return writer_.has(bias); }
  static nlohmann::json record(std::size_t m, std::size_t n, std::size_t k_count, DType scales,
                               const MbokLayerOptions& options, const char* layout) {
    nlohmann::json entry = {
        {"shape", {m, n}},      {"kernels", k_count},       {"scale_dtype", dtype_name(scales)},
        {"bias", options.bias}, {"source", options.source}, {"kernel_layout", layout}};
    entry["relative_error"] = std::isfinite(options.relative_error)
                                  ? nlohmann::json(options.relative_error)
                                  : nlohmann::json(nullptr);
    return entry;
  }

  SafetensorsWriter writer_;
  bool packed_ = false;
  nlohmann::json layers_ = nlohmann::json::object();
  Metadata user_metadata_;
};

/// A validated mbok file, mapped (or in memory), whose layers load with no copy of the bits.
class MbokModel {
 public:
  /// Maps and validates `path`: the safetensors structure, the format name, version and bit
  /// layout, every layer's record and tensors (dtypes, shapes, zero padding bits, finite
  /// scales, bias). Throws `FormatError` naming the file, the layer and what is wrong.
  static MbokModel open(const std::string& path) { return MbokModel(SafetensorsFile::open(path)); }
  /// The same over bytes in memory (see `SafetensorsFile::from_memory`).
  static MbokModel from_memory(const void* data, std::size_t size,
                               std::shared_ptr<const void> owner = nullptr,
                               std::string source = "<memory>") {
    return MbokModel(SafetensorsFile::from_memory(data, size, std::move(owner), std::move(source)));
  }
  /// Validates an already opened file.
  explicit MbokModel(SafetensorsFile file) : file_(std::move(file)) { validate(); }

  /// The underlying safetensors file (every tensor, including those kept as they were).
  const SafetensorsFile& file() const noexcept { return file_; }
  /// The file's format version (1, 2 or 3: its tensor names, `mbok_kernel_name(layer, k, v)`;
  /// 3 when a layer is packed).
  int format_version() const noexcept { return version_; }
  /// Metadata other than the format's own keys is in `file().metadata()`.
  const std::vector<MbokLayerInfo>& layers() const noexcept { return layers_; }
  bool has_layer(const std::string& name) const { return index_.count(name) != 0; }
  /// The layer `name`; `FormatError` when absent.
  const MbokLayerInfo& layer(const std::string& name) const {
    const auto it = index_.find(name);
    detail::require_format(it != index_.end(), "mbok file '", file_.source(), "': no layer '", name,
                           "'");
    return layers_[it->second];
  }

  /// Layer `name`'s kernels packed for the table-lookup products of `kernels`: a packed layer
  /// in that ISA's layout borrows the mapped bytes (no repack, no copy; the kernels keep the
  /// map alive), another layout is repacked once, and a layer of bits is packed from them.
  /// Its F32 scales are in `load_scales`.
  Int8PreparedWeights load_packed(const std::string& name,
                                  const ProductSet& products = ProductSet()) const {
    // Bytes copied into the packed form leave the process (`release_pages`): the packed form
    // is then the one copy in memory even while the mapping lives on for other tensors.
    const MbokLayerInfo& info = layer(name);
    if (!info.packed) {
      Int8PreparedWeights pw(load_weights<float>(name), products);
      for (std::size_t k = 0; k < info.num_kernels; ++k)
        release_pages(file_.at(mbok_kernel_name(name, k, version_)));
      return pw;
    }
    std::vector<Int8LutWeights> packed;
    for (std::size_t k = 0; k < info.num_kernels; ++k) {
      const detail::LutWeightsView v = packed_view(info, k);
      packed.push_back(products.adopt_lut(
          v.data, v.layout, v.rows, v.cols, file_.owner(),
          "mbok file '" + file_.source() + "': tensor '" + mbok_packed_name(name, k) + "'"));
      if (!packed.back().is_borrowed()) release_pages(file_.at(mbok_packed_name(name, k)));
    }
    return Int8PreparedWeights(std::move(packed), products);
  }
  /// Layer `name`'s scales as floats: s_out (`out` = true) or s_in of every kernel.
  std::vector<Eigen::VectorXf> load_scales(const std::string& name, bool out) const {
    const MbokLayerInfo& info = layer(name);
    std::vector<Eigen::VectorXf> v;
    for (std::size_t k = 0; k < info.num_kernels; ++k)
      v.push_back(scale<float>(out ? mbok_s_out_name(name, k, version_)
                                   : mbok_s_in_name(name, k, version_)));
    return v;
  }

  /// Layer `name` as `MultiKernelWeights`. Its kernels borrow the mapped bytes
  /// (`kernel(k).is_borrowed()`, the map kept alive by the kernels) when they are 64-byte
  /// aligned in memory (always for `open`); otherwise they are copied; a packed layer's
  /// kernels are unpacked (exactly). Scales convert to `Scalar`.
  template <typename Scalar = float>
  MultiKernelWeights<Scalar> load_weights(const std::string& name) const {
    const MbokLayerInfo& info = layer(name);
    MultiKernelWeights<Scalar> w(info.out_features, info.in_features);
    for (std::size_t k = 0; k < info.num_kernels; ++k) {
      BitMatrix bits;
      if (info.packed) {  // the bits, recovered exactly from the packed bytes
        bits = BitMatrix(info.out_features, info.in_features);
        detail::lut_unpack(packed_view(info, k), 0, bits.mutable_view());
      } else {  // dtype, shape and padding validated at open
        bits = detail::load_kernel_bits(file_.at(mbok_kernel_name(name, k, version_)).data,
                                        info.out_features, info.in_features, true, file_.owner(),
                                        nullptr);
      }
      w.add_kernel(std::move(bits), scale<Scalar>(mbok_s_out_name(name, k, version_)),
                   scale<Scalar>(mbok_s_in_name(name, k, version_)), detail::ScalesChecked{});
    }
    return w;
  }

  /// The layer's bias as floats, or an empty vector when it has none.
  Eigen::VectorXf bias(const std::string& name) const {
    const MbokLayerInfo& info = layer(name);
    if (info.bias.empty()) return Eigen::VectorXf();
    return to_vector<float>(file_.at(info.bias));
  }

  /// Names of the tensors that belong to no layer (kept as they were), in file order.
  std::vector<std::string> other_tensors() const {
    std::vector<std::string> out;
    for (const TensorView& t : file_.tensors())
      if (!owned_.count(t.name)) out.push_back(t.name);
    return out;
  }

 private:
  template <typename Scalar>
  static Eigen::Matrix<Scalar, Eigen::Dynamic, 1> to_vector(const TensorView& t) {
    const std::vector<Scalar> v = t.to_vector<Scalar>();
    return Eigen::Map<const Eigen::Matrix<Scalar, Eigen::Dynamic, 1>>(
        v.data(), static_cast<Eigen::Index>(v.size()));
  }

  // A scale vector in `Scalar`, checked finite at open; only F64 scales loaded as float are
  // checked again (beyond float's range they cannot load).
  template <typename Scalar>
  Eigen::Matrix<Scalar, Eigen::Dynamic, 1> scale(const std::string& tensor) const {
    const TensorView& t = file_.at(tensor);
    Eigen::Matrix<Scalar, Eigen::Dynamic, 1> v = to_vector<Scalar>(t);
    if (sizeof(Scalar) < dtype_size(t.dtype))
      require(v.allFinite(), "tensor '", tensor, "' does not fit in float");
    return v;
  }

  // Kernel k of a packed layer (validated at open).
  detail::LutWeightsView packed_view(const MbokLayerInfo& info, std::size_t k) const {
    return {file_.at(mbok_packed_name(info.name, k)).data, info.packed_layout, info.out_features,
            info.in_features};
  }

  template <typename... Parts>
  void require(bool ok, const Parts&... parts) const {
    detail::require_format(ok, "mbok file '", file_.source(), "': ", parts...);
  }

  void validate() {
    const Metadata& md = file_.metadata();
    auto get = [&](const char* key) {
      const auto it = md.find(key);
      require(it != md.end(), "not an mbok model: __metadata__ has no \"", key, "\"");
      return it->second;
    };
    require(get("format") == kMbokFormatName, "format is '", get("format"), "', expected '",
            kMbokFormatName, "'");
    const std::string version = get("format_version");
    for (int v = kMbokOldestFormatVersion; v <= kMbokFormatVersion; ++v)
      if (version == std::to_string(v)) version_ = v;
    require(version_ != 0, "format version '", version,
            "' is not supported (this reader knows versions ", kMbokOldestFormatVersion, " to ",
            kMbokFormatVersion, ")");
    require(get("bit_layout") == kMbokBitLayout, "unknown bit layout '", get("bit_layout"), "'");
    const std::string layers_text = get("layers");
    const nlohmann::json layers =
        detail::parse_header_json(layers_text.data(), layers_text.data() + layers_text.size(),
                                  "mbok file '" + file_.source() + "': layers");
    require(layers.is_object(), "\"layers\" must be a JSON object");
    for (const auto& item : layers.items()) validate_layer(item.key(), item.value());
  }

  void validate_layer(const std::string& name, const nlohmann::json& e) {
    const std::string at = "layer '" + name + "'";
    require(e.is_object(), at, ": record must be an object");
    MbokLayerInfo info;
    info.name = name;
    auto field = [&](const char* key) -> const nlohmann::json& {
      const auto it = e.find(key);
      require(it != e.end(), at, ": missing \"", key, "\"");
      return *it;
    };
    const nlohmann::json& shape = field("shape");
    require(shape.is_array() && shape.size() == 2 && shape[0].is_number_unsigned() &&
                shape[1].is_number_unsigned(),
            at, ": \"shape\" must be [rows, cols]");
    const nlohmann::json& kernels = field("kernels");
    require(kernels.is_number_unsigned(), at, ": \"kernels\" must be a non-negative integer");
    const nlohmann::json& scale = field("scale_dtype");
    require(scale.is_string() &&
                detail::dtype_from_name(scale.get<std::string>(), info.scale_dtype) &&
                (info.scale_dtype == DType::f32 || info.scale_dtype == DType::f64),
            at, ": \"scale_dtype\" must be \"F32\" or \"F64\"");
    const auto m64 = shape[0].get<std::uint64_t>(), n64 = shape[1].get<std::uint64_t>();
    const auto k64 = kernels.get<std::uint64_t>();
    // Every kernel holds at least one byte per row of the file, so the file bounds the sizes.
    const std::uint64_t limit = file_.byte_size();
    require(m64 > 0 && n64 > 0 && m64 <= limit && n64 <= 8 * limit, at, ": shape [", m64, ", ", n64,
            "] is empty or larger than the file allows");
    require(k64 > 0 && k64 <= limit, at, ": ", k64, " kernels");
    info.out_features = static_cast<std::size_t>(m64);
    info.in_features = static_cast<std::size_t>(n64);
    info.num_kernels = static_cast<std::size_t>(k64);
    if (e.contains("bias") && !e["bias"].is_null()) {
      require(e["bias"].is_string(), at, ": \"bias\" must be a string");
      info.bias = e["bias"].get<std::string>();
    }
    if (e.contains("source") && !e["source"].is_null()) {
      require(e["source"].is_string(), at, ": \"source\" must be a string");
      info.source = e["source"].get<std::string>();
    }
    if (e.contains("relative_error") && !e["relative_error"].is_null()) {
      require(e["relative_error"].is_number(), at, ": \"relative_error\" must be a number");
      info.relative_error = e["relative_error"].get<double>();
    }
    if (e.contains("kernel_layout") && e["kernel_layout"] != "bits") {
      require(version_ >= 3 && e["kernel_layout"].is_string() &&
                  parse_lut_layout(e["kernel_layout"].get<std::string>(), info.packed_layout),
              at, ": \"kernel_layout\" must be \"bits\"",
              version_ >= 3 ? ", \"interleave4\" or \"lanes16\"" : " before format version 3");
      info.packed = true;
    }

    const std::size_t m = info.out_features, n = info.in_features;
    const std::size_t row_bytes = detail::mbok_row_bytes(n);
    detail::mbok_kernel_bytes(m, n);  // bounds the row offsets of check_padding
    for (std::size_t k = 0; k < info.num_kernels; ++k) {
      if (info.packed) {
        validate_packed(info, k, at);
        continue;
      }
      const TensorView* kt = file_.find(mbok_kernel_name(name, k, version_));
      require(kt != nullptr, at, ": missing tensor '", mbok_kernel_name(name, k, version_), "'");
      require(kt->dtype == DType::u8 &&
                  kt->shape == std::vector<std::int64_t>{static_cast<std::int64_t>(m),
                                                         static_cast<std::int64_t>(row_bytes)},
              at, ": tensor '", kt->name, "' must be U8 [", m, ", ", row_bytes, "], got ",
              dtype_name(kt->dtype), " ", detail::shape_text(kt->shape));
      check_padding(*kt, m, n, row_bytes, at);
      check_scale(mbok_s_out_name(name, k, version_), info.scale_dtype, m, at);
      check_scale(mbok_s_in_name(name, k, version_), info.scale_dtype, n, at);
      owned_.insert(kt->name);
      owned_.insert(mbok_s_out_name(name, k, version_));
      owned_.insert(mbok_s_in_name(name, k, version_));
    }
    if (!info.bias.empty()) {
      const TensorView* b = file_.find(info.bias);
      require(b != nullptr, at, ": missing bias tensor '", info.bias, "'");
      require(b->shape == std::vector<std::int64_t>{static_cast<std::int64_t>(m)} &&
                  (b->dtype == DType::f32 || b->dtype == DType::f64 || b->dtype == DType::f16 ||
                   b->dtype == DType::bf16),
              at, ": bias '", info.bias, "' must be a float tensor of shape [", m, "], got ",
              dtype_name(b->dtype), " ", detail::shape_text(b->shape));
    }
    index_.emplace(name, layers_.size());
    layers_.push_back(std::move(info));
  }

  // A packed kernel: U8 [tiles, 2 cols32], no bit in its padding, F32 scales. Only the padding
  // is read (the last tile, and a line per tile when n is not a multiple of 32), so opening a
  // large file does not page its kernels in.
  void validate_packed(const MbokLayerInfo& info, std::size_t k, const std::string& at) {
    const std::size_t m = info.out_features, n = info.in_features;
    require(n <= kMaxInt8Features, at, ": ", n, " input features exceed the packed limit of ",
            kMaxInt8Features);
    const std::string name = mbok_packed_name(info.name, k);
    const TensorView* kt = file_.find(name);
    require(kt != nullptr, at, ": missing tensor '", name, "'");
    const std::vector<std::int64_t> shape = {static_cast<std::int64_t>(detail::lut_tiles(m)),
                                             static_cast<std::int64_t>(2 * detail::lut_cols32(n))};
    require(kt->dtype == DType::u8 && kt->shape == shape, at, ": tensor '", name, "' must be U8 ",
            detail::shape_text(shape), ", got ", dtype_name(kt->dtype), " ",
            detail::shape_text(kt->shape));
    const std::size_t bad = detail::lut_padding_row({kt->data, info.packed_layout, m, n});
    require(bad == static_cast<std::size_t>(-1), at, ": tensor '", name,
            "' has a padding bit set in row ", bad, " (rows >= ", m, " and columns >= ", n,
            " must be zero)");
    require(info.scale_dtype == DType::f32, at, ": packed kernels need F32 scales");
    check_scale(mbok_s_out_name(info.name, k), info.scale_dtype, m, at);
    check_scale(mbok_s_in_name(info.name, k), info.scale_dtype, n, at);
    owned_.insert(name);
    owned_.insert(mbok_s_out_name(info.name, k));
    owned_.insert(mbok_s_in_name(info.name, k));
  }

  // Bits at columns >= n must be zero (the contract every kernel relies on).
  void check_padding(const TensorView& t, std::size_t m, std::size_t n, std::size_t row_bytes,
                     const std::string& at) const {
    const std::size_t first = n / 8;
    const auto partial_mask =
        static_cast<std::uint8_t>(n % 8 == 0 ? 0xffu : (0xffu << (n % 8)) & 0xffu);
    for (std::size_t i = 0; i < m; ++i) {
      const std::uint8_t* row = t.data + i * row_bytes;
      for (std::size_t b = first; b < row_bytes; ++b) {
        const std::uint8_t stray =
            b == first ? static_cast<std::uint8_t>(row[b] & partial_mask) : row[b];
        require(stray == 0, at, ": tensor '", t.name, "' has a padding bit set in row ", i,
                " (columns >= ", n, " must be zero)");
      }
    }
  }

  void check_scale(const std::string& name, DType dtype, std::size_t size,
                   const std::string& at) const {
    const TensorView* t = file_.find(name);
    require(t != nullptr, at, ": missing tensor '", name, "'");
    require(
        t->dtype == dtype && t->shape == std::vector<std::int64_t>{static_cast<std::int64_t>(size)},
        at, ": tensor '", name, "' must be ", dtype_name(dtype), " [", size, "], got ",
        dtype_name(t->dtype), " ", detail::shape_text(t->shape));
    for (std::size_t i = 0; i < size; ++i)
      require(std::isfinite(t->element(i)), at, ": tensor '", name, "' element ", i,
              " is not finite");
  }

  SafetensorsFile file_;
  std::vector<MbokLayerInfo> layers_;
  std::map<std::string, std::size_t> index_;
  std::set<std::string> owned_;
  int version_ = 0;
};

}  // namespace mbok
