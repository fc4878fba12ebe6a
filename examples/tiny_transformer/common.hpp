#pragma once
// Types shared by the tiny-transformer example: row-major (token x feature) matrices, the
// model's named trainable parameters (the library's) and token batches.

#include <Eigen/Core>
#include <mbok/parameter.hpp>

#include <cstdint>
#include <vector>

namespace tiny {

template <typename T>
using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using Vec = Eigen::Matrix<T, Eigen::Dynamic, 1>;
using Index = Eigen::Index;

/// The model's full-precision trainable tensors: float ones go to mbok::AdamW, double ones
/// serve the gradient checks.
template <typename T>
using Parameters = std::vector<mbok::BasicParameter<T>>;

/// A batch of token windows: `rows` sequences of `len` tokens, row-major.
struct Batch {
  Index rows = 0;
  Index len = 0;
  std::vector<std::uint8_t> inputs;   // rows * len
  std::vector<std::uint8_t> targets;  // rows * len (inputs shifted by one)
};

}  // namespace tiny
