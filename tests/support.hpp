#pragma once
// Shared helpers for the unit tests: seeded random data and a loop over every ISA this CPU
// and build can run.

#include <mbok/bit_matrix.hpp>
#include <mbok/isa.hpp>
#include <mbok/multi_kernel_weights.hpp>

#include <Eigen/Core>

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "catch.hpp"

namespace mbok::test {

inline std::mt19937_64& rng() {
  static std::mt19937_64 engine(20261122);
  return engine;
}

inline Eigen::MatrixXf random_matrix(std::size_t rows, std::size_t cols, float scale = 1.0f) {
  std::normal_distribution<float> dist(0.0f, scale);
  Eigen::MatrixXf m(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols));
  for (Eigen::Index j = 0; j < m.cols(); ++j)
    for (Eigen::Index i = 0; i < m.rows(); ++i) m(i, j) = dist(rng());
  return m;
}

inline BitMatrix random_bits(std::size_t rows, std::size_t cols) {
  return BitMatrix::pack(random_matrix(rows, cols));
}

/// K kernels of m x n random bits (made by `bits`) with positive random scales; kernel k's
/// s_in is divided by k + 1, so the kernels weigh differently.
template <typename MakeBits = BitMatrix (*)(std::size_t, std::size_t)>
inline MultiKernelWeights<float> random_kernel_weights(std::size_t m, std::size_t n,
                                                       std::size_t k_count,
                                                       MakeBits bits = &random_bits) {
  MultiKernelWeights<float> w(m, n);
  for (std::size_t k = 0; k < k_count; ++k)
    w.add_kernel(bits(m, n), random_matrix(m, 1).cwiseAbs(),
                 random_matrix(n, 1).cwiseAbs() / static_cast<float>(k + 1));
  return w;
}

/// Runs `body(isa)` once for every ISA available here, under a `ScopedIsaLimit`, and checks
/// that the limit really selected it. ISAs this CPU or build lacks are skipped (the test
/// "available ISAs are reported" names them once).
template <typename Body>
void for_each_isa(Body&& body) {
  for (Isa isa : kAllIsas) {
    if (!isa_available(isa)) continue;
    ScopedIsaLimit limit(isa);
    REQUIRE(active_isa() == isa);
    INFO("ISA " << isa_name(isa));
    body(isa);
  }
}

}  // namespace mbok::test
