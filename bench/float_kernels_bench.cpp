// Float-activation kernels: the fused multi-kernel forward (K = 1, 2; from the bits, and by
// table lookup over the repacked kernels for t <= 32), sign_gemm_transposed
// (the backward orientation), one case per ISA available here and per thread count, next to
// the dense Eigen/OpenBLAS baselines of the same shapes (baselines.hpp).
#include <benchmark/benchmark.h>

#include <mbok/forward_float.hpp>
#include <mbok/forward_int8.hpp>
#include <mbok/isa.hpp>
#include <mbok/multi_kernel_weights.hpp>
#include <mbok/products.hpp>

#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "baselines.hpp"

namespace {

using mbok::bench::case_name;
using mbok::bench::random_floats;

struct Problem {
  mbok::MultiKernelWeights<float> w;
  std::vector<float> x, y;
};

// One problem per (m, n, K, t), made on first use.
Problem& problem(std::size_t m, std::size_t n, std::size_t kernels, std::size_t t) {
  static std::map<std::tuple<std::size_t, std::size_t, std::size_t, std::size_t>,
                  std::unique_ptr<Problem>>
      cache;
  auto& slot = cache[{m, n, kernels, t}];
  if (!slot) {
    slot = std::make_unique<Problem>();
    slot->w = mbok::MultiKernelWeights<float>(m, n);
    for (std::size_t k = 0; k < kernels; ++k) {
      const std::vector<float> dense = random_floats(m * n, 100 + k);
      const std::vector<float> s_out = random_floats(m, 200 + k), s_in = random_floats(n, 300 + k);
      slot->w.add_kernel(
          mbok::BitMatrix::pack(dense.data(), m, n, n, "bench weights"),
          Eigen::Map<const Eigen::VectorXf>(s_out.data(), static_cast<Eigen::Index>(m)),
          Eigen::Map<const Eigen::VectorXf>(s_in.data(), static_cast<Eigen::Index>(n)));
    }
    // Large enough for both orientations: x is t x max(m, n), y likewise.
    slot->x = random_floats(t * std::max(m, n), 400);
    slot->y.assign(t * std::max(m, n), 0.0f);
  }
  return *slot;
}

void set_counters(benchmark::State& state, std::size_t m, std::size_t n, std::size_t kernels,
                  std::size_t t, const mbok::ProductSet& ks) {
  const double iters = static_cast<double>(state.iterations());
  const double weight_bytes = static_cast<double>(kernels) *
                              (static_cast<double>(m * n) / 8.0 + 4.0 * static_cast<double>(m + n));
  state.SetItemsProcessed(static_cast<std::int64_t>(iters * static_cast<double>(t * m * n)));
  state.SetBytesProcessed(
      static_cast<std::int64_t>(iters * (weight_bytes + 4.0 * static_cast<double>(t * (m + n)))));
  state.SetLabel(mbok::isa_name(ks.isa()));
}

void forward_case(benchmark::State& state, mbok::Isa isa, std::size_t m, std::size_t n,
                  std::size_t kernels, std::size_t t, int threads) {
  Problem& p = problem(m, n, kernels, t);
  mbok::bench::set_threads(threads);
  const mbok::ScopedIsaLimit limit(isa);
  const mbok::ProductSet ks;
  for (auto _ : state) {
    mbok::multi_kernel_forward(p.w, p.x.data(), n, t, p.y.data(), m, ks);
    benchmark::DoNotOptimize(p.y.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, m, n, kernels, t, ks);
  mbok::bench::set_threads(1);
}

// The same forward over the kernels repacked for the table-lookup products (one preparation
// per problem and ISA, made on first use), by table lookup: the float decode of a layer that
// keeps only the repacked weights.
void forward_lut_case(benchmark::State& state, mbok::Isa isa, std::size_t m, std::size_t n,
                      std::size_t kernels, std::size_t t, int threads) {
  Problem& p = problem(m, n, kernels, t);
  mbok::bench::set_threads(threads);
  const mbok::ScopedIsaLimit limit(isa);
  const mbok::ProductSet ks;
  static std::map<std::tuple<const Problem*, mbok::Isa>, std::unique_ptr<mbok::Int8PreparedWeights>>
      prepared;
  auto& pw = prepared[{&p, isa}];
  if (!pw) pw = std::make_unique<mbok::Int8PreparedWeights>(p.w, ks);
  for (auto _ : state) {
    mbok::multi_kernel_forward(p.w, *pw, p.x.data(), n, t, p.y.data(), m,
                               mbok::FloatAlgorithm::lut);
    benchmark::DoNotOptimize(p.y.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, m, n, kernels, t, ks);
  mbok::bench::set_threads(1);
}

void transposed_case(benchmark::State& state, mbok::Isa isa, std::size_t m, std::size_t n,
                     std::size_t t, int threads) {
  Problem& p = problem(m, n, 1, t);
  mbok::bench::set_threads(threads);
  const mbok::ScopedIsaLimit limit(isa);
  const mbok::ProductSet ks;
  for (auto _ : state) {
    ks.sign_gemm_transposed(p.x.data(), m, t, p.w.kernel_view(0), p.y.data(), n);
    benchmark::DoNotOptimize(p.y.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, m, n, 1, t, ks);
  mbok::bench::set_threads(1);
}

// The scalar path is the portable fallback: measured on the small cases only.
bool worth_running(mbok::Isa isa, std::size_t m, std::size_t n, std::size_t t) {
  return isa != mbok::Isa::scalar || (m * n <= 4096u * 4096u && t <= 8);
}

const bool registered = [] {
  struct Shape {
    std::size_t m, n;
    std::vector<std::size_t> tokens;
  };
  const Shape shapes[] = {
      {4096, 4096, {1, 8, 32, 128, 512}}, {4096, 11008, {1, 32}}, {11008, 4096, {1, 32}}};
  for (const Shape& s : shapes)
    for (std::size_t t : s.tokens)
      for (int threads : {1, 2}) {
        mbok::bench::register_dense_baselines(s.m, s.n, t, threads);
        for (mbok::Isa isa : mbok::available_isas()) {
          if (!worth_running(isa, s.m, s.n, t)) continue;
          for (std::size_t kernels : {1, 2}) {
            const std::string family = "forward_f32_k" + std::to_string(kernels);
            benchmark::RegisterBenchmark(
                case_name(family, mbok::isa_name(isa), s.m, s.n, t, threads).c_str(),
                [=](benchmark::State& st) { forward_case(st, isa, s.m, s.n, kernels, t, threads); })
                ->UseRealTime()
                ->Unit(benchmark::kMicrosecond);
          }
          // The table lookup: decode and small batches (t = 32 shows where it stops winning).
          if (t <= 32)
            for (std::size_t kernels : {1, 2}) {
              const std::string family = "forward_lut_f32_k" + std::to_string(kernels);
              benchmark::RegisterBenchmark(
                  case_name(family, mbok::isa_name(isa), s.m, s.n, t, threads).c_str(),
                  [=](benchmark::State& st) {
                    forward_lut_case(st, isa, s.m, s.n, kernels, t, threads);
                  })
                  ->UseRealTime()
                  ->Unit(benchmark::kMicrosecond);
            }
          if (s.m == s.n && (t == 1 || t == 32 || t == 128))
            benchmark::RegisterBenchmark(
                case_name("sign_gemm_t_f32", mbok::isa_name(isa), s.m, s.n, t, threads).c_str(),
                [=](benchmark::State& st) { transposed_case(st, isa, s.m, s.n, t, threads); })
                ->UseRealTime()
                ->Unit(benchmark::kMicrosecond);
        }
      }
  return true;
}();

}  // namespace
