#pragma once
/// \file
/// Packed Boolean matrices: the owning `BitMatrix` and the non-owning views
/// `BitMatrixView` (read-only) and `MutableBitMatrixView`.
///
/// Bit-layout contract (docs/design.md; every kernel relies on it):
/// - bit = 1 means -1 (the sign bit of the float), bit = 0 means +1; sign(0) = +1;
/// - words are `uint64_t`, least significant bit = lowest column; rows are row-major;
/// - each row is padded to a multiple of 512 bits (`kRowAlignWords` words) and the stride
///   between rows is a multiple of 512 bits;
/// - buffers are 64-byte aligned;
/// - padding bits (columns >= cols, up to the padded row length) are zero.
/// So kernels load full 512-bit rows with no tail code, and
/// dot(a, b) = cols - 2 * popcount(a XOR b) holds with the true column count.

#include <Eigen/Core>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>
#include <utility>

#include "config.hpp"
#include "error.hpp"

#include "detail/base/aligned_buffer.hpp"
#include "detail/base/bits.hpp"
#include "detail/base/checked.hpp"

namespace mbok {

inline constexpr std::size_t kBitsPerWord = 64;
inline constexpr std::size_t kRowAlignBits = 512;
inline constexpr std::size_t kRowAlignWords = kRowAlignBits / kBitsPerWord;
inline constexpr std::size_t kBufferAlignment = 64;  ///< bytes
static_assert(kBufferAlignment == detail::kAlignedBufferAlignment,
              "the library's buffers are allocated at the contract's alignment");
/// Largest number of bits (padded rows included) one `BitMatrix` holds: 2^46 (8 TiB).
inline constexpr std::size_t kMaxBits = std::size_t{1} << 46;

/// Words in one padded row of `cols` bits (a multiple of `kRowAlignWords`).
inline constexpr std::size_t padded_row_words(std::size_t cols) noexcept {
  return (cols + kRowAlignBits - 1) / kRowAlignBits * kRowAlignWords;
}

class BitMatrix;

/// A view of packed bits in memory someone else owns (like `Eigen::Map`).
/// `Mutable` views can set and flip bits. The checked constructor verifies the contract.
template <bool Mutable>
class BasicBitMatrixView {
 public:
  using Word = std::conditional_t<Mutable, std::uint64_t, const std::uint64_t>;

  /// An empty 0 x 0 view.
  BasicBitMatrixView() = default;

  /// Views `rows` x `cols` bits at `data`, rows `stride_words` words apart.
  /// Throws `FormatError` naming `name` and the broken rule when the memory breaks the
  /// bit-layout contract (misaligned, stride not a multiple of 8 words or shorter than a
  /// padded row, a non-zero padding bit), and `InvalidArgument` for a null pointer.
  BasicBitMatrixView(Word* data, std::size_t rows, std::size_t cols, std::size_t stride_words,
                     const char* name = "bit matrix view")
      : data_(data), rows_(rows), cols_(cols), stride_(stride_words) {
    check_contract(name);
  }

  /// Trusted construction (no checks) for memory known to meet the contract.
  static BasicBitMatrixView unchecked(Word* data, std::size_t rows, std::size_t cols,
                                      std::size_t stride_words) MBOK_NOEXCEPT_UNLESS_ASSERTS {
    MBOK_ASSERT(rows == 0 || cols == 0 ||
                (data != nullptr && stride_words % kRowAlignWords == 0 &&
                 stride_words >= padded_row_words(cols)));
    BasicBitMatrixView v;
    v.data_ = data;
    v.rows_ = rows;
    v.cols_ = cols;
    v.stride_ = stride_words;
    return v;
  }

  /// A mutable view converts to a read-only one. (A converting constructor of the read-only
  /// view rather than a conversion operator of both: clang warns, with -Wclass-conversion,
  /// about an operator that would convert the read-only view to itself.)
  template <bool OtherMutable, typename = std::enable_if_t<!Mutable && OtherMutable>>
  BasicBitMatrixView(const BasicBitMatrixView<OtherMutable>&
                         other) noexcept  // NOLINT(google-explicit-constructor)
      : data_(other.data()),
        rows_(other.rows()),
        cols_(other.cols()),
        stride_(other.stride_words()) {}

  std::size_t rows() const noexcept { return rows_; }
  std::size_t cols() const noexcept { return cols_; }
  /// Words between the starts of two rows (a multiple of `kRowAlignWords`).
  std::size_t stride_words() const noexcept { return stride_; }
  /// Words of one padded row (`padded_row_words(cols())`); kernels read exactly these.
  std::size_t row_words() const noexcept { return padded_row_words(cols_); }
  bool empty() const noexcept { return rows_ == 0 || cols_ == 0; }
  Word* data() const noexcept { return data_; }
  Word* row(std::size_t i) const MBOK_NOEXCEPT_UNLESS_ASSERTS {
    MBOK_ASSERT(i < rows_);
    return data_ + i * stride_;
  }

  /// Rows [first, first + count) as a view of the same memory.
  BasicBitMatrixView middle_rows(std::size_t first, std::size_t count) const {
    detail::require(first <= rows_ && count <= rows_ - first, "bit matrix rows [", first, ", ",
                    first + count, ") out of range for ", rows_, " rows");
    return unchecked(data_ + first * stride_, count, cols_, stride_);
  }

  /// True when bit (i, j) is set, i.e. the element is -1. Throws `std::out_of_range`.
  bool bit(std::size_t i, std::size_t j) const {
    check_index(i, j);
    return (row(i)[j / 64] >> (j % 64)) & 1u;
  }
  /// The element as +1 or -1.
  int sign(std::size_t i, std::size_t j) const { return bit(i, j) ? -1 : 1; }

  template <bool M = Mutable, typename = std::enable_if_t<M>>
  void set_bit(std::size_t i, std::size_t j, bool value) const {
    check_index(i, j);
    const std::uint64_t mask = 1ull << (j % 64);
    std::uint64_t& w = row(i)[j / 64];
    w = value ? (w | mask) : (w & ~mask);
  }
  /// Sets the element to `value`'s sign (+1 for value >= 0, -1 otherwise).
  template <bool M = Mutable, typename = std::enable_if_t<M>>
  void set_sign(std::size_t i, std::size_t j, int value) const {
    set_bit(i, j, value < 0);
  }
  template <bool M = Mutable, typename = std::enable_if_t<M>>
  void flip(std::size_t i, std::size_t j) const {
    check_index(i, j);
    row(i)[j / 64] ^= 1ull << (j % 64);
  }

  /// Number of -1 elements in row i.
  std::size_t popcount_row(std::size_t i) const {
    detail::require(i < rows_, "bit matrix row ", i, " out of range for ", rows_, " rows");
    std::size_t c = 0;
    const std::uint64_t* r = row(i);
    for (std::size_t w = 0; w < row_words(); ++w)
      c += static_cast<std::size_t>(detail::popcount64(r[w]));
    return c;
  }
  /// Number of -1 elements in the matrix.
  std::size_t popcount() const {
    std::size_t c = 0;
    for (std::size_t i = 0; i < rows_; ++i) c += popcount_row(i);
    return c;
  }

  /// The matrix as +1/-1 floats (rows x cols).
  Eigen::MatrixXf to_signs() const {
    Eigen::MatrixXf out(static_cast<Eigen::Index>(rows_), static_cast<Eigen::Index>(cols_));
    for (std::size_t i = 0; i < rows_; ++i) {
      const std::uint64_t* r = row(i);
      for (std::size_t j = 0; j < cols_; ++j)
        out(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)) =
            ((r[j / 64] >> (j % 64)) & 1u) ? -1.0f : 1.0f;
    }
    return out;
  }

  /// The transpose (cols x rows), packed. Defined after `BitMatrix`.
  BitMatrix transposed() const;

 private:
  void check_index(std::size_t i, std::size_t j) const {
    if (i >= rows_ || j >= cols_)
      throw std::out_of_range(detail::concat("mbok: bit (", i, ", ", j, ") out of range for a ",
                                             rows_, " x ", cols_, " bit matrix"));
  }

  void check_contract(const char* name) const {
    if (rows_ == 0 || cols_ == 0) return;
    detail::require(data_ != nullptr, name, ": null data for a ", rows_, " x ", cols_, " view");
    const auto address = reinterpret_cast<std::uintptr_t>(data_);
    detail::require_format(address % kBufferAlignment == 0, name, ": data must be ",
                           kBufferAlignment, "-byte aligned, address is ",
                           address % kBufferAlignment, " bytes past a boundary");
    detail::require_format(stride_ % kRowAlignWords == 0, name, ": stride must be a multiple of ",
                           kRowAlignWords, " words (512 bits), got ", stride_);
    detail::require_format(stride_ >= row_words(), name, ": stride of ", stride_,
                           " words is shorter than a padded row of ", cols_, " bits (", row_words(),
                           " words)");
    const std::size_t first_pad_word = cols_ / 64;
    for (std::size_t i = 0; i < rows_; ++i) {
      const std::uint64_t* r = row(i);
      for (std::size_t w = first_pad_word; w < row_words(); ++w) {
        const std::uint64_t stray = r[w] & ~detail::used_bits_mask(cols_, w);
        detail::require_format(
            stray == 0, name, ": padding bit set in row ", i, " at column ",
            w * 64 + static_cast<std::size_t>(stray != 0 ? __builtin_ctzll(stray) : 0),
            " (columns >= ", cols_, " must be zero)");
      }
    }
  }

  Word* data_ = nullptr;
  std::size_t rows_ = 0;
  std::size_t cols_ = 0;
  std::size_t stride_ = 0;
};

using BitMatrixView = BasicBitMatrixView<false>;
using MutableBitMatrixView = BasicBitMatrixView<true>;

/// Same shape and the same elements (strides may differ).
inline bool operator==(const BitMatrixView& a, const BitMatrixView& b) {
  if (a.rows() != b.rows() || a.cols() != b.cols()) return false;
  for (std::size_t i = 0; i < a.rows(); ++i)
    if (std::memcmp(a.row(i), b.row(i), a.row_words() * sizeof(std::uint64_t)) != 0) return false;
  return true;
}
inline bool operator!=(const BitMatrixView& a, const BitMatrixView& b) { return !(a == b); }

/// Elements that differ between two matrices of the same shape (how many bits training
/// flipped since a snapshot, say). Throws `InvalidArgument` when the shapes differ.
inline std::size_t hamming_distance(const BitMatrixView& a, const BitMatrixView& b) {
  detail::require(a.rows() == b.rows() && a.cols() == b.cols(), "hamming_distance: shapes ",
                  a.rows(), " x ", a.cols(), " and ", b.rows(), " x ", b.cols(), " differ");
  std::size_t count = 0;
  // Padding bits are zero by the layout contract, so whole words can be compared.
  for (std::size_t i = 0; i < a.rows(); ++i)
    for (std::size_t w = 0; w < a.row_words(); ++w)
      count += static_cast<std::size_t>(detail::popcount64(a.row(i)[w] ^ b.row(i)[w]));
  return count;
}

/// An owning packed Boolean matrix, or a borrowed one kept alive by a shared owner (a
/// memory-mapped file) and copied on first write. Copies are deep for owned memory.
class BitMatrix {
 public:
  /// An empty 0 x 0 matrix.
  BitMatrix() = default;

  /// A `rows` x `cols` matrix of +1 (all bits zero). Throws `InvalidArgument` for a zero or
  /// absurd size.
  BitMatrix(std::size_t rows, std::size_t cols) { allocate(rows, cols); }

  /// Packs a row-major float matrix (`ld` floats between rows): bit = 1 where x < 0.
  /// Throws `InvalidArgument` for a NaN (naming its position) or bad sizes.
  static BitMatrix pack(const float* data, std::size_t rows, std::size_t cols, std::size_t ld,
                        const char* name = "matrix") {
    detail::require(data != nullptr, "pack ", name, ": null data");
    detail::require(ld >= cols, "pack ", name, ": leading dimension ", ld, " < cols ", cols);
    BitMatrix out(rows, cols);
    for (std::size_t i = 0; i < rows; ++i)
      out.pack_row(
          i, [&](std::size_t j) { return data[i * ld + j]; }, name);
    return out;
  }

  /// Packs any Eigen matrix expression (either storage order): bit = 1 where x < 0.
  template <typename Derived>
  static BitMatrix pack(const Eigen::DenseBase<Derived>& m, const char* name = "matrix") {
    const auto& d = m.derived();
    BitMatrix out(static_cast<std::size_t>(d.rows()), static_cast<std::size_t>(d.cols()));
    for (Eigen::Index i = 0; i < d.rows(); ++i)
      out.pack_row(
          static_cast<std::size_t>(i),
          [&](std::size_t j) { return static_cast<float>(d(i, static_cast<Eigen::Index>(j))); },
          name);
    return out;
  }

  /// Copies any view into a fresh owned matrix with the natural stride.
  static BitMatrix copy_of(const BitMatrixView& v) {
    BitMatrix out;
    if (v.empty()) return out;
    out.allocate(v.rows(), v.cols());
    for (std::size_t i = 0; i < v.rows(); ++i)
      std::memcpy(out.data_ + i * out.stride_, v.row(i), v.row_words() * sizeof(std::uint64_t));
    return out;
  }

  /// Borrows memory that meets the contract, with no copy; `owner` keeps it alive (for
  /// example a memory map). A write through `mutable_view()` copies it first.
  static BitMatrix borrow(const BitMatrixView& v, std::shared_ptr<const void> owner) {
    BitMatrix out;
    out.rows_ = v.rows();
    out.cols_ = v.cols();
    out.stride_ = v.stride_words();
    out.data_ = const_cast<std::uint64_t*>(v.data());  // never written while borrowed
    out.borrowed_ = std::move(owner);
    out.is_borrowed_ = true;
    out.version_ = next_version();
    return out;
  }

  BitMatrix(const BitMatrix& other) { *this = other; }
  BitMatrix& operator=(const BitMatrix& other) {
    if (this == &other) return *this;
    if (other.is_borrowed_) {
      owned_.reset();
      rows_ = other.rows_;
      cols_ = other.cols_;
      stride_ = other.stride_;
      data_ = other.data_;
      borrowed_ = other.borrowed_;
      is_borrowed_ = true;
      version_ = other.version_;  // the same bits
    } else {
      *this = copy_of(other.view());
    }
    return *this;
  }
  BitMatrix(BitMatrix&& other) noexcept { swap(other); }
  BitMatrix& operator=(BitMatrix&& other) noexcept {
    BitMatrix tmp(std::move(other));
    swap(tmp);
    return *this;
  }
  ~BitMatrix() = default;

  void swap(BitMatrix& o) noexcept {
    owned_.swap(o.owned_);
    std::swap(borrowed_, o.borrowed_);
    std::swap(is_borrowed_, o.is_borrowed_);
    std::swap(data_, o.data_);
    std::swap(rows_, o.rows_);
    std::swap(cols_, o.cols_);
    std::swap(stride_, o.stride_);
    std::swap(version_, o.version_);
  }

  std::size_t rows() const noexcept { return rows_; }
  std::size_t cols() const noexcept { return cols_; }
  std::size_t stride_words() const noexcept { return stride_; }
  std::size_t row_words() const noexcept { return padded_row_words(cols_); }
  bool empty() const noexcept { return rows_ == 0 || cols_ == 0; }
  /// True when the bits live in someone else's memory (no copy was made).
  bool is_borrowed() const noexcept { return is_borrowed_; }
  /// Bytes of packed storage (rows x stride).
  std::size_t storage_bytes() const noexcept { return rows_ * stride_ * sizeof(std::uint64_t); }
  const std::uint64_t* data() const noexcept { return data_; }

  BitMatrixView view() const noexcept {
    return BitMatrixView::unchecked(data_, rows_, cols_, stride_);
  }
  operator BitMatrixView() const noexcept { return view(); }  // NOLINT(google-explicit-constructor)

  /// A stamp that changes whenever the bits may have changed: a new value (unique in the
  /// process) on allocation, borrowing and every `mutable_view()` call (so on `set_bit`,
  /// `flip` and every optimizer step), carried by moves and swaps. Caches derived from the bits
  /// (`BooleanLinear`'s int8 weights) compare it; a write through a mutable view obtained
  /// before the cache was built is not seen (take a fresh view for each batch of writes).
  std::uint64_t version() const noexcept { return version_; }

  /// A writable view; a borrowed matrix is first copied into owned memory.
  MutableBitMatrixView mutable_view() {
    if (is_borrowed_) *this = copy_of(view());
    version_ = next_version();
    return MutableBitMatrixView::unchecked(data_, rows_, cols_, stride_);
  }

  bool bit(std::size_t i, std::size_t j) const { return view().bit(i, j); }
  int sign(std::size_t i, std::size_t j) const { return view().sign(i, j); }
  void set_bit(std::size_t i, std::size_t j, bool value) { mutable_view().set_bit(i, j, value); }
  void flip(std::size_t i, std::size_t j) { mutable_view().flip(i, j); }
  std::size_t popcount_row(std::size_t i) const { return view().popcount_row(i); }
  std::size_t popcount() const { return view().popcount(); }
  Eigen::MatrixXf to_signs() const { return view().to_signs(); }
  BitMatrix transposed() const { return view().transposed(); }

  friend bool operator==(const BitMatrix& a, const BitMatrix& b) { return a.view() == b.view(); }
  friend bool operator!=(const BitMatrix& a, const BitMatrix& b) { return !(a == b); }

 private:
  void allocate(std::size_t rows, std::size_t cols) {
    detail::require(rows > 0 && cols > 0, "bit matrix shape must be positive, got ", rows, " x ",
                    cols);
    // cols is bounded before padded_row_words (which would wrap near SIZE_MAX), and the
    // storage products are checked: rows * words * 64 must not wrap to a small number.
    detail::require(cols < kMaxBits, "bit matrix shape ", rows, " x ", cols, " is too large");
    std::size_t words = 0, bits = 0;
    detail::require(detail::checked_mul(rows, padded_row_words(cols), words) &&
                        detail::checked_mul(words, kBitsPerWord, bits) && bits < kMaxBits,
                    "bit matrix shape ", rows, " x ", cols, " is too large");
    rows_ = rows;
    cols_ = cols;
    stride_ = padded_row_words(cols);
    owned_ = detail::AlignedBuffer<std::uint64_t>::zeroed(words);
    data_ = owned_.data();
    version_ = next_version();
  }

  // Process-wide so that a matrix moved into another's place never repeats its stamp.
  static std::uint64_t next_version() noexcept {
    static std::atomic<std::uint64_t> counter{0};
    return counter.fetch_add(1, std::memory_order_relaxed) + 1;
  }

  template <typename Get>
  void pack_row(std::size_t i, Get&& get, const char* name) {
    std::uint64_t* r = data_ + i * stride_;
    for (std::size_t w = 0; w * 64 < cols_; ++w) {
      std::uint64_t bits = 0;
      const std::size_t end = std::min<std::size_t>(64, cols_ - w * 64);
      for (std::size_t b = 0; b < end; ++b) {
        const float x = get(w * 64 + b);
        if (std::isnan(x))
          throw InvalidArgument(
              detail::concat("mbok: pack ", name, ": NaN at (", i, ", ", w * 64 + b, ")"));
        bits |= static_cast<std::uint64_t>(x < 0.0f) << b;
      }
      r[w] = bits;
    }
  }

  detail::AlignedBuffer<std::uint64_t> owned_;
  std::shared_ptr<const void> borrowed_;
  bool is_borrowed_ = false;
  std::uint64_t* data_ = nullptr;
  std::size_t rows_ = 0;
  std::size_t cols_ = 0;
  std::size_t stride_ = 0;
  std::uint64_t version_ = 0;
};

template <bool Mutable>
BitMatrix BasicBitMatrixView<Mutable>::transposed() const {
  if (empty()) return BitMatrix();
  BitMatrix out(cols_, rows_);
  std::uint64_t block[64];
  const std::size_t col_words = (cols_ + 63) / 64;
  for (std::size_t r0 = 0; r0 < rows_; r0 += 64) {
    const std::size_t rn = std::min<std::size_t>(64, rows_ - r0);
    for (std::size_t cw = 0; cw < col_words; ++cw) {
      for (std::size_t k = 0; k < 64; ++k) block[k] = k < rn ? row(r0 + k)[cw] : 0;
      detail::transpose_64x64(block);
      const std::size_t cn = std::min<std::size_t>(64, cols_ - cw * 64);
      auto out_view = out.mutable_view();
      for (std::size_t k = 0; k < cn; ++k) out_view.row(cw * 64 + k)[r0 / 64] = block[k];
    }
  }
  return out;
}

}  // namespace mbok
