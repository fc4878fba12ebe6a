#pragma once
// The two binarized linear layers the example compares:
// - `BoolLinear` wraps mbok::BooleanLinear: K packed kernels trained in the Boolean domain
//   (the Boolean signal Q goes to mbok::BooleanOptimizer, scales to AdamW);
// - `LatentLinear` is the latent-weight baseline (OneBit / MoS style): a float latent copy
//   of each trainable kernel, sign() in the forward pass, straight-through gradient, Adam.
// Both start from the same successive-SVID initialization.

#include <mbok/boolean_linear.hpp>
#include <mbok/svid.hpp>

#include <string>
#include <vector>

#include "linear.hpp"

namespace tiny {

/// How a Boolean layer runs outside training.
enum class InferenceKernel { training_path, fused_float, int8 };

template <typename T>
class BoolLinear final : public Linear<T> {
 public:
  using Layer = mbok::BooleanLinear<T>;

  explicit BoolLinear(Layer layer) : layer_(std::move(layer)) {}

  Index in_features() const override { return Index(layer_.in_features()); }
  Index out_features() const override { return Index(layer_.out_features()); }

  void forward(const Mat<T>& x, Mat<T>& y, bool train) override {
    y.resize(x.rows(), out_features());
    if (train) x_ = x;
    if constexpr (std::is_same_v<T, float>) {
      if (!train && mode_ == InferenceKernel::fused_float) {
        // The library's float forward: the fused multi-kernel product.
        layer_.forward(x.data(), std::size_t(x.cols()), std::size_t(x.rows()), y.data(),
                       std::size_t(y.cols()));
        return;
      }
      if (!train && mode_ == InferenceKernel::int8) {
        // The library's int8 forward: weights repacked once (again after a change of the
        // bits), the layer's workspace reused across calls.
        layer_.forward_int8(x.data(), std::size_t(x.cols()), std::size_t(x.rows()), y.data(),
                            std::size_t(y.cols()));
        return;
      }
    }
    layer_.forward(x, y);
  }
  void backward(const Mat<T>& dy, Mat<T>& dx) override {
    dx = Mat<T>::Zero(dy.rows(), in_features());
    layer_.backward(x_, dy, dx, /*accumulate=*/true);
  }
  void zero_grad() override { layer_.zero_grad(); }
  /// The scales of every kernel: `<prefix>kernels.<k>.s_out` and `.s_in`, without decay.
  void parameters(Parameters<T>& out, const std::string& prefix) override {
    for (auto& p : layer_.parameters(prefix)) out.push_back(std::move(p));
  }
  void save(mbok::StateDict& dict, const std::string& prefix) const override {
    layer_.export_state(dict, prefix);
  }
  void load(const mbok::StateDict& dict, const std::string& prefix) override {
    layer_.import_state(dict, prefix);
  }
  Mat<T> dense_weight() const override { return layer_.weights().reconstruct(); }
  double bits_per_weight() const override { return layer_.weights().bits_per_weight(); }

  Layer& layer() { return layer_; }
  /// Copies of the trainable kernels' bits (to count flips against a snapshot).
  std::vector<mbok::BitMatrix> trainable_signs() const {
    std::vector<mbok::BitMatrix> out;
    for (std::size_t k : layer_.trainable_kernels()) out.push_back(layer_.weights().kernel(k));
    return out;
  }
  void set_inference_kernel(InferenceKernel mode) { mode_ = mode; }

 private:
  Layer layer_;
  Mat<T> x_;
  InferenceKernel mode_ = InferenceKernel::training_path;
};

/// Latent-weight baseline: W = sum_k sign(L_k) (.) s_out_k s_in_k^T where L_k is a float
/// latent matrix for trainable kernels and a frozen sign matrix otherwise. The gradient of
/// L_k is the straight-through one, dL/dsign(L_k) = Q_k.
template <typename T>
class LatentLinear final : public Linear<T> {
 public:
  /// From an SVID of `w`: kernel k's latent starts at the residual R_{k-1} whose sign is
  /// B_k (so the first forward equals the Boolean model's). `trainable[k]` picks kernels.
  LatentLinear(const Mat<T>& w, std::size_t num_kernels, const std::vector<bool>& trainable) {
    auto init = mbok::svid<T>(w, num_kernels);
    Mat<T> residual = w;
    for (std::size_t k = 0; k < num_kernels; ++k) {
      Kernel kern;
      kern.s_out = init.weights.s_out(k);
      kern.s_in = init.weights.s_in(k);
      kern.trainable = trainable.at(k);
      const Mat<T> signs = init.weights.kernel(k).to_signs().template cast<T>();
      kern.latent = kern.trainable ? residual : signs;
      residual -= (signs.array() * (kern.s_out * kern.s_in.transpose()).array()).matrix();
      kern.latent_grad = Mat<T>::Zero(kern.latent.rows(), kern.latent.cols());
      kern.g_out = Vec<T>::Zero(kern.s_out.size());
      kern.g_in = Vec<T>::Zero(kern.s_in.size());
      kernels_.push_back(std::move(kern));
    }
  }

  Index in_features() const override { return kernels_[0].s_in.size(); }
  Index out_features() const override { return kernels_[0].s_out.size(); }
  void forward(const Mat<T>& x, Mat<T>& y, bool train) override {
    w_ = dense_weight();
    y.noalias() = x * w_.transpose();
    if (train) x_ = x;
  }
  void backward(const Mat<T>& dy, Mat<T>& dx) override {
    const Mat<T> g = dy.transpose() * x_;  // dL/dW
    dx.noalias() = dy * w_;
    for (auto& k : kernels_) {
      const Mat<T> signs = sign_of(k.latent);
      const Mat<T> gs = g.array() * signs.array();
      k.g_out += gs * k.s_in;
      k.g_in += gs.transpose() * k.s_out;
      if (k.trainable) k.latent_grad.array() += g.array() * (k.s_out * k.s_in.transpose()).array();
    }
  }
  void zero_grad() override {
    for (auto& k : kernels_) {
      k.latent_grad.setZero();
      k.g_out.setZero();
      k.g_in.setZero();
    }
  }
  void parameters(Parameters<T>& out, const std::string& prefix) override {
    for (std::size_t i = 0; i < kernels_.size(); ++i) {
      auto& k = kernels_[i];
      const std::string pre = prefix + "kernels." + std::to_string(i);
      out.push_back(mbok::make_parameter(pre + ".s_out", k.s_out, k.g_out, false));
      out.push_back(mbok::make_parameter(pre + ".s_in", k.s_in, k.g_in, false));
    }
  }
  /// The signs of the trainable latent matrices, packed (to count sign changes).
  std::vector<mbok::BitMatrix> trainable_signs() const {
    std::vector<mbok::BitMatrix> out;
    for (const auto& k : kernels_)
      if (k.trainable) out.push_back(mbok::BitMatrix::pack(k.latent));
    return out;
  }
  /// The latent matrices (for their own Adam).
  void latent_parameters(Parameters<T>& out, const std::string& prefix) {
    for (std::size_t i = 0; i < kernels_.size(); ++i)
      if (kernels_[i].trainable)
        out.push_back(mbok::make_parameter(prefix + "kernels." + std::to_string(i) + ".latent",
                                           kernels_[i].latent, kernels_[i].latent_grad, false));
  }
  /// Saves the binarized layer (signs packed) in the BooleanLinear layout, plus the latents.
  void save(mbok::StateDict& dict, const std::string& prefix) const override {
    to_boolean().export_state(dict, prefix);
    for (std::size_t i = 0; i < kernels_.size(); ++i)
      if (kernels_[i].trainable)
        dict[prefix + "kernels." + std::to_string(i) + ".latent"] = mbok::Tensor::from(
            kernels_[i].latent.data(), {kernels_[i].latent.rows(), kernels_[i].latent.cols()});
  }
  void load(const mbok::StateDict& dict, const std::string& prefix) override {
    for (std::size_t i = 0; i < kernels_.size(); ++i) {
      auto& k = kernels_[i];
      const std::string pre = prefix + "kernels." + std::to_string(i);
      mbok::read_tensor(dict, pre + ".s_out", {k.s_out.size()}, k.s_out.data());
      mbok::read_tensor(dict, pre + ".s_in", {k.s_in.size()}, k.s_in.data());
      if (k.trainable)
        mbok::read_tensor(dict, pre + ".latent", {k.latent.rows(), k.latent.cols()},
                          k.latent.data());
    }
  }
  Mat<T> dense_weight() const override {
    Mat<T> w = Mat<T>::Zero(out_features(), in_features());
    for (const auto& k : kernels_)
      w.array() += sign_of(k.latent).array() * (k.s_out * k.s_in.transpose()).array();
    return w;
  }
  double bits_per_weight() const override { return double(kernels_.size()); }

  /// The binarized layer as a BooleanLinear (for fast inference and saving).
  mbok::BooleanLinear<T> to_boolean() const {
    mbok::MultiKernelWeights<T> w{static_cast<std::size_t>(out_features()),
                                  static_cast<std::size_t>(in_features())};
    for (const auto& k : kernels_) w.add_kernel(mbok::BitMatrix::pack(k.latent), k.s_out, k.s_in);
    return mbok::BooleanLinear<T>(std::move(w));
  }

 private:
  struct Kernel {
    Mat<T> latent, latent_grad;
    Vec<T> s_out, s_in, g_out, g_in;
    bool trainable = false;
  };
  static Mat<T> sign_of(const Mat<T>& m) {
    return m.unaryExpr([](T v) { return v < T(0) ? T(-1) : T(1); });
  }

  std::vector<Kernel> kernels_;
  Mat<T> x_, w_;
};

}  // namespace tiny
