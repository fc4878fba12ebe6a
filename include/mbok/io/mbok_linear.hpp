#pragma once
/// \file
/// Layers of an mbok file as `BooleanLinear`: kernels borrowed from the mapped file (no copy
/// of the bits; the layer keeps the map alive), scales and bias converted to `Scalar`.

#include <string>
#include <utility>

#include "../boolean_linear.hpp"
#include "mbok_format.hpp"

namespace mbok {

/// The layer `name` of `model` as a `BooleanLinear<Scalar>` (with its bias when the file has
/// one). Kernels are `BitMatrix::borrow` views into the file when aligned (always for a file
/// opened with `MbokModel::open`); the first write to a kernel (training) copies it.
/// Throws `FormatError` for an unknown layer or values that do not fit `Scalar`, and
/// `InvalidArgument` for bad `options`.
template <typename Scalar = float>
BooleanLinear<Scalar> load_boolean_linear(const MbokModel& model, const std::string& name,
                                          BooleanLinearOptions options = {},
                                          KernelSet kernels = KernelSet()) {
  MultiKernelWeights<Scalar> w = model.load_weights<Scalar>(name);
  if (model.layer(name).bias.empty())
    return BooleanLinear<Scalar>(std::move(w), std::move(options), kernels);
  const TensorView& b = model.file().at(model.layer(name).bias);
  const std::vector<Scalar> v = b.to_vector<Scalar>();
  typename BooleanLinear<Scalar>::Vector bias =
      Eigen::Map<const typename BooleanLinear<Scalar>::Vector>(v.data(),
                                                               static_cast<Eigen::Index>(v.size()));
  detail::require_format(bias.allFinite(), "mbok file '", model.file().source(), "': bias '",
                         b.name, "' is not finite");
  return BooleanLinear<Scalar>(std::move(w), std::move(bias), std::move(options), kernels);
}

}  // namespace mbok
