#pragma once
/// \file
/// The projections of a trainable LLaMA (`TrainableLlama`, model.hpp): the interface every
/// q/k/v/o/gate/up/down layer implements, and two implementations:
/// - `DenseProjection<T>`: a float (or double) weight W (out x in) and optional bias, all
///   trainable (pretraining a float teacher);
/// - `BooleanProjection<T>`: a `BooleanLinear<T>` (K kernels; bits of the trainable kernels
///   through `boolean_parameters()` for the Boolean optimizer, scales and bias through
///   `parameters()` for AdamW; method.md section 3).
/// Other layers (e.g. a latent-weight baseline) implement `Projection<T>` outside the library.
///
/// Activations are row-major `RowMatrixT<T>`, one token per row. A train forward keeps its
/// input (copied into a buffer reused from step to step); `backward` adds the layer's
/// gradients to what it holds (call `zero_grad` once per step) and overwrites dx.

#include <Eigen/Core>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../../boolean_linear.hpp"
#include "../../detail/products/training.hpp"
#include "../../error.hpp"
#include "../../io/mbok_format.hpp"
#include "../../isa.hpp"
#include "../../parameter.hpp"
#include "../../products.hpp"
#include "../../state_dict.hpp"
#include "../linear.hpp"

namespace mbok {
namespace llama {
namespace train {

template <typename T>
using RowMatrixT = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using VectorT = Eigen::Matrix<T, Eigen::Dynamic, 1>;

/// Dense products of the training step. For float they run on the register-tiled product of
/// `products` (`detail::gemm_tn_f32`, C = A^T B) with the operands transposed into buffers the
/// caller keeps; for double (gradient checks), Eigen.
template <typename T>
struct DenseProducts {
  using Matrix = RowMatrixT<T>;
  Matrix at, bt;  // transposed operands, reused from call to call
  /// The products' ISA: the active one unless the owner sets its own.
  ProductSet products;

  /// y (t x m) = x (t x k) w^T for w (m x k).
  void nt(const Matrix& x, const Matrix& w, Matrix& y) {
    y.resize(x.rows(), w.rows());
    if constexpr (std::is_same_v<T, float>) {
      if (fast()) {
        at = x.transpose();
        bt = w.transpose();
        tn_raw(at, bt, y);
        return;
      }
    }
    y.noalias() = x * w.transpose();
  }
  /// y (t x k) = z (t x m) w for w (m x k).
  void nn(const Matrix& z, const Matrix& w, Matrix& y) {
    y.resize(z.rows(), w.cols());
    if constexpr (std::is_same_v<T, float>) {
      if (fast()) {
        at = z.transpose();
        tn_raw(at, w, y);
        return;
      }
    }
    y.noalias() = z * w;
  }
  /// g (m x k) += z^T (t x m)^T x (t x k).
  void tn_add(const Matrix& z, const Matrix& x, Matrix& g) {
    if constexpr (std::is_same_v<T, float>) {
      if (fast()) {
        bt.resize(g.rows(), g.cols());
        tn_raw(z, x, bt);
        g += bt;
        return;
      }
    }
    g.noalias() += z.transpose() * x;
  }

 private:
  bool fast() const { return mbok::detail::has_weight_products(products.table()); }
  void tn_raw(const Matrix& a, const Matrix& b, Matrix& c) const {
    mbok::detail::gemm_tn_f32(
        products.table(), a.data(), static_cast<std::size_t>(a.cols()), b.data(),
        static_cast<std::size_t>(b.cols()), static_cast<std::size_t>(a.rows()),
        static_cast<std::size_t>(a.cols()), static_cast<std::size_t>(b.cols()),
        reinterpret_cast<float*>(c.data()), static_cast<std::size_t>(c.cols()));
  }
};

/// One trainable projection y = layer(x). See the file comment.
template <typename T>
class Projection {
 public:
  using Matrix = RowMatrixT<T>;
  virtual ~Projection() = default;
  virtual std::size_t in_features() const = 0;
  virtual std::size_t out_features() const = 0;
  /// y (resized to x.rows() x out) = layer(x). With `train`, keeps x for `backward`.
  virtual void forward(const Matrix& x, Matrix& y, bool train) = 0;
  /// Adds dL/d(parameters) of the last train forward's input to the stored gradients and
  /// writes dx (resized to rows x in) = dL/dx.
  virtual void backward(const Matrix& dy, Matrix& dx) = 0;
  virtual void zero_grad() = 0;
  /// Appends the full-precision trainable tensors, named `prefix` + part.
  virtual void parameters(std::vector<BasicParameter<T>>& out, const std::string& prefix) = 0;
  /// Appends the trainable Boolean kernels with their signals (float layers only).
  virtual void boolean_parameters(std::vector<BooleanParameter>& out, const std::string& prefix) {
    (void)out;
    (void)prefix;
  }
  /// Saves / restores everything the layer holds under `prefix` (import checks shapes).
  virtual void export_state(StateDict& dict, const std::string& prefix) const = 0;
  virtual void import_state(const StateDict& dict, const std::string& prefix) = 0;
  /// The layer for inference (`LlamaModel`), float layers only.
  virtual LinearLayer to_linear_layer(const std::string& name, Activations activations) const = 0;
  /// Adds the layer to an mbok file as `name` (a Boolean layer) or the tensors
  /// `name.weight` (and `name.bias`) of a dense one; float layers only.
  virtual void write_mbok(MbokWriter& writer, const std::string& name) const = 0;
  /// The dense weight (out x in) the layer computes with (a Boolean layer reconstructs it).
  virtual Matrix dense_weight() const = 0;
  /// The bias (empty without one).
  virtual VectorT<T> bias_vector() const = 0;
  /// Bits per weight at inference (32 for float).
  virtual double bits_per_weight() const = 0;
};

/// A dense trainable layer: y = x W^T + b.
template <typename T>
class DenseProjection final : public Projection<T> {
 public:
  using Matrix = RowMatrixT<T>;
  DenseProjection(Matrix weight, VectorT<T> bias = {})
      : w_(std::move(weight)), b_(std::move(bias)) {
    mbok::detail::require(w_.size() > 0, "DenseProjection: empty weight");
    mbok::detail::require(b_.size() == 0 || b_.size() == w_.rows(), "DenseProjection: bias has ",
                          b_.size(), " entries, expected ", w_.rows());
    gw_ = Matrix::Zero(w_.rows(), w_.cols());
    gb_ = VectorT<T>::Zero(b_.size());
  }
  std::size_t in_features() const override { return static_cast<std::size_t>(w_.cols()); }
  std::size_t out_features() const override { return static_cast<std::size_t>(w_.rows()); }
  void forward(const Matrix& x, Matrix& y, bool train) override {
    products_.nt(x, w_, y);
    if (b_.size() > 0) y.rowwise() += b_.transpose();
    if (train) x_ = x;
  }
  void backward(const Matrix& dy, Matrix& dx) override {
    mbok::detail::require(dy.rows() == x_.rows(), "DenseProjection backward: no matching forward");
    products_.tn_add(dy, x_, gw_);
    if (b_.size() > 0) gb_ += dy.colwise().sum().transpose();
    products_.nn(dy, w_, dx);
  }
  void zero_grad() override {
    gw_.setZero();
    gb_.setZero();
  }
  void parameters(std::vector<BasicParameter<T>>& out, const std::string& prefix) override {
    out.push_back(make_parameter(prefix + "weight", w_, gw_, true));
    if (b_.size() > 0) out.push_back(make_parameter(prefix + "bias", b_, gb_, false));
  }
  void export_state(StateDict& dict, const std::string& prefix) const override {
    dict[prefix + "weight"] = Tensor::from(w_.data(), {w_.rows(), w_.cols()});
    if (b_.size() > 0) dict[prefix + "bias"] = Tensor::from_eigen(b_);
  }
  void import_state(const StateDict& dict, const std::string& prefix) override {
    Matrix w(w_.rows(), w_.cols());
    read_tensor(dict, prefix + "weight", {w_.rows(), w_.cols()}, w.data());
    VectorT<T> b(b_.size());
    if (b_.size() > 0) read_tensor(dict, prefix + "bias", {b_.size()}, b.data());
    w_ = w;  // element-wise copies: registered parameter pointers stay valid
    b_ = b;
  }
  LinearLayer to_linear_layer(const std::string& name, Activations) const override {
    return LinearLayer::dense(w_.template cast<float>(), b_.template cast<float>(), name);
  }
  void write_mbok(MbokWriter& writer, const std::string& name) const override {
    const RowMatrixT<float> w = w_.template cast<float>();
    writer.add_tensor(name + ".weight", Tensor::from(w.data(), {w.rows(), w.cols()}));
    if (b_.size() > 0) {
      const Eigen::VectorXf b = b_.template cast<float>();
      writer.add_tensor(name + ".bias", Tensor::from_eigen(b));
    }
  }
  Matrix dense_weight() const override { return w_; }
  VectorT<T> bias_vector() const override { return b_; }
  double bits_per_weight() const override { return 8.0 * sizeof(T); }

  Matrix& weight() { return w_; }
  const Matrix& weight_grad() const { return gw_; }

 private:
  Matrix w_, gw_, x_;
  VectorT<T> b_, gb_;
  DenseProducts<T> products_;
};

/// A multi-kernel Boolean layer (`BooleanLinear<T>`).
template <typename T>
class BooleanProjection final : public Projection<T> {
 public:
  using Matrix = RowMatrixT<T>;
  using Layer = BooleanLinear<T>;
  explicit BooleanProjection(Layer layer) : layer_(std::move(layer)) {}

  std::size_t in_features() const override { return layer_.in_features(); }
  std::size_t out_features() const override { return layer_.out_features(); }
  void forward(const Matrix& x, Matrix& y, bool train) override {
    y.resize(x.rows(), static_cast<Eigen::Index>(out_features()));
    layer_.forward(x.data(), static_cast<std::size_t>(x.cols()), static_cast<std::size_t>(x.rows()),
                   y.data(), static_cast<std::size_t>(y.cols()));
    if (train) x_ = x;
  }
  void backward(const Matrix& dy, Matrix& dx) override {
    mbok::detail::require(dy.rows() == x_.rows(),
                          "BooleanProjection backward: no matching forward");
    dx.resize(dy.rows(), static_cast<Eigen::Index>(in_features()));
    // Gradients add up over the step (zero_grad clears them); with accumulate the layer adds
    // dx too, so it starts at zero.
    dx.setZero();
    layer_.backward(x_.data(), in_features(), static_cast<std::size_t>(x_.rows()), dy.data(),
                    out_features(), dx.data(), in_features(), /*accumulate=*/true);
  }
  void zero_grad() override { layer_.zero_grad(); }
  void parameters(std::vector<BasicParameter<T>>& out, const std::string& prefix) override {
    if constexpr (std::is_same_v<T, float>) {
      for (auto& p : layer_.parameters(prefix)) out.push_back(std::move(p));
    } else {
      // Double layers (gradient checks): the same tensors, registered by hand.
      auto& l = layer_;
      for (std::size_t k = 0; k < l.num_kernels(); ++k) {
        const std::string pre = prefix + "kernels." + std::to_string(k);
        out.push_back(raw_parameter(pre + ".s_out", l.s_out(k).data(), l.grad_s_out(k).data(),
                                    l.out_features()));
        out.push_back(
            raw_parameter(pre + ".s_in", l.s_in(k).data(), l.grad_s_in(k).data(), l.in_features()));
      }
      if (l.has_bias())
        out.push_back(raw_parameter(prefix + "bias", l.bias().data(), l.grad_bias().data(),
                                    l.out_features()));
    }
  }
  void boolean_parameters(std::vector<BooleanParameter>& out, const std::string& prefix) override {
    if constexpr (std::is_same_v<T, float>) {
      for (auto& p : layer_.boolean_parameters(prefix)) out.push_back(std::move(p));
    } else {
      (void)out;
      (void)prefix;
    }
  }
  void export_state(StateDict& dict, const std::string& prefix) const override {
    layer_.export_state(dict, prefix);
  }
  void import_state(const StateDict& dict, const std::string& prefix) override {
    layer_.import_state(dict, prefix);
  }
  LinearLayer to_linear_layer(const std::string& name, Activations activations) const override {
    if constexpr (std::is_same_v<T, float>) {
      return LinearLayer::boolean(layer_, activations, name);
    } else {
      throw InvalidArgument("mbok: BooleanProjection<double> cannot become an inference layer");
    }
  }
  void write_mbok(MbokWriter& writer, const std::string& name) const override {
    if constexpr (std::is_same_v<T, float>) {
      MbokLayerOptions lo;
      if (layer_.has_bias()) {
        writer.add_tensor(name + ".bias", Tensor::from_eigen(layer_.bias()));
        lo.bias = name + ".bias";
      }
      writer.add_layer(name, layer_.weights(), lo);
    } else {
      (void)writer;
      throw InvalidArgument("mbok: BooleanProjection<double> cannot be written to '" + name + "'");
    }
  }
  Matrix dense_weight() const override { return layer_.weights().reconstruct(); }
  VectorT<T> bias_vector() const override { return layer_.bias(); }
  double bits_per_weight() const override { return layer_.weights().bits_per_weight(); }

  Layer& layer() { return layer_; }
  const Layer& layer() const { return layer_; }

 private:
  static BasicParameter<T> raw_parameter(std::string name, T* value, const T* grad, std::size_t n) {
    BasicParameter<T> p;
    p.name = std::move(name);
    p.value = value;
    p.grad = grad;
    p.size = n;
    p.shape = {static_cast<std::int64_t>(n)};
    p.weight_decay = false;
    return p;
  }
  Layer layer_;
  Matrix x_;
};

}  // namespace train
}  // namespace llama
}  // namespace mbok
