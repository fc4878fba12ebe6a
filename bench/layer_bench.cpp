// The library user's int8 call, `BooleanLinear<float>::forward_int8` (bias-free layer, its own
// workspace, weights repacked once), next to the bare fused kernel it runs (prepared weights,
// the one-call `multi_kernel_forward_int8` with a workspace, automatic algorithm, one workspace
// reused) and the dense Eigen/OpenBLAS GEMV of the same shape (baselines.hpp). Square d x d,
// t = 1 (decode), K = 1 and 2:
//     linear_i8_k<K>/boolean-linear/<d>x<d>/t:1/threads:<threads>
//     linear_i8_k<K>/fused/<d>x<d>/t:1/threads:<threads>
// The difference between the two is the layer's overhead (checks, the mutex, the version
// check of the bits, the Eigen wrapper-free raw call).
#include <benchmark/benchmark.h>

#include <mbok/boolean_linear.hpp>
#include <mbok/forward_int8.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "baselines.hpp"

namespace {

using mbok::bench::case_name;
using mbok::bench::random_floats;

struct LayerProblem {
  std::unique_ptr<mbok::BooleanLinear<float>> layer;
  std::unique_ptr<mbok::Int8PreparedWeights> prepared;
  mbok::Int8ForwardWorkspace ws;
  std::vector<float> x, y;
};

LayerProblem& layer_problem(std::size_t d, std::size_t kernels) {
  static std::map<std::tuple<std::size_t, std::size_t>, std::unique_ptr<LayerProblem>> cache;
  auto& slot = cache[{d, kernels}];
  if (!slot) {
    slot = std::make_unique<LayerProblem>();
    mbok::MultiKernelWeights<float> w(d, d);
    for (std::size_t k = 0; k < kernels; ++k) {
      const std::vector<float> bits = random_floats(d * d, 500 + k);
      const std::vector<float> s_out = random_floats(d, 600 + k), s_in = random_floats(d, 700 + k);
      w.add_kernel(mbok::BitMatrix::pack(bits.data(), d, d, d, "bench bits"),
                   Eigen::Map<const Eigen::VectorXf>(s_out.data(), static_cast<Eigen::Index>(d)),
                   Eigen::Map<const Eigen::VectorXf>(s_in.data(), static_cast<Eigen::Index>(d)));
    }
    slot->layer = std::make_unique<mbok::BooleanLinear<float>>(std::move(w));
    slot->prepared = std::make_unique<mbok::Int8PreparedWeights>(slot->layer->weights(),
                                                                 slot->layer->product_set());
    slot->x = random_floats(d, 800);
    slot->y.assign(d, 0.0f);
  }
  return *slot;
}

void set_counters(benchmark::State& state, std::size_t d, std::size_t kernels) {
  const double iters = static_cast<double>(state.iterations());
  const double dd = static_cast<double>(d);
  state.SetItemsProcessed(static_cast<std::int64_t>(iters * dd * dd));
  state.SetBytesProcessed(static_cast<std::int64_t>(
      iters * (static_cast<double>(kernels) * (dd * dd / 8.0 + 8.0 * dd) + 8.0 * dd)));
}

void layer_case(benchmark::State& state, std::size_t d, std::size_t kernels, int threads) {
  LayerProblem& p = layer_problem(d, kernels);
  mbok::bench::set_threads(threads);
  p.layer->forward_int8(p.x.data(), d, 1, p.y.data(), d);  // repack outside the loop
  for (auto _ : state) {
    p.layer->forward_int8(p.x.data(), d, 1, p.y.data(), d);
    benchmark::DoNotOptimize(p.y.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, d, kernels);
  state.SetLabel(mbok::isa_name(p.layer->isa()));
  mbok::bench::set_threads(1);
}

void fused_case(benchmark::State& state, std::size_t d, std::size_t kernels, int threads) {
  LayerProblem& p = layer_problem(d, kernels);
  mbok::bench::set_threads(threads);
  const auto& w = p.layer->weights();
  for (auto _ : state) {
    mbok::multi_kernel_forward_int8(w, *p.prepared, p.x.data(), d, 1, p.y.data(), d, p.ws);
    benchmark::DoNotOptimize(p.y.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, d, kernels);
  state.SetLabel(mbok::isa_name(p.layer->isa()));
  mbok::bench::set_threads(1);
}

const bool registered = [] {
  for (std::size_t d : {128u, 512u, 1024u, 4096u})
    for (int threads : {1, 2}) {
      mbok::bench::register_dense_baselines(d, d, 1, threads);
      for (std::size_t kernels : {1u, 2u}) {
        const std::string family = "linear_i8_k" + std::to_string(kernels);
        benchmark::RegisterBenchmark(
            case_name(family, "boolean-linear", d, d, 1, threads).c_str(),
            [=](benchmark::State& st) { layer_case(st, d, kernels, threads); })
            ->UseRealTime()
            ->Unit(benchmark::kMicrosecond);
        benchmark::RegisterBenchmark(
            case_name(family, "fused", d, d, 1, threads).c_str(),
            [=](benchmark::State& st) { fused_case(st, d, kernels, threads); })
            ->UseRealTime()
            ->Unit(benchmark::kMicrosecond);
      }
    }
  return true;
}();

}  // namespace
