// Successive-SVID initialization of one large layer (4096 x 11008, the MLP shape of a 7B
// model) into K = 1, 2, 3 kernels: the data-free conversion cost per layer, on 1 and 2
// threads. Counters: the relative residual after K kernels and the power iterations used.
#include <benchmark/benchmark.h>

#include <mbok/svid.hpp>

#include <Eigen/Core>

#include <cstdint>
#include <random>
#include <string>

#include "baselines.hpp"

namespace {

using RowMatrixF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

constexpr std::size_t kOut = 4096, kIn = 11008;

const RowMatrixF& layer() {
  static const RowMatrixF w = [] {
    std::mt19937_64 engine(7);
    std::normal_distribution<float> dist(0.0f, 0.02f);
    RowMatrixF m(static_cast<Eigen::Index>(kOut), static_cast<Eigen::Index>(kIn));
    for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = dist(engine);
    return m;
  }();
  return w;
}

void svid_case(benchmark::State& state, std::size_t kernels, int threads) {
  const RowMatrixF& w = layer();
  mbok::bench::set_threads(threads);
  double residual = 0, iterations = 0;
  for (auto _ : state) {
    const mbok::SvidResult<float> r = mbok::svid<float>(w, kernels);
    residual = r.relative_residual.back();
    iterations = 0;
    for (int it : r.iterations) iterations += it;
    benchmark::DoNotOptimize(r.weights.num_kernels());
  }
  state.counters["relative_residual"] = residual;
  state.counters["power_iterations"] = iterations;
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(kOut * kIn));
  mbok::bench::set_threads(1);
}

const bool registered = [] {
  for (int threads : {1, 2})
    for (std::size_t k : {1u, 2u, 3u})
      benchmark::RegisterBenchmark(
          ("svid/K" + std::to_string(k) + "/" + std::to_string(kOut) + "x" + std::to_string(kIn) +
           "/t:0/threads:" + std::to_string(threads))
              .c_str(),
          [=](benchmark::State& st) { svid_case(st, k, threads); })
          ->UseRealTime()
          ->Iterations(1)
          ->Unit(benchmark::kMillisecond);
  return true;
}();

}  // namespace
