#pragma once
/// \file
/// Layers of an mbok file as `BooleanLinear` (kernels borrowed from the mapped file: no copy
/// of the bits; the layer keeps the map alive; scales and bias converted to `Scalar`) or as
/// `PackedLinear`, the inference form (packed kernels borrowed in the ISA's layout).

#include <Eigen/Core>

#include <string>
#include <utility>
#include <vector>

#include "../boolean_linear.hpp"
#include "../packed_linear.hpp"
#include "mbok_format.hpp"

namespace mbok {

namespace detail {
template <typename Scalar>
Eigen::Matrix<Scalar, Eigen::Dynamic, 1> mbok_bias(const MbokModel& model,
                                                   const std::string& name) {
  const MbokLayerInfo& info = model.layer(name);
  if (info.bias.empty()) return {};
  const TensorView& b = model.file().at(info.bias);
  const std::vector<Scalar> v = b.to_vector<Scalar>();
  Eigen::Matrix<Scalar, Eigen::Dynamic, 1> bias =
      Eigen::Map<const Eigen::Matrix<Scalar, Eigen::Dynamic, 1>>(
          v.data(), static_cast<Eigen::Index>(v.size()));
  require_format(bias.allFinite(), "mbok file '", model.file().source(), "': bias '", b.name,
                 "' is not finite");
  return bias;
}
}  // namespace detail

/// The layer `name` of `model` in its inference form, on `kernels` (with its bias when the
/// file has one): a packed layer in the ISA's layout runs on the mapped bytes with no copy;
/// otherwise its kernels are packed once (`MbokModel::load_packed`). Throws `FormatError` for
/// an unknown layer or a bias that is not finite, `InvalidArgument` for n > kMaxInt8Features.
inline PackedLinear load_packed_linear(const MbokModel& model, const std::string& name,
                                       const ProductSet& products = ProductSet()) {
  return PackedLinear(model.load_packed(name, products), model.load_scales(name, true),
                      model.load_scales(name, false), detail::mbok_bias<float>(model, name));
}

/// Adds `layer` to `writer` as packed layer `name` (format version 3), in the layout of the
/// ISA it was packed for. `options.bias` names the bias tensor, which the caller adds.
inline void add_packed_layer(MbokWriter& writer, const std::string& name, const PackedLinear& layer,
                             const MbokLayerOptions& options = {}) {
  writer.add_packed_layer(name, layer.packed(), layer, options);
}

/// The layer `name` of `model` as a `BooleanLinear<Scalar>` (with its bias when the file has
/// one). Kernels of a packed layer are unpacked (exactly); others are `BitMatrix::borrow` views
/// into the file when aligned (always for a file opened with `MbokModel::open`); the first write to
/// a kernel (training) copies it. Throws `FormatError` for an unknown layer or values that do not
/// fit `Scalar`, and `InvalidArgument` for bad `options`.
template <typename Scalar = float>
BooleanLinear<Scalar> load_boolean_linear(const MbokModel& model, const std::string& name,
                                          BooleanLinearOptions options = {},
                                          ProductSet products = ProductSet()) {
  MultiKernelWeights<Scalar> w = model.load_weights<Scalar>(name);
  if (model.layer(name).bias.empty())
    return BooleanLinear<Scalar>(std::move(w), std::move(options), products);
  return BooleanLinear<Scalar>(std::move(w), detail::mbok_bias<Scalar>(model, name),
                               std::move(options), products);
}

}  // namespace mbok
