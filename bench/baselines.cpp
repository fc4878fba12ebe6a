// Dense float baselines (see baselines.hpp). Compiled with -march=native.
#include "baselines.hpp"

#include <Eigen/Core>

#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <tuple>

#if defined(_OPENMP)
#include <omp.h>
#endif
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#endif
#if defined(MBOK_BENCH_HAVE_OPENBLAS)
#include <cblas.h>
#endif

namespace mbok::bench {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

void set_threads(int threads) {
#if defined(_OPENMP)
  omp_set_num_threads(threads);
#endif
  Eigen::setNbThreads(threads);
#if defined(MBOK_BENCH_HAVE_OPENBLAS)
  openblas_set_num_threads(threads);
#endif
}

bool have_openblas() {
#if defined(MBOK_BENCH_HAVE_OPENBLAS)
  return true;
#else
  return false;
#endif
}

void eigen_gemm(const float* x, const float* w, float* y, std::size_t t, std::size_t m,
                std::size_t n) {
  const auto M = static_cast<Eigen::Index>(m), N = static_cast<Eigen::Index>(n),
             T = static_cast<Eigen::Index>(t);
  Eigen::Map<const RowMatrix> W(w, M, N);
  if (t == 1) {
    Eigen::Map<const Eigen::VectorXf> X(x, N);
    Eigen::Map<Eigen::VectorXf> Y(y, M);
    Y.noalias() = W * X;
  } else {
    Eigen::Map<const RowMatrix> X(x, T, N);
    Eigen::Map<RowMatrix> Y(y, T, M);
    Y.noalias() = X * W.transpose();
  }
}

void openblas_gemm(const float* x, const float* w, float* y, std::size_t t, std::size_t m,
                   std::size_t n) {
#if defined(MBOK_BENCH_HAVE_OPENBLAS)
  const auto M = static_cast<blasint>(m), N = static_cast<blasint>(n), T = static_cast<blasint>(t);
  if (t == 1)
    cblas_sgemv(CblasRowMajor, CblasNoTrans, M, N, 1.0f, w, N, x, 1, 0.0f, y, 1);
  else
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, M, N, 1.0f, x, N, w, N, 0.0f, y, M);
#else
  (void)x, (void)w, (void)y, (void)t, (void)m, (void)n;
  throw std::runtime_error("this benchmark binary has no OpenBLAS");
#endif
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("avx2"))) std::int64_t read_stream(const std::uint8_t* p, std::size_t bytes) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (std::size_t q = 0; q + 128 <= bytes; q += 128) {
    const auto* v = reinterpret_cast<const __m256i*>(p + q);
    a0 = _mm256_add_epi64(a0, _mm256_load_si256(v));
    a1 = _mm256_add_epi64(a1, _mm256_load_si256(v + 1));
    a2 = _mm256_add_epi64(a2, _mm256_load_si256(v + 2));
    a3 = _mm256_add_epi64(a3, _mm256_load_si256(v + 3));
  }
  const __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
  return _mm256_extract_epi64(s, 0);
}
#else
std::int64_t read_stream(const std::uint8_t* p, std::size_t bytes) {
  std::uint64_t s0 = 0, s1 = 0;
  const auto* w = reinterpret_cast<const std::uint64_t*>(p);
  for (std::size_t i = 0; i + 1 < bytes / 8; i += 2) {
    s0 += w[i];
    s1 += w[i + 1];
  }
  return static_cast<std::int64_t>(s0 + s1);
}
#endif

std::vector<float> random_floats(std::size_t count, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(count);
  for (float& f : v) f = dist(rng);
  return v;
}

std::string case_name(const std::string& family, const std::string& impl, std::size_t m,
                      std::size_t n, std::size_t t, int threads) {
  return family + "/" + impl + "/" + std::to_string(m) + "x" + std::to_string(n) +
         "/t:" + std::to_string(t) + "/threads:" + std::to_string(threads);
}

namespace {

struct DenseData {
  std::vector<float> w, x, y;
};

// One dense problem per shape, made on first use and kept for the process.
DenseData& dense_data(std::size_t m, std::size_t n, std::size_t t) {
  static std::map<std::tuple<std::size_t, std::size_t, std::size_t>, std::unique_ptr<DenseData>>
      cache;
  auto& slot = cache[{m, n, t}];
  if (!slot) {
    slot = std::make_unique<DenseData>();
    slot->w = random_floats(m * n, 11);
    slot->x = random_floats(t * n, 12);
    slot->y.assign(t * m, 0.0f);
  }
  return *slot;
}

template <typename Gemm>
void run_dense(benchmark::State& state, Gemm gemm, std::size_t m, std::size_t n, std::size_t t,
               int threads) {
  DenseData& d = dense_data(m, n, t);
  set_threads(threads);
  for (auto _ : state) {
    gemm(d.x.data(), d.w.data(), d.y.data(), t, m, n);
    benchmark::DoNotOptimize(d.y.data());
    benchmark::ClobberMemory();
  }
  const auto iters = static_cast<double>(state.iterations());
  state.SetItemsProcessed(static_cast<std::int64_t>(iters * static_cast<double>(t * m * n)));
  state.SetBytesProcessed(
      static_cast<std::int64_t>(iters * 4.0 * static_cast<double>(m * n + t * n + t * m)));
  set_threads(1);
}

}  // namespace

void register_dense_baselines(std::size_t m, std::size_t n, std::size_t t, int threads) {
  static std::set<std::tuple<std::size_t, std::size_t, std::size_t, int>> done;
  if (!done.insert({m, n, t, threads}).second) return;
  benchmark::RegisterBenchmark(
      case_name("dense_f32", "eigen", m, n, t, threads).c_str(),
      [=](benchmark::State& s) { run_dense(s, eigen_gemm, m, n, t, threads); })
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
  if (have_openblas())
    benchmark::RegisterBenchmark(
        case_name("dense_f32", "openblas", m, n, t, threads).c_str(),
        [=](benchmark::State& s) { run_dense(s, openblas_gemm, m, n, t, threads); })
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
}

}  // namespace mbok::bench
