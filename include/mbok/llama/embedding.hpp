#pragma once
/// \file
/// `EmbeddingTable`: the token embeddings of a model (vocab x hidden), held as floats or
/// borrowed from a mapped file in its own float dtype and converted one row per lookup.
///
/// A decoder reads one row per token, so a borrowed table keeps in memory only the pages of
/// the rows it used: at 7B scale the float copy of the table would be 0.5 GB, as large as a
/// quarter of the Boolean weights, for a few kilobytes read per token.

#include <Eigen/Core>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "../error.hpp"
#include "../half.hpp"
#include "../io/safetensors.hpp"

namespace mbok {
namespace llama {

/// Token embeddings, owned floats or a borrowed tensor (see the file comment). Copies share
/// the rows (read-only).
class EmbeddingTable {
 public:
  using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

  EmbeddingTable() = default;
  /// A table of floats, one row per token.
  explicit EmbeddingTable(RowMatrix rows)
      : owned_(std::make_shared<const RowMatrix>(std::move(rows))),
        vocab_(static_cast<std::size_t>(owned_->rows())),
        hidden_(static_cast<std::size_t>(owned_->cols())) {}

  /// Rows borrowed from `view` (2-D, F32, F16, BF16 or F64), its bytes kept alive by `owner`.
  /// Every value is checked finite once (the pages read for it are then released from the
  /// process, `release_pages`). Throws `FormatError` naming the tensor for another shape or
  /// dtype or a value that is not finite.
  static EmbeddingTable borrow(const TensorView& view, std::shared_ptr<const void> owner) {
    detail::require_format(view.shape.size() == 2, "tensor '", view.name, "' has shape ",
                           detail::shape_text(view.shape), ", expected [vocab, hidden]");
    detail::require_format(view.dtype == DType::f32 || view.dtype == DType::f16 ||
                               view.dtype == DType::bf16 || view.dtype == DType::f64,
                           "tensor '", view.name, "' has dtype ", dtype_name(view.dtype),
                           ", expected F32, F16, BF16 or F64");
    EmbeddingTable t;
    t.view_ = view;
    t.owner_ = std::move(owner);
    t.vocab_ = static_cast<std::size_t>(view.shape[0]);
    t.hidden_ = static_cast<std::size_t>(view.shape[1]);
    std::vector<float> row(t.hidden_);
    for (std::size_t i = 0; i < t.vocab_; ++i) {
      t.row(static_cast<std::int64_t>(i), row.data());
      for (float v : row)
        detail::require_format(std::isfinite(v), "tensor '", view.name, "' row ", i,
                               " is not finite");
    }
    release_pages(view);
    return t;
  }

  std::size_t vocab() const noexcept { return vocab_; }
  std::size_t hidden() const noexcept { return hidden_; }
  /// Whether the rows are borrowed from a file (else owned floats).
  bool is_borrowed() const noexcept { return owned_ == nullptr && vocab_ > 0; }
  /// Bytes held in memory by the table itself (0 when borrowed: the file's pages come and go).
  std::size_t owned_bytes() const noexcept { return owned_ ? vocab_ * hidden_ * sizeof(float) : 0; }

  /// Row `token` as floats into out[0, hidden). `token` must be in [0, vocab) (the model
  /// checks tokens at its entrance).
  void row(std::int64_t token, float* out) const noexcept {
    const auto i = static_cast<std::size_t>(token);
    if (owned_) {
      std::memcpy(out, owned_->data() + i * hidden_, hidden_ * sizeof(float));
      return;
    }
    const std::uint8_t* p = view_.data + i * hidden_ * dtype_size(view_.dtype);
    switch (view_.dtype) {
      case DType::f32:
        std::memcpy(out, p, hidden_ * sizeof(float));
        break;
      case DType::f16:
      case DType::bf16:
        for (std::size_t j = 0; j < hidden_; ++j) {
          std::uint16_t h;
          std::memcpy(&h, p + 2 * j, 2);
          out[j] = view_.dtype == DType::f16 ? f16_to_float(h) : bf16_to_float(h);
        }
        break;
      default:  // f64
        for (std::size_t j = 0; j < hidden_; ++j) {
          double d;
          std::memcpy(&d, p + 8 * j, 8);
          out[j] = static_cast<float>(d);
        }
        break;
    }
  }

  /// The owned floats; throws `InvalidArgument` for a borrowed table (use `matrix()`).
  const RowMatrix& floats() const {
    detail::require(owned_ != nullptr, "llama: the embedding table is borrowed from a file");
    return *owned_;
  }
  /// The whole table as floats (a copy).
  RowMatrix matrix() const {
    if (owned_) return *owned_;
    RowMatrix m(static_cast<Eigen::Index>(vocab_), static_cast<Eigen::Index>(hidden_));
    for (std::size_t i = 0; i < vocab_; ++i)
      row(static_cast<std::int64_t>(i), m.data() + i * hidden_);
    return m;
  }

 private:
  std::shared_ptr<const RowMatrix> owned_;
  TensorView view_;
  std::shared_ptr<const void> owner_;
  std::size_t vocab_ = 0, hidden_ = 0;
};

}  // namespace llama
}  // namespace mbok
