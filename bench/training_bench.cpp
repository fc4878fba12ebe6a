// One training step (forward + backward + optimizer) of one layer, the last kernel trainable:
// - mbok: BooleanLinear + BooleanOptimizer (f32, f16, i8 accumulators) + AdamW on the scales;
// - latent baseline: float latent weights for the trainable kernel, sign() in the forward,
//   straight-through backward, Adam on the latent weights (the usual binarization-aware
//   training), on Eigen's dense GEMM and, when linked, on OpenBLAS's sgemm.
// Both sides are built with the same target flags: this file is its own executable,
// mbok_training_bench, compiled with -march=native (bench/CMakeLists.txt), so Eigen's GEMM and
// element-wise loops in the baseline use the machine's widest vectors, as mbok's run-time
// dispatched products do.
// Sizes: 4096 x 4096 with K = 2 and t = 256 tokens, and the example's layers (d = 128,
// 16 x 64 tokens: 128 x 128, 512 x 128, 128 x 512, t = 1024).
// Counters: training-state bytes per trainable weight (optimizer state plus latent copy),
// milliseconds per step of each phase (forward, backward, optimizer), and the peak heap
// bytes of one step over the bytes held before it (activations, gradients, signals and
// workspaces; glibc only: every allocation of this binary is counted).
#include <benchmark/benchmark.h>

#include <mbok/adamw.hpp>
#include <mbok/boolean_linear.hpp>
#include <mbok/boolean_optimizer.hpp>

#include <Eigen/Core>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <tuple>

#if defined(MBOK_BENCH_HAVE_OPENBLAS)
#include <cblas.h>
#endif

#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
#include <malloc.h>
#define MBOK_BENCH_COUNT_HEAP 1
#endif

#if MBOK_BENCH_COUNT_HEAP
// Heap accounting: this binary's malloc family forwards to glibc's and tracks the bytes held
// (usable sizes) and their peak since the last reset.
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void __libc_free(void*);
}
namespace heap {
std::atomic<long long> current{0}, peak{0};
inline void add(void* p) {
  if (p == nullptr) return;
  const long long now = current.fetch_add(static_cast<long long>(malloc_usable_size(p))) +
                        static_cast<long long>(malloc_usable_size(p));
  long long old = peak.load();
  while (now > old && !peak.compare_exchange_weak(old, now)) {
  }
}
inline void remove(void* p) {
  if (p != nullptr) current.fetch_sub(static_cast<long long>(malloc_usable_size(p)));
}
}  // namespace heap
extern "C" {
void* malloc(std::size_t n) {
  void* p = __libc_malloc(n);
  heap::add(p);
  return p;
}
void* calloc(std::size_t c, std::size_t n) {
  void* p = __libc_calloc(c, n);
  heap::add(p);
  return p;
}
void* realloc(void* old, std::size_t n) {
  heap::remove(old);
  void* p = __libc_realloc(old, n);
  heap::add(p != nullptr ? p : (n == 0 ? nullptr : old));
  return p;
}
void free(void* p) {
  heap::remove(p);
  __libc_free(p);
}
void* memalign(std::size_t a, std::size_t n) {
  void* p = __libc_memalign(a, n);
  heap::add(p);
  return p;
}
void* aligned_alloc(std::size_t a, std::size_t n) { return memalign(a, n); }
int posix_memalign(void** out, std::size_t a, std::size_t n) {
  void* p = memalign(a, n);
  if (p == nullptr) return 12;  // ENOMEM
  *out = p;
  return 0;
}
}
#endif

namespace {

// Starts a peak measurement: returns the bytes held now.
long long heap_reset() {
#if MBOK_BENCH_COUNT_HEAP
  heap::peak.store(heap::current.load());
  return heap::current.load();
#else
  return 0;
#endif
}
// The peak bytes held since `heap_reset` over the bytes held then (0 without accounting).
double heap_peak_over(long long base) {
#if MBOK_BENCH_COUNT_HEAP
  return static_cast<double>(heap::peak.load() - base);
#else
  (void)base;
  return 0.0;
#endif
}

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

using RowMatrixF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

RowMatrixF gaussian(std::size_t rows, std::size_t cols, std::uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 engine(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  RowMatrixF m(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols));
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = dist(engine);
  return m;
}

// The shared problem of one size: SVID kernels of a random layer, inputs and targets.
struct Problem {
  std::size_t out, in, tokens, kernels;
  mbok::MultiKernelWeights<float> weights;
  RowMatrixF x, target;
};
const Problem& problem(std::size_t out, std::size_t in, std::size_t tokens, std::size_t kernels) {
  static std::map<std::tuple<std::size_t, std::size_t, std::size_t, std::size_t>,
                  std::unique_ptr<Problem>>
      cache;
  auto& slot = cache[{out, in, tokens, kernels}];
  if (!slot) {
    slot = std::make_unique<Problem>();
    slot->out = out;
    slot->in = in;
    slot->tokens = tokens;
    slot->kernels = kernels;
    const RowMatrixF w = gaussian(out, in, 1, 0.02f);
    slot->weights = mbok::svid<float>(w, kernels).weights;
    slot->x = gaussian(tokens, in, 2);
    slot->target = gaussian(tokens, out, 3, 0.1f);
  }
  return *slot;
}
const Problem& problem_of(const benchmark::State& state) {
  return problem(static_cast<std::size_t>(state.range(0)), static_cast<std::size_t>(state.range(1)),
                 static_cast<std::size_t>(state.range(2)),
                 static_cast<std::size_t>(state.range(3)));
}

void set_phase_counters(benchmark::State& state, double forward, double backward, double optimizer,
                        double peak_bytes, std::size_t tokens) {
  const double n = static_cast<double>(state.iterations());
  state.counters["ms_forward"] = forward / n;
  state.counters["ms_backward"] = backward / n;
  state.counters["ms_optimizer"] = optimizer / n;
  state.counters["peak_MiB"] = peak_bytes / (1024.0 * 1024.0);
  state.counters["tokens_per_s"] = benchmark::Counter(
      static_cast<double>(tokens), benchmark::Counter::kIsIterationInvariantRate);
}

// Arguments: out, in, tokens, K, accumulator type.
void boolean_step(benchmark::State& state) {
  const Problem& p = problem_of(state);
  const auto type = static_cast<mbok::AccumulatorType>(state.range(4));
  const long long base = heap_reset();
  mbok::BooleanLinear<float> layer(p.weights);
  mbok::BooleanOptimizerOptions bopt;
  bopt.accumulator = type;
  bopt.learning_rate = 1e-3;
  mbok::BooleanOptimizer boolean_opt(layer.boolean_parameters(), bopt);
  mbok::AdamW adamw(layer.parameters(), mbok::AdamWOptions{2e-5, 0.9, 0.999, 1e-8, 0.0});
  const auto t = static_cast<Eigen::Index>(p.tokens);
  RowMatrixF y(t, static_cast<Eigen::Index>(p.out)), dy(t, static_cast<Eigen::Index>(p.out)),
      dx(t, static_cast<Eigen::Index>(p.in));
  double forward = 0, backward = 0, optimizer = 0, peak = 0;
  bool first = true;
  for (auto _ : state) {
    auto t0 = Clock::now();
    layer.forward(p.x, y);
    forward += ms_since(t0);
    dy = (y - p.target) * (2.0f / static_cast<float>(y.size()));
    t0 = Clock::now();
    layer.backward(p.x, dy, dx);
    backward += ms_since(t0);
    t0 = Clock::now();
    boolean_opt.step();
    adamw.step();
    optimizer += ms_since(t0);
    benchmark::DoNotOptimize(dx.data());
    if (first) peak = heap_peak_over(base);
    first = false;
  }
  const double trainable = static_cast<double>(boolean_opt.num_weights());
  state.counters["state_bytes_per_weight"] =
      static_cast<double>(boolean_opt.state_bytes()) / trainable;
  state.counters["flip_rate"] = boolean_opt.last_stats().rate();
  set_phase_counters(state, forward, backward, optimizer, peak, p.tokens);
  state.SetLabel(std::string(mbok::accumulator_name(type)) + " isa=" + mbok::isa_name(layer.isa()));
}

// The dense products of the latent baseline: C (m x n) = op(A) op(B), row-major, by Eigen or
// OpenBLAS.
enum class Gemm { eigen = 0, openblas = 1 };
// c = a * b^T (a: m x k, b: n x k).
void gemm_abt(Gemm g, const RowMatrixF& a, const RowMatrixF& b, RowMatrixF& c) {
#if defined(MBOK_BENCH_HAVE_OPENBLAS)
  if (g == Gemm::openblas) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(a.rows()),
                static_cast<int>(b.rows()), static_cast<int>(a.cols()), 1.0f, a.data(),
                static_cast<int>(a.cols()), b.data(), static_cast<int>(b.cols()), 0.0f, c.data(),
                static_cast<int>(c.cols()));
    return;
  }
#endif
  (void)g;
  c.noalias() = a * b.transpose();
}
// c = a * b (a: m x k, b: k x n).
void gemm_ab(Gemm g, const RowMatrixF& a, const RowMatrixF& b, RowMatrixF& c) {
#if defined(MBOK_BENCH_HAVE_OPENBLAS)
  if (g == Gemm::openblas) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(a.rows()),
                static_cast<int>(b.cols()), static_cast<int>(a.cols()), 1.0f, a.data(),
                static_cast<int>(a.cols()), b.data(), static_cast<int>(b.cols()), 0.0f, c.data(),
                static_cast<int>(c.cols()));
    return;
  }
#endif
  (void)g;
  c.noalias() = a * b;
}
// c = a^T * b (a: k x m, b: k x n).
void gemm_atb(Gemm g, const RowMatrixF& a, const RowMatrixF& b, RowMatrixF& c) {
#if defined(MBOK_BENCH_HAVE_OPENBLAS)
  if (g == Gemm::openblas) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(a.cols()),
                static_cast<int>(b.cols()), static_cast<int>(a.rows()), 1.0f, a.data(),
                static_cast<int>(a.cols()), b.data(), static_cast<int>(b.cols()), 0.0f, c.data(),
                static_cast<int>(c.cols()));
    return;
  }
#endif
  (void)g;
  c.noalias() = a.transpose() * b;
}

// Binarization-aware training with a latent float copy of the trainable kernel.
// Arguments: out, in, tokens, K, GEMM library (Gemm).
void latent_step(benchmark::State& state) {
  const Problem& p = problem_of(state);
  const auto gemm = static_cast<Gemm>(state.range(4));
#if !defined(MBOK_BENCH_HAVE_OPENBLAS)
  if (gemm == Gemm::openblas) {
    state.SkipWithError("built without OpenBLAS");
    return;
  }
#endif
  const mbok::MultiKernelWeights<float>& w = p.weights;
  const auto out = static_cast<Eigen::Index>(p.out), in = static_cast<Eigen::Index>(p.in),
             t = static_cast<Eigen::Index>(p.tokens);
  const std::size_t last = p.kernels - 1;
  const long long base = heap_reset();
  // Frozen kernels as one dense float matrix; the trainable one as latent floats whose
  // sign is the kernel (initialised to the SVID scale times the sign).
  RowMatrixF frozen = RowMatrixF::Zero(out, in);
  for (std::size_t k = 0; k < last; ++k)
    frozen +=
        (w.kernel(k).to_signs().array() * (w.s_out(k) * w.s_in(k).transpose()).array()).matrix();
  const RowMatrixF scale = w.s_out(last) * w.s_in(last).transpose();
  RowMatrixF latent = (w.kernel(last).to_signs().array() * scale.array()).matrix();
  RowMatrixF latent_grad(out, in), dense(out, in);
  RowMatrixF adam_m = RowMatrixF::Zero(out, in), adam_v = RowMatrixF::Zero(out, in);
  RowMatrixF y(t, out), dy(t, out), dx(t, in);
  const float lr = 2e-5f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
  int step = 0;
  double forward = 0, backward = 0, optimizer = 0, peak = 0;
  for (auto _ : state) {
    ++step;
    auto t0 = Clock::now();
    dense = frozen + (latent.array().sign() * scale.array()).matrix();  // sign() in the forward
    gemm_abt(gemm, p.x, dense, y);
    forward += ms_since(t0);
    dy = (y - p.target) * (2.0f / static_cast<float>(y.size()));
    t0 = Clock::now();
    gemm_ab(gemm, dy, dense, dx);
    gemm_atb(gemm, dy, p.x, latent_grad);  // straight-through: d sign(w)/dw = 1
    latent_grad.array() *= scale.array();
    backward += ms_since(t0);
    t0 = Clock::now();
    const float c1 = 1.0f - std::pow(b1, static_cast<float>(step));
    const float c2 = 1.0f - std::pow(b2, static_cast<float>(step));
    adam_m = b1 * adam_m + (1 - b1) * latent_grad;
    adam_v = b2 * adam_v + (1 - b2) * latent_grad.cwiseAbs2();
    latent.array() -= lr * (adam_m.array() / c1) / ((adam_v.array() / c2).sqrt() + eps);
    optimizer += ms_since(t0);
    benchmark::DoNotOptimize(dx.data());
    if (step == 1) peak = heap_peak_over(base);
  }
  // Latent copy + two Adam moments, per trainable weight.
  state.counters["state_bytes_per_weight"] = 3.0 * sizeof(float);
  set_phase_counters(state, forward, backward, optimizer, peak, p.tokens);
  state.SetLabel(gemm == Gemm::eigen ? "latent fp32 + Adam, Eigen GEMM"
                                     : "latent fp32 + Adam, OpenBLAS GEMM");
}

constexpr int kF32 = static_cast<int>(mbok::AccumulatorType::f32);
constexpr int kF16 = static_cast<int>(mbok::AccumulatorType::f16);
constexpr int kI8 = static_cast<int>(mbok::AccumulatorType::i8);

BENCHMARK(boolean_step)
    ->Name("training_step/boolean")
    ->ArgNames({"out", "in", "t", "K", "acc"})
    ->Args({4096, 4096, 256, 2, kF32})
    ->Args({4096, 4096, 256, 2, kF16})
    ->Args({4096, 4096, 256, 2, kI8})
    ->Args({128, 128, 1024, 1, kI8})
    ->Args({128, 128, 1024, 2, kI8})
    ->Args({128, 128, 1024, 3, kI8})
    ->Args({512, 128, 1024, 2, kI8})
    ->Args({128, 512, 1024, 2, kI8})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(latent_step)
    ->Name("training_step/latent_adam")
    ->ArgNames({"out", "in", "t", "K", "gemm"})
    ->ArgsProduct({{4096}, {4096}, {256}, {2}, {0, 1}})
    ->ArgsProduct({{128}, {128}, {1024}, {1, 2, 3}, {0, 1}})
    ->ArgsProduct({{512}, {128}, {1024}, {2}, {0, 1}})
    ->ArgsProduct({{128}, {512}, {1024}, {2}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
