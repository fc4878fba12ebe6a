#pragma once
/// \file
/// `LinearLayer`: one projection of a LLaMA block, y = x W^T + b, as either
/// - a dense float layer (the float teacher: W out x in, row-major, float products), or
/// - a Boolean layer: with int8 activations held as a `PackedLinear` (its kernels once, in
///   the table-lookup layout: the inference form), with float activations as a
///   `BooleanLinear<float>` (`forward`),
/// chosen per model by `Activations`. Inputs and outputs are raw row-major float buffers
/// (t rows, strides given) so the model's buffers are reused across calls.

#include <Eigen/Core>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "../bit_matrix.hpp"
#include "../boolean_linear.hpp"
#include "../error.hpp"
#include "../forward_int8.hpp"
#include "../packed_linear.hpp"
#include "../parallel.hpp"

namespace mbok {
namespace llama {

/// Activations of the Boolean layers of a model: int8 (`PackedLinear::forward_int8`, the
/// fast inference path) or float (`BooleanLinear::forward`). Dense layers always run in float.
enum class Activations { int8, float32 };

/// Row-major float matrix, one token per row (the shape of every activation in mbok::llama).
using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// One linear layer of a block (see the file comment). Movable and copyable.
class LinearLayer {
 public:
  LinearLayer() = default;

  /// A dense float layer: `weight` out x in, `bias` empty or `out` entries. `name` (the HF
  /// tensor name without ".weight") appears in errors.
  static LinearLayer dense(RowMatrix weight, Eigen::VectorXf bias, std::string name) {
    mbok::detail::require(weight.rows() > 0 && weight.cols() > 0, "llama: layer '", name,
                          "' is empty");
    mbok::detail::require(bias.size() == 0 || bias.size() == weight.rows(), "llama: layer '", name,
                          "' bias has ", bias.size(), " entries, expected ", weight.rows());
    LinearLayer l;
    l.name_ = std::move(name);
    l.dense_ = std::make_shared<const RowMatrix>(std::move(weight));
    l.bias_ = std::move(bias);
    return l;
  }

  /// A Boolean layer run with `activations` (its bias, if any, is the layer's own). With int8
  /// activations it is packed into its inference form and the bits are not kept.
  static LinearLayer boolean(BooleanLinear<float> layer, Activations activations,
                             std::string name) {
    if (activations == Activations::int8) return packed(PackedLinear(layer), std::move(name));
    LinearLayer l;
    l.name_ = std::move(name);
    l.boolean_ = std::make_shared<const BooleanLinear<float>>(std::move(layer));
    l.activations_ = activations;
    return l;
  }
  /// A Boolean layer in its inference form, run with int8 activations.
  static LinearLayer packed(PackedLinear layer, std::string name) {
    LinearLayer l;
    l.name_ = std::move(name);
    l.packed_ = std::make_shared<const PackedLinear>(std::move(layer));
    l.activations_ = Activations::int8;
    return l;
  }

  const std::string& name() const noexcept { return name_; }
  bool is_boolean() const noexcept { return boolean_ != nullptr || packed_ != nullptr; }
  /// The Boolean layer held with its bits (float activations), or nullptr for a dense or a
  /// packed one (`to_boolean_linear` serves both Boolean forms).
  const BooleanLinear<float>* boolean_layer() const noexcept { return boolean_.get(); }
  /// The Boolean layer held packed (int8 activations), or nullptr.
  const PackedLinear* packed_layer() const noexcept { return packed_.get(); }
  /// A Boolean layer as a new trainable `BooleanLinear` (a copy; from the packed form, the
  /// bits recovered exactly). Throws `InvalidArgument` for a dense layer.
  BooleanLinear<float> to_boolean_linear() const {
    if (packed_) return packed_->unpack();
    mbok::detail::require(boolean_ != nullptr, "llama: layer '", name_, "' is not Boolean");
    return *boolean_;
  }
  /// Kernels of a Boolean layer (0 for a dense one).
  std::size_t num_kernels() const noexcept {
    return packed_ ? packed_->num_kernels() : boolean_ ? boolean_->num_kernels() : 0;
  }
  /// Whether the layer adds a bias.
  bool has_bias() const noexcept {
    return packed_ ? packed_->has_bias() : boolean_ ? boolean_->has_bias() : bias_.size() != 0;
  }
  /// The dense weight (out x in), or nullptr for a Boolean layer.
  const RowMatrix* dense_weight() const noexcept { return dense_.get(); }
  /// The dense layer's bias (empty without one; a Boolean layer's bias is in boolean_layer()).
  const Eigen::VectorXf& dense_bias() const noexcept { return bias_; }
  Activations activations() const noexcept { return activations_; }

  std::size_t in_features() const noexcept {
    return packed_    ? packed_->in_features()
           : boolean_ ? boolean_->in_features()
           : dense_   ? static_cast<std::size_t>(dense_->cols())
                      : 0;
  }
  std::size_t out_features() const noexcept {
    return packed_    ? packed_->out_features()
           : boolean_ ? boolean_->out_features()
           : dense_   ? static_cast<std::size_t>(dense_->rows())
                      : 0;
  }

  /// y (t rows of out_features, `ldy` apart) = layer(x) for x (t rows of in_features, `ldx`
  /// apart). `ws` is the int8 workspace of the caller (reused; one per concurrent caller).
  /// Allocates nothing for a decode step (t = 1) once `ws` has seen this shape.
  void forward(const float* x, std::size_t ldx, std::size_t t, float* y, std::size_t ldy,
               Int8ForwardWorkspace& ws) const {
    if (t == 0) return;
    if (packed_) {
      packed_->forward_int8(x, ldx, t, y, ldy, ws);
      return;
    }
    if (boolean_) {
      boolean_->forward(x, ldx, t, y, ldy);
      return;
    }
    mbok::detail::require(dense_ != nullptr, "llama: layer '", name_, "' is not set");
    dense_forward(*dense_, bias_, x, ldx, t, y, ldy);
  }

  /// Bytes of weights one forward reads (bits with their row padding, or the packed kernels;
  /// scales, bias; or the dense floats): what decoding one token costs this layer in memory
  /// traffic, and what it holds.
  std::size_t weight_bytes() const noexcept {
    if (packed_) return packed_->bytes();
    if (boolean_) {
      const auto& w = boolean_->weights();
      const std::size_t m = w.out_features(), n = w.in_features();
      std::size_t bytes = w.num_kernels() * (m * padded_row_words(n) * 8 + (m + n) * sizeof(float));
      if (boolean_->has_bias()) bytes += m * sizeof(float);
      return bytes;
    }
    return (parameters() + static_cast<std::size_t>(bias_.size())) * sizeof(float);
  }
  /// Weights of the layer (out x in; biases not counted).
  std::size_t parameters() const noexcept { return in_features() * out_features(); }

  /// Dense y = x W^T + b: decode-sized inputs (t <= 4) as GEMVs over row panels of W on the
  /// default `parallel_for`; larger t as one Eigen GEMM (threaded by Eigen under OpenMP).
  static void dense_forward(const RowMatrix& w, const Eigen::VectorXf& bias, const float* x,
                            std::size_t ldx, std::size_t t, float* y, std::size_t ldy) {
    using Map = Eigen::Map<RowMatrix, 0, Eigen::OuterStride<>>;
    using CMap = Eigen::Map<const RowMatrix, 0, Eigen::OuterStride<>>;
    const auto rows = static_cast<Eigen::Index>(t);
    const CMap xm(x, rows, w.cols(), Eigen::OuterStride<>(static_cast<Eigen::Index>(ldx)));
    Map ym(y, rows, w.rows(), Eigen::OuterStride<>(static_cast<Eigen::Index>(ldy)));
    if (t <= 4) {
      const auto m = static_cast<std::size_t>(w.rows()), n = static_cast<std::size_t>(w.cols());
      parallel_for(
          0, m, mbok::detail::grain_for_cost(n * t),
          [&](std::size_t j0, std::size_t j1) {
            const auto b = static_cast<Eigen::Index>(j0), len = static_cast<Eigen::Index>(j1 - j0);
            for (Eigen::Index i = 0; i < rows; ++i)
              ym.row(i).segment(b, len).noalias() = xm.row(i) * w.middleRows(b, len).transpose();
          },
          16);
    } else {
      ym.noalias() = xm * w.transpose();
    }
    if (bias.size() != 0) ym.rowwise() += bias.transpose();
  }

 private:
  std::string name_;
  std::shared_ptr<const RowMatrix> dense_;  // shared: copies of a model share the weights
  Eigen::VectorXf bias_;
  std::shared_ptr<const BooleanLinear<float>> boolean_;
  std::shared_ptr<const PackedLinear> packed_;
  Activations activations_ = Activations::float32;
};

}  // namespace llama
}  // namespace mbok
