#pragma once
/// \file
/// A layer's kernels as stored tensors, spelled in one place: the names every writer and
/// reader of layers uses (`BooleanLinear::export_state` / `import_state`, the mbok format,
/// mbok-convert, the examples) and the one loader of their bytes.
///
/// A layer saved under `prefix` (empty, or ending with a dot: "L." for the layer `L` of an
/// mbok file) holds, for each kernel k,
///
///     <prefix>kernels.<k>.bits     U8  [m, padded_row_words(n) * 8]   B_k's packed rows (the
///                                                                     bit-layout contract)
///     <prefix>kernels.<k>.s_out    F32 or F64 [m]
///     <prefix>kernels.<k>.s_in     F32 or F64 [n]
///
/// or, for a packed layer of an mbok file (format version 3), `<prefix>kernels.<k>.packed`
/// in place of `.bits` (io/mbok_format.hpp).

#include <Eigen/Core>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "bit_matrix.hpp"
#include "error.hpp"
#include "multi_kernel_weights.hpp"

namespace mbok {

/// The stored tensors of one kernel.
enum class KernelTensor {
  bits,    ///< the packed rows of B_k (U8)
  s_out,   ///< s_out_k
  s_in,    ///< s_in_k
  packed,  ///< B_k packed for the table-lookup products (mbok files of format version 3)
};

/// "bits", "s_out", "s_in" or "packed".
inline constexpr const char* kernel_tensor_part(KernelTensor part) noexcept {
  switch (part) {
    case KernelTensor::bits:
      return "bits";
    case KernelTensor::s_out:
      return "s_out";
    case KernelTensor::s_in:
      return "s_in";
    case KernelTensor::packed:
      return "packed";
  }
  return "?";
}

/// `<prefix>kernels.<k>.`: what the names of kernel k's tensors start with, for a layer saved
/// under `prefix` (empty, or ending with a dot). A layer form with tensors of its own per
/// kernel (a latent-weight baseline's `latent`) names them under it.
inline std::string kernel_tensor_prefix(const std::string& prefix, std::size_t k) {
  return prefix + "kernels." + std::to_string(k) + ".";
}

/// `<prefix>kernels.<k>.<part>`: the name of kernel k's tensor `part` for a layer saved under
/// `prefix` (empty, or ending with a dot).
inline std::string kernel_tensor_name(const std::string& prefix, std::size_t k, KernelTensor part) {
  return kernel_tensor_prefix(prefix, k) + kernel_tensor_part(part);
}

namespace detail {

// The one loader of kernel bits stored as U8 [m, padded_row_words(n) * 8] at `data` (dtype
// and shape already checked by the caller): borrowed with no copy when the bytes outlive the
// weights (`borrow`: a file kept alive by `owner`, or by its caller when null) and are 64-byte
// aligned, copied one row per memcpy otherwise (the bytes of little-endian words are the words
// on every supported target). The padding bits are checked here when `checked_as` names the
// tensor (FormatError naming it); null means the caller has validated them (an mbok file, at
// open).
inline BitMatrix load_kernel_bits(const std::uint8_t* data, std::size_t m, std::size_t n,
                                  bool borrow, std::shared_ptr<const void> owner,
                                  const char* checked_as) {
  const std::size_t row_words = padded_row_words(n);
  if (borrow && reinterpret_cast<std::uintptr_t>(data) % kBufferAlignment == 0) {
    const auto* words = reinterpret_cast<const std::uint64_t*>(data);
    const BitMatrixView v = checked_as ? BitMatrixView(words, m, n, row_words, checked_as)
                                       : BitMatrixView::unchecked(words, m, n, row_words);
    return BitMatrix::borrow(v, std::move(owner));
  }
  BitMatrix bits(m, n);
  const std::size_t row_bytes = row_words * 8;
  MutableBitMatrixView v = bits.mutable_view();
  for (std::size_t i = 0; i < m; ++i) std::memcpy(v.row(i), data + i * row_bytes, row_bytes);
  if (checked_as) BitMatrixView(bits.data(), m, n, bits.stride_words(), checked_as);
  return bits;
}

}  // namespace detail
}  // namespace mbok
