#pragma once
// Data-parallel Boolean finetuning (--distributed): the finetune stage launched by mpirun,
// every rank on its contiguous share of each step's batch (the same sampling everywhere, so
// the global batch stays --batch sequences), with mbok's DataParallelTrainer in place of
// the Boolean optimizer's and AdamW's steps. Only rank 0 prints and writes files; every
// rank holds the same model, so evaluations agree. Checkpoints keep the one-process layout:
// a run saved on P ranks resumes on any number. A build without MPI rejects --distributed.

#include <mbok/boolean_optimizer.hpp>
#include <mbok/error.hpp>
#include <mbok/state_dict.hpp>

#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "boolean_layers.hpp"
#include "options.hpp"
#include "train.hpp"

#if defined(TINY_TRANSFORMER_MPI)
#include <mbok/distributed/mpi.hpp>  // includes <mpi.h>
#endif

namespace tiny {

#if defined(TINY_TRANSFORMER_MPI)
// Whether MPI is running: initialized and not yet finalized.
inline bool mpi_running() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized && !finalized;
}
#endif

/// Whether this process prints and writes files: rank 0 of a distributed run, or the only
/// process of any other.
inline bool is_root_process() {
#if defined(TINY_TRANSFORMER_MPI)
  if (!mpi_running()) return true;
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank == 0;
#else
  return true;
#endif
}

/// Starts MPI when --distributed asks for it (null otherwise) and silences every rank but
/// rank 0; the result finalizes MPI when released. Throws `InvalidArgument` for a stage other
/// than finetune and in a build without MPI.
inline std::shared_ptr<void> start_distributed(const Options& o, const std::string& stage) {
  if (!o.distributed) return nullptr;
  if (stage != "finetune")
    throw mbok::InvalidArgument(
        "--distributed applies to the finetune stage only (the latent baseline and the other "
        "stages run in one process): mpirun -np N tiny_transformer --distributed ... finetune");
#if defined(TINY_TRANSFORMER_MPI)
  MPI_Init(nullptr, nullptr);
  if (!is_root_process()) {
    std::cout.setstate(std::ios::badbit);
    std::cerr.setstate(std::ios::badbit);
  }
  return std::shared_ptr<void>(nullptr, [](void*) { MPI_Finalize(); });
#else
  throw mbok::InvalidArgument(
      "--distributed needs a build with MPI (Debian: libopenmpi-dev openmpi-bin, then "
      "reconfigure)");
#endif
}

/// Ends every rank of a distributed run after an error on one (the others would wait in a
/// collective); nothing otherwise.
inline void abort_distributed_run(int status) {
#if defined(TINY_TRANSFORMER_MPI)
  if (mpi_running()) MPI_Abort(MPI_COMM_WORLD, status);
#else
  (void)status;
#endif
}

/// Sequences [rows r / P, rows (r + 1) / P) of a batch: rank r's contiguous share.
inline Batch share_of_batch(const Batch& batch, int rank, int ranks) {
  const Index first = batch.rows * rank / ranks, last = batch.rows * (rank + 1) / ranks;
  const auto begin = std::size_t(first * batch.len), end = std::size_t(last * batch.len);
  Batch out;
  out.rows = last - first;
  out.len = batch.len;
  out.inputs.assign(batch.inputs.begin() + std::ptrdiff_t(begin),
                    batch.inputs.begin() + std::ptrdiff_t(end));
  out.targets.assign(batch.targets.begin() + std::ptrdiff_t(begin),
                     batch.targets.begin() + std::ptrdiff_t(end));
  return out;
}

/// The finetuning loop's distributed steps (implemented over MPI below).
class DataParallelFinetune {
 public:
  virtual ~DataParallelFinetune() = default;
  /// This rank's share of a step's global batch.
  virtual Batch local_share(const Batch& batch) const = 0;
  /// The global batch's loss from every rank's loss on `local_rows` sequences. Collective.
  virtual DistillLoss mean_over_ranks(const DistillLoss& local, Index local_rows) const = 0;
  /// One optimizer step of the Boolean kernels and the float parameters at these learning
  /// rates, on gradients that are means over this rank's `local_rows`. Collective.
  virtual void step(Index local_rows, double scale_lr, double eta) = 0;
  /// The fraction of trainable signs the last step flipped (global).
  virtual double flip_rate() const = 0;
  /// Writes the optimizers' state into `dict` on rank 0 in the layout of a one-process
  /// BooleanOptimizer and AdamW under these prefixes (replacing what is there). Collective.
  virtual void export_state(mbok::StateDict& dict, const std::string& boolean_prefix,
                            const std::string& adamw_prefix) = 0;
};

#if defined(TINY_TRANSFORMER_MPI)

class MpiFinetune final : public DataParallelFinetune {
 public:
  /// The trainer over the student's trainable kernels and `scales`, starting from the state
  /// of the one-process optimizers (fresh, warm-started or resumed from a checkpoint).
  MpiFinetune(Transformer<float>& student, const std::vector<mbok::Parameter>& scales,
              const mbok::BooleanOptimizer& bool_opt, const mbok::AdamW& scale_opt)
      : trainer_(MPI_COMM_WORLD, boolean_parameters(student), scales,
                 trainer_options(bool_opt, scale_opt)) {
    mbok::StateDict state;
    bool_opt.export_state(state, "boolean.");
    scale_opt.export_state(state, "adamw.");
    trainer_.import_state(state);
  }

  Batch local_share(const Batch& batch) const override {
    return share_of_batch(batch, trainer_.rank(), trainer_.size());
  }

  DistillLoss mean_over_ranks(const DistillLoss& local, Index local_rows) const override {
    const auto rows = double(local_rows);
    double sums[3] = {local.kl * rows, local.mse * rows, rows};
    MPI_Allreduce(MPI_IN_PLACE, sums, 3, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    return {sums[0] / sums[2], sums[1] / sums[2]};
  }

  void step(Index local_rows, double scale_lr, double eta) override {
    trainer_.set_adamw_learning_rate(scale_lr);
    trainer_.set_boolean_learning_rate(eta);
    trainer_.step(std::size_t(local_rows));
  }

  double flip_rate() const override { return trainer_.last_stats().rate(); }

  void export_state(mbok::StateDict& dict, const std::string& boolean_prefix,
                    const std::string& adamw_prefix) override {
    mbok::StateDict state;
    trainer_.export_state(state, "");
    const std::string boolean = "boolean.";
    for (auto& [name, tensor] : state) {
      const bool is_boolean = name.compare(0, boolean.size(), boolean) == 0;
      const std::string rest =
          name.substr(is_boolean ? boolean.size() : std::string("adamw.").size());
      dict[(is_boolean ? boolean_prefix : adamw_prefix) + rest] = std::move(tensor);
    }
  }

 private:
  static std::vector<mbok::BooleanParameter> boolean_parameters(Transformer<float>& student) {
    std::vector<mbok::BooleanParameter> out;
    student.for_each_linear([&](const std::string& name, std::unique_ptr<Linear<float>>& l) {
      for (auto& p : dynamic_cast<BoolLinear<float>&>(*l).layer().boolean_parameters(name + "."))
        out.push_back(std::move(p));
    });
    return out;
  }

  static mbok::distributed::DataParallelOptions trainer_options(
      const mbok::BooleanOptimizer& bool_opt, const mbok::AdamW& scale_opt) {
    mbok::distributed::DataParallelOptions o;
    o.boolean = bool_opt.options();
    o.adamw = scale_opt.options();
    return o;
  }

  mbok::distributed::DataParallelTrainer trainer_;
};

#endif

/// The distributed steps of a finetuning run of `method`, or null when it runs in one
/// process. Throws `InvalidArgument` for a method other than Boolean finetuning (mbok), or a
/// global batch smaller than the number of ranks.
inline std::unique_ptr<DataParallelFinetune> distributed_finetune(
    const Options& o, const std::string& method, Transformer<float>& student,
    const std::vector<mbok::Parameter>& scales, const mbok::BooleanOptimizer* bool_opt,
    const mbok::AdamW& scale_opt) {
  if (!o.distributed) return nullptr;
  if (method != "mbok" || bool_opt == nullptr)
    throw mbok::InvalidArgument("--distributed: the " + method +
                                " run stays in one process (only Boolean finetuning is "
                                "data-parallel)");
#if defined(TINY_TRANSFORMER_MPI)
  int ranks = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  if (o.batch < ranks)
    throw mbok::InvalidArgument("--distributed: --batch " + std::to_string(o.batch) +
                                " is smaller than the " + std::to_string(ranks) +
                                " ranks (each needs at least one sequence)");
  return std::make_unique<MpiFinetune>(student, scales, *bool_opt, scale_opt);
#else
  (void)student;
  (void)scales;
  (void)scale_opt;
  throw mbok::InvalidArgument("--distributed needs a build with MPI");
#endif
}

}  // namespace tiny
