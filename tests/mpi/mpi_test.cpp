// Data-parallel training over MPI (mbok/distributed/mpi.hpp), run under mpiexec by ctest:
//
//   mbok_mpi_tests equality      the P-rank step equals one process's step on the whole batch
//   mbok_mpi_tests divergence    ranks that differ are detected, on every rank
//   mbok_mpi_tests mismatch      different configurations throw on every rank, no hang
//   mbok_mpi_tests tiny          an all-subnormal signal with rms scaling adds nothing
//   mbok_mpi_tests wire N        N steps of one demo block (tests/mpi/wire_bytes.sh measures
//                                the bytes on the wire with Open MPI's pml monitoring)
//   mbok_mpi_tests overlap       the overlapped step (begin_step, signals_ready, finish_step)
//                                equals step(), bit for bit
//   mbok_mpi_tests shards        uneven and empty row slices, a strided warm start, f32 and i8
//                                accumulators: the same bits and state as one process
//   mbok_mpi_tests save DIR N    N steps, then the checkpoint DIR/state.ckpt (from rank 0)
//   mbok_mpi_tests resume DIR N  resume from it on any number of ranks, N more steps: equals
//                                the uninterrupted one-process run
//   mbok_mpi_tests ssave DIR N   N steps, then a sharded checkpoint DIR/state.ckpt (a manifest
//                                and one shard per rank), saved twice: old shards removed
//   mbok_mpi_tests sresume DIR N resume from DIR/state.ckpt in either layout (sharded or one
//                                process) on any number of ranks, and in one process without
//                                MPI: both equal the uninterrupted one-process run
//   mbok_mpi_tests sbroken DIR   a missing, corrupt or stale shard is refused on every rank
//                                naming its file; a failed save leaves the last checkpoint
//   mbok_mpi_tests memory        the trainer's resident memory (VmRSS) per rank against the
//                                formula of docs/distributed.md; rank 0 prints the formula's
//                                table for a 7B-shaped LLaMA at K = 2
//   mbok_mpi_tests stall S DIR   rank 1 stops calling at step S: rank 0 times out, aborts
//   mbok_mpi_tests kill S DIR    rank 1 dies at step S (both save DIR/state.ckpt at step 2)
//   mbok_mpi_tests outside S DIR rank 1 waits at step S to be killed by failed_rank.sh
//   mbok_mpi_tests finalize T    rank 1 never finalizes: rank 0's bounded finalize ends it
//
// Each rank also runs the one-process reference on the whole batch itself (no MPI). Exit
// status 0 when every check passed on every rank.

#include <mbok/distributed/mpi.hpp>  // includes <mpi.h>, C API only
#include <mbok/distributed/sharded_checkpoint.hpp>
#include <mbok/distributed/termination.hpp>
#include <mbok/io/checkpoint.hpp>
#include <mbok/mbok.hpp>

#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using Layer = mbok::BooleanLinear<float>;
using RowMatrix = Layer::RowMatrix;
using mbok::distributed::DataParallelOptions;
using mbok::distributed::DataParallelTrainer;
using mbok::distributed::DistributedError;

int rank = 0, ranks = 1, failures = 0;

void check(bool ok, const std::string& what) {
  if (ok) return;
  ++failures;
  std::fprintf(stderr, "rank %d: FAILED: %s\n", rank, what.c_str());
}

Eigen::MatrixXf gaussian(int rows, int cols, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Eigen::MatrixXf m(rows, cols);
  for (int j = 0; j < cols; ++j)
    for (int i = 0; i < rows; ++i) m(i, j) = normal(rng);
  return m;
}

// Two layers of uneven shapes (rows not a multiple of the rank count, columns not a multiple
// of 64), trained to match two random float layers y = W x on inputs near a subspace.
constexpr int kTokens = 64, kRank = 12;
struct Problem {
  Eigen::MatrixXf w1, w2, basis;
  Problem() {
    std::mt19937 rng(7);
    w1 = gaussian(37, 100, rng) / 10.0f;
    w2 = gaussian(24, 512, rng) / 22.0f;
    basis = gaussian(kRank, 100, rng);
  }
  // The global batch of step s: the same on every rank.
  RowMatrix batch(int s) const {
    std::mt19937 rng(1000 + static_cast<unsigned>(s));
    RowMatrix x = gaussian(kTokens, kRank, rng) * basis + 0.05f * gaussian(kTokens, 100, rng);
    return x;
  }
};

// layer1 (100 -> 37, K = 2, bias, last kernel trains) feeds a fixed 37 -> 512 map into
// layer2 (512 -> 24, K = 2, both kernels train).
struct Model {
  Layer a, b;
  Eigen::MatrixXf mix;
  explicit Model(const Problem& p, bool wide_input = false)
      : a(Layer::from_dense(p.w1.leftCols(wide_input ? 96 : 100), 2, Layer::Vector::Zero(37))),
        b(Layer::from_dense(p.w2, 2, std::nullopt, two_trainable())) {
    std::mt19937 rng(3);
    mix = gaussian(37, 512, rng) / 6.0f;
  }
  static mbok::BooleanLinearOptions two_trainable() {
    mbok::BooleanLinearOptions o;
    o.trainable_kernels = {0, 1};
    return o;
  }
  std::vector<mbok::BooleanParameter> boolean_parameters() {
    auto out = a.boolean_parameters("a.");
    for (auto& q : b.boolean_parameters("b.")) out.push_back(q);
    return out;
  }
  std::vector<mbok::Parameter> parameters() {
    auto out = a.parameters("a.");
    for (auto& q : b.parameters("b.")) out.push_back(q);
    return out;
  }
  // Forward, MSE against the float layers and backward on rows [r0, r1) of x; gradients
  // are means over those rows. `ready(layer)` is called as each layer's backward ends (b: 1,
  // then a: 0).
  double train_pass(const Problem& p, const RowMatrix& xs,
                    const std::function<void(int)>& ready = {}) {
    const RowMatrix h = a.forward(xs);
    const RowMatrix hm = h * mix;
    const RowMatrix y = b.forward(hm);
    const RowMatrix ty = (xs * p.w1.transpose()) * mix * p.w2.transpose();
    RowMatrix grad;
    const double loss = mbok::mse(ty, y, &grad);
    RowMatrix dhm(hm.rows(), hm.cols());
    b.backward(hm, grad, dhm);
    if (ready) ready(1);
    const RowMatrix dh = dhm * mix.transpose();
    a.backward(xs, dh);
    if (ready) ready(0);
    return loss;
  }
  void export_state(mbok::StateDict& d) const {
    a.export_state(d, "model.a.");
    b.export_state(d, "model.b.");
  }
  void import_state(const mbok::StateDict& d) {
    a.import_state(d, "model.a.");
    b.import_state(d, "model.b.");
  }
};

DataParallelOptions options() {
  DataParallelOptions o;
  o.boolean.signal_scaling = mbok::SignalScaling::rms;
  o.boolean.learning_rate = 0.3;
  o.boolean.accumulator = mbok::AccumulatorType::f16;
  o.adamw.learning_rate = 1e-3;
  o.check_every = 1;
  o.timeout_seconds = 60;
  return o;
}

// The one-process run: both optimizers over the whole batch.
struct Reference {
  Model model;
  mbok::BooleanOptimizer bits;
  mbok::AdamW floats;
  explicit Reference(const Problem& p)
      : model(p),
        bits(model.boolean_parameters(), options().boolean),
        floats(model.parameters(), options().adamw) {}
  void step(const Problem& p, int s) {
    model.train_pass(p, p.batch(s));
    bits.step();
    floats.step();
  }
};

RowMatrix shard(const RowMatrix& x) {
  const int r0 = kTokens * rank / ranks, r1 = kTokens * (rank + 1) / ranks;
  return x.middleRows(r0, r1 - r0);
}

// Compares a model with the reference: identical bits, scales within `tol` (relative).
void compare(const Model& m, const Model& ref, int step, double tol = 2e-4) {
  const Layer* pairs[2][2] = {{&m.a, &ref.a}, {&m.b, &ref.b}};
  for (auto& pr : pairs)
    for (std::size_t k = 0; k < pr[0]->num_kernels(); ++k) {
      const std::size_t d = mbok::hamming_distance(pr[0]->kernel(k), pr[1]->kernel(k));
      check(d == 0, "step " + std::to_string(step) + ": kernel " + std::to_string(k) + " has " +
                        std::to_string(d) + " bits unlike the one-process run");
      const float e_out = (pr[0]->s_out(k) - pr[1]->s_out(k)).cwiseAbs().maxCoeff() /
                          pr[1]->s_out(k).cwiseAbs().maxCoeff();
      const float e_in = (pr[0]->s_in(k) - pr[1]->s_in(k)).cwiseAbs().maxCoeff() /
                         pr[1]->s_in(k).cwiseAbs().maxCoeff();
      check(e_out <= tol && e_in <= tol, "step " + std::to_string(step) +
                                             ": scales differ from the one-process run by " +
                                             std::to_string(std::max(e_out, e_in)));
    }
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

void test_equality() {
  const Problem p;
  Reference ref(p);
  Model m(p);
  DataParallelTrainer trainer(MPI_COMM_WORLD, m.boolean_parameters(), m.parameters(), options());
  // The same warm start of the accumulators (as the tiny-transformer demo's) in both runs.
  const auto params = m.boolean_parameters();
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> uniform(-0.9f, 0.9f);
  for (std::size_t i = 0; i < params.size(); ++i) {
    std::vector<float> values(params[i].bits->rows() * params[i].bits->cols());
    for (float& v : values) v = uniform(rng);
    ref.bits.set_accumulators(i, values.data(), params[i].bits->cols());
    trainer.set_accumulators(i, values.data(), params[i].bits->cols());
  }
  std::size_t flips = 0;
  for (int s = 1; s <= 12; ++s) {
    const RowMatrix x = shard(p.batch(s));
    m.train_pass(p, x);
    trainer.step(static_cast<std::size_t>(x.rows()));
    ref.step(p, s);
    flips += trainer.last_stats().flips();
    check(trainer.last_stats().flips() == ref.bits.last_stats().flips(),
          "step " + std::to_string(s) + ": flip counts differ");
    compare(m, ref.model, s);
  }
  check(flips > 100, "too few flips to test anything: " + std::to_string(flips));
  const auto& w = trainer.last_wire_bytes();
  if (rank == 0)
    std::printf(
        "ranks %d: bytes sent per rank per step: signals %zu, bits %zu, float gradients %zu, "
        "control %zu, total %zu; float all-reduce %zu (%.2fx); %zu flips in 12 steps\n",
        ranks, w.signal_reduce_scatter, w.bits_all_gather, w.float_all_reduce, w.control, w.total(),
        w.float_all_reduce_baseline, w.ratio(), flips);
  if (ranks > 1) check(w.ratio() >= 1.8, "wire ratio below 1.8: " + std::to_string(w.ratio()));
  // Sharded state: each rank holds its rows' accumulators only.
  const std::size_t total = 37 * 100 + 2 * 24 * 512;
  check(trainer.local_boolean_optimizer().num_weights() <= total / ranks + 2 * 3 * 512,
        "accumulators are not sharded");
}

void test_divergence() {
  const Problem p;
  if (ranks > 1) {
    // Ranks that start from different states: the first step refuses before anything is
    // summed, on every rank, naming the tensor (here a bit of rank 1's model).
    Model m(p);
    if (rank == 1) m.b.kernel(0).flip(5, 9);
    DataParallelTrainer trainer(MPI_COMM_WORLD, m.boolean_parameters(), m.parameters(), options());
    m.train_pass(p, shard(p.batch(1)));
    std::string message;
    try {
      trainer.step(static_cast<std::size_t>(kTokens / ranks));
    } catch (const DistributedError& e) {
      message = e.what();
    }
    check(contains(message, "diverged before step 1") && contains(message, "'b.kernels.0.bits'") &&
              contains(message, "rank(s) 1"),
          "different initial states not reported before step 1: '" + message + "'");
    check(trainer.step_count() == 0, "a step was taken from different initial states");
  }
  Model m(p);
  DataParallelTrainer trainer(MPI_COMM_WORLD, m.boolean_parameters(), m.parameters(), options());
  for (int s = 1; s <= 2; ++s) {
    m.train_pass(p, shard(p.batch(s)));
    trainer.step(static_cast<std::size_t>(kTokens / ranks));
  }
  if (ranks < 2) return;
  // A scale that differs on rank 1: the check after step 3 names it, on every rank.
  if (rank == 1) m.b.s_in(1)[5] += 1e-3f;
  m.train_pass(p, shard(p.batch(3)));
  std::string message;
  try {
    trainer.step(static_cast<std::size_t>(kTokens / ranks));
  } catch (const DistributedError& e) {
    message = e.what();
  }
  check(contains(message, "diverged at step 3") && contains(message, "'b.kernels.1.s_in'") &&
            contains(message, "rank(s) 1"),
        "divergence of a scale not reported: '" + message + "'");
  MPI_Bcast(m.b.s_in(1).data(), 512, MPI_FLOAT, 0, MPI_COMM_WORLD);
  trainer.check_consistency();  // identical again
  // A flipped bit on rank 1, found by an explicit check.
  if (rank == 1) m.a.kernel(1).flip(3, 7);
  message.clear();
  try {
    trainer.check_consistency();
  } catch (const DistributedError& e) {
    message = e.what();
  }
  check(contains(message, "'a.kernels.1.bits'") && contains(message, "rank(s) 1"),
        "divergence of a bit not reported: '" + message + "'");
  if (rank == 1) m.a.kernel(1).flip(3, 7);
  trainer.check_consistency();
  // A non-finite signal on one rank's shard: every rank refuses the step.
  m.train_pass(p, shard(p.batch(4)));
  if (rank == 1) const_cast<float*>(m.a.signal(1).data())[11] = NAN;
  message.clear();
  try {
    trainer.step(static_cast<std::size_t>(kTokens / ranks));
  } catch (const mbok::InvalidArgument& e) {
    message = e.what();
  }
  check(contains(message, "signal of 'a.kernels.1.bits' is not finite"),
        "non-finite signal not reported: '" + message + "'");
  check(trainer.step_count() == 3, "a refused step counted");
  // The optimizers' replicated state is hashed too: an AdamW moment, then a Boolean tensor's
  // beta, that differs on rank 1 (imported from a one-process state that rank 1 changed).
  mbok::BooleanOptimizer one_b(m.boolean_parameters(), options().boolean);
  mbok::AdamW one_a(m.parameters(), options().adamw);
  for (int variant = 0; variant < 2; ++variant) {
    mbok::StateDict dict;
    one_b.export_state(dict, "boolean.");
    one_a.export_state(dict, "adamw.");
    if (rank == 1 && variant == 0) {
      float v;
      std::uint8_t* at = dict.at("adamw.b.kernels.1.s_in.exp_avg").bytes.data() + 3 * sizeof v;
      std::memcpy(&v, at, sizeof v);
      v += 1e-3f;
      std::memcpy(at, &v, sizeof v);
    }
    if (rank == 1 && variant == 1)
      dict["boolean.a.kernels.1.bits.beta"] = mbok::Tensor::scalar<double>(0.5);
    trainer.import_state(dict);
    message.clear();
    try {
      trainer.check_consistency();
    } catch (const DistributedError& e) {
      message = e.what();
    }
    const std::string want =
        variant == 0 ? "'adamw.b.kernels.1.s_in.exp_avg'" : "'a.kernels.1.bits (optimizer beta)'";
    check(contains(message, want) && contains(message, "rank(s) 1"),
          "divergence of the optimizer state not reported: '" + message + "'");
  }
}

// The overlapped step (begin_step, signals_ready as each layer's backward ends, finish_step)
// against step(), on two copies of the model, f16 and i8 accumulators: bits, scales and the
// gathered state identical after every step, bit for bit, and the same bytes sent. The
// overlapped trainer cuts the tensors into one bucket each (bucket_elements 4000: rings in
// flight at once, started in the backward's order, last layer first); in odd steps layer a's
// signal is never marked ready (finish_step starts its ring). Misuse is refused.
void test_overlap() {
  const Problem p;
  for (mbok::AccumulatorType type : {mbok::AccumulatorType::f16, mbok::AccumulatorType::i8}) {
    const std::string what = std::string("overlap (") + mbok::accumulator_name(type) + "): ";
    DataParallelOptions o = options();
    o.boolean.accumulator = type;
    Model plain(p), over(p);
    DataParallelTrainer one(MPI_COMM_WORLD, plain.boolean_parameters(), plain.parameters(), o);
    o.bucket_elements = 4000;
    DataParallelTrainer two(MPI_COMM_WORLD, over.boolean_parameters(), over.parameters(), o);
    std::size_t flips = 0;
    for (int s = 1; s <= 8; ++s) {
      const RowMatrix x = shard(p.batch(s));
      const auto n = static_cast<std::size_t>(x.rows());
      plain.train_pass(p, x);
      one.step(n);
      two.begin_step(n);
      // b's two trainable kernels are parameters 1 and 2, a's one kernel parameter 0.
      over.train_pass(p, x, [&](int layer) {
        if (layer == 1) two.signals_ready(1, 2);
        if (layer == 0 && s % 2 == 0) two.signals_ready(0);
      });
      two.finish_step();
      flips += two.last_stats().flips();
      const Layer* pairs[2][2] = {{&over.a, &plain.a}, {&over.b, &plain.b}};
      for (auto& pr : pairs)
        for (std::size_t k = 0; k < pr[0]->num_kernels(); ++k)
          check(pr[0]->kernel(k) == pr[1]->kernel(k) && pr[0]->s_out(k) == pr[1]->s_out(k) &&
                    pr[0]->s_in(k) == pr[1]->s_in(k),
                what + "step " + std::to_string(s) + ": kernel " + std::to_string(k) +
                    " or its scales differ from step()'s");
      check(two.last_wire_bytes().total() == one.last_wire_bytes().total(),
            what + "bytes sent differ from step()'s");
    }
    check(flips > 50, what + "too few flips to test anything: " + std::to_string(flips));
    mbok::StateDict a, b;
    one.export_state(a);
    two.export_state(b);
    if (rank == 0)
      for (const auto& [key, tensor] : a)
        check(b.count(key) == 1 && b.at(key).bytes == tensor.bytes,
              what + "state '" + key + "' differs from step()'s");
    // Misuse: signals_ready or finish_step outside a step, step() or a second mark inside one.
    const auto refused = [&](const std::function<void()>& f, const std::string& expected) {
      std::string message;
      try {
        f();
      } catch (const mbok::InvalidArgument& e) {
        message = e.what();
      }
      check(contains(message, expected),
            what + "expected '" + expected + "', got '" + message + "'");
    };
    refused([&] { two.signals_ready(0); }, "signals_ready outside begin_step");
    refused([&] { two.finish_step(); }, "finish_step without begin_step");
    over.train_pass(p, shard(p.batch(9)));
    two.begin_step(static_cast<std::size_t>(kTokens / ranks));
    refused([&] { two.step(); }, "while an overlapped step is open");
    two.signals_ready(0);
    refused([&] { two.signals_ready(0); }, "'a.kernels.1.bits' is already marked ready");
    refused([&] { two.signals_ready(2, 2); }, "parameters [2, 4) of 3");
    two.finish_step();
  }
  if (rank == 0) std::printf("overlapped steps on %d rank(s): equal to step()'s\n", ranks);
}

// Uneven and empty shards against one process, bit for bit: tensors of 2 rows (fewer rows
// than ranks from 3 on: empty slices) and of 7 rows (3 ranks: 3, 2, 2), a strided warm start
// of the accumulators (ld > cols), f32 and i8 accumulators. Rank 0 passes the whole signal and
// the others zeros, so the reduced signal is exactly one process's. Then the bits and the
// gathered accumulators equal one process's after every step, bit for bit, for f32 and for i8
// (whose stochastic rounding is keyed by the whole tensor's element indices): so 1, 2, 3 and
// 4 ranks (mpi.shards-N) give identical i8 accumulators and bits.
void test_shards() {
  for (mbok::AccumulatorType type : {mbok::AccumulatorType::f32, mbok::AccumulatorType::i8}) {
    const std::string what = std::string("shards (") + mbok::accumulator_name(type) + "): ";
    std::mt19937 rng(5);
    const int rows[2] = {2, 7}, cols[2] = {70, 130};
    std::vector<mbok::BitMatrix> bits, ref_bits;
    std::vector<std::vector<float>> q(2), zero(2);
    for (int t = 0; t < 2; ++t) {
      bits.push_back(mbok::BitMatrix::pack(gaussian(rows[t], cols[t], rng)));
      ref_bits.push_back(bits.back());
      q[static_cast<std::size_t>(t)].assign(static_cast<std::size_t>(rows[t] * cols[t]), 0.0f);
      zero[static_cast<std::size_t>(t)] = q[static_cast<std::size_t>(t)];
    }
    std::vector<float> v(3, 1.0f), g(3, 0.0f), ref_v = v, ref_g = g;
    DataParallelOptions o;
    o.boolean.accumulator = type;
    o.boolean.threshold = 1.0;
    o.boolean.learning_rate = 0.4;
    std::vector<mbok::BooleanParameter> params, ref_params;
    for (std::size_t t = 0; t < 2; ++t) {
      const std::size_t c = static_cast<std::size_t>(cols[t]);
      params.push_back(
          {"w" + std::to_string(t), &bits[t], rank == 0 ? q[t].data() : zero[t].data(), c});
      ref_params.push_back({"w" + std::to_string(t), &ref_bits[t], q[t].data(), c});
    }
    DataParallelTrainer trainer(MPI_COMM_WORLD, params, {{"p", v.data(), g.data(), 3, {3}, false}},
                                o);
    mbok::BooleanOptimizer ref(ref_params, o.boolean);
    // A strided warm start (5 floats between rows).
    for (std::size_t t = 0; t < 2; ++t) {
      const std::size_t c = static_cast<std::size_t>(cols[t]), ld = c + 5;
      std::vector<float> warm(static_cast<std::size_t>(rows[t]) * ld, 1e30f);
      std::uniform_real_distribution<float> uniform(-0.9f, 0.9f);
      for (int i = 0; i < rows[t]; ++i)
        for (std::size_t j = 0; j < c; ++j)
          warm[static_cast<std::size_t>(i) * ld + j] = uniform(rng);
      trainer.set_accumulators(t, warm.data(), ld);
      ref.set_accumulators(t, warm.data(), ld);
    }
    const auto compare_state = [&](const std::string& when) {
      mbok::StateDict mine, want;
      trainer.export_state(mine);
      if (rank != 0) return;
      ref.export_state(want, "boolean.");
      for (int t = 0; t < 2; ++t) {
        const std::string key = "boolean.w" + std::to_string(t) + ".accumulator";
        check(mine.count(key) == 1 && mine.at(key).bytes == want.at(key).bytes,
              what + when + ": gathered accumulators of w" + std::to_string(t) +
                  " differ from one process's");
      }
    };
    compare_state("warm start");
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::size_t flips = 0;
    for (int s = 1; s <= 6; ++s) {
      for (auto& qt : q)
        for (float& x : qt) x = normal(rng);
      trainer.step();
      ref.step();
      flips += trainer.last_stats().flips();
      for (std::size_t t = 0; t < 2; ++t)
        check(bits[t] == ref_bits[t], what + "step " + std::to_string(s) + ": bits of w" +
                                          std::to_string(t) + " differ from one process's");
      check(trainer.last_stats().flips() == ref.last_stats().flips(), what + "flip counts differ");
      compare_state("step " + std::to_string(s));
    }
    check(flips > 20, what + "too few flips to test anything: " + std::to_string(flips));
    mbok::StateDict state;
    trainer.export_state(state);
    if (rank == 0) {
      mbok::BooleanOptimizer loaded(ref_params, o.boolean);
      loaded.import_state(state, "boolean.");  // throws on codes out of range
    }
  }
}

// Bytes on the wire (tests/mpi/wire_bytes.sh measures them with Open MPI's pml monitoring):
// one block of the demo's linear layers (4 x 128 x 128, 512 x 128, 128 x 512; K = 2, the last
// kernel trained; their scales as float parameters), random signals, `steps` steps with the
// default consistency check every step. Rank 0 prints the number of signals and float
// gradients per step; every rank the bytes of its own ring messages in the last step.
void test_wire(int steps) {
  const int shapes[6][2] = {{128, 128}, {128, 128}, {128, 128}, {128, 128}, {512, 128}, {128, 512}};
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<mbok::BitMatrix> bits;
  std::vector<std::vector<float>> q(6), scales(6), grads(6);
  std::size_t signals = 0, floats = 0;
  for (const auto& shape : shapes) {
    bits.push_back(mbok::BitMatrix::pack(gaussian(shape[0], shape[1], rng)));
    signals += static_cast<std::size_t>(shape[0] * shape[1]);
  }
  std::vector<mbok::BooleanParameter> params;
  std::vector<mbok::Parameter> float_params;
  for (std::size_t t = 0; t < 6; ++t) {
    const auto m = static_cast<std::size_t>(shapes[t][0]),
               n = static_cast<std::size_t>(shapes[t][1]);
    q[t].assign(m * n, 0.0f);
    scales[t].assign(2 * (m + n), 1.0f);  // K (m + n) scales
    grads[t].assign(scales[t].size(), 0.0f);
    floats += scales[t].size();
    params.push_back({"w" + std::to_string(t), &bits[t], q[t].data(), n});
    float_params.push_back({"s" + std::to_string(t),
                            scales[t].data(),
                            grads[t].data(),
                            scales[t].size(),
                            {static_cast<std::int64_t>(scales[t].size())},
                            false});
  }
  DataParallelOptions o;
  o.boolean.learning_rate = 0.05;
  DataParallelTrainer trainer(MPI_COMM_WORLD, params, float_params, o);
  std::size_t flips = 0;
  for (int s = 0; s < steps; ++s) {
    for (std::size_t t = 0; t < 6; ++t) {
      for (float& x : q[t]) x = normal(rng);
      for (float& g : grads[t]) g = 1e-3f * normal(rng);
    }
    trainer.step();
    flips += trainer.last_stats().flips();
  }
  check(steps < 2 || flips > 0, "wire: no flips in " + std::to_string(steps) + " steps");
  const auto& w = trainer.last_wire_bytes();
  if (rank == 0) std::printf("wire: signals %zu floats %zu\n", signals, floats);
  std::fflush(stdout);
  MPI_Barrier(MPI_COMM_WORLD);
  std::printf("wire: rank %d rings %zu\n", rank,
              w.signal_reduce_scatter + w.bits_all_gather + w.float_all_reduce);
}

// Expects the trainer built by `make` to throw InvalidArgument containing `expected` on
// every rank.
template <typename Make>
void expect_mismatch(const char* what, const std::string& expected, Make make) {
  std::string message;
  try {
    make();
  } catch (const mbok::InvalidArgument& e) {
    message = e.what();
  }
  check(contains(message, expected),
        std::string(what) + ": expected '" + expected + "', got '" + message + "'");
}

void test_mismatch() {
  const Problem p;
  if (ranks < 2) return;
  const bool odd = rank == 1;
  expect_mismatch("shape", "'a.kernels.1.bits': 37 x 96", [&] {
    Model m(p, odd);
    DataParallelTrainer t(MPI_COMM_WORLD, m.boolean_parameters(), m.parameters(), options());
  });
  expect_mismatch("K", "Boolean parameters: 3", [&] {
    Model m(p);
    if (odd) m.a = Layer::from_dense(p.w1, 2, Layer::Vector::Zero(37), Model::two_trainable());
    DataParallelTrainer t(MPI_COMM_WORLD, m.boolean_parameters(), m.parameters(), options());
  });
  expect_mismatch("options", "rank 1 has 'Boolean learning rate 0.5", [&] {
    Model m(p);
    DataParallelOptions o = options();
    if (odd) o.boolean.learning_rate = 0.5;
    DataParallelTrainer t(MPI_COMM_WORLD, m.boolean_parameters(), m.parameters(), o);
  });
  expect_mismatch("invalid on one rank", "rank 1: invalid configuration", [&] {
    Model m(p);
    DataParallelOptions o = options();
    if (odd) o.boolean.threshold = -1;
    DataParallelTrainer t(MPI_COMM_WORLD, m.boolean_parameters(), m.parameters(), o);
  });
  MPI_Barrier(MPI_COMM_WORLD);  // nobody is left waiting
}

// rms scaling of an all-subnormal reduced signal: eta / rms would overflow float and put NaN
// in every accumulator whose signal is zero; the step must add nothing and the trainer's own
// state must load again. Float parameter sizes whose sum wraps are refused.
void test_tiny() {
  for (mbok::AccumulatorType type :
       {mbok::AccumulatorType::f32, mbok::AccumulatorType::f16, mbok::AccumulatorType::i8}) {
    mbok::BitMatrix bits(5, 70);
    std::vector<float> q(5 * 70, 0.0f);
    q[3] = std::numeric_limits<float>::denorm_min();
    q[140] = -2 * std::numeric_limits<float>::denorm_min();
    std::vector<float> v(4, 1.0f), g(4, 0.0f);
    DataParallelOptions o;
    o.boolean.signal_scaling = mbok::SignalScaling::rms;
    o.boolean.accumulator = type;
    const mbok::BitMatrix before = bits;
    DataParallelTrainer t(MPI_COMM_WORLD, {{"w", &bits, q.data(), 70}},
                          {{"p", v.data(), g.data(), 4, {4}, false}}, o);
    t.step();
    t.step();
    check(bits == before, "tiny: no flips from a subnormal signal");
    mbok::StateDict state;
    t.export_state(state);  // collective; the whole state lands on rank 0
    if (rank != 0) continue;
    const auto it = state.find("boolean.w.accumulator");
    check(it != state.end(), "tiny: rank 0 holds the accumulators");
    if (it == state.end()) continue;
    bool zero = true;
    for (std::uint8_t b : it->second.bytes) zero = zero && b == 0;
    check(zero, std::string("tiny: accumulators stay zero (") + mbok::accumulator_name(type) + ")");
    // The state loads into a one-process optimizer (NaN accumulators would be refused).
    mbok::BitMatrix bits1(5, 70);
    mbok::BooleanOptimizer one({{"w", &bits1, q.data(), 70}}, o.boolean);
    try {
      one.import_state(state, "boolean.");
    } catch (const std::exception& e) {
      check(false, std::string("tiny: the trainer's own state is refused: ") + e.what());
    }
  }
  std::vector<float> v(4, 1.0f), g(4, 0.0f);
  const std::size_t half = std::numeric_limits<std::size_t>::max() / 2 + 1;  // two wrap to 0
  bool refused = false;
  try {
    DataParallelTrainer t(
        MPI_COMM_WORLD, {},
        {{"p", v.data(), g.data(), half, {}, false}, {"q", v.data(), g.data(), half, {}, false}},
        DataParallelOptions{});
  } catch (const mbok::InvalidArgument& e) {
    refused = std::string(e.what()).find("sizes overflow") != std::string::npos;
    if (!refused) std::fprintf(stderr, "rank %d: %s\n", rank, e.what());
  }
  check(refused, "tiny: float parameter sizes whose sum wraps are refused");
}

std::string checkpoint_path(const std::string& dir) { return dir + "/state.ckpt"; }

void test_save(const std::string& dir, int steps) {
  const Problem p;
  Model m(p);
  DataParallelTrainer trainer(MPI_COMM_WORLD, m.boolean_parameters(), m.parameters(), options());
  for (int s = 1; s <= steps; ++s) {
    m.train_pass(p, shard(p.batch(s)));
    trainer.step(static_cast<std::size_t>(shard(p.batch(s)).rows()));
  }
  mbok::StateDict state;
  trainer.export_state(state, "optimizer.");
  if (rank == 0) {
    m.export_state(state);
    mbok::save_checkpoint(checkpoint_path(dir), state, {}, false);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

void test_resume(const std::string& dir, int steps) {
  const Problem p;
  const mbok::Checkpoint ckpt = mbok::load_checkpoint(checkpoint_path(dir));
  Model m(p);
  m.import_state(ckpt.state);
  DataParallelTrainer trainer(MPI_COMM_WORLD, m.boolean_parameters(), m.parameters(), options());
  trainer.import_state(ckpt.state, "optimizer.");
  const int first = static_cast<int>(trainer.step_count()) + 1;
  for (int s = first; s < first + steps; ++s) {
    m.train_pass(p, shard(p.batch(s)));
    trainer.step(static_cast<std::size_t>(shard(p.batch(s)).rows()));
  }
  Reference ref(p);
  for (int s = 1; s < first + steps; ++s) ref.step(p, s);
  compare(m, ref.model, first + steps - 1);
  // The saved state also resumes one-process optimizers.
  Reference plain(p);
  plain.model.import_state(ckpt.state);
  plain.bits.import_state(mbok::sub_dict(ckpt.state, "optimizer.boolean."), "");
  plain.floats.import_state(mbok::sub_dict(ckpt.state, "optimizer.adamw."), "");
  for (int s = first; s < first + steps; ++s) plain.step(p, s);
  compare(plain.model, ref.model, first + steps - 1);
  if (rank == 0)
    std::printf("resumed at step %d on %d rank(s): equals the uninterrupted run\n", first, ranks);
}

// The shard files of the sharded checkpoint `path` in its directory (names only, sorted).
std::vector<std::string> shard_files(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path p(path);
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(p.parent_path())) {
    const std::string name = e.path().filename().string();
    if (name.rfind(p.filename().string() + ".shard-", 0) == 0) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

void train_steps(const Problem& p, Model& m, DataParallelTrainer& trainer, int first, int last) {
  for (int s = first; s <= last; ++s) {
    const RowMatrix x = shard(p.batch(s));
    m.train_pass(p, x);
    trainer.step(static_cast<std::size_t>(x.rows()));
  }
}

// `steps` steps, then a sharded checkpoint of the optimizers (under "optimizer.") and the
// model (rank 0's, in the manifest), saved twice: the second save replaces the first's shards.
void test_sharded_save(const std::string& dir, int steps) {
  const Problem p;
  Model m(p);
  DataParallelTrainer trainer(MPI_COMM_WORLD, m.boolean_parameters(), m.parameters(), options());
  train_steps(p, m, trainer, 1, steps);
  const std::string path = checkpoint_path(dir);
  mbok::StateDict model;
  m.export_state(model);
  std::vector<std::string> first;
  for (int save = 0; save < 2; ++save) {
    trainer.save_sharded(path, model, {{"note", "sharded"}, {"mbok.run.settings", "x"}},
                         "optimizer.", false);
    if (rank != 0) continue;
    const std::vector<std::string> files = shard_files(path);
    check(files.size() == static_cast<std::size_t>(ranks),
          "save " + std::to_string(save + 1) + ": " + std::to_string(files.size()) +
              " shard files next to the manifest, expected " + std::to_string(ranks));
    if (save == 0) first = files;
    if (save == 1)
      for (const auto& f : files)
        check(std::find(first.begin(), first.end(), f) == first.end(),
              "the second save reused the shard name '" + f + "'");
  }
  // The layout's own keys are refused as the caller's, on every rank, and nothing is written.
  for (const char* key : {"mbok.shards", "mbok.shard.0", "mbok.slices.x"}) {
    std::string message;
    try {
      trainer.save_sharded(path, model, {{key, "1"}}, "optimizer.", false);
    } catch (const mbok::FormatError& e) {
      message = e.what();
    }
    check(contains(message, std::string("metadata key '") + key + "' is reserved"),
          std::string("reserved key ") + key + ": '" + message + "'");
  }
  if (rank == 0) {
    check(shard_files(path).size() == static_cast<std::size_t>(ranks),
          "a refused save changed the shard files");
    mbok::distributed::ShardedCheckpoint ckpt(path);
    check(ckpt.shards() == static_cast<std::size_t>(ranks), "manifest: shard count");
    check(ckpt.manifest().metadata.count("note") == 1 &&
              ckpt.manifest().metadata.count("mbok.run.settings") == 1 &&
              ckpt.manifest().metadata.size() == 2,
          "manifest: the caller's metadata (an 'mbok.' key of its own too), and only it, comes "
          "back");
    check(ckpt.manifest().state.count("model.a.kernels.0.bits") == 1 &&
              ckpt.manifest().state.count("optimizer.boolean.a.kernels.1.bits.accumulator") == 0,
          "manifest: holds the model and the replicated state, not the accumulators");
    // Each shard holds exactly its rank's rows of every kernel (37 rows split unevenly).
    for (int r = 0; r < ranks; ++r) {
      const mbok::Checkpoint shard =
          mbok::load_checkpoint(ckpt.shard_path(static_cast<std::size_t>(r)));
      const auto rows = trainer.slice_rows(0, r);
      const auto it = shard.state.find("optimizer.boolean.a.kernels.1.bits.accumulator");
      check(it != shard.state.end() &&
                it->second.shape[0] == static_cast<std::int64_t>(rows.second - rows.first),
            "shard " + std::to_string(r) + " does not hold its " +
                std::to_string(rows.second - rows.first) + " rows of a.kernels.1");
    }
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

// Resumes from DIR/state.ckpt in either layout through DataParallelTrainer::load_checkpoint,
// `steps` more steps: equals the uninterrupted one-process run. Then the same checkpoint in
// one process without MPI (load_any_checkpoint: the one-process layout) and the plain
// optimizers: equal too.
void test_sharded_resume(const std::string& dir, int steps) {
  const Problem p;
  Model m(p);
  DataParallelTrainer trainer(MPI_COMM_WORLD, m.boolean_parameters(), m.parameters(), options());
  const mbok::Checkpoint rest = trainer.load_checkpoint(checkpoint_path(dir), "optimizer.");
  for (const auto& kv : rest.state)
    check(kv.first.rfind("optimizer.", 0) != 0, "load_checkpoint returned '" + kv.first + "'");
  m.import_state(rest.state);
  const int first = static_cast<int>(trainer.step_count()) + 1;
  check(first > 1, "the resumed run starts at step 1");
  train_steps(p, m, trainer, first, first + steps - 1);
  Reference ref(p);
  for (int s = 1; s < first + steps; ++s) ref.step(p, s);
  compare(m, ref.model, first + steps - 1);
  const mbok::Checkpoint whole = mbok::distributed::load_any_checkpoint(checkpoint_path(dir));
  Reference plain(p);
  plain.model.import_state(whole.state);
  plain.bits.import_state(mbok::sub_dict(whole.state, "optimizer.boolean."), "");
  plain.floats.import_state(mbok::sub_dict(whole.state, "optimizer.adamw."), "");
  for (int s = first; s < first + steps; ++s) plain.step(p, s);
  compare(plain.model, ref.model, first + steps - 1);
  if (rank == 0)
    std::printf(
        "resumed at step %d on %d rank(s) and in one process: equal the uninterrupted run\n", first,
        ranks);
}

// Expects trainer.load_checkpoint(path) to throw FormatError containing every part of
// `expected`, on every rank, and to leave the trainer's state as it was.
void expect_load_failure(DataParallelTrainer& trainer, const std::string& path,
                         const std::vector<std::string>& expected, const std::string& what) {
  const std::int64_t before = trainer.step_count();
  std::string message;
  try {
    trainer.load_checkpoint(path, "optimizer.");
  } catch (const mbok::FormatError& e) {
    message = e.what();
  }
  if (rank == ranks - 1) std::printf("rank %d, %s: %s\n", rank, what.c_str(), message.c_str());
  bool ok = !message.empty();
  for (const auto& part : expected) ok = ok && contains(message, part);
  check(ok, what + ": expected an error naming '" + expected.back() + "', got '" + message + "'");
  check(trainer.step_count() == before, what + ": a failed load changed the state");
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// A missing, corrupt or stale shard fails the load on every rank with an error naming the
// shard's file; a save that fails on one rank throws on every rank and leaves the last
// checkpoint loadable.
void test_sharded_broken(const std::string& dir) {
  const Problem p;
  Model m(p);
  DataParallelTrainer trainer(MPI_COMM_WORLD, m.boolean_parameters(), m.parameters(), options());
  train_steps(p, m, trainer, 1, 2);
  const std::string path = checkpoint_path(dir);
  trainer.save_sharded(path, {}, {}, "optimizer.", false);
  train_steps(p, m, trainer, 3, 3);
  const mbok::distributed::ShardedCheckpoint ckpt(path);
  const std::string last = ckpt.shard_path(ckpt.shards() - 1);
  const std::string name = std::filesystem::path(last).filename().string();
  const std::string which = "shard " + std::to_string(ranks - 1) + " of " + std::to_string(ranks);
  // Missing.
  if (rank == 0) std::filesystem::rename(last, last + ".away");
  MPI_Barrier(MPI_COMM_WORLD);
  expect_load_failure(trainer, path, {which, "is missing", name}, "missing shard");
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) std::filesystem::rename(last + ".away", last);
  // Corrupt: one byte of its data changed.
  const std::string good = read_file(last);
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) {
    std::string bad = good;
    bad[bad.size() - 3] = static_cast<char>(bad[bad.size() - 3] ^ 0x10);
    write_file(last, bad);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  expect_load_failure(trainer, path, {which, "checksum does not match", name}, "corrupt shard");
  MPI_Barrier(MPI_COMM_WORLD);
  // Stale: the shard of another save put in its place (a whole, valid file).
  if (rank == 0) {
    write_file(last, good);
    std::filesystem::copy_file(last, dir + "/old-shard",
                               std::filesystem::copy_options::overwrite_existing);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  trainer.save_sharded(dir + "/other.ckpt", {}, {}, "optimizer.", false);  // step 3
  const std::string other = mbok::distributed::ShardedCheckpoint(dir + "/other.ckpt")
                                .shard_path(static_cast<std::size_t>(ranks - 1));
  if (rank == 0)
    std::filesystem::copy_file(other, last, std::filesystem::copy_options::overwrite_existing);
  MPI_Barrier(MPI_COMM_WORLD);
  expect_load_failure(trainer, path, {which, "not the file the manifest names", name},
                      "stale shard");
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) write_file(last, read_file(dir + "/old-shard"));
  MPI_Barrier(MPI_COMM_WORLD);
  // A save whose shard write fails on the last rank: every rank throws, naming it, and the
  // checkpoint of step 2 still loads.
  if (rank == ranks - 1) {
    mbok::detail::io_fault().err = ENOSPC;
    mbok::detail::io_fault().step = static_cast<int>(mbok::detail::IoStep::write);
  }
  std::string message;
  try {
    trainer.save_sharded(path, {}, {}, "optimizer.", false);
  } catch (const mbok::FormatError& e) {
    message = e.what();
  }
  mbok::detail::io_fault().step = 0;
  if (rank == 0) std::printf("rank 0, failed save: %s\n", message.c_str());
  check(contains(message, "writing the shards failed on rank(s) " + std::to_string(ranks - 1)) &&
            contains(message, "No space left"),
        "failed save: '" + message + "'");
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0)
    check(shard_files(path).size() == static_cast<std::size_t>(ranks),
          "a failed save left " + std::to_string(shard_files(path).size()) + " shard files");
  trainer.load_checkpoint(path, "optimizer.");
  check(trainer.step_count() == 2, "the checkpoint of step 2 no longer loads after a failed save");
  // A save that died before its manifest (its shards written, the job killed) leaves shards
  // no manifest names: the last checkpoint loads regardless, and the next save removes them.
  const std::string orphan = path + ".shard-0-of-5-00000000deadbeef";
  if (rank == 0) write_file(orphan, read_file(ckpt.shard_path(0)));
  MPI_Barrier(MPI_COMM_WORLD);
  trainer.load_checkpoint(path, "optimizer.");
  check(trainer.step_count() == 2, "an orphan shard broke the checkpoint");
  trainer.save_sharded(path, {}, {}, "optimizer.", false);
  if (rank == 0)
    check(!std::filesystem::exists(orphan) &&
              shard_files(path).size() == static_cast<std::size_t>(ranks),
          "the shards of a save that died before its manifest were not removed by the next save");
}

// Bytes the trainer itself allocates on rank `r` of `P` for Boolean tensors `shapes` (rows,
// cols) with accumulators of `acc` bytes: for each tensor, the reduced signal of the rank's
// rows (4 bytes per weight), their accumulators (`acc`) and the copy of their bits the local
// optimizer flips (whole 64-bit words per row); and the ring buffers, two chunks of the
// largest bucket (floats) and two of its packed bits. Buckets: consecutive tensors of at most
// 4 M weights together, a larger tensor alone (mpi.hpp). The model's own buffers (bits of every
// kernel, the signal Q of every trainable kernel, scales and their gradients) come on top.
double trainer_bytes(const std::vector<std::pair<std::size_t, std::size_t>>& shapes, std::size_t P,
                     std::size_t r, double acc) {
  const auto begin = [&](std::size_t rows, std::size_t k) {
    return rows / P * k + rows % P * k / P;
  };
  double bytes = 0;
  for (const auto& [rows, cols] : shapes) {
    const double slice = static_cast<double>(begin(rows, r + 1) - begin(rows, r));
    bytes += slice * static_cast<double>(cols) * (4 + acc) +
             slice * static_cast<double>((cols + 63) / 64 * 8);
  }
  double largest_floats = 0, largest_words = 0;
  for (std::size_t t = 0; t < shapes.size();) {
    std::size_t u = t, elements = 0;
    while (u < shapes.size() &&
           (u == t || elements + shapes[u].first * shapes[u].second <= (std::size_t{1} << 22)))
      elements += shapes[u].first * shapes[u].second, ++u;
    for (std::size_t c = 0; c < P; ++c) {
      double floats = 0, words = 0;
      for (std::size_t v = t; v < u; ++v) {
        const double rows_c =
            static_cast<double>(begin(shapes[v].first, c + 1) - begin(shapes[v].first, c));
        floats += rows_c * static_cast<double>(shapes[v].second);
        words += rows_c * static_cast<double>((shapes[v].second + 63) / 64);
      }
      largest_floats = std::max(largest_floats, floats);
      largest_words = std::max(largest_words, words);
    }
    t = u;
  }
  return bytes + 2 * 4 * largest_floats + 2 * 8 * largest_words;
}

// This process's resident memory (VmRSS), in bytes; 0 when /proc is not there.
double resident_bytes() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::atof(line.c_str() + 6) * 1024.0;
  return 0;
}

// The trainer's resident memory per rank, measured: 6 kernels of 1024 x 2048 (12.6 M weights,
// three buckets), f16 accumulators; VmRSS after construction and two steps minus VmRSS before
// (the model's bits and signals already allocated and written) must match trainer_bytes within
// 10 % + 4 MB, and fall with the rank count. Rank 0 also prints the formula's per-rank table
// for a 7B-shaped LLaMA at K = 2 (docs/distributed.md).
void test_memory() {
  const std::size_t rows = 1024, cols = 2048, T = 6;
  std::mt19937 rng(17);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<mbok::BitMatrix> bits;
  std::vector<std::vector<float>> q(T);
  std::vector<mbok::BooleanParameter> params;
  std::vector<std::pair<std::size_t, std::size_t>> shapes;
  const double start = resident_bytes();
  for (std::size_t t = 0; t < T; ++t) bits.emplace_back(rows, cols);
  for (std::size_t t = 0; t < T; ++t) {
    q[t].resize(rows * cols);
    for (float& x : q[t]) x = normal(rng);
    params.push_back({"w" + std::to_string(t), &bits[t], q[t].data(), cols});
    shapes.push_back({rows, cols});
  }
  std::vector<float> v(16, 1.0f), g(16, 0.0f);
  DataParallelOptions o;
  o.boolean.accumulator = mbok::AccumulatorType::f16;
  o.boolean.learning_rate = 0.05;
  MPI_Barrier(MPI_COMM_WORLD);
  const double before = resident_bytes();
  // The model's part of the formula: every kernel's bits and its whole signal Q, on every rank.
  const double model = static_cast<double>(T * (rows * cols * 4 + rows * bits[0].row_words() * 8));
  std::printf("memory: rank %d of %d: model's bits and signals resident %.1f MB, formula %.1f MB\n",
              rank, ranks, (before - start) / 1e6, model / 1e6);
  check(std::abs(before - start - model) <= 0.1 * model + 4e6,
        "resident memory of the bits and signals " + std::to_string((before - start) / 1e6) +
            " MB, the formula says " + std::to_string(model / 1e6) + " MB");
  double measured = 0;
  {
    DataParallelTrainer trainer(MPI_COMM_WORLD, params,
                                {{"p", v.data(), g.data(), 16, {16}, false}}, o);
    trainer.step();
    trainer.step();
    measured = resident_bytes() - before;
  }
  const double predicted =
      trainer_bytes(shapes, static_cast<std::size_t>(ranks), static_cast<std::size_t>(rank), 2);
  std::printf("memory: rank %d of %d: trainer resident %.1f MB, formula %.1f MB\n", rank, ranks,
              measured / 1e6, predicted / 1e6);
  check(std::abs(measured - predicted) <= 0.1 * predicted + 4e6,
        "resident memory of the trainer " + std::to_string(measured / 1e6) +
            " MB, the formula says " + std::to_string(predicted / 1e6) + " MB");
  const double one = trainer_bytes(shapes, 1, 0, 2);
  if (ranks > 1)
    check(measured < one * 0.6 + 4e6, "the trainer's memory does not fall with the rank count: " +
                                          std::to_string(measured / 1e6) + " MB on " +
                                          std::to_string(ranks) + " ranks, one process's formula " +
                                          std::to_string(one / 1e6) + " MB");
  if (rank != 0) return;
  // LLaMA-7B's linear layers: 32 blocks of q, k, v, o (4096 x 4096), gate, up (11008 x 4096),
  // down (4096 x 11008); K = 2, the last kernel trainable.
  std::vector<std::pair<std::size_t, std::size_t>> llama;
  std::size_t n = 0, scales = 0;
  for (int b = 0; b < 32; ++b)
    for (const auto& s : std::vector<std::pair<std::size_t, std::size_t>>{{4096, 4096},
                                                                          {4096, 4096},
                                                                          {4096, 4096},
                                                                          {4096, 4096},
                                                                          {11008, 4096},
                                                                          {11008, 4096},
                                                                          {4096, 11008}}) {
      llama.push_back(s);
      n += s.first * s.second;
      scales += 2 * (s.first + s.second);
    }
  const double gb = 1e9, N = static_cast<double>(n);
  // Every rank: both kernels' bits, the trainable kernel's signal Q, the scales with their
  // gradients, reduced gradients and AdamW's two moments (5 floats each).
  const double fixed = 2 * N / 8 + 4 * N + 5 * 4 * static_cast<double>(scales);
  std::printf(
      "7B (N = %zu trainable weights, %zu scales): bits %.2f GB, Q %.2f GB, scales %.2f GB "
      "per rank\n",
      n, scales, 2 * N / 8 / gb, 4 * N / gb, 5 * 4 * static_cast<double>(scales) / gb);
  for (double acc : {4.0, 2.0, 1.0})
    for (std::size_t P : {1, 2, 4, 8}) {
      const double own = trainer_bytes(llama, P, P - 1, acc);  // the last rank: the most rows
      std::printf(
          "7B: accumulators %g B, P = %zu: trainer %.2f GB, with bits, Q and scales %.2f GB\n", acc,
          P, own / gb, (own + fixed) / gb);
    }
}

// Trains two ranks, saving a checkpoint after step 2; at step `at` rank 1 stops calling
// (`stall`), dies (`kill`), or writes its process id to DIR/rank1.pid and stops calling while
// rank 0 waits inside the step (`outside`: failed_rank.sh kills it with kill -9; the deadline
// of 20 s must not be what ends the job). Never returns normally: the job must end with an
// error.
void test_failed_rank(int at, const std::string& dir, const std::string& mode) {
  const Problem p;
  Model m(p);
  DataParallelOptions o = options();
  o.timeout_seconds = mode == "outside" ? 20 : 2;
  DataParallelTrainer trainer(MPI_COMM_WORLD, m.boolean_parameters(), m.parameters(), o);
  for (int s = 1;; ++s) {
    if (rank == 1 && s == at) {
      if (mode == "kill") std::raise(SIGKILL);
      if (mode == "outside") {
        const std::string tmp = dir + "/rank1.pid.tmp";
        if (std::FILE* f = std::fopen(tmp.c_str(), "w")) {
          std::fprintf(f, "%ld\n", static_cast<long>(getpid()));
          std::fclose(f);
          std::rename(tmp.c_str(), (dir + "/rank1.pid").c_str());
        }
      }
      std::this_thread::sleep_for(std::chrono::seconds(120));
    }
    const RowMatrix x = shard(p.batch(s));
    m.train_pass(p, x);
    try {
      trainer.step(static_cast<std::size_t>(x.rows()));
      if (s == 2) {
        mbok::StateDict state;
        trainer.export_state(state, "optimizer.");
        if (rank == 0) {
          m.export_state(state);
          mbok::save_checkpoint(checkpoint_path(dir), state, {}, false);
        }
      }
    } catch (const DistributedError& e) {
      std::fprintf(stderr, "rank %d: %s\n", rank, e.what());
      MPI_Abort(MPI_COMM_WORLD, 3);
    }
  }
}

// Rank 1 never finalizes (it sleeps until the launcher ends it); rank 0's MPI_Finalize,
// bounded by `timeout` seconds, must not hang: finalize_within ends it with
// kFinalizeTimeoutStatus and a line naming it (failed_rank.sh finalize checks both).
int test_finalize(double timeout) {
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 1) {
    std::this_thread::sleep_for(std::chrono::seconds(120));
    return 1;
  }
  mbok::distributed::finalize_within(timeout, rank);
  std::printf("rank %d: MPI_Finalize returned\n", rank);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  // A rank ended by the launcher names what it was waiting for (failed_rank.sh checks it).
  mbok::distributed::report_termination(rank);
  const std::string what = argc > 1 ? argv[1] : "";
  if (what == "finalize" && argc == 3) return test_finalize(std::atof(argv[2]));
  try {
    if (what == "equality")
      test_equality();
    else if (what == "divergence")
      test_divergence();
    else if (what == "mismatch")
      test_mismatch();
    else if (what == "tiny")
      test_tiny();
    else if (what == "shards")
      test_shards();
    else if (what == "overlap")
      test_overlap();
    else if (what == "wire" && argc == 3)
      test_wire(std::atoi(argv[2]));
    else if (what == "save" && argc == 4)
      test_save(argv[2], std::atoi(argv[3]));
    else if (what == "resume" && argc == 4)
      test_resume(argv[2], std::atoi(argv[3]));
    else if (what == "memory")
      test_memory();
    else if (what == "ssave" && argc == 4)
      test_sharded_save(argv[2], std::atoi(argv[3]));
    else if (what == "sresume" && argc == 4)
      test_sharded_resume(argv[2], std::atoi(argv[3]));
    else if (what == "sbroken" && argc == 3)
      test_sharded_broken(argv[2]);
    else if ((what == "stall" || what == "kill" || what == "outside") && argc == 4)
      test_failed_rank(std::atoi(argv[2]), argv[3], what);
    else
      check(false,
            "usage: mbok_mpi_tests equality|divergence|mismatch|tiny|shards|save DIR N|resume DIR "
            "N|ssave DIR N|sresume DIR N|sbroken DIR|stall|kill S DIR");
  } catch (const std::exception& e) {
    check(false, std::string("exception: ") + e.what());
  }
  int all = 0;
  MPI_Allreduce(&failures, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0) std::printf("%s on %d rank(s): %s\n", what.c_str(), ranks, all ? "FAILED" : "ok");
  MPI_Finalize();
  return all ? 1 : 0;
}
