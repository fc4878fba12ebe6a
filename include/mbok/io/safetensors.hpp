#pragma once
/// \file
/// Safetensors files (https://github.com/huggingface/safetensors), read memory-mapped with no
/// copy and written crash-safely.
///
/// Format: 8 bytes little-endian header size N; N bytes of UTF-8 JSON
/// `{name: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
/// "__metadata__": {string: string}}` (may be padded with spaces); then the data section,
/// which the tensors tile exactly (offsets relative to its start, no overlap, no hole).
/// Supported dtypes: F64 F32 F16 BF16 I64 I32 I8 U8 (`DType`).
///
/// Reading validates everything first (sizes, JSON, offsets, dtypes, shapes, duplicates) and
/// throws `FormatError` naming the file, the tensor and what is wrong. Needs nlohmann/json.

#include <Eigen/Core>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../config.hpp"
#include "../error.hpp"
#include "../half.hpp"
#include "../state_dict.hpp"
#include "mmap.hpp"

#include "../detail/io/atomic_file.hpp"
#include "../detail/io/safetensors_parse.hpp"

namespace mbok {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "mbok's file formats are little-endian and are read in place");

/// Free-form string metadata (`__metadata__`).
using Metadata = std::map<std::string, std::string>;

/// Default alignment of the data section written by `SafetensorsWriter`, in bytes: 64, so
/// packed bit matrices stored in the file meet the bit-layout contract when mapped.
inline constexpr std::size_t kSafetensorsAlignment = 64;

/// One tensor inside a safetensors buffer: a non-owning view (the `SafetensorsFile` it came
/// from, or its `owner()`, keeps the bytes alive). Elements are little-endian and may be
/// unaligned; use the conversions below rather than casting `data`.
struct TensorView {
  std::string name;
  DType dtype = DType::f32;
  std::vector<std::int64_t> shape;  ///< row-major; empty for a scalar
  const std::uint8_t* data = nullptr;
  std::size_t size_bytes = 0;
  std::size_t offset = 0;  ///< byte offset of `data` from the start of the file
  bool mapped = false;     ///< `data` lies in a read-only memory map of the file (`open`)

  /// Product of the shape (1 for a scalar; a parsed file never overflows it).
  std::size_t numel() const noexcept {
    std::size_t n = 1;
    for (auto d : shape) n *= static_cast<std::size_t>(d);
    return n;
  }

  /// Element `i` converted to double (exact for every dtype except I64 beyond 2^53).
  double element(std::size_t i) const noexcept {
    const std::uint8_t* p = data + i * dtype_size(dtype);
    switch (dtype) {
      case DType::f64:
        return load<double>(p);
      case DType::f32:
        return static_cast<double>(load<float>(p));
      case DType::f16:
        return static_cast<double>(f16_to_float(load<std::uint16_t>(p)));
      case DType::bf16:
        return static_cast<double>(bf16_to_float(load<std::uint16_t>(p)));
      case DType::i64:
        return static_cast<double>(load<std::int64_t>(p));
      case DType::i32:
        return static_cast<double>(load<std::int32_t>(p));
      case DType::i8:
        return static_cast<double>(load<std::int8_t>(p));
      case DType::u8:
        return static_cast<double>(*p);
    }
    return 0.0;
  }

  /// All elements converted to `T` = float or double (from any dtype; F64 -> float rounds),
  /// or copied exactly for an integer `T` whose dtype matches (else `FormatError`).
  template <typename T>
  std::vector<T> to_vector() const {
    std::vector<T> out(numel());
    if constexpr (std::is_floating_point_v<T>) {
      convert_into(out.data());
    } else {
      detail::require_format(dtype == dtype_of<T>(), "tensor '", name, "' has dtype ",
                             dtype_name(dtype), ", expected ", dtype_name(dtype_of<T>()));
      if (!out.empty()) std::memcpy(out.data(), data, size_bytes);
    }
    return out;
  }

  /// All numel() elements converted to `T` = float or double into `out` (F64 -> float rounds).
  template <typename T>
  void convert_into(T* out) const {
    static_assert(std::is_floating_point_v<T>, "convert_into: float or double");
    const std::size_t n = numel();
    if (dtype == dtype_of<T>()) {
      if (n > 0) std::memcpy(out, data, size_bytes);
    } else if (dtype == DType::f32) {
      for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<T>(load<float>(data + 4 * i));
    } else if (dtype == DType::bf16) {
      // The checkpoints' usual dtypes get loops of their own, without a switch per element (a
      // 7B head has 131 M values); bfloat16 is the upper half of a float.
      for (std::size_t i = 0; i < n; ++i) {
        const std::uint32_t bits = static_cast<std::uint32_t>(load<std::uint16_t>(data + 2 * i))
                                   << 16;
        out[i] = static_cast<T>(load<float>(reinterpret_cast<const std::uint8_t*>(&bits)));
      }
    } else if (dtype == DType::f16) {
      for (std::size_t i = 0; i < n; ++i)
        out[i] = static_cast<T>(f16_to_float(load<std::uint16_t>(data + 2 * i)));
    } else {
      for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<T>(element(i));
    }
  }

  /// A 2-D tensor (or a 1-D one as a column) as a float matrix, converted from any dtype.
  /// Throws `FormatError` for other ranks.
  Eigen::MatrixXf to_matrix() const {
    detail::require_format(shape.size() == 1 || shape.size() == 2, "tensor '", name, "' has shape ",
                           detail::shape_text(shape), ", expected 1-D or 2-D");
    const auto rows = static_cast<Eigen::Index>(shape[0]);
    const auto cols = static_cast<Eigen::Index>(shape.size() == 2 ? shape[1] : 1);
    const std::vector<float> v = to_vector<float>();
    return Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
        v.data(), rows, cols);
  }

  /// An owning copy (same dtype, shape and bytes).
  Tensor to_tensor() const {
    Tensor t;
    t.dtype = dtype;
    t.shape = shape;
    t.bytes.assign(data, data + size_bytes);
    return t;
  }

  /// True when `data` is aligned to `alignment` bytes in memory.
  bool is_aligned(std::size_t alignment) const noexcept {
    return reinterpret_cast<std::uintptr_t>(data) % alignment == 0;
  }

 private:
  template <typename T>
  static T load(const std::uint8_t* p) noexcept {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
};

/// A validated safetensors buffer: a memory-mapped file, or bytes in memory.
/// Copies share the underlying bytes.
class SafetensorsFile {
 public:
  /// Maps `path` read-only and validates it. Throws `FormatError` naming the file (and the
  /// tensor) for an unreadable or malformed file.
  static SafetensorsFile open(const std::string& path) {
    std::shared_ptr<const MappedFile> map = MappedFile::open(path);
    const std::uint8_t* data = map->data();
    const std::size_t size = map->size();
    const bool mapped = map->is_mapped();
    SafetensorsFile file(data, size, std::move(map), path);
    for (TensorView& t : file.tensors_) t.mapped = mapped;
    return file;
  }

  /// Validates `size` bytes at `data`. With no `owner`, the caller keeps the bytes alive as
  /// long as this object or any view of it is used; else `owner` does. `source` names the
  /// buffer in error messages.
  static SafetensorsFile from_memory(const void* data, std::size_t size,
                                     std::shared_ptr<const void> owner = nullptr,
                                     std::string source = "<memory>") {
    return SafetensorsFile(static_cast<const std::uint8_t*>(data), size, std::move(owner),
                           std::move(source));
  }

  /// The tensors in file order (by offset).
  const std::vector<TensorView>& tensors() const noexcept { return tensors_; }
  std::size_t size() const noexcept { return tensors_.size(); }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  /// The tensor `name`, or nullptr.
  const TensorView* find(const std::string& name) const {
    const auto it = index_.find(name);
    return it == index_.end() ? nullptr : &tensors_[it->second];
  }
  /// The tensor `name`; throws `FormatError` naming the file when it is absent.
  const TensorView& at(const std::string& name) const {
    const TensorView* t = find(name);
    detail::require_format(t != nullptr, "safetensors '", source_, "': no tensor '", name, "'");
    return *t;
  }
  /// The tensor `name`, checked to have `dtype` and `shape` (`FormatError` otherwise).
  const TensorView& expect(const std::string& name, DType dtype,
                           const std::vector<std::int64_t>& shape) const {
    const TensorView& t = at(name);
    detail::require_format(t.dtype == dtype, "safetensors '", source_, "': tensor '", name,
                           "' has dtype ", dtype_name(t.dtype), ", expected ", dtype_name(dtype));
    detail::require_format(t.shape == shape, "safetensors '", source_, "': tensor '", name,
                           "' has shape ", detail::shape_text(t.shape), ", expected ",
                           detail::shape_text(shape));
    return t;
  }

  /// `__metadata__` (empty when the file has none).
  const Metadata& metadata() const noexcept { return metadata_; }
  /// Where the data section starts, in bytes from the start of the file (8 + N).
  std::size_t data_offset() const noexcept { return data_offset_; }
  /// Total bytes of the buffer.
  std::size_t byte_size() const noexcept { return size_; }
  /// The start of the buffer.
  const std::uint8_t* bytes() const noexcept { return base_; }
  /// The path (or the `source` given to `from_memory`).
  const std::string& source() const noexcept { return source_; }
  /// What keeps the bytes alive (the memory map for `open`); pass it to `BitMatrix::borrow`.
  const std::shared_ptr<const void>& owner() const noexcept { return owner_; }

  /// Every tensor copied into a `StateDict`.
  StateDict to_state_dict() const {
    StateDict out;
    for (const TensorView& t : tensors_) out.emplace(t.name, t.to_tensor());
    return out;
  }

 private:
  SafetensorsFile(const std::uint8_t* data, std::size_t size, std::shared_ptr<const void> owner,
                  std::string source)
      : owner_(std::move(owner)), base_(data), size_(size), source_(std::move(source)) {
    detail::require(data != nullptr || size == 0, "safetensors '", source_, "': null data");
    detail::ParsedSafetensors parsed = detail::parse_safetensors(data, size, source_);
    data_offset_ = parsed.data_offset;
    metadata_ = std::move(parsed.metadata);
    tensors_.reserve(parsed.tensors.size());
    for (auto& p : parsed.tensors) {
      TensorView v;
      v.name = std::move(p.name);
      v.dtype = p.dtype;
      v.shape = std::move(p.shape);
      v.offset = data_offset_ + p.begin;
      v.data = data + v.offset;
      v.size_bytes = p.end - p.begin;
      index_.emplace(v.name, tensors_.size());
      tensors_.push_back(std::move(v));
    }
  }

  std::shared_ptr<const void> owner_;
  const std::uint8_t* base_ = nullptr;
  std::size_t size_ = 0;
  std::string source_;
  std::size_t data_offset_ = 0;
  std::vector<TensorView> tensors_;
  std::map<std::string, std::size_t> index_;
  Metadata metadata_;
};

/// Builds a safetensors file from tensors given by reference (no copy until written) or by
/// value. The data section starts at a multiple of `alignment` (the header is padded with
/// spaces, as the format allows), and tensors are laid out so that every tensor whose size is
/// a multiple of 64 bytes starts 64-byte aligned, and every other one at least at its
/// element's natural alignment.
class SafetensorsWriter {
 public:
  /// `alignment`: a power of two >= 8 (bytes). Throws `InvalidArgument` otherwise.
  explicit SafetensorsWriter(std::size_t alignment = kSafetensorsAlignment)
      : alignment_(alignment) {
    detail::require(alignment >= 8 && (alignment & (alignment - 1)) == 0,
                    "safetensors writer: alignment must be a power of two >= 8, got ", alignment);
  }

  /// Adds a tensor whose `size_bytes` bytes at `data` must stay valid until `write`/`to_bytes`.
  /// Throws `InvalidArgument` for a duplicate or reserved name, a negative dimension or a
  /// size that does not match dtype x shape.
  void add(std::string name, DType dtype, std::vector<std::int64_t> shape, const void* data,
           std::size_t size_bytes) {
    detail::require(name != "__metadata__",
                    "safetensors writer: the name '__metadata__' is reserved");
    detail::require(names_.insert(name).second, "safetensors writer: duplicate tensor '", name,
                    "'");
    detail::require(shape.size() <= detail::kMaxTensorRank, "safetensors writer: tensor '", name,
                    "' has rank ", shape.size(), ", more than the ", detail::kMaxTensorRank,
                    " readers accept");
    std::size_t numel = 1, bytes = 0;
    bool overflow = false;
    for (auto d : shape) {
      detail::require(d >= 0, "safetensors writer: tensor '", name,
                      "' has a negative dimension in ", detail::shape_text(shape));
      overflow = overflow || !detail::checked_mul(numel, static_cast<std::size_t>(d), numel);
    }
    // Checked like the reader checks it, so the writer never makes a file it would refuse.
    overflow = overflow || !detail::checked_mul(numel, dtype_size(dtype), bytes);
    detail::require(!overflow, "safetensors writer: tensor '", name, "' (", dtype_name(dtype), " ",
                    detail::shape_text(shape), ") overflows the size of a file");
    detail::require(bytes == size_bytes, "safetensors writer: tensor '", name, "' (",
                    dtype_name(dtype), " ", detail::shape_text(shape), ") needs ", bytes,
                    " bytes, got ", size_bytes);
    detail::require(data != nullptr || size_bytes == 0, "safetensors writer: tensor '", name,
                    "' has null data");
    entries_.push_back({std::move(name), dtype, std::move(shape),
                        static_cast<const std::uint8_t*>(data), size_bytes});
  }
  /// Adds a copy of `tensor` (the writer keeps it).
  void add(std::string name, Tensor tensor) {
    owned_.push_back(std::make_unique<Tensor>(std::move(tensor)));
    const Tensor& t = *owned_.back();
    add(std::move(name), t.dtype, t.shape, t.bytes.data(), t.bytes.size());
  }
  /// Adds a tensor of another file by reference (that file must stay open until written).
  void add(const TensorView& view) {
    add(view.name, view.dtype, view.shape, view.data, view.size_bytes);
  }
  /// Adds every tensor of `dict` by reference (`dict` must outlive the write).
  void add(const StateDict& dict) {
    for (const auto& [name, t] : dict) {
      add(name, t.dtype, t.shape, t.bytes.data(), t.bytes.size());
    }
  }

  /// True when a tensor `name` was added.
  bool has(const std::string& name) const { return names_.count(name) != 0; }

  /// Sets `__metadata__[key] = value`.
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  /// Sets `__metadata__[key] = value` and writes it first: the header always starts with
  /// `{"__metadata__":{` (when there is metadata), and this entry comes right after it, so
  /// its value sits at a fixed offset from the start of the file. One key at most (a second
  /// call replaces the first); other keys follow in sorted order.
  void set_metadata_first(const std::string& key, const std::string& value) {
    leading_key_ = key;
    metadata_[key] = value;
  }
  void set_metadata(const Metadata& metadata) {
    for (const auto& kv : metadata) metadata_[kv.first] = kv.second;
  }

  /// Bytes of the file `write` produces.
  std::size_t file_size() const {
    const Layout l = layout();
    return l.header.size() + 8 + l.data_size;
  }

  /// Writes the file atomically: a temporary file in the same directory, flushed to disk
  /// (when `sync`), renamed over `path`, then the directory flushed. A crash at any moment
  /// leaves either the old file or the new one. Throws `FormatError` on I/O errors.
  void write(const std::string& path, bool sync = true) const {
    const Layout l = layout();
    detail::write_file_atomically(
        path,
        [&](detail::FileSink& sink) {
          emit(l, [&](const void* p, std::size_t n) { sink.write(p, n); });
        },
        sync);
  }

  /// Calls `out(const void* data, std::size_t size)` with the bytes of the file in order (what
  /// `write` writes), without building the file in memory.
  template <typename Out>
  void stream(Out&& out) const {
    emit(layout(), out);
  }

  /// The file as bytes in memory.
  std::vector<std::uint8_t> to_bytes() const {
    const Layout l = layout();
    std::vector<std::uint8_t> out;
    out.reserve(8 + l.header.size() + l.data_size);
    emit(l, [&](const void* p, std::size_t n) {
      const auto* b = static_cast<const std::uint8_t*>(p);
      out.insert(out.end(), b, b + n);
    });
    return out;
  }

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<std::int64_t> shape;
    const std::uint8_t* data;
    std::size_t size;
  };
  struct Layout {
    std::string header;              // JSON, padded
    std::vector<std::size_t> order;  // entry indices in data order
    std::size_t data_size = 0;
  };

  // Whole 64-byte blocks first (all stay 64-aligned), then by element size, largest first.
  static int rank(const Entry& e) {
    if (e.size % 64 == 0) return 0;
    return 16 - static_cast<int>(dtype_size(e.dtype));
  }

  Layout layout() const {
    Layout l;
    l.order.resize(entries_.size());
    for (std::size_t i = 0; i < entries_.size(); ++i) l.order[i] = i;
    std::sort(l.order.begin(), l.order.end(), [&](std::size_t a, std::size_t b) {
      const int ra = rank(entries_[a]), rb = rank(entries_[b]);
      return ra != rb ? ra < rb : entries_[a].name < entries_[b].name;
    });
    nlohmann::json tensors = nlohmann::json::object();
    std::size_t offset = 0;
    for (std::size_t i : l.order) {
      const Entry& e = entries_[i];
      tensors[e.name] = {{"dtype", dtype_name(e.dtype)},
                         {"shape", e.shape},
                         {"data_offsets", {offset, offset + e.size}}};
      offset += e.size;
    }
    l.data_size = offset;
    // "__metadata__" first, its leading key (if any) first inside it, so that key's value
    // sits at a fixed offset (checkpoints keep their checksum there); JSON key order means
    // nothing to readers.
    try {
      l.header = "{";
      if (!metadata_.empty()) {
        l.header += "\"__metadata__\":{";
        bool first = true;
        auto put = [&](const std::string& key, const std::string& value) {
          if (!first) l.header += ',';
          first = false;
          l.header += nlohmann::json(key).dump() + ":" + nlohmann::json(value).dump();
        };
        const auto lead = metadata_.find(leading_key_);
        if (lead != metadata_.end()) put(lead->first, lead->second);
        for (auto it = metadata_.begin(); it != metadata_.end(); ++it)
          if (it != lead) put(it->first, it->second);
        l.header += '}';
      }
      const std::string body = tensors.dump();  // "{...}"
      if (body.size() > 2) {
        if (l.header.size() > 1) l.header += ',';
        l.header.append(body, 1, body.size() - 2);
      }
      l.header += '}';
    } catch (const nlohmann::json::exception& e) {  // names and metadata must be UTF-8
      throw InvalidArgument(detail::concat("mbok: safetensors writer: ", e.what()));
    }
    const std::size_t total = 8 + l.header.size();
    l.header.append((alignment_ - total % alignment_) % alignment_, ' ');
    return l;
  }

  template <typename Out>
  void emit(const Layout& l, Out&& out) const {
    std::uint8_t size_field[8];
    std::uint64_t n = l.header.size();
    for (int i = 0; i < 8; ++i) size_field[i] = static_cast<std::uint8_t>(n >> (8 * i));
    out(size_field, 8);
    out(l.header.data(), l.header.size());
    for (std::size_t i : l.order)
      if (entries_[i].size > 0) out(entries_[i].data, entries_[i].size);
  }

  std::size_t alignment_;
  std::vector<Entry> entries_;
  std::set<std::string> names_;
  std::vector<std::unique_ptr<Tensor>> owned_;
  Metadata metadata_;
  std::string leading_key_;
};

/// Writes `dict` (and `metadata`) to `path` as safetensors, atomically (see
/// `SafetensorsWriter::write`). Throws `InvalidArgument` for a malformed tensor and
/// `FormatError` on I/O errors.
inline void save_state_dict(const std::string& path, const StateDict& dict,
                            const Metadata& metadata = {}, bool sync = true) {
  SafetensorsWriter writer;
  writer.add(dict);
  writer.set_metadata(metadata);
  writer.write(path, sync);
}

/// Reads every tensor of the safetensors file `path` into a `StateDict` (copies), and its
/// `__metadata__` into `*metadata` when given. Throws `FormatError` for a bad file.
inline StateDict load_state_dict(const std::string& path, Metadata* metadata = nullptr) {
  const SafetensorsFile file = SafetensorsFile::open(path);
  if (metadata != nullptr) *metadata = file.metadata();
  return file.to_state_dict();
}

/// Drops the pages of a mapped tensor's bytes from this process (`madvise(MADV_DONTNEED)`;
/// they are read from the file again if used): after a tensor was converted into a copy, the
/// copy is then the only one in memory. Does nothing for a tensor that is not in a memory map
/// (`TensorView::mapped`), or where the platform has no such call. The view stays valid.
inline void release_pages(const TensorView& t) noexcept {
#if defined(MBOK_HAVE_MMAP) && defined(MADV_DONTNEED)
  if (!t.mapped || t.size_bytes == 0) return;
  const long page_size = ::sysconf(_SC_PAGESIZE);
  if (page_size <= 0) return;
  const auto page = static_cast<std::uintptr_t>(page_size);
  const auto start = reinterpret_cast<std::uintptr_t>(t.data);
  // Whole pages inside the tensor only: its neighbours' pages stay.
  const std::uintptr_t b = (start + page - 1) / page * page;
  const std::uintptr_t e = (start + t.size_bytes) / page * page;
  if (e > b) ::madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
#else
  (void)t;
#endif
}

}  // namespace mbok
