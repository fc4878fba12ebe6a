#pragma once
// Types shared by the tiny-LLaMA example: row-major (token x feature) matrices and token
// batches.

#include <Eigen/Core>

#include <cstdint>
#include <vector>

namespace tiny {

template <typename T>
using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using Vec = Eigen::Matrix<T, Eigen::Dynamic, 1>;
using Index = Eigen::Index;

/// A batch of token windows: `rows` sequences of `len` tokens, row-major.
struct Batch {
  Index rows = 0;
  Index len = 0;
  std::vector<std::int32_t> inputs;   // rows * len
  std::vector<std::int32_t> targets;  // rows * len (inputs shifted by one)
};

}  // namespace tiny
