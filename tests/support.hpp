#pragma once
// Shared helpers for the unit tests: seeded random data and a loop over every ISA this CPU
// and build can run.

#include <mbok/bit_matrix.hpp>
#include <mbok/isa.hpp>

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
