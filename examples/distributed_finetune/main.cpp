// Data-parallel Boolean finetuning over MPI (mbok/distributed/mpi.hpp).
//
// A stack of Boolean layers shaped like the tiny-transformer demo's linear layers (3 blocks
// of 4 x (128 x 128), 128 -> 512 and 512 -> 128, K = 2, tanh between layers) is finetuned
// to match its float teacher on a global batch of 1024 tokens. Every rank runs forward and
// backward on its share of the batch; the trainer reduce-scatters the Boolean signals, each
// rank steps the accumulators of its row slices and the flipped bits are all-gathered.
//
// Usage:  mpirun -np 2 distributed_finetune [steps] [overlap]
// (default 30 steps; also runs without mpirun). With `overlap` each block's signals form a
// bucket whose ring starts as soon as the backward of the block is done (begin_step,
// signals_ready, finish_step), overlapping the backward of the blocks below it; the results
// are the same bit for bit. Prints the loss, the steps per second (after one warm-up step) and
// the bytes each rank sent per step against a float all-reduce; exits with status 1 if the
// loss did not fall.

#include <mbok/distributed/mpi.hpp>  // includes <mpi.h>
#include <mbok/mbok.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace {

using Layer = mbok::BooleanLinear<float>;
using RowMatrix = Layer::RowMatrix;

constexpr int kBlocks = 3, kModel = 128, kMlp = 512, kTokens = 1024, kKernels = 2;

Eigen::MatrixXf gaussian(int rows, int cols, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Eigen::MatrixXf m(rows, cols);
  for (int j = 0; j < cols; ++j)
    for (int i = 0; i < rows; ++i) m(i, j) = normal(rng);
  return m;
}

// The teacher's weights (the same on every rank: one seed) and the students built from them.
struct Stack {
  std::vector<Eigen::MatrixXf> teacher;
  std::vector<Layer> student;
  Stack() {
    std::mt19937 rng(2024);
    for (int b = 0; b < kBlocks; ++b) {
      for (int i = 0; i < 4; ++i) teacher.push_back(gaussian(kModel, kModel, rng));
      teacher.push_back(gaussian(kMlp, kModel, rng));
      teacher.push_back(gaussian(kModel, kMlp, rng));
    }
    for (auto& w : teacher) {
      w /= std::sqrt(static_cast<float>(w.cols()));
      student.push_back(Layer::from_dense(w, kKernels));
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  const int steps = argc > 1 ? std::atoi(argv[1]) : 30;
  const bool overlap = argc > 2 && std::string(argv[2]) == "overlap";
  if (steps < 2 || (argc > 2 && !overlap) || argc > 3) {
    if (rank == 0) std::fprintf(stderr, "usage: %s [steps >= 2] [overlap]\n", argv[0]);
    MPI_Finalize();
    return 2;
  }
  int status = 0;
  try {
    Stack s;
    std::vector<mbok::BooleanParameter> bits;
    std::vector<mbok::Parameter> floats;
    std::size_t trained = 0;
    for (std::size_t l = 0; l < s.student.size(); ++l) {
      const std::string prefix = "layer" + std::to_string(l) + ".";
      for (auto& p : s.student[l].boolean_parameters(prefix)) {
        trained += p.bits->rows() * p.bits->cols();
        bits.push_back(p);
      }
      for (auto& p : s.student[l].parameters(prefix)) floats.push_back(p);
    }
    mbok::distributed::DataParallelOptions options;
    options.boolean.signal_scaling = mbok::SignalScaling::rms;
    options.boolean.learning_rate = 0.1;
    options.adamw.learning_rate = 1e-3;
    // One bucket per block (4 x 128 x 128 + 2 x 512 x 128 weights): its ring can start while
    // the backward of the blocks below runs. (Without overlap all 3 blocks share one ring.)
    if (overlap) options.bucket_elements = 4 * kModel * kModel + 2 * kMlp * kModel;
    mbok::distributed::DataParallelTrainer trainer(MPI_COMM_WORLD, bits, floats, options);

    // This rank's rows of each global batch.
    const int t0 = kTokens * rank / ranks, t1 = kTokens * (rank + 1) / ranks;
    const std::size_t layers = s.student.size();
    std::vector<RowMatrix> inputs(layers), pre(layers);
    double first = 0, last = 0, seconds = 0, step_seconds = 0;
    std::size_t flips = 0;
    for (int step = 0; step < steps; ++step) {
      std::mt19937 rng(100 + static_cast<unsigned>(step));
      const RowMatrix x = RowMatrix(gaussian(kTokens, kModel, rng)).middleRows(t0, t1 - t0);
      const auto start = std::chrono::steady_clock::now();
      // Forward through teacher and student; tanh between layers, not after the last.
      RowMatrix h = x, th = x;
      for (std::size_t l = 0; l < layers; ++l) {
        inputs[l] = h;
        pre[l] = s.student[l].forward(h);
        th = th * s.teacher[l].transpose();
        if (l + 1 < layers) {
          h = pre[l].array().tanh().matrix();
          th = th.array().tanh().matrix();
        } else {
          h = pre[l];
        }
      }
      RowMatrix grad;
      double loss = mbok::mse(th, h, &grad);
      // Time inside the trainer's calls (communication, waiting for the other ranks, the
      // optimizer's own step).
      double in_trainer = 0;
      const auto timed = [&](auto&& call) {
        const auto t = std::chrono::steady_clock::now();
        call();
        in_trainer += std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
      };
      if (overlap) timed([&] { trainer.begin_step(static_cast<std::size_t>(t1 - t0)); });
      for (std::size_t l = layers; l-- > 0;) {
        if (l + 1 < layers)
          grad = (grad.array() * (1.0f - pre[l].array().tanh().square())).matrix();
        RowMatrix dx(inputs[l].rows(), inputs[l].cols());
        s.student[l].backward(inputs[l], grad, dx);
        // Layer l's one trainable kernel is Boolean parameter l.
        if (overlap) timed([&] { trainer.signals_ready(l); });
        grad = std::move(dx);
      }
      if (overlap)
        timed([&] { trainer.finish_step(); });
      else
        timed([&] { trainer.step(static_cast<std::size_t>(t1 - t0)); });
      if (step > 0) step_seconds += in_trainer;
      if (step > 0)
        seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      flips += trainer.last_stats().flips();
      // The global loss: the mean of the ranks' means, weighted by their rows.
      loss *= static_cast<double>(t1 - t0) / kTokens;
      // Bounded like the trainer's own collectives: a rank that stalls ends the job.
      mbok::distributed::all_reduce(MPI_COMM_WORLD, &loss, 1, MPI_DOUBLE, MPI_SUM,
                                    options.timeout_seconds, "loss all-reduce");
      if (step == 0) first = loss;
      last = loss;
      if (rank == 0 && (step == 0 || (step + 1) % 10 == 0))
        std::printf("step %3d  loss %.5f  flips so far %zu\n", step + 1, loss, flips);
    }
    const auto& w = trainer.last_wire_bytes();
    if (rank == 0) {
      std::printf("%d rank(s), %d tokens per step, %zu Boolean weights trained%s\n", ranks, kTokens,
                  trained, overlap ? ", communication overlapped with the backward" : "");
      std::printf(
          "steps/s %.2f (%d steps after the first; %.0f%% of the time in the trainer's step)\n",
          (steps - 1) / seconds, steps - 1, 100.0 * step_seconds / seconds);
      std::printf(
          "bytes sent per rank per step: %zu (signals %zu, bits %zu, float gradients %zu, "
          "control %zu); a float all-reduce: %zu, %.2fx more\n",
          w.total(), w.signal_reduce_scatter, w.bits_all_gather, w.float_all_reduce, w.control,
          w.float_all_reduce_baseline, w.ratio());
      std::printf("loss %.5f -> %.5f\n", first, last);
    }
    status = last < first ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rank %d: %s\n", rank, e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Finalize();
  return status;
}
