#pragma once
// Types shared by the tiny-transformer example: row-major (token x feature) matrices and
// named trainable parameters.

#include <Eigen/Core>
#include <mbok/parameter.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace tiny {

template <typename T>
using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using Vec = Eigen::Matrix<T, Eigen::Dynamic, 1>;
using Index = Eigen::Index;

/// A full-precision trainable tensor: `size` values and their gradient, owned elsewhere.
template <typename T>
struct Param {
  std::string name;
  T* value = nullptr;
  const T* grad = nullptr;
  Index size = 0;
  /// False for parameters AdamW must not decay (norm gains, scales).
  bool decay = true;
  /// Row-major shape (product == size); empty means {size}.
  std::vector<std::int64_t> shape = {};
};

template <typename T>
using ParamList = std::vector<Param<T>>;

/// A batch of token windows: `rows` sequences of `len` tokens, row-major.
struct Batch {
  Index rows = 0;
  Index len = 0;
  std::vector<std::uint8_t> inputs;   // rows * len
  std::vector<std::uint8_t> targets;  // rows * len (inputs shifted by one)
};

/// The float parameters in the library's optimizer interface (mbok::AdamW).
inline std::vector<mbok::Parameter> to_library(const ParamList<float>& list) {
  std::vector<mbok::Parameter> out;
  for (const auto& p : list) {
    mbok::Parameter q;
    q.name = p.name;
    q.value = p.value;
    q.grad = p.grad;
    q.size = std::size_t(p.size);
    q.shape = p.shape.empty() ? std::vector<std::int64_t>{p.size} : p.shape;
    q.weight_decay = p.decay;
    out.push_back(std::move(q));
  }
  return out;
}

}  // namespace tiny
