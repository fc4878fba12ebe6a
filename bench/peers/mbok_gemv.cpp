// One fused int8 forward of a random K-kernel layer (m out x n in features, t tokens of f32
// activations quantized inside the call, prepared weights, the algorithm the layer picks),
// timed the way the peers' MUL_MAT is timed in bench/peers/prefill.sh: warm-up calls, then
// the best wall time of many calls, so that both sides read the same on a shared machine; and
// the least process CPU time of a call (all threads), which a loaded machine inflates less
// (calls longer than the scheduler's slice get preempted there, whatever their code).
//
//   mbok_gemv K M N T THREADS [SECONDS]
#include <mbok/forward_int8.hpp>
#include <mbok/multi_kernel_weights.hpp>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <vector>

namespace {

double cpu_us() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) * 1e-3;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: %s K M N T THREADS [SECONDS]\n", argv[0]);
    return 2;
  }
  const std::size_t kernels = std::strtoull(argv[1], nullptr, 10);
  const std::size_t m = std::strtoull(argv[2], nullptr, 10),
                    n = std::strtoull(argv[3], nullptr, 10);
  const std::size_t t = std::strtoull(argv[4], nullptr, 10);
  const int threads = std::atoi(argv[5]);
  const double seconds = argc > 6 ? std::atof(argv[6]) : 0.5;
#if defined(_OPENMP)
  omp_set_num_threads(threads);
#endif
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  mbok::MultiKernelWeights<float> w(m, n);
  std::vector<float> dense(m * n);
  for (std::size_t k = 0; k < kernels; ++k) {
    for (float& v : dense) v = u(rng);
    Eigen::VectorXf s_out(m), s_in(n);
    for (float& v : s_out) v = 0.5f + 0.5f * std::abs(u(rng));
    for (float& v : s_in) v = 0.5f + 0.5f * std::abs(u(rng));
    w.add_kernel(mbok::BitMatrix::pack(dense.data(), m, n, n, "weights"), s_out, s_in);
  }
  const mbok::Int8PreparedWeights pw(w);
  std::vector<float> x(t * n), y(t * m);
  for (float& v : x) v = u(rng);
  mbok::Int8ForwardWorkspace ws;
  for (int i = 0; i < 3; ++i)
    mbok::multi_kernel_forward_int8(w, pw, x.data(), n, t, y.data(), m, ws);
  double best = 1e30, best_cpu = 1e30;
  int runs = 0;
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end || runs < 10) {
    const double c0 = cpu_us();
    const auto t0 = std::chrono::steady_clock::now();
    mbok::multi_kernel_forward_int8(w, pw, x.data(), n, t, y.data(), m, ws);
    const double us =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    const double cpu = cpu_us() - c0;
    best = us < best ? us : best;
    best_cpu = cpu < best_cpu ? cpu : best_cpu;
    ++runs;
  }
  std::printf("mbok_k%zu %zux%zu t:%zu threads:%d %.1f us (best of %d) cpu %.1f us\n", kernels, m,
              n, t, threads, best, runs, best_cpu);
  return 0;
}
