#pragma once
/// \file
/// `BooleanLinear`: a linear layer whose weight is K Boolean kernels with rank-1 scales,
///
///     Y = sum_k ((X (.) s_in_k^T) B_k^T) (.) s_out_k^T + bias       (X: tokens x in, Y: tokens x
///     out)
///
/// with forward passes for float, int8 (quantized per token) and Boolean activations, and
/// the exact backward pass of method.md section 3 (dX, ds_out_k, ds_in_k, dbias and the
/// Boolean signal Q_k = (Z (.) s_out_k^T)^T (X (.) s_in_k^T) of each trainable kernel).
///
/// Matrices at the boundary are row-major, one token per row. `Scalar = float` runs every
/// product, and the Boolean optimizer's steps of its kernels, on the ISA chosen at construction
/// (`isa()`, `product_set()`); from K t >= `product_set().weight_product_min_work()` (64 on
/// AVX-512 and AVX2) its float forward and dX run as one float product over all kernels with
/// the weight rebuilt from the bits panel by panel (never stored); `Scalar = double` runs them
/// densely in double (for gradient checks and references).

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "activations.hpp"
#include "bit_matrix.hpp"
#include "detail/base/finite.hpp"
#include "detail/products/training.hpp"
#include "error.hpp"
#include "forward_float.hpp"
#include "forward_int8.hpp"
#include "isa.hpp"
#include "kernel_tensors.hpp"
#include "multi_kernel_weights.hpp"
#include "parallel.hpp"
#include "parameter.hpp"
#include "products.hpp"
#include "state_dict.hpp"
#include "svid.hpp"

namespace mbok {

namespace detail {

// The int8 inference state of a float `BooleanLinear`: the bits repacked for the table lookup
// (with the kernel versions and storage they came from) and the layer's own workspace.
struct Int8LayerState {
  std::mutex mutex;
  Int8PreparedWeights prepared;
  std::vector<std::uint64_t> versions;
  std::vector<const std::uint64_t*> data;
  std::size_t preparations = 0;
  Int8ForwardWorkspace workspace;
};

// Holds the state behind a pointer so the layer stays movable; a copied layer gets a fresh
// state (it repacks on its first int8 forward) instead of sharing or copying a mutex.
class Int8LayerCache {
 public:
  Int8LayerCache() : state_(std::make_unique<Int8LayerState>()) {}
  Int8LayerCache(const Int8LayerCache&) : state_(std::make_unique<Int8LayerState>()) {}
  Int8LayerCache& operator=(const Int8LayerCache& other) {
    if (this != &other) state_ = std::make_unique<Int8LayerState>();
    return *this;
  }
  Int8LayerCache(Int8LayerCache&&) noexcept = default;
  Int8LayerCache& operator=(Int8LayerCache&&) noexcept = default;
  ~Int8LayerCache() = default;

  // A moved-from layer gets a new state here (moved-from objects are not shared by threads).
  Int8LayerState& state() {
    if (!state_) state_ = std::make_unique<Int8LayerState>();
    return *state_;
  }

 private:
  std::unique_ptr<Int8LayerState> state_;
};

}  // namespace detail

/// Options of `BooleanLinear`.
struct BooleanLinearOptions {
  /// Kernels whose bits train (get a Boolean signal Q and a `BooleanParameter`); negative
  /// values count from the end (-1 is the last kernel, the default of method.md). An index
  /// out of range or named twice makes the constructor throw `InvalidArgument`.
  std::vector<long> trainable_kernels{-1};
  /// Whether `parameters()` lists the scale vectors (for AdamW).
  bool train_scales = true;
  /// Whether `parameters()` lists the bias (when the layer has one).
  bool train_bias = true;
};

/// Former name of `BinaryActivations` (activations.hpp), the one type for packed signs with
/// per-token scales.
using BooleanActivations [[deprecated("use BinaryActivations")]] = BinaryActivations;

/// A multi-kernel Boolean linear layer. See the file comment for the math.
template <typename Scalar = float>
class BooleanLinear {
  static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double>,
                "BooleanLinear<Scalar>: Scalar is float or double");

 public:
  using RowMatrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;
  using Weights = MultiKernelWeights<Scalar>;

  /// A layer over `weights` (K >= 1) with no bias, using `kernels` (the active ISA's by
  /// default). Throws `InvalidArgument` for K = 0 or a bad trainable set.
  explicit BooleanLinear(Weights weights, BooleanLinearOptions options = {},
                         ProductSet products = ProductSet())
      : weights_(std::move(weights)), options_(std::move(options)), products_(products) {
    init();
  }

  /// A layer with a bias (out_features entries, finite).
  BooleanLinear(Weights weights, Vector bias, BooleanLinearOptions options = {},
                ProductSet products = ProductSet())
      : weights_(std::move(weights)), options_(std::move(options)), products_(products) {
    detail::require(static_cast<std::size_t>(bias.size()) == weights_.out_features(),
                    "BooleanLinear: bias must have ", weights_.out_features(), " entries, got ",
                    bias.size());
    detail::require(bias.allFinite(), "BooleanLinear: bias is not finite");
    bias_ = std::move(bias);
    has_bias_ = true;
    init();
  }

  /// A layer initialised from a dense weight (out x in) by successive residual SVID into
  /// `num_kernels` kernels (svid.hpp), with an optional bias.
  template <typename Derived>
  static BooleanLinear from_dense(const Eigen::MatrixBase<Derived>& w, std::size_t num_kernels,
                                  std::optional<Vector> bias = std::nullopt,
                                  BooleanLinearOptions options = {},
                                  const SvidOptions& svid_options = {},
                                  ProductSet products = ProductSet()) {
    auto init = svid<Scalar>(w, num_kernels, svid_options);
    if (bias)
      return BooleanLinear(std::move(init.weights), std::move(*bias), std::move(options), products);
    return BooleanLinear(std::move(init.weights), std::move(options), products);
  }

  // ---- shape, weights, options --------------------------------------------------------

  std::size_t in_features() const noexcept { return weights_.in_features(); }
  std::size_t out_features() const noexcept { return weights_.out_features(); }
  std::size_t num_kernels() const noexcept { return weights_.num_kernels(); }
  /// The ISA whose Boolean kernels this layer runs (chosen at construction).
  Isa isa() const noexcept { return products_.isa(); }
  const ProductSet& product_set() const noexcept { return products_; }
  /// Former name of `product_set()`.
  const ProductSet& kernel_set() const noexcept { return product_set(); }
  const BooleanLinearOptions& options() const noexcept { return options_; }

  const Weights& weights() const noexcept { return weights_; }
  /// Kernel k's bits; writable so that an optimizer (or a test) can flip them.
  BitMatrix& kernel(std::size_t k) { return weights_.kernel(k); }
  const BitMatrix& kernel(std::size_t k) const { return weights_.kernel(k); }
  Vector& s_out(std::size_t k) { return weights_.s_out(k); }
  const Vector& s_out(std::size_t k) const { return weights_.s_out(k); }
  Vector& s_in(std::size_t k) { return weights_.s_in(k); }
  const Vector& s_in(std::size_t k) const { return weights_.s_in(k); }
  bool has_bias() const noexcept { return has_bias_; }
  /// The bias (out_features entries; empty without a bias).
  Vector& bias() noexcept { return bias_; }
  const Vector& bias() const noexcept { return bias_; }

  /// True when kernel k's bits train. Throws `InvalidArgument` for k >= K.
  bool trainable(std::size_t k) const {
    check_kernel(k);
    return trainable_[k];
  }
  /// The trainable kernels, ascending.
  std::vector<std::size_t> trainable_kernels() const {
    std::vector<std::size_t> out;
    for (std::size_t k = 0; k < trainable_.size(); ++k)
      if (trainable_[k]) out.push_back(k);
    return out;
  }

  // ---- forward, float activations -------------------------------------------------------

  /// Y (t x out) = layer(X) for X (t x in). Throws `InvalidArgument` for a wrong width or a
  /// non-finite input.
  RowMatrix forward(const Eigen::Ref<const RowMatrix>& x) const {
    RowMatrix y(x.rows(), static_cast<Eigen::Index>(out_features()));
    forward(x, y);
    return y;
  }
  /// Writes layer(X) into y (t x out).
  void forward(const Eigen::Ref<const RowMatrix>& x, Eigen::Ref<RowMatrix> y) const {
    check_cols(x, in_features(), "forward: input");
    detail::require(y.rows() == x.rows() && static_cast<std::size_t>(y.cols()) == out_features(),
                    "BooleanLinear forward: output must be ", x.rows(), " x ", out_features(),
                    ", got ", y.rows(), " x ", y.cols());
    forward(x.data(), static_cast<std::size_t>(x.outerStride()), static_cast<std::size_t>(x.rows()),
            y.data(), static_cast<std::size_t>(y.outerStride()));
  }
  /// Raw form: x is t rows of in_features values, `ldx` apart; y is t rows of out_features
  /// values, `ldy` apart. Throws `InvalidArgument` for short strides, null pointers or a
  /// non-finite input.
  void forward(const Scalar* x, std::size_t ldx, std::size_t t, Scalar* y, std::size_t ldy) const {
    check_raw(x, ldx, in_features(), t, "forward: input");
    check_raw(y, ldy, out_features(), t, "forward: output");
    if (t == 0) return;
    const ConstMap xm = cmap(x, t, in_features(), ldx);
    detail::require(detail::all_finite(x, t, in_features(), ldx),
                    "BooleanLinear forward: input is not finite");
    Map ym = map(y, t, out_features(), ldy);
    if constexpr (std::is_same_v<Scalar, float>) {
      // The fused forward picks the weight products or the sign products (forward_float.hpp).
      multi_kernel_forward(weights_, x, ldx, t, y, ldy, products_);
      if (has_bias_) ym.rowwise() += bias_.transpose();
      return;
    }
    set_bias_rows(ym);
    RowMatrix xs(xm.rows(), xm.cols()), p(xm.rows(), ym.cols());
    for (std::size_t k = 0; k < num_kernels(); ++k) {
      xs = xm.array().rowwise() * weights_.s_in(k).transpose().array();
      sign_product(k, xs, p);
      ym.array() += p.array().rowwise() * weights_.s_out(k).transpose().array();
    }
  }

  // ---- forward, int8 activations (float layers) ------------------------------------------

  /// Fast inference: the fused multi-kernel int8 forward of forward_int8.hpp. For each kernel
  /// the scaled input X (.) s_in_k^T is quantized to int8 per token (`quantize_activations`:
  /// symmetric, scale = max |.| / 127, round to nearest, halves away from zero), multiplied by B_k
  /// in exact int32 (table lookup for few tokens, the masked product for many:
  /// `Int8Algorithm::automatic`), rescaled and summed over kernels; then the bias is added. Without
  /// a bias the result equals `multi_kernel_forward_int8(weights(), x, ...)` bit for bit; it
  /// differs from `forward` by the quantization error only. X is t x in, the result t x out.
  ///
  /// The bits are repacked for the table lookup once (`prepare_int8`) and again only after a
  /// kernel's bits change (detected by `BitMatrix::version()`, so optimizer steps, `flip`,
  /// `set_bit` and `import_state` are seen); scales and bias are read on every call. The
  /// quantized input lives in a workspace held by the layer: after the first call of a given
  /// t, the raw form allocates nothing.
  ///
  /// Errors: `InvalidArgument` for a wrong width, short strides, null pointers, a non-finite
  /// input, or in_features > kMaxInt8Features (exact int32 limit).
  ///
  /// Thread-safety: calls without a workspace argument share the layer's workspace and are
  /// serialized on a mutex (safe, but they do not run concurrently); pass an
  /// `Int8ForwardWorkspace` per thread to run concurrently. Writing the bits or scales while a
  /// forward runs is a data race.
  RowMatrix forward_int8(const Eigen::Ref<const RowMatrix>& x) const {
    check_cols(x, in_features(), "forward_int8: input");
    RowMatrix y(x.rows(), static_cast<Eigen::Index>(out_features()));
    forward_int8(x.data(), static_cast<std::size_t>(x.outerStride()),
                 static_cast<std::size_t>(x.rows()), y.data(), out_features());
    return y;
  }
  /// Raw form of `forward_int8`: x is t rows of in_features floats, `ldx` apart; y is t rows of
  /// out_features floats, `ldy` apart (overwritten). Uses the layer's workspace.
  void forward_int8(const Scalar* x, std::size_t ldx, std::size_t t, Scalar* y,
                    std::size_t ldy) const {
    static_assert(std::is_same_v<Scalar, float>, "forward_int8 needs BooleanLinear<float>");
    if (!check_int8_call(x, ldx, t, y, ldy)) return;
    detail::Int8LayerState& st = int8_.state();
    const std::lock_guard<std::mutex> lock(st.mutex);
    const Int8PreparedWeights& pw = prepared_int8_locked(st);
    run_int8(pw, x, ldx, t, y, ldy, st.workspace);
  }
  /// Raw form with a caller's workspace (reused across calls, one per concurrent caller):
  /// calls with distinct workspaces run concurrently.
  void forward_int8(const Scalar* x, std::size_t ldx, std::size_t t, Scalar* y, std::size_t ldy,
                    Int8ForwardWorkspace& workspace) const {
    static_assert(std::is_same_v<Scalar, float>, "forward_int8 needs BooleanLinear<float>");
    if (!check_int8_call(x, ldx, t, y, ldy)) return;
    detail::Int8LayerState& st = int8_.state();
    const Int8PreparedWeights* pw = nullptr;
    {
      // Only the check (and a repack after a change of the bits) is serialized; the prepared
      // weights are read-only afterwards.
      const std::lock_guard<std::mutex> lock(st.mutex);
      pw = &prepared_int8_locked(st);
    }
    run_int8(*pw, x, ldx, t, y, ldy, workspace);
  }

  /// Repacks the bits for `forward_int8` now if they changed since the last repack (the
  /// forward does it on demand otherwise). Throws `InvalidArgument` for in_features >
  /// kMaxInt8Features. Thread-safe.
  void prepare_int8() const {
    static_assert(std::is_same_v<Scalar, float>, "prepare_int8 needs BooleanLinear<float>");
    detail::Int8LayerState& st = int8_.state();
    const std::lock_guard<std::mutex> lock(st.mutex);
    prepared_int8_locked(st);
  }
  /// How many times the bits were repacked for `forward_int8` (diagnostics and tests).
  std::size_t int8_preparations() const {
    detail::Int8LayerState& st = int8_.state();
    const std::lock_guard<std::mutex> lock(st.mutex);
    return st.preparations;
  }

  // ---- forward, Boolean activations (float layers) ----------------------------------------

  /// Fully Boolean forward (XNOR / popcount): activations x_i ~ a_i sign(x_i) (see
  /// `binarize_activations`), and
  ///     y_i = a_i * sum_k mean(s_in_k) * s_out_k (.) (B_k sign(x_i)) + bias,
  /// i.e. each kernel's input scale is replaced by its mean, since a per-feature scale cannot
  /// ride on packed signs; exact when every s_in_k is constant (scales folded upstream).
  /// `act.signs` must be tokens x in_features; y is tokens x out_features.
  /// Throws `InvalidArgument` for mismatched shapes or non-finite scales.
  RowMatrix forward_boolean(const BinaryActivations& act) const {
    static_assert(std::is_same_v<Scalar, float>, "forward_boolean needs BooleanLinear<float>");
    detail::require(act.bits.cols() == in_features(), "BooleanLinear forward_boolean: input has ",
                    act.bits.cols(), " features, layer expects ", in_features());
    detail::require(act.scale.size() == act.bits.rows(),
                    "BooleanLinear forward_boolean: ", act.bits.rows(), " tokens but ",
                    act.scale.size(), " scales");
    const Eigen::Map<const Eigen::VectorXf> scales(act.scale.data(),
                                                   static_cast<Eigen::Index>(act.scale.size()));
    detail::require(scales.allFinite(), "BooleanLinear forward_boolean: scales not finite");
    const std::size_t t = act.bits.rows(), m = out_features();
    RowMatrix y(static_cast<Eigen::Index>(t), static_cast<Eigen::Index>(m));
    if (t == 0) return y;
    Map ym = map(y.data(), t, m, m);
    set_bias_rows(ym);
    std::vector<std::int32_t> acc(
        detail::mul_or_throw({t, m}, "BooleanLinear forward_boolean: ", t, " tokens x ", m));
    for (std::size_t k = 0; k < num_kernels(); ++k) {
      products_.xnor_gemm(act.bits.view(), weights_.kernel_view(k), acc.data(), m);
      const Eigen::Map<
          const Eigen::Matrix<std::int32_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>
          accm(acc.data(), static_cast<Eigen::Index>(t), static_cast<Eigen::Index>(m));
      const float c = weights_.s_in(k).mean();
      ym.array() += ((accm.template cast<float>().array().colwise() * scales.array()).rowwise() *
                     weights_.s_out(k).transpose().array()) *
                    c;
    }
    return y;
  }

  // ---- backward ------------------------------------------------------------------------

  /// Backward pass for the input `x` (t x in) of a forward call and `dy` = dL/dY (t x out).
  /// Writes dL/dX into `dx` (t x in; pass an empty 0 x 0 matrix to skip it) and stores
  /// dL/ds_out_k, dL/ds_in_k, dL/dbias and Q_k of each trainable kernel in the layer
  /// (`grad_s_out`, `grad_s_in`, `grad_bias`, `signal`). With `accumulate`, all of these are
  /// added to instead of overwritten (several micro-batches, or a layer used twice).
  /// Throws `InvalidArgument` (before writing anything) for mismatched shapes or non-finite
  /// x or dy.
  ///
  /// Threads: dX, dL/ds_out and Q are the same bytes on any number of threads (each element is
  /// summed by one thread in a fixed order); dL/ds_in (Scalar = float) is summed per chunk of
  /// rows and the chunks' sums are added in row order, so it may differ in the last bits with
  /// the thread count (the chunks depend on it), within float rounding of the sum: each is
  /// within 1e-5 of the largest |entry| of the exact gradient (tests/unit/layer/
  /// threads_training_test.cpp).
  void backward(const Eigen::Ref<const RowMatrix>& x, const Eigen::Ref<const RowMatrix>& dy,
                Eigen::Ref<RowMatrix> dx, bool accumulate = false) {
    const bool want_dx = dx.size() > 0;
    if (want_dx)
      detail::require(dx.rows() == x.rows() && static_cast<std::size_t>(dx.cols()) == in_features(),
                      "BooleanLinear backward: dx must be ", x.rows(), " x ", in_features(),
                      ", got ", dx.rows(), " x ", dx.cols());
    check_cols(x, in_features(), "backward: input");
    check_cols(dy, out_features(), "backward: output gradient");
    detail::require(dy.rows() == x.rows(), "BooleanLinear backward: output gradient has ",
                    dy.rows(), " tokens, input has ", x.rows());
    backward(x.data(), static_cast<std::size_t>(x.outerStride()),
             static_cast<std::size_t>(x.rows()), dy.data(),
             static_cast<std::size_t>(dy.outerStride()), want_dx ? dx.data() : nullptr,
             want_dx ? static_cast<std::size_t>(dx.outerStride()) : in_features(), accumulate);
  }
  /// Backward without dL/dX (the layer's own gradients only).
  void backward(const Eigen::Ref<const RowMatrix>& x, const Eigen::Ref<const RowMatrix>& dy,
                bool accumulate = false) {
    RowMatrix none;
    backward(x, dy, none, accumulate);
  }
  /// Raw form: x (t rows, `ldx` apart), dy (t rows, `lddy` apart), dx (t rows, `lddx` apart,
  /// or null to skip).
  void backward(const Scalar* x, std::size_t ldx, std::size_t t, const Scalar* dy, std::size_t lddy,
                Scalar* dx, std::size_t lddx, bool accumulate = false) {
    check_raw(x, ldx, in_features(), t, "backward: input");
    check_raw(dy, lddy, out_features(), t, "backward: output gradient");
    if (dx != nullptr) check_raw(dx, lddx, in_features(), t, "backward: input gradient");
    const std::size_t n = in_features(), m = out_features();
    const ConstMap xm = cmap(x, t, n, ldx);
    const ConstMap zm = cmap(dy, t, m, lddy);
    detail::require(detail::all_finite(x, t, n, ldx),
                    "BooleanLinear backward: input is not finite");
    detail::require(detail::all_finite(dy, t, m, lddy),
                    "BooleanLinear backward: output gradient is not finite");
    ensure_signals();
    if (!accumulate) zero_grad();
    if (t == 0) return;
    if (dx != nullptr && !accumulate) map(dx, t, n, lddx).setZero();
    if (has_bias_) grad_bias_ += zm.colwise().sum().transpose();
    if constexpr (std::is_same_v<Scalar, float>) {
      backward_from_product(xm, zm, dx, lddx, accumulate);
      return;
    }
    // The double layer keeps the per-kernel products: the reference of the float path.
    RowMatrix xs(xm.rows(), xm.cols()), zs(zm.rows(), zm.cols()), p(zm.rows(), zm.cols()),
        g(xm.rows(), xm.cols());
    for (std::size_t k = 0; k < num_kernels(); ++k) {
      xs = xm.array().rowwise() * weights_.s_in(k).transpose().array();
      zs = zm.array().rowwise() * weights_.s_out(k).transpose().array();
      sign_product(k, xs, p);             // p = Xs B^T        (t x m)
      sign_product_transposed(k, zs, g);  // g = Zs B          (t x n)
      grad_s_out_[k] += (zm.array() * p.array()).colwise().sum().transpose().matrix();
      grad_s_in_[k] += (xm.array() * g.array()).colwise().sum().transpose().matrix();
      if (dx != nullptr)
        map(dx, t, n, lddx).array() += g.array().rowwise() * weights_.s_in(k).transpose().array();
      if (trainable_[k]) signals_[k].noalias() += zs.transpose() * xs;
    }
  }

  /// Sets every stored gradient and signal to zero.
  void zero_grad() {
    for (auto& g : grad_s_out_) g.setZero();
    for (auto& g : grad_s_in_) g.setZero();
    grad_bias_.setZero();
    for (auto& q : signals_)
      if (q.size() > 0) q.setZero();
  }

  /// dL/ds_out_k (out_features) from the last `backward`.
  const Vector& grad_s_out(std::size_t k) const { return grad_s_out_.at(check_kernel(k)); }
  /// dL/ds_in_k (in_features) from the last `backward`.
  const Vector& grad_s_in(std::size_t k) const { return grad_s_in_.at(check_kernel(k)); }
  /// dL/dbias (out_features; empty without a bias).
  const Vector& grad_bias() const noexcept { return grad_bias_; }
  /// The Boolean signal Q_k = dL/dB_k (out x in, row-major) of trainable kernel k.
  /// Throws `InvalidArgument` when kernel k is frozen.
  const RowMatrix& signal(std::size_t k) const {
    detail::require(trainable(k), "BooleanLinear: kernel ", k, " is frozen and has no signal");
    return signals_[k];
  }

  // ---- optimizer interface ---------------------------------------------------------------

  /// The full-precision parameters for AdamW: `<prefix>kernels.<k>.s_out`,
  /// `<prefix>kernels.<k>.s_in` (when `train_scales`) and `<prefix>bias` (when `train_bias`
  /// and the layer has one), none with weight decay. Pointers stay valid while the layer
  /// lives (moving the layer keeps them).
  std::vector<Parameter> parameters(const std::string& prefix = "") {
    static_assert(std::is_same_v<Scalar, float>, "optimizers step BooleanLinear<float>");
    std::vector<Parameter> out;
    if (options_.train_scales)
      for (std::size_t k = 0; k < num_kernels(); ++k) {
        out.push_back(make_parameter(kernel_tensor_name(prefix, k, KernelTensor::s_out),
                                     weights_.s_out(k), grad_s_out_[k], false));
        out.push_back(make_parameter(kernel_tensor_name(prefix, k, KernelTensor::s_in),
                                     weights_.s_in(k), grad_s_in_[k], false));
      }
    if (options_.train_bias && has_bias_)
      out.push_back(make_parameter(prefix + "bias", bias_, grad_bias_, false));
    return out;
  }

  /// The trainable kernels for the Boolean optimizer, `<prefix>kernels.<k>.bits`, each with
  /// its signal Q_k and this layer's ISA (the optimizer steps them on it).
  std::vector<BooleanParameter> boolean_parameters(const std::string& prefix = "") {
    static_assert(std::is_same_v<Scalar, float>, "optimizers step BooleanLinear<float>");
    ensure_signals();
    std::vector<BooleanParameter> out;
    for (std::size_t k = 0; k < num_kernels(); ++k) {
      if (!trainable_[k]) continue;
      BooleanParameter p;
      p.name = kernel_tensor_name(prefix, k, KernelTensor::bits);
      p.bits = &weights_.kernel(k);
      p.signal = signals_[k].data();
      p.signal_ld = in_features();
      p.isa = isa();
      out.push_back(std::move(p));
    }
    return out;
  }

  // ---- state -----------------------------------------------------------------------------

  /// Saves the layer under `prefix`: `kernels.<k>.bits` (U8, [out, padded row bytes]: the
  /// packed rows of the bit-layout contract, little-endian words, padding zero),
  /// `kernels.<k>.s_out` ([out]), `kernels.<k>.s_in` ([in]) and `bias` ([out], when present);
  /// scales in F32 for float layers, F64 for double ones.
  void export_state(StateDict& dict, const std::string& prefix = "") const {
    const std::size_t m = out_features(), row_bytes = padded_row_words(in_features()) * 8;
    for (std::size_t k = 0; k < num_kernels(); ++k) {
      const BitMatrixView b = weights_.kernel_view(k);
      Tensor bits;
      bits.dtype = DType::u8;
      bits.shape = {static_cast<std::int64_t>(m), static_cast<std::int64_t>(row_bytes)};
      bits.bytes.resize(m * row_bytes);
      for (std::size_t i = 0; i < m; ++i)  // little-endian words: the words are the bytes
        std::memcpy(bits.bytes.data() + i * row_bytes, b.row(i), row_bytes);
      dict[kernel_tensor_name(prefix, k, KernelTensor::bits)] = std::move(bits);
      dict[kernel_tensor_name(prefix, k, KernelTensor::s_out)] =
          Tensor::from_eigen(weights_.s_out(k));
      dict[kernel_tensor_name(prefix, k, KernelTensor::s_in)] =
          Tensor::from_eigen(weights_.s_in(k));
    }
    if (has_bias_) dict[prefix + "bias"] = Tensor::from_eigen(bias_);
  }

  /// Replaces the weights (and bias) with those saved under `prefix` by `export_state` for a
  /// layer of the same shape, K and bias presence. Checks everything first: throws
  /// `FormatError` naming the tensor (and changes nothing) on a missing tensor, a wrong
  /// dtype or shape, a set padding bit or a non-finite scale.
  void import_state(const StateDict& dict, const std::string& prefix = "") {
    detail::require_format(count_kernels(dict, prefix) == num_kernels(), "state: '", prefix,
                           "' holds ", count_kernels(dict, prefix), " kernels, layer has ",
                           num_kernels());
    detail::require_format(has_bias_ == (dict.count(prefix + "bias") > 0), "state: '", prefix,
                           "bias' is ", has_bias_ ? "missing" : "present",
                           has_bias_ ? "" : " but the layer has no bias");
    Weights loaded = read_weights(dict, prefix, out_features(), in_features(), num_kernels());
    Vector bias;
    if (has_bias_) bias = read_vector(dict, prefix + "bias", out_features());
    // Assign element by element: registered parameters keep pointing at the same objects.
    for (std::size_t k = 0; k < num_kernels(); ++k) {
      weights_.kernel(k) = std::move(loaded.kernel(k));
      weights_.s_out(k) = loaded.s_out(k);
      weights_.s_in(k) = loaded.s_in(k);
    }
    if (has_bias_) bias_ = bias;
  }

  /// A layer built from state saved by `export_state` (K and the shape are read from it).
  static BooleanLinear from_state(const StateDict& dict, const std::string& prefix = "",
                                  BooleanLinearOptions options = {},
                                  ProductSet products = ProductSet()) {
    const std::size_t k_count = count_kernels(dict, prefix);
    const std::string bits0 = kernel_tensor_name(prefix, 0, KernelTensor::bits);
    const std::string s_out0 = kernel_tensor_name(prefix, 0, KernelTensor::s_out);
    const std::string s_in0 = kernel_tensor_name(prefix, 0, KernelTensor::s_in);
    detail::require_format(k_count > 0, "state: no tensor '", bits0, "'");
    const auto s_out = dict.find(s_out0);
    const auto s_in = dict.find(s_in0);
    detail::require_format(
        s_out != dict.end() && s_out->second.shape.size() == 1 && s_out->second.shape[0] > 0,
        "state: missing or malformed '", s_out0, "'");
    detail::require_format(
        s_in != dict.end() && s_in->second.shape.size() == 1 && s_in->second.shape[0] > 0,
        "state: missing or malformed '", s_in0, "'");
    const auto m = static_cast<std::size_t>(s_out->second.shape[0]);
    const auto n = static_cast<std::size_t>(s_in->second.shape[0]);
    Weights w = read_weights(dict, prefix, m, n, k_count);
    if (dict.count(prefix + "bias"))
      return BooleanLinear(std::move(w), read_vector(dict, prefix + "bias", m), std::move(options),
                           products);
    return BooleanLinear(std::move(w), std::move(options), products);
  }

 private:
  using Map = Eigen::Map<RowMatrix, 0, Eigen::OuterStride<>>;
  using ConstMap = Eigen::Map<const RowMatrix, 0, Eigen::OuterStride<>>;

  static Map map(Scalar* p, std::size_t rows, std::size_t cols, std::size_t ld) {
    return Map(p, static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols),
               Eigen::OuterStride<>(static_cast<Eigen::Index>(ld)));
  }
  static ConstMap cmap(const Scalar* p, std::size_t rows, std::size_t cols, std::size_t ld) {
    return ConstMap(p, static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols),
                    Eigen::OuterStride<>(static_cast<Eigen::Index>(ld)));
  }

  void init() {
    const std::size_t k_count = weights_.num_kernels();
    detail::require(k_count > 0, "BooleanLinear: needs at least one kernel, got K = 0");
    trainable_.assign(k_count, false);
    for (long idx : options_.trainable_kernels) {
      const long resolved = idx < 0 ? idx + static_cast<long>(k_count) : idx;
      detail::require(resolved >= 0 && resolved < static_cast<long>(k_count),
                      "BooleanLinear: trainable kernel ", idx, " does not exist (K = ", k_count,
                      ")");
      detail::require(!trainable_[static_cast<std::size_t>(resolved)],
                      "BooleanLinear: trainable kernel ", idx, " named twice");
      trainable_[static_cast<std::size_t>(resolved)] = true;
    }
    for (std::size_t k = 0; k < k_count; ++k) {
      grad_s_out_.push_back(Vector::Zero(static_cast<Eigen::Index>(out_features())));
      grad_s_in_.push_back(Vector::Zero(static_cast<Eigen::Index>(in_features())));
    }
    if (has_bias_) grad_bias_ = Vector::Zero(static_cast<Eigen::Index>(out_features()));
    signals_.resize(k_count);
  }

  // Q_k is m x n floats: allocated on first use only, so inference layers never pay for it.
  void ensure_signals() {
    for (std::size_t k = 0; k < num_kernels(); ++k)
      if (trainable_[k] && signals_[k].size() == 0)
        signals_[k] = RowMatrix::Zero(static_cast<Eigen::Index>(out_features()),
                                      static_cast<Eigen::Index>(in_features()));
  }

  std::size_t check_kernel(std::size_t k) const {
    detail::require(k < num_kernels(), "BooleanLinear: kernel ", k,
                    " does not exist (K = ", num_kernels(), ")");
    return k;
  }

  template <typename M>
  static void check_cols(const M& x, std::size_t cols, const char* what) {
    detail::require(static_cast<std::size_t>(x.cols()) == cols, "BooleanLinear ", what, " has ",
                    x.cols(), " columns, expected ", cols);
  }
  static void check_raw(const Scalar* p, std::size_t ld, std::size_t cols, std::size_t t,
                        const char* what) {
    detail::require(ld >= cols, "BooleanLinear ", what, ": stride ", ld, " < ", cols, " columns");
    detail::require(t == 0 || p != nullptr, "BooleanLinear ", what, ": null pointer");
    detail::require_addressable(t, ld, cols, sizeof(Scalar), "BooleanLinear ", what);
  }

  void set_bias_rows(Map& y) const {
    if (has_bias_)
      y.rowwise() = bias_.transpose();
    else
      y.setZero();
  }

  // Shared checks of the int8 forward; false when there is nothing to compute (t = 0).
  bool check_int8_call(const Scalar* x, std::size_t ldx, std::size_t t, const Scalar* y,
                       std::size_t ldy) const {
    check_raw(x, ldx, in_features(), t, "forward_int8: input");
    check_raw(y, ldy, out_features(), t, "forward_int8: output");
    detail::require(in_features() <= kMaxInt8Features,
                    "BooleanLinear forward_int8: ", in_features(),
                    " input features exceed the exact int32 limit of ", kMaxInt8Features);
    return t > 0;
  }

  // The prepared weights, repacked when a kernel's bits changed; st.mutex is held.
  const Int8PreparedWeights& prepared_int8_locked(detail::Int8LayerState& st) const {
    const std::size_t k_count = num_kernels();
    bool fresh = st.versions.size() == k_count;
    for (std::size_t k = 0; fresh && k < k_count; ++k)
      fresh =
          st.versions[k] == weights_.kernel(k).version() && st.data[k] == weights_.kernel(k).data();
    if (!fresh) {
      st.versions.clear();  // stays stale if the repack throws
      st.prepared = Int8PreparedWeights(weights_, products_);
      st.data.resize(k_count);
      for (std::size_t k = 0; k < k_count; ++k) st.data[k] = weights_.kernel(k).data();
      st.versions.resize(k_count);
      for (std::size_t k = 0; k < k_count; ++k) st.versions[k] = weights_.kernel(k).version();
      ++st.preparations;
    }
    return st.prepared;
  }

  void run_int8(const Int8PreparedWeights& pw, const Scalar* x, std::size_t ldx, std::size_t t,
                Scalar* y, std::size_t ldy, Int8ForwardWorkspace& ws) const {
    try {
      // check_int8_call was this call's entrance (x, y, strides, the int32 limit) and pw is
      // this layer's own repack, so the fused forward runs on trusted operands. The quantizer
      // checks every scaled input on its way (no separate pass over x).
      detail::Int8Forward::run(weights_, pw, x, ldx, t, y, ldy, ws,
                               detail::int8_uses_lut(pw, t, Int8Algorithm::automatic));
    } catch (const InvalidArgument&) {
      detail::require(detail::all_finite(x, t, in_features(), ldx),
                      "BooleanLinear forward_int8: input is not finite");
      throw;
    }
    if (has_bias_) map(y, t, out_features(), ldy).rowwise() += bias_.transpose();
  }

  // The float backward. Every kernel's scale gradients and signal follow elementwise from one
  // dense product P = Z^T X (m x n), the product the signal needs anyway:
  //   Q_k = P (.) s_out_k s_in_k^T,
  //   ds_out_k,i = sum_j P_ij B_k,ij s_in_k,j,   ds_in_k,j = sum_i P_ij B_k,ij s_out_k,i,
  // which replaces a sign product per kernel (and the scaled copies of X) by one pass over P
  // and the bits. dX = sum_k ((Z (.) s_out_k^T) B_k) (.) s_in_k^T keeps a sign product per
  // kernel for few tokens; from K t >= the table's weight_product_min_work on it is one float
  // product with W's panels rebuilt from the bits and scales (nothing of W outlives the call, so
  // changed bits or scales are always seen). Sums run in a different order than the per-kernel
  // form: equal within float rounding (the float-versus-double backward tests bound the
  // difference).
  void backward_from_product(const ConstMap& xm, const ConstMap& zm, Scalar* dx, std::size_t lddx,
                             bool accumulate) {
    const std::size_t t = static_cast<std::size_t>(xm.rows()), n = in_features(),
                      m = out_features(), k_count = num_kernels();
    // P goes straight into the last trainable kernel's signal when that is overwritten (its
    // pass runs last and scales P in place), so a step holds no m x n buffer besides the
    // signals; otherwise into a buffer that lives for this call only.
    std::size_t in_place = k_count;
    if (!accumulate)
      for (std::size_t k = 0; k < k_count; ++k)
        if (trainable_[k]) in_place = k;
    RowMatrix buffer;
    RowMatrix* product = &buffer;
    if (in_place < k_count)
      product = &signals_[in_place];
    else
      buffer.resize(static_cast<Eigen::Index>(m), static_cast<Eigen::Index>(n));
    const detail::ProductTable& table = products_.table();
    detail::gemm_tn_f32(table, zm.data(), static_cast<std::size_t>(zm.outerStride()), xm.data(),
                        static_cast<std::size_t>(xm.outerStride()), t, m, n, product->data(), n);
    // The in-place kernel last; the others in order.
    std::vector<std::size_t> order;
    for (std::size_t step = 0; step < k_count; ++step) {
      std::size_t k = step;
      if (in_place < k_count)
        k = step < in_place ? step : (step + 1 < k_count ? step + 1 : in_place);
      order.push_back(k);
    }
    // One pass over P for all kernels.
    std::vector<float*> ds_out(k_count), ds_in(k_count), q(k_count, nullptr);
    const std::unique_ptr<bool[]> add_q(new bool[k_count]);
    for (std::size_t k = 0; k < k_count; ++k) {
      ds_out[k] = grad_s_out_[k].data();
      ds_in[k] = grad_s_in_[k].data();
      if (trainable_[k]) q[k] = signals_[k].data();
      add_q[k] = q[k] != product->data();
    }
    detail::signal_pass(table, weights_, order, product->data(), ds_out.data(), ds_in.data(),
                        q.data(), add_q.get());
    if (dx == nullptr) return;
    if (detail::uses_weight_products(table, weights_, t)) {
      detail::weight_backward_dx_f32(table, weights_, zm.data(),
                                     static_cast<std::size_t>(zm.outerStride()), t, dx, lddx);
      return;
    }
    Map dxm = map(dx, t, n, lddx);
    RowMatrix zs(zm.rows(), zm.cols()), g(xm.rows(), xm.cols());
    for (std::size_t k = 0; k < k_count; ++k) {
      zs = zm.array().rowwise() * weights_.s_out(k).transpose().array();
      sign_product_transposed(k, zs, g);  // g = Zs B (t x n)
      dxm.array() += g.array().rowwise() * weights_.s_in(k).transpose().array();
    }
  }

  // p (t x m) = xs (t x n) B_k^T.
  void sign_product(std::size_t k, const RowMatrix& xs, RowMatrix& p) const {
    if constexpr (std::is_same_v<Scalar, float>) {
      products_.sign_gemm(xs.data(), static_cast<std::size_t>(xs.cols()),
                          static_cast<std::size_t>(xs.rows()), weights_.kernel_view(k), p.data(),
                          static_cast<std::size_t>(p.cols()));
    } else {
      p.noalias() = xs * dense_signs(k).transpose();
    }
  }
  // g (t x n) = zs (t x m) B_k.
  void sign_product_transposed(std::size_t k, const RowMatrix& zs, RowMatrix& g) const {
    if constexpr (std::is_same_v<Scalar, float>) {
      products_.sign_gemm_transposed(zs.data(), static_cast<std::size_t>(zs.cols()),
                                     static_cast<std::size_t>(zs.rows()), weights_.kernel_view(k),
                                     g.data(), static_cast<std::size_t>(g.cols()));
    } else {
      g.noalias() = zs * dense_signs(k);
    }
  }
  RowMatrix dense_signs(std::size_t k) const {
    return weights_.kernel(k).to_signs().template cast<Scalar>();
  }

  static std::size_t count_kernels(const StateDict& dict, const std::string& prefix) {
    std::size_t k = 0;
    while (dict.count(kernel_tensor_name(prefix, k, KernelTensor::bits))) ++k;
    return k;
  }
  static Vector read_vector(const StateDict& dict, const std::string& name, std::size_t size) {
    Vector v(static_cast<Eigen::Index>(size));
    read_tensor(dict, name, {static_cast<std::int64_t>(size)}, v.data());
    detail::require_format(v.allFinite(), "state: tensor '", name, "' is not finite");
    return v;
  }
  // The layer's kernels from `dict`, every tensor checked here, once: dtype and shape,
  // padding bits (by the loader), finite scales (by read_vector).
  static Weights read_weights(const StateDict& dict, const std::string& prefix, std::size_t m,
                              std::size_t n, std::size_t k_count) {
    Weights w(m, n);
    const std::size_t row_bytes = padded_row_words(n) * 8;
    for (std::size_t k = 0; k < k_count; ++k) {
      const std::string name = kernel_tensor_name(prefix, k, KernelTensor::bits);
      const Tensor& t =
          expect_tensor(dict, name, DType::u8,
                        {static_cast<std::int64_t>(m), static_cast<std::int64_t>(row_bytes)});
      // A dict's bytes have no owner to borrow from: the loader copies them.
      BitMatrix bits = detail::load_kernel_bits(t.bytes.data(), m, n, false, nullptr, name.c_str());
      w.add_kernel(std::move(bits),
                   read_vector(dict, kernel_tensor_name(prefix, k, KernelTensor::s_out), m),
                   read_vector(dict, kernel_tensor_name(prefix, k, KernelTensor::s_in), n),
                   detail::ScalesChecked{});
    }
    return w;
  }

  Weights weights_;
  BooleanLinearOptions options_;
  ProductSet products_;
  Vector bias_;
  bool has_bias_ = false;
  std::vector<bool> trainable_;
  std::vector<Vector> grad_s_out_;
  std::vector<Vector> grad_s_in_;
  Vector grad_bias_;
  std::vector<RowMatrix> signals_;
  mutable detail::Int8LayerCache int8_;
};

}  // namespace mbok
