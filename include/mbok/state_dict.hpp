#pragma once
/// \file
/// `StateDict`: named tensors (dtype, shape, little-endian bytes), the one exchange format
/// between objects with state (layers, optimizers) and files (io/). Objects export their
/// state into a `StateDict` under a prefix and import it back with every name, dtype and
/// shape checked before anything changes.

#include <Eigen/Core>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "config.hpp"
#include "error.hpp"

#include "detail/base/checked.hpp"

namespace mbok {

/// Element types of stored tensors (the safetensors names are in `dtype_name`).
enum class DType { f64, f32, f16, bf16, i64, i32, i8, u8 };

/// "F64", "F32", "F16", "BF16", "I64", "I32", "I8", "U8".
inline constexpr const char* dtype_name(DType d) noexcept {
  switch (d) {
    case DType::f64:
      return "F64";
    case DType::f32:
      return "F32";
    case DType::f16:
      return "F16";
    case DType::bf16:
      return "BF16";
    case DType::i64:
      return "I64";
    case DType::i32:
      return "I32";
    case DType::i8:
      return "I8";
    case DType::u8:
      return "U8";
  }
  return "?";
}

/// Bytes per element.
inline constexpr std::size_t dtype_size(DType d) noexcept {
  switch (d) {
    case DType::f64:
    case DType::i64:
      return 8;
    case DType::f32:
    case DType::i32:
      return 4;
    case DType::f16:
    case DType::bf16:
      return 2;
    case DType::i8:
    case DType::u8:
      return 1;
  }
  return 0;
}

/// The DType of a C++ arithmetic type (float, double, int8_t, uint8_t, int32_t, int64_t).
template <typename T>
constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, double>)
    return DType::f64;
  else if constexpr (std::is_same_v<T, float>)
    return DType::f32;
  else if constexpr (std::is_same_v<T, std::int64_t>)
    return DType::i64;
  else if constexpr (std::is_same_v<T, std::int32_t>)
    return DType::i32;
  else if constexpr (std::is_same_v<T, std::int8_t>)
    return DType::i8;
  else {
    static_assert(std::is_same_v<T, std::uint8_t>, "no DType for this type");
    return DType::u8;
  }
}

/// One stored tensor: row-major elements of `dtype`, little-endian, in `bytes`.
struct Tensor {
  DType dtype = DType::f32;
  std::vector<std::int64_t> shape;
  std::vector<std::uint8_t> bytes;

  /// Product of the shape (1 for a scalar with an empty shape); SIZE_MAX when a dimension is
  /// negative or the product overflows (no tensor can hold that many bytes).
  std::size_t numel() const noexcept {
    std::size_t n = 1;
    for (auto d : shape)
      if (d < 0 || !detail::checked_mul(n, static_cast<std::size_t>(d), n)) return SIZE_MAX;
    return n;
  }
  /// Bytes the shape and dtype need; SIZE_MAX when that overflows.
  std::size_t expected_bytes() const noexcept {
    std::size_t out = 0;
    return numel() != SIZE_MAX && detail::checked_mul(numel(), dtype_size(dtype), out) ? out
                                                                                       : SIZE_MAX;
  }

  /// A tensor holding `count` elements from `data` with the given shape.
  template <typename T>
  static Tensor from(const T* data, std::vector<std::int64_t> shape) {
    Tensor t;
    t.dtype = dtype_of<T>();
    t.shape = std::move(shape);
    t.bytes.resize(detail::mul_or_throw({t.numel(), sizeof(T)}, "Tensor::from: shape ",
                                        t.shape.size(), "-D of ", t.numel(), " elements"));
    if (!t.bytes.empty()) std::memcpy(t.bytes.data(), data, t.bytes.size());
    return t;
  }

  /// A 1-D tensor from an Eigen vector or a 2-D one (row-major) from an Eigen matrix.
  template <typename Derived>
  static Tensor from_eigen(const Eigen::DenseBase<Derived>& m) {
    using T = typename Derived::Scalar;
    const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> rm = m;
    if (Derived::ColsAtCompileTime == 1)
      return from(rm.data(), {static_cast<std::int64_t>(rm.rows())});
    return from(rm.data(),
                {static_cast<std::int64_t>(rm.rows()), static_cast<std::int64_t>(rm.cols())});
  }

  /// A scalar (shape {}).
  template <typename T>
  static Tensor scalar(T value) {
    return from(&value, {});
  }
};

/// Named tensors, sorted by name.
using StateDict = std::map<std::string, Tensor>;

/// The tensor `name`, checked to have `dtype` and `shape`; throws `FormatError` naming the
/// tensor, the expected and the actual value.
inline const Tensor& expect_tensor(const StateDict& dict, const std::string& name, DType dtype,
                                   const std::vector<std::int64_t>& shape) {
  const auto it = dict.find(name);
  detail::require_format(it != dict.end(), "state: missing tensor '", name, "'");
  const Tensor& t = it->second;
  detail::require_format(t.dtype == dtype, "state: tensor '", name, "' has dtype ",
                         dtype_name(t.dtype), ", expected ", dtype_name(dtype));
  auto shape_text = [](const std::vector<std::int64_t>& s) {
    std::string out = "[";
    for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + "]";
  };
  detail::require_format(t.shape == shape, "state: tensor '", name, "' has shape ",
                         shape_text(t.shape), ", expected ", shape_text(shape));
  detail::require_format(t.expected_bytes() != SIZE_MAX && t.bytes.size() == t.expected_bytes(),
                         "state: tensor '", name, "' holds ", t.bytes.size(), " bytes, expected ",
                         t.expected_bytes());
  return t;
}

/// Copies a checked tensor's elements into `out` (which must hold numel elements).
template <typename T>
void read_tensor(const StateDict& dict, const std::string& name,
                 const std::vector<std::int64_t>& shape, T* out) {
  const Tensor& t = expect_tensor(dict, name, dtype_of<T>(), shape);
  MBOK_ASSERT(t.bytes.size() == t.numel() * sizeof(T));  // what expect_tensor guarantees
  if (!t.bytes.empty()) std::memcpy(out, t.bytes.data(), t.bytes.size());
}

/// A checked scalar.
template <typename T>
T read_scalar(const StateDict& dict, const std::string& name) {
  T value{};
  read_tensor(dict, name, {}, &value);
  return value;
}

/// The tensors of `dict` whose names start with `prefix`, renamed without it (what an object
/// exported under `prefix` reads back). An empty prefix copies the whole dict; names that do
/// not start with `prefix` are left out.
inline StateDict sub_dict(const StateDict& dict, const std::string& prefix) {
  StateDict out;
  for (auto it = dict.lower_bound(prefix); it != dict.end(); ++it) {
    if (it->first.compare(0, prefix.size(), prefix) != 0) break;  // sorted: the run has ended
    out.emplace(it->first.substr(prefix.size()), it->second);
  }
  return out;
}

/// Copies every tensor of `part` into `dict` under `prefix` + its name (the inverse of
/// `sub_dict`), replacing a tensor of `dict` that has the same name.
inline void add_prefixed(StateDict& dict, const StateDict& part, const std::string& prefix) {
  for (const auto& [name, t] : part) dict[prefix + name] = t;
}

}  // namespace mbok
