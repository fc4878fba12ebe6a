#pragma once
// Dense float baselines of the Boolean products, for any benchmark file: the same shapes in
// the GEMM convention Y (t x m) = X (t x n) W^T with W row-major (m x n). Implemented in
// baselines.cpp, which is compiled for this machine's instruction set (-march=native) so that
// Eigen runs its best kernels.
//
// Naming convention for benchmark cases (bench/report/ relies on it):
//     <family>/<impl>/<shape>/t:<tokens>/threads:<threads>
// e.g. "forward_f32_k1/avx512/4096x4096/t:8/threads:1". The baselines are the families
// "dense_f32" with impl "eigen" and "openblas"; the report divides each baseline's time by
// the time of every other case with the same <shape>/t:<tokens>/threads:<threads>.

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mbok::bench {

/// Threads for every threaded library in the process: OpenMP (mbok's parallel_for), Eigen
/// and OpenBLAS.
void set_threads(int threads);

/// True when the binary links OpenBLAS.
bool have_openblas();

/// Y = X W^T with Eigen (a GEMV when t = 1).
void eigen_gemm(const float* x, const float* w, float* y, std::size_t t, std::size_t m,
                std::size_t n);
/// Y = X W^T with OpenBLAS cblas_sgemm (cblas_sgemv when t = 1). Throws when the binary has
/// no OpenBLAS.
void openblas_gemm(const float* x, const float* w, float* y, std::size_t t, std::size_t m,
                   std::size_t n);

/// Sum of the 64-bit words of [p, p + bytes) (p 32-byte aligned; the last bytes % 128 are
/// not read): a read stream at the core's full load rate, for bandwidth measurements.
std::int64_t read_stream(const std::uint8_t* p, std::size_t bytes);

/// Normal random floats, from a fixed seed.
std::vector<float> random_floats(std::size_t count, std::uint64_t seed = 1);

/// The name of a case: "<family>/<impl>/<m>x<n>/t:<t>/threads:<threads>".
std::string case_name(const std::string& family, const std::string& impl, std::size_t m,
                      std::size_t n, std::size_t t, int threads);

/// Registers the dense Eigen (and OpenBLAS) cases of one shape, real time, items = t m n
/// multiply-adds, bytes = the float weights plus activations read and outputs written.
/// Idempotent: a shape registered twice (by two benchmark files) is registered once.
void register_dense_baselines(std::size_t m, std::size_t n, std::size_t t, int threads);

}  // namespace mbok::bench
