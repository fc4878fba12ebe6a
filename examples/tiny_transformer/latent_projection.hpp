#pragma once
// The latent-weight baseline (OneBit / MoS style) as a projection of the library's trainable
// LLaMA: a float latent copy of each trainable kernel, sign() in the forward pass, the
// straight-through gradient, Adam on the latents (the pipeline's own optimizer: they are
// listed by `latent_parameters`, not by `parameters`, which gives AdamW the scales only).
//
//     W = sum_k sign(L_k) (.) s_out_k s_in_k^T
//
// L_k is a float latent matrix for a trainable kernel and a frozen sign matrix otherwise;
// dL/dL_k = dL/dW (.) s_out_k s_in_k^T. It starts from the same successive SVID as the
// Boolean projection (kernel k's latent is the residual whose sign is B_k, so the first
// forward equals the Boolean model's) and is saved and run as that Boolean layer.

#include <mbok/boolean_linear.hpp>
#include <mbok/kernel_tensors.hpp>
#include <mbok/llama/train/projection.hpp>
#include <mbok/svid.hpp>

#include <memory>
#include <string>
#include <vector>

namespace tiny {

template <typename T>
class LatentProjection final : public mbok::llama::train::Projection<T> {
 public:
  using Matrix = mbok::llama::train::RowMatrixT<T>;
  using Vector = mbok::llama::train::VectorT<T>;

  /// From an SVID of `w` (out x in) into `num_kernels` kernels; `trainable[k]` picks the
  /// kernels with a latent.
  LatentProjection(const Matrix& w, std::size_t num_kernels, const std::vector<bool>& trainable) {
    const auto init = mbok::svid<T>(w, num_kernels);
    Matrix residual = w;
    for (std::size_t k = 0; k < num_kernels; ++k) {
      Kernel kern;
      kern.s_out = init.weights.s_out(k);
      kern.s_in = init.weights.s_in(k);
      kern.trainable = trainable.at(k);
      const Matrix signs = init.weights.kernel(k).to_signs().template cast<T>();
      kern.latent = kern.trainable ? residual : signs;
      residual -= (signs.array() * (kern.s_out * kern.s_in.transpose()).array()).matrix();
      kern.latent_grad = Matrix::Zero(kern.latent.rows(), kern.latent.cols());
      kern.g_out = Vector::Zero(kern.s_out.size());
      kern.g_in = Vector::Zero(kern.s_in.size());
      kernels_.push_back(std::move(kern));
    }
  }

  std::size_t in_features() const override { return std::size_t(kernels_[0].s_in.size()); }
  std::size_t out_features() const override { return std::size_t(kernels_[0].s_out.size()); }
  void forward(const Matrix& x, Matrix& y, bool train) override {
    compose(w_);
    y.resize(x.rows(), w_.rows());
    y.noalias() = x * w_.transpose();
    if (train) x_ = x;
  }
  void backward(const Matrix& dy, Matrix& dx) override {
    g_.noalias() = dy.transpose() * x_;  // dL/dW
    dx.resize(dy.rows(), w_.cols());
    dx.noalias() = dy * w_;
    for (auto& k : kernels_) {
      gs_ = g_.array() * k.latent.array().unaryExpr(&sign);
      k.g_out.noalias() += gs_ * k.s_in;
      k.g_in.noalias() += gs_.transpose() * k.s_out;
      if (k.trainable) k.latent_grad.noalias() += k.s_out.asDiagonal() * g_ * k.s_in.asDiagonal();
    }
  }
  void zero_grad() override {
    for (auto& k : kernels_) {
      k.latent_grad.setZero();
      k.g_out.setZero();
      k.g_in.setZero();
    }
  }
  /// The scales of every kernel ("<prefix>kernels.<k>.s_out" and ".s_in"), without decay.
  void parameters(std::vector<mbok::BasicParameter<T>>& out, const std::string& prefix) override {
    for (std::size_t i = 0; i < kernels_.size(); ++i) {
      auto& k = kernels_[i];
      out.push_back(mbok::make_parameter(name(prefix, i, mbok::KernelTensor::s_out), k.s_out,
                                         k.g_out, false));
      out.push_back(
          mbok::make_parameter(name(prefix, i, mbok::KernelTensor::s_in), k.s_in, k.g_in, false));
    }
  }
  /// The latent matrices ("<prefix>kernels.<k>.latent"), for their own Adam.
  void latent_parameters(std::vector<mbok::BasicParameter<T>>& out, const std::string& prefix) {
    for (std::size_t i = 0; i < kernels_.size(); ++i)
      if (kernels_[i].trainable)
        out.push_back(mbok::make_parameter(latent_name(prefix, i), kernels_[i].latent,
                                           kernels_[i].latent_grad, false));
  }
  /// The signs of the trainable latents, packed (to count sign changes).
  std::vector<mbok::BitMatrix> trainable_signs() const {
    std::vector<mbok::BitMatrix> out;
    for (const auto& k : kernels_)
      if (k.trainable) out.push_back(mbok::BitMatrix::pack(k.latent));
    return out;
  }
  void export_state(mbok::StateDict& dict, const std::string& prefix) const override {
    for (std::size_t i = 0; i < kernels_.size(); ++i) {
      const auto& k = kernels_[i];
      dict[name(prefix, i, mbok::KernelTensor::s_out)] = mbok::Tensor::from_eigen(k.s_out);
      dict[name(prefix, i, mbok::KernelTensor::s_in)] = mbok::Tensor::from_eigen(k.s_in);
      dict[latent_name(prefix, i)] =
          mbok::Tensor::from(k.latent.data(), {k.latent.rows(), k.latent.cols()});
    }
  }
  void import_state(const mbok::StateDict& dict, const std::string& prefix) override {
    std::vector<Kernel> next = kernels_;  // all or nothing
    for (std::size_t i = 0; i < next.size(); ++i) {
      auto& k = next[i];
      mbok::read_tensor(dict, name(prefix, i, mbok::KernelTensor::s_out), {k.s_out.size()},
                        k.s_out.data());
      mbok::read_tensor(dict, name(prefix, i, mbok::KernelTensor::s_in), {k.s_in.size()},
                        k.s_in.data());
      mbok::read_tensor(dict, latent_name(prefix, i), {k.latent.rows(), k.latent.cols()},
                        k.latent.data());
    }
    for (std::size_t i = 0; i < next.size(); ++i) {  // element-wise: parameter pointers stay valid
      kernels_[i].s_out = next[i].s_out;
      kernels_[i].s_in = next[i].s_in;
      kernels_[i].latent = next[i].latent;
    }
  }
  mbok::llama::LinearLayer to_linear_layer(const std::string& name,
                                           mbok::llama::Activations activations) const override {
    if constexpr (std::is_same_v<T, float>) {
      return mbok::llama::LinearLayer::boolean(to_boolean(), activations, name);
    } else {
      throw mbok::InvalidArgument("LatentProjection<double> cannot become an inference layer");
    }
  }
  void write_mbok(mbok::MbokWriter& writer, const std::string& name) const override {
    if constexpr (std::is_same_v<T, float>) {
      // The writer keeps a reference to the kernels until it writes: they live here.
      written_ = std::make_unique<mbok::BooleanLinear<T>>(to_boolean());
      writer.add_layer(name, written_->weights(), mbok::MbokLayerOptions{});
    } else {
      (void)writer;
      throw mbok::InvalidArgument("LatentProjection<double> cannot be written to '" + name + "'");
    }
  }
  Matrix dense_weight() const override {
    Matrix w;
    compose(w);
    return w;
  }
  Vector bias_vector() const override { return {}; }
  double bits_per_weight() const override { return to_boolean().weights().bits_per_weight(); }

  /// The binarized layer (the signs of the latents with the scales).
  mbok::BooleanLinear<T> to_boolean() const {
    mbok::MultiKernelWeights<T> w{out_features(), in_features()};
    for (const auto& k : kernels_) w.add_kernel(mbok::BitMatrix::pack(k.latent), k.s_out, k.s_in);
    return mbok::BooleanLinear<T>(std::move(w));
  }

 private:
  struct Kernel {
    Matrix latent, latent_grad;
    Vector s_out, s_in, g_out, g_in;
    bool trainable = false;
  };
  static T sign(T v) { return v < T(0) ? T(-1) : T(1); }
  // The layer's names (mbok/kernel_tensors.hpp), plus the latent matrix beside each kernel's.
  static std::string name(const std::string& prefix, std::size_t k, mbok::KernelTensor part) {
    return mbok::kernel_tensor_name(prefix, k, part);
  }
  static std::string latent_name(const std::string& prefix, std::size_t k) {
    return mbok::kernel_tensor_prefix(prefix, k) + "latent";
  }
  void compose(Matrix& w) const {
    w.setZero(Eigen::Index(out_features()), Eigen::Index(in_features()));
    for (const auto& k : kernels_)  // lazy diagonal products: nothing allocated per step
      w.noalias() += k.s_out.asDiagonal() * k.latent.unaryExpr(&sign) * k.s_in.asDiagonal();
  }

  std::vector<Kernel> kernels_;
  Matrix x_, w_, g_, gs_;
  mutable std::unique_ptr<mbok::BooleanLinear<T>> written_;  // the layer `write_mbok` added
};

}  // namespace tiny
