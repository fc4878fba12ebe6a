// The training products on several threads, on shapes that split into several chunks
// (observed: test::observe_chunks), against independent references:
// - BooleanLinear<float>::backward: each thread sums ds_in over its chunk of rows and the
//   chunks' sums are added afterwards, so the result depends on the thread count in the last
//   bits (the contract in boolean_linear.hpp). On 1 and on 4 threads it must equal the double
//   layer's per-kernel backward within 1e-5 of each tensor's largest entry, and the two runs
//   each other within the same bound; a merge that dropped any chunk's partial sums is off by
//   whole rows' contributions.
// - AdamW::step: elementwise, so 1 and 4 threads give the same bytes, and both follow the
//   update rule (a double transcription).
// - svid: the power iteration's A^T u sums per chunk of rows (thread-count dependent in the
//   last bits): on 1 and on 4 threads its scales and residuals equal the double SVID's.
#include <mbok/adamw.hpp>
#include <mbok/boolean_linear.hpp>
#include <mbok/svid.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

#include "reference.hpp"
#include "support.hpp"
#include "threads_support.hpp"

namespace mbok::test {
namespace {

bool close(const Eigen::Ref<const Eigen::MatrixXd>& got,
           const Eigen::Ref<const Eigen::MatrixXd>& want, double rel = 1e-5) {
  return (got - want).cwiseAbs().maxCoeff() <= rel * std::max(want.cwiseAbs().maxCoeff(), 1e-30);
}

struct Grads {
  Eigen::MatrixXd dx;
  std::vector<Eigen::MatrixXd> s_out, s_in, signal;
};

}  // namespace

TEST_CASE("backward on several threads: split rows, every chunk's partial sums merged",
          "[threads][layer][gradients]") {
  MBOK_REQUIRE_THREADS();
  // m = 3000 rows of n = 70: the ds_in pass (grain 2^16 / (n K) rows, or 2^16 / n on the
  // scalar tier) runs 4 chunks on 4 threads.
  const std::size_t m = 3000, n = 70, t = 5, k_count = 2;
  MultiKernelWeights<double> wd(m, n);
  MultiKernelWeights<float> wf(m, n);
  for (std::size_t k = 0; k < k_count; ++k) {
    const BitMatrix b = random_bits(m, n);
    const Eigen::VectorXf so = random_matrix(m, 1).col(0), si = random_matrix(n, 1).col(0);
    wd.add_kernel(b, so.cast<double>(), si.cast<double>());
    wf.add_kernel(b, so, si);
  }
  BooleanLinearOptions opt;
  opt.trainable_kernels = {0, 1};
  const auto x = BooleanLinear<float>::RowMatrix(random_matrix(t, n));
  const auto dy = BooleanLinear<float>::RowMatrix(random_matrix(t, m));
  BooleanLinear<double> dl(wd, opt);
  RowMatrixD dxd(t, n);
  dl.backward(x.cast<double>(), dy.cast<double>(), dxd);
  for_each_isa([&](Isa isa) {
    CAPTURE(isa_name(isa));
    const auto run = [&](int threads) {
      ScopedThreads scoped(threads);
      BooleanLinear<float> fl(wf, opt);
      BooleanLinear<float>::RowMatrix dx(t, n);
      std::size_t chunks = 0;
      observe_chunks(
          [&] {
            fl.backward(x, dy, dx);
            return 0;
          },
          chunks);
      if (threads > 1) REQUIRE(chunks >= 2);
      Grads g;
      g.dx = dx.cast<double>();
      for (std::size_t k = 0; k < k_count; ++k) {
        g.s_out.push_back(fl.grad_s_out(k).cast<double>());
        g.s_in.push_back(fl.grad_s_in(k).cast<double>());
        g.signal.push_back(fl.signal(k).cast<double>());
      }
      return g;
    };
    const Grads one = run(1), many = run(kManyThreads);
    for (const Grads* g : {&one, &many}) {
      CHECK(close(g->dx, dxd));
      for (std::size_t k = 0; k < k_count; ++k) {
        CAPTURE(k);
        CHECK(close(g->s_out[k], dl.grad_s_out(k)));
        CHECK(close(g->s_in[k], dl.grad_s_in(k)));
        CHECK(close(g->signal[k], dl.signal(k)));
      }
    }
    // The documented split: dX, ds_out and Q identical; ds_in within the bound.
    CHECK(many.dx == one.dx);
    for (std::size_t k = 0; k < k_count; ++k) {
      CHECK(many.s_out[k] == one.s_out[k]);
      CHECK(many.signal[k] == one.signal[k]);
      CHECK(close(many.s_in[k], one.s_in[k]));
    }
  });
}

TEST_CASE("AdamW on several threads: the same bytes, and the update rule", "[threads][adamw]") {
  MBOK_REQUIRE_THREADS();
  const std::size_t size = 100003;  // 4 chunks of 2^15 elements and a short one
  const Eigen::VectorXf start = random_matrix(size, 1).col(0);
  std::vector<Eigen::VectorXf> grads;
  for (int s = 0; s < 3; ++s) grads.push_back(random_matrix(size, 1).col(0));
  AdamWOptions opt;
  opt.learning_rate = 0.01;
  opt.weight_decay = 0.1;
  const auto run = [&] {
    Eigen::VectorXf p = start, g(size);
    AdamW o({make_parameter("p", p, g)}, opt);
    for (const auto& gs : grads) {
      g = gs;
      o.step();
    }
    return p;
  };
  const auto [one, many] = one_and_many(run);
  CHECK(one == many);
  Eigen::VectorXd p = start.cast<double>(), mo = Eigen::VectorXd::Zero(size),
                  v = Eigen::VectorXd::Zero(size);
  for (int s = 1; s <= 3; ++s) {
    const Eigen::VectorXd g = grads[static_cast<std::size_t>(s - 1)].cast<double>();
    mo = 0.9 * mo + 0.1 * g;
    v = 0.999 * v + 0.001 * g.cwiseAbs2();
    const double c1 = 1 - std::pow(0.9, s), c2 = 1 - std::pow(0.999, s);
    p -= 0.01 * ((mo / c1).array() / ((v / c2).array().sqrt() + 1e-8)).matrix() + 0.01 * 0.1 * p;
  }
  CHECK((many.cast<double>() - p).cwiseAbs().maxCoeff() < 1e-5);
}

TEST_CASE("svid on several threads equals the double SVID", "[threads][svid]") {
  MBOK_REQUIRE_THREADS();
  const Eigen::MatrixXf w = random_matrix(700, 300);  // 3 row chunks of 256 in A v
  SvidOptions dopt;
  dopt.tolerance = 1e-12;
  const auto d = svid<double>(w.cast<double>(), 2, dopt);
  const auto [one, many] = one_and_many([&] { return svid<float>(w, 2); });
  for (const auto* f : {&one, &many})
    for (std::size_t k = 0; k < 2; ++k) {
      CAPTURE(k);
      CHECK(f->relative_residual[k] == Approx(d.relative_residual[k]).epsilon(1e-4));
      CHECK((f->weights.s_out(k).cast<double>() - d.weights.s_out(k)).norm() <=
            1e-3 * d.weights.s_out(k).norm());
      CHECK((f->weights.s_in(k).cast<double>() - d.weights.s_in(k)).norm() <=
            1e-3 * d.weights.s_in(k).norm());
    }
}

}  // namespace mbok::test
