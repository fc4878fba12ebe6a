#pragma once
/// \file
/// Trainable parameters and the interface every optimizer shares.
///
/// A model hands its optimizers lists of parameters: `Parameter` for full-precision tensors
/// (scales, biases, norms, embeddings; stepped by `AdamW`) and `BooleanParameter` for packed
/// Boolean kernels with their Boolean signal Q (stepped by `BooleanOptimizer`). Both name
/// memory the model owns: the optimizer keeps pointers, so the model must outlive the
/// optimizer and must not reallocate the tensors while it is in use. A training loop then
/// calls `step()` on each optimizer, one call each.

#include <Eigen/Core>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "bit_matrix.hpp"
#include "error.hpp"
#include "isa.hpp"
#include "state_dict.hpp"

namespace mbok {

/// A full-precision tensor of `Scalar` and its gradient buffer, both contiguous, both `size`
/// values, owned by the model. `shape` (row-major) is informational and names the tensor's
/// shape in saved optimizer state; its product must equal `size`. Optimizers step float
/// tensors (`Parameter`); other scalar types serve code that walks a model's tensors by name,
/// such as a finite-difference gradient check in double.
template <typename Scalar>
struct BasicParameter {
  std::string name;                 ///< unique among the parameters of one optimizer
  Scalar* value = nullptr;          ///< the values the optimizer updates
  const Scalar* grad = nullptr;     ///< dL/dvalue, written by the model's backward pass
  std::size_t size = 0;             ///< elements of value and grad
  std::vector<std::int64_t> shape;  ///< row-major shape (product == size)
  bool weight_decay = true;         ///< false for tensors decay must not shrink (scales, biases)
};

/// The parameters `AdamW` steps: float tensors.
using Parameter = BasicParameter<float>;

/// Registers an Eigen tensor (any plain, contiguous matrix or vector: `Eigen::VectorXf`,
/// `Eigen::MatrixXf`, row-major matrices) and its gradient of the same shape and scalar type;
/// a float tensor gives a `Parameter`, a double one a `BasicParameter<double>`.
/// Write into registered tensors in place (`grad = other;`, `grad.noalias() = a * b;`):
/// assigning a temporary of the same type (`grad = make_matrix();`) moves the temporary's
/// buffer in, and the optimizer would keep pointing at the old one.
/// Throws `InvalidArgument` naming the parameter when the shapes differ or it is empty.
template <typename DerivedV, typename DerivedG>
BasicParameter<typename DerivedV::Scalar> make_parameter(std::string name,
                                                         Eigen::PlainObjectBase<DerivedV>& value,
                                                         Eigen::PlainObjectBase<DerivedG>& grad,
                                                         bool weight_decay = true) {
  static_assert(std::is_same_v<typename DerivedV::Scalar, typename DerivedG::Scalar>,
                "a parameter and its gradient have the same scalar type");
  detail::require(value.size() > 0, "parameter '", name, "' is empty");
  detail::require(value.rows() == grad.rows() && value.cols() == grad.cols(), "parameter '", name,
                  "': gradient is ", grad.rows(), " x ", grad.cols(), ", value is ", value.rows(),
                  " x ", value.cols());
  BasicParameter<typename DerivedV::Scalar> p;
  p.name = std::move(name);
  p.value = value.data();
  p.grad = grad.data();
  p.size = static_cast<std::size_t>(value.size());
  if (DerivedV::ColsAtCompileTime == 1 || DerivedV::RowsAtCompileTime == 1)
    p.shape = {static_cast<std::int64_t>(value.size())};
  else if (DerivedV::IsRowMajor)
    p.shape = {static_cast<std::int64_t>(value.rows()), static_cast<std::int64_t>(value.cols())};
  else  // column-major storage: the row-major shape of the stored order
    p.shape = {static_cast<std::int64_t>(value.cols()), static_cast<std::int64_t>(value.rows())};
  p.weight_decay = weight_decay;
  return p;
}

/// A trainable packed Boolean kernel (rows x cols, the bit-layout contract) and its Boolean
/// signal Q = dL/dB (same rows x cols, row-major floats, `signal_ld` floats between rows),
/// both owned by the model. The optimizer flips bits through `bits->mutable_view()`.
struct BooleanParameter {
  BooleanParameter() = default;
  BooleanParameter(std::string name_, BitMatrix* bits_, const float* signal_,
                   std::size_t signal_ld_, std::optional<Isa> isa_ = std::nullopt)
      : name(std::move(name_)), bits(bits_), signal(signal_), signal_ld(signal_ld_), isa(isa_) {}

  std::string name;               ///< unique among the parameters of one optimizer
  BitMatrix* bits = nullptr;      ///< the kernel; its shape fixes the optimizer state's shape
  const float* signal = nullptr;  ///< Q, written by the model's backward pass
  std::size_t signal_ld = 0;      ///< floats between rows of Q (>= cols)
  /// The ISA of the layer that owns the kernel (`BooleanLinear::boolean_parameters` sets it):
  /// the Boolean optimizer steps the kernel on that ISA's products. Unset: the optimizer's.
  std::optional<Isa> isa;
};

/// What every optimizer offers a training loop.
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  /// One update of every registered parameter from its current gradient or signal.
  /// Throws `InvalidArgument` (and changes nothing) for a non-finite gradient or option.
  virtual void step() = 0;
  /// Saves the optimizer's state under `prefix` (names and layouts in each optimizer's docs).
  virtual void export_state(StateDict& dict, const std::string& prefix) const = 0;
  /// Restores state saved by `export_state` for the same parameters (same names, shapes).
  /// Checks everything first: throws `FormatError` and changes nothing on any mismatch.
  virtual void import_state(const StateDict& dict, const std::string& prefix) = 0;
  /// Bytes of optimizer state held (moments, accumulators, per-tensor scalars).
  virtual std::size_t state_bytes() const = 0;

 protected:
  Optimizer() = default;
  Optimizer(const Optimizer&) = default;
  Optimizer& operator=(const Optimizer&) = default;
  Optimizer(Optimizer&&) = default;
  Optimizer& operator=(Optimizer&&) = default;
};

}  // namespace mbok
