#pragma once
/// \file
/// Data-parallel distillation of a LLaMA-family student over MPI: a `FinetuneUpdate`
/// (mbok/llama/train/distill.hpp) that runs a `DataParallelTrainer` (mpi.hpp).
///
///     MPI_Init(&argc, &argv);
///     auto update = std::make_unique<mbok::distributed::DataParallelUpdate>(
///         MPI_COMM_WORLD, student, options);
///     mbok::llama::train::Finetuner ft(teacher, student, options, std::move(update));
///     ft.step(global_batch, sequences, len);   // on every rank, with the same batch
///
/// Every rank holds the teacher and the student and is given the same global batch of B
/// sequences; rank r of P computes sequences [B r / P, B (r + 1) / P) (the teacher's outputs,
/// the student's forward and backward on them), and the trainer sums the Boolean signals
/// (reduce-scatter into row slices, each rank stepping the accumulators of its rows) and the
/// float gradients (all-reduce, the same AdamW step everywhere), each rank's mean weighted by
/// its share of the batch: the step is one process's step on the whole batch, up to the order
/// of float sums (mpi.hpp, "Equality with one process"). The printed loss is the same mean
/// over the global batch on every rank.
///
/// State, two layouts. `export_state` gathers the optimizers on rank 0 in the one-process
/// layout (the `Finetuner` adds the step there). `save_sharded(finetuner, path, ...)` has each
/// rank write its rows of the accumulators and rank 0 a manifest (sharded_checkpoint.hpp), so
/// no rank ever holds more than its slices; `load_checkpoint(finetuner, path, ...)` reads
/// either layout on any number of ranks, and `load_any_checkpoint` either one in one process.
/// So a checkpoint saved on P ranks resumes on any number of ranks or in one process, and the
/// other way.
///
/// Needs `<mpi.h>` and a program linked with MPI (CMake: `mbok::mpi`).

#include <mpi.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "../llama/train/distill.hpp"
#include "mpi.hpp"

namespace mbok {
namespace distributed {

/// The data-parallel `FinetuneUpdate` (see the file comment). Every rank of `comm` builds it
/// with the same student shape and options; the student must outlive it.
///
/// Overlap (on by default): the signals of each block form one bucket, whose reduce-scatter
/// ring starts as soon as the backward has finished the block (`DataParallelTrainer::
/// begin_step`, `signals_ready`, `finish_step`), while the blocks below it still run. The
/// step is the same, bit for bit, as without overlap.
class DataParallelUpdate : public llama::train::FinetuneUpdate {
 public:
  /// Builds the trainer over the student's trainable kernels and full-precision parameters
  /// with `options`' Boolean optimizer and AdamW settings. Collective. Throws what
  /// `DataParallelTrainer`'s constructor throws (`InvalidArgument` on every rank when the
  /// ranks' models or options differ).
  DataParallelUpdate(MPI_Comm comm, llama::train::TrainableLlama<float>& student,
                     const llama::train::FinetuneOptions& options, std::int64_t check_every = 1,
                     double timeout_seconds = 600, bool overlap = true)
      : comm_(comm),
        timeout_seconds_(timeout_seconds),
        overlap_(overlap),
        trainer_(comm, student.boolean_parameters(), student.parameters(),
                 make_options(student, options, check_every, timeout_seconds, overlap)) {}

  int rank() const noexcept { return trainer_.rank(); }
  int size() const noexcept { return trainer_.size(); }
  bool overlaps() const noexcept { return overlap_; }
  DataParallelTrainer& trainer() noexcept { return trainer_; }

  void begin_backward(std::size_t local_sequences) override {
    if (overlap_) trainer_.begin_step(local_sequences);
  }
  void signals_final(std::size_t first, std::size_t count) override {
    if (overlap_) trainer_.signals_ready(first, count);
  }
  void between_products() override {
    if (overlap_) trainer_.progress();
  }

  /// Rank r's contiguous share of `sequences`. Every rank needs at least one sequence: the
  /// `Finetuner` refuses an empty share, so a batch smaller than the number of ranks fails on
  /// every rank alike before anything is communicated.
  std::pair<std::size_t, std::size_t> share(std::size_t sequences) const override {
    const auto P = static_cast<std::size_t>(size()), r = static_cast<std::size_t>(rank());
    return {sequences * r / P, sequences * (r + 1) / P};
  }

  void apply(double lr, double eta, std::size_t local_sequences,
             llama::train::FinetuneStep& result) override {
    trainer_.set_adamw_learning_rate(lr);
    // eta 0 is not a valid rate (the schedule's floor may reach it): a vanishing one is.
    trainer_.set_boolean_learning_rate(std::max(eta, 1e-12));
    if (overlap_)
      trainer_.finish_step();
    else
      trainer_.step(local_sequences);
    result.flips = trainer_.last_stats().flips();
    result.flip_rate = trainer_.last_stats().rate();
  }

  /// The losses weighted by the ranks' shares: sum_r (n_r / N) loss_r. Collective; waits at
  /// most the trainer's timeout (throws `DistributedError`).
  llama::train::DistillLoss global_loss(const llama::train::DistillLoss& local,
                                        std::size_t local_sequences) override {
    const auto n = static_cast<double>(local_sequences);
    double v[3] = {local.kl * n, local.hidden * n, n};
    all_reduce(comm_, v, 3, MPI_DOUBLE, MPI_SUM, timeout_seconds_,
               "DataParallelUpdate: rank " + std::to_string(rank()) + ": loss all-reduce");
    llama::train::DistillLoss out;
    out.kl = v[0] / v[2];
    out.hidden = v[1] / v[2];
    return out;
  }

  void set_accumulators(std::size_t index, const float* values, std::size_t ld) override {
    trainer_.set_accumulators(index, values, ld);
  }
  /// This rank's share of the accumulators (about 1/P of one process's).
  std::size_t boolean_state_bytes() const override {
    return trainer_.local_boolean_optimizer().state_bytes();
  }
  void export_state(StateDict& dict, const std::string& prefix) override {
    trainer_.export_state(dict, prefix);
  }
  bool writes_state() const override { return rank() == 0; }
  void import_state(const StateDict& dict, const std::string& prefix) override {
    trainer_.import_state(dict, prefix);
  }

 private:
  static DataParallelOptions make_options(llama::train::TrainableLlama<float>& student,
                                          const llama::train::FinetuneOptions& o,
                                          std::int64_t check_every, double timeout_seconds,
                                          bool overlap) {
    DataParallelOptions d;
    d.boolean = o.boolean;
    d.adamw = o.adamw;
    d.check_every = check_every;
    d.timeout_seconds = timeout_seconds;
    if (overlap) {
      // Buckets of one block each (blocks have the same shapes, so runs of consecutive
      // tensors of one block's weights are the blocks), up to the trainer's default size.
      const auto offsets = student.boolean_parameter_offsets();
      const auto params = student.boolean_parameters();
      std::size_t block = 0;
      for (std::size_t l = 0; l + 1 < offsets.size(); ++l) {
        std::size_t weights = 0;
        for (std::size_t t = offsets[l]; t < offsets[l + 1]; ++t)
          weights += params[t].bits->rows() * params[t].bits->cols();
        block = std::max(block, weights);
      }
      if (block > 0) d.bucket_elements = std::min(d.bucket_elements, block);
    }
    return d;
  }
  MPI_Comm comm_;
  double timeout_seconds_;
  bool overlap_;
  DataParallelTrainer trainer_;
};

#if defined(MBOK_DISTRIBUTED_CHECKPOINTS)
namespace detail {
inline DataParallelUpdate& data_parallel_update(llama::train::Finetuner& ft, const char* what) {
  auto* u = dynamic_cast<DataParallelUpdate*>(&ft.update());
  mbok::detail::require(u != nullptr, what, ": the finetuner's update is not a DataParallelUpdate");
  return *u;
}
}  // namespace detail

/// Saves `ft`'s optimizer state and step as a sharded checkpoint (`DataParallelTrainer::
/// save_sharded`): each rank writes its rows of the accumulators next to `path`, rank 0 the
/// manifest `path` with `<prefix>step`, the optimizers' replicated state under `<prefix>`,
/// the tensors of `replicated` (rank 0's: e.g. the student) and `metadata`. `ft`'s update must
/// be a `DataParallelUpdate`. Atomic: a failure on any rank leaves the previous checkpoint at
/// `path` whole. Collective; throws what `save_sharded` throws, `InvalidArgument` for another
/// update.
inline void save_sharded(llama::train::Finetuner& ft, const std::string& path, StateDict replicated,
                         const Metadata& metadata, const std::string& prefix, bool sync = true) {
  DataParallelUpdate& u = detail::data_parallel_update(ft, "save_sharded");
  replicated[prefix + "step"] = Tensor::scalar<std::int64_t>(ft.step_count());
  u.trainer().save_sharded(path, replicated, metadata, prefix, sync);
}

/// Loads a checkpoint in either layout (sharded, or `Finetuner::export_state` saved in one
/// file by one process or by rank 0) into `ft` on any number of ranks, each rank reading only
/// what it needs (`DataParallelTrainer::load_checkpoint`), and sets its step. Returns the
/// rest: the caller's tensors (e.g. the student) and metadata. Collective. Throws
/// `FormatError` on every rank as `load_checkpoint`, and for a missing or negative
/// `<prefix>step` (then the optimizers may already hold the checkpoint's state: restart or
/// end the run); `InvalidArgument` for an update that is not a `DataParallelUpdate`.
inline Checkpoint load_checkpoint(llama::train::Finetuner& ft, const std::string& path,
                                  const std::string& prefix) {
  DataParallelUpdate& u = detail::data_parallel_update(ft, "load_checkpoint");
  Checkpoint rest = u.trainer().load_checkpoint(path, prefix);
  const auto step = read_scalar<std::int64_t>(rest.state, prefix + "step");
  mbok::detail::require_format(step >= 0, "checkpoint '", path, "': '", prefix,
                               "step' is negative");
  ft.set_step_count(step);
  rest.state.erase(prefix + "step");
  return rest;
}
#endif

}  // namespace distributed
}  // namespace mbok
