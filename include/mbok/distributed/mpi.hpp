#pragma once
/// \file
/// Data-parallel Boolean finetuning over MPI, with sharded Boolean optimizer state.
///
/// Optional: this header needs `<mpi.h>` (an MPI-3 library: Open MPI, MPICH) and the program
/// must link MPI (CMake: `mbok::mpi`, defined when `find_package(MPI)` finds it). The rest of
/// mbok does not depend on it.
///
/// Every process (rank) of a communicator holds the whole model and computes, on its shard of
/// the global batch, the layers' backward pass (Boolean signals Q and float gradients). A
/// `DataParallelTrainer` then makes one optimizer step that equals a one-process step on the
/// whole batch:
///
/// - the signals Q of every trainable kernel are summed with a ring reduce-scatter of
///   nonblocking point-to-point messages (bandwidth-optimal on any MPI library; tensors
///   bucketed so that small ones share a ring): rank p
///   receives the sum of rows [m p / P, m (p + 1) / P) of each m x n kernel's signal (its
///   slice) and alone holds that slice's accumulators (sharded optimizer state: 1/P of the
///   accumulators per rank);
/// - each rank steps its slices with a `BooleanOptimizer` given the whole tensor's signal RMS
///   and flip fraction (small all-reduces), so the flip rule sees what one process would see;
/// - the flipped slices are all-gathered by a ring into every rank's kernels as packed rows
///   (1 bit per weight on the wire, rounded up to whole 64-bit words per row);
/// - float gradients (scales, biases, norms) are all-reduced (ring) and every rank runs the same
///   `AdamW` step on the sum, so the float parameters stay identical everywhere.
///
/// Normalization: `step(local_count)` takes gradients that are means over the rank's
/// `local_count` examples (as mbok's losses return) and weights them by local_count /
/// global_count before the sum: the mean over the global batch. `step()` sums them as they
/// are (gradients already normalized by the global batch).
///
/// Equality with one process: the sums run in a different order than one process's products
/// over the whole batch, so signals and float gradients agree within float rounding (a
/// relative 1e-6 per step for the batch sizes of the tests); the bits agree unless an
/// accumulator lands within that rounding of the threshold. With i8 accumulators the
/// stochastic rounding is keyed by the whole tensor's number and element indices
/// (`BooleanOptimizer::set_rounding_origin`): given the same reduced signals, the accumulators
/// and bits are the same for any number of ranks and equal one process's.
///
/// Consistency: every `check_every` steps, at `check_consistency()` and in `export_state`,
/// each rank hashes the trainable kernels' bits, the float parameters and the optimizers'
/// replicated state (per-tensor betas, step counts, AdamW's moments; the Boolean accumulators
/// are sharded, one owner per row) and the hashes are all-gathered; a difference throws
/// `DistributedError` on every rank naming the step, the tensor and the ranks that differ from rank
/// 0. The same check runs before the first step after construction or `import_state`, whatever
/// `check_every` says: ranks that start from different states fail at once.
///
/// Failures: the constructor compares every rank's configuration (tensor names and shapes,
/// optimizer options) and throws `InvalidArgument` on every rank naming the first difference.
/// A bad reduced signal or gradient (not finite, overflow) throws on every rank. Every
/// collective waits at most `timeout_seconds`: a rank that died or stopped calling makes the
/// others throw `DistributedError` instead of hanging (the communicator is then unusable: end
/// the job, e.g. with `MPI_Abort`). Open MPI's launcher itself ends the job when a process
/// dies; `report_termination` (termination.hpp) makes the survivors name what they were
/// waiting for when it does, and `finalize_within` bounds `MPI_Finalize`.
///
/// Overlap: `begin_step`, `signals_ready` (as the backward finishes each layer) and
/// `finish_step` make the same step as `step`, bit for bit, with each bucket's ring
/// reduce-scatter started as soon as its tensors' signals are final, so that communication
/// runs during the rest of the backward (advanced at each call and at `progress()`).
///
/// Checkpoints, two layouts. One-process: `export_state` gathers the sharded state on rank 0 in
/// the layout of a one-process `BooleanOptimizer` (under `<prefix>boolean.`) and `AdamW`
/// (under `<prefix>adamw.`); `import_state` on any number of ranks takes each rank's slice of
/// it. Sharded (sharded_checkpoint.hpp; needs xxhash.h): `save_sharded` has each rank write
/// its own slices to a shard file and rank 0 a manifest, so no rank ever holds more than its
/// slices; `load_checkpoint` reads either layout on any number of ranks, each rank reading
/// only the shards that hold its rows, and `load_any_checkpoint` turns either into the
/// one-process layout without MPI. So a run saved on P ranks resumes on P' ranks, or in one
/// process, and the other way.
///
/// Threads: the trainer makes MPI calls from the calling thread only (MPI_THREAD_SINGLE or
/// FUNNELED is enough); it duplicates the communicator, so its messages never mix with the
/// program's.

// The C API only: the deprecated MPI-2 C++ bindings (which Open MPI's and MPICH's mpi.h pull
// in by default) are not used and draw warnings.
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../adamw.hpp"
#include "../bit_matrix.hpp"
#include "../boolean_optimizer.hpp"
#include "../error.hpp"
#include "../parameter.hpp"
#include "../state_dict.hpp"
#include "termination.hpp"

// Sharded checkpoints (save_sharded, load_checkpoint) need io/checkpoint.hpp, which needs
// xxhash.h; without it the trainer has export_state and import_state only.
#if __has_include(<xxhash.h>)
#define MBOK_DISTRIBUTED_CHECKPOINTS 1
#include "../detail/io/atomic_file.hpp"
#include "../io/checkpoint.hpp"
#include "sharded_checkpoint.hpp"
#endif

namespace mbok::distributed {

/// A failure of the distributed run itself: ranks diverged, a collective timed out, or a rank
/// failed during a step.
class DistributedError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Options of `DataParallelTrainer`; every rank must pass the same values (checked).
struct DataParallelOptions {
  /// The Boolean optimizer's options (each rank's optimizer steps its slices with them).
  BooleanOptimizerOptions boolean;
  /// AdamW's options for the float parameters.
  AdamWOptions adamw;
  /// Check that every rank holds the same bits and floats every this many steps (0: only at
  /// `check_consistency()` and `export_state`). The check hashes every trainable bit and float
  /// parameter once and all-gathers 8 bytes per tensor.
  std::int64_t check_every = 1;
  /// The most weights of consecutive Boolean tensors summed by one ring (a bucket; a larger
  /// tensor is a bucket of its own), > 0. Small tensors share a ring's P - 1 latencies; with an
  /// overlapped step (`begin_step`) a bucket's ring starts once its tensors' signals are
  /// final, so smaller buckets start earlier. The results do not depend on it (each weight's
  /// sum runs in the same order whatever the buckets).
  std::size_t bucket_elements = std::size_t{1} << 22;
  /// The longest wait of one collective, in seconds (> 0); beyond it the trainer throws
  /// `DistributedError`. Generous by default: a slow rank (saving a checkpoint, a long
  /// forward) must not look dead.
  double timeout_seconds = 600;
};

/// Bytes this rank sent in one step. The signals, bits and float gradients travel in the
/// trainer's own rings of point-to-point messages, and are counted as sent (about (P - 1) / P
/// of the data for a reduce-scatter or an all-gather, twice that for an all-reduce); the
/// control values (small MPI collectives) are estimated the same way from their sizes.
struct WireBytes {
  std::size_t signal_reduce_scatter = 0;  ///< float signals, reduce-scattered
  std::size_t bits_all_gather = 0;        ///< packed bit rows (whole words), all-gathered
  std::size_t float_all_reduce = 0;       ///< float gradients, all-reduced
  std::size_t control = 0;                ///< per-tensor RMS, peaks, flip counts, hashes
  /// The same step done the plain way: every signal and float gradient all-reduced as floats
  /// (each rank then runs the whole optimizer on the whole tensors).
  std::size_t float_all_reduce_baseline = 0;
  /// Everything this trainer sent.
  std::size_t total() const noexcept {
    return signal_reduce_scatter + bits_all_gather + float_all_reduce + control;
  }
  /// float_all_reduce_baseline / total() (0 with one rank: nothing is sent).
  double ratio() const noexcept {
    return total() ? static_cast<double>(float_all_reduce_baseline) / static_cast<double>(total())
                   : 0.0;
  }
};

namespace detail {

// A 64-bit hash of words (a multiply-xorshift chain: fast, and any change of a word changes
// the result with overwhelming probability; not cryptographic).
inline std::uint64_t hash_words(std::uint64_t h, const std::uint64_t* w, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    h ^= w[i] + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
  }
  return h;
}
inline std::uint64_t hash_bytes(std::uint64_t h, const void* data, std::size_t bytes) noexcept {
  const auto* p = static_cast<const std::uint8_t*>(data);
  std::size_t i = 0;
  for (; i + 8 <= bytes; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = hash_words(h, &w, 1);
  }
  std::uint64_t tail = 0;
  if (i < bytes) std::memcpy(&tail, p + i, bytes - i);
  return hash_words(h, &tail, 1) ^ bytes;
}

// A double printed so that equal text means an equal value.
inline std::string exact(double v) {
  std::ostringstream out;
  out.precision(17);
  out << v;
  return out.str();
}

}  // namespace detail

/// Waits for `request` at most `timeout_seconds` (> 0), polling with `MPI_Test` and sleeping
/// up to 1 ms between polls so that a waiting rank leaves the cores to ranks still computing.
/// Throws `DistributedError` naming `what` when MPI reports an error or the time runs out
/// (another rank died, stalled or called something else: the job should then end, e.g. with
/// `MPI_Abort`).
inline void wait_for(MPI_Request& request, double timeout_seconds, const std::string& what) {
  const WaitScope scope(what);  // named by report_termination's line if the launcher ends us
  const auto start = std::chrono::steady_clock::now();
  const auto limit = std::chrono::duration<double>(timeout_seconds);
  std::chrono::microseconds nap(0);
  for (long polls = 0;; ++polls) {
    int done = 0;
    const int rc = MPI_Test(&request, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) {
      char text[MPI_MAX_ERROR_STRING];
      int len = 0;
      MPI_Error_string(rc, text, &len);
      throw DistributedError("mbok: " + what +
                             " failed: " + std::string(text, static_cast<std::size_t>(len)));
    }
    if (done) return;
    if (std::chrono::steady_clock::now() - start > limit)
      throw DistributedError(mbok::detail::concat(
          "mbok: ", what, " did not complete within ", timeout_seconds,
          " s: another rank died, stopped or called something else; end the job"));
    if (polls > 200) {
      nap = std::min(std::chrono::microseconds(1000), nap + std::chrono::microseconds(20));
      std::this_thread::sleep_for(nap);
    }
  }
}

/// `MPI_Allreduce` in place over `comm`, waited at most `timeout_seconds` (`wait_for`).
/// Collective. Throws `DistributedError` naming `what` on an MPI error or at the deadline.
inline void all_reduce(MPI_Comm comm, void* data, int count, MPI_Datatype type, MPI_Op op,
                       double timeout_seconds, const std::string& what) {
  MPI_Request request;
  if (MPI_Iallreduce(MPI_IN_PLACE, data, count, type, op, comm, &request) != MPI_SUCCESS)
    throw DistributedError("mbok: " + what + ": MPI_Iallreduce failed");
  wait_for(request, timeout_seconds, what);
}

/// `MPI_Barrier` over `comm`, waited at most `timeout_seconds` (`wait_for`). Collective.
/// Throws `DistributedError` naming `what` on an MPI error or at the deadline.
inline void barrier(MPI_Comm comm, double timeout_seconds, const std::string& what) {
  MPI_Request request;
  if (MPI_Ibarrier(comm, &request) != MPI_SUCCESS)
    throw DistributedError("mbok: " + what + ": MPI_Ibarrier failed");
  wait_for(request, timeout_seconds, what);
}

/// Makes training steps data-parallel over an MPI communicator (see the file comment).
///
/// The parameters name memory the model owns, as for the optimizers (parameter.hpp): the
/// model must outlive the trainer. Every rank passes the same parameter list (names, shapes,
/// order) and options. Every member function that communicates is collective: every rank of
/// the communicator calls it, in the same order.
class DataParallelTrainer {
 public:
  /// Builds the trainer over a duplicate of `comm`: each rank keeps the accumulators of its
  /// row slice of every kernel in `boolean_params` and an AdamW over `float_params`.
  /// Collective. Throws `InvalidArgument` on every rank when the configurations differ across
  /// ranks (the message names the first difference and the ranks), for a bad parameter or
  /// option (as the optimizers do), a signal whose stride is not its column count, or a slice
  /// beyond MPI's int counts; `DistributedError` when MPI fails or a rank does not join within
  /// the timeout.
  DataParallelTrainer(MPI_Comm comm, std::vector<BooleanParameter> boolean_params,
                      std::vector<Parameter> float_params, DataParallelOptions options = {})
      : options_(options) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    mbok::detail::require(initialized != 0, "DataParallelTrainer: MPI is not initialized");
    mbok::detail::require(std::isfinite(options_.timeout_seconds) && options_.timeout_seconds > 0,
                          "DataParallelTrainer: timeout must be finite and > 0 seconds, got ",
                          options_.timeout_seconds);
    mbok::detail::require(options_.bucket_elements > 0,
                          "DataParallelTrainer: bucket_elements must be > 0");
    mbok::detail::require(options_.check_every >= 0,
                          "DataParallelTrainer: check_every must be >= 0, got ",
                          options_.check_every);
    {
      // The duplicate is collective too: a rank that never joins must not hang the others.
      MPI_Request request;
      MPI_Comm dup = MPI_COMM_NULL;
      if (MPI_Comm_idup(comm, &dup, &request) != MPI_SUCCESS)
        throw DistributedError("mbok: DataParallelTrainer: MPI_Comm_idup failed");
      int rank = 0;
      MPI_Comm_rank(comm, &rank);
      wait_for(request, options_.timeout_seconds,
               "DataParallelTrainer: rank " + std::to_string(rank) +
                   ": duplicating the communicator (set-up)");
      comm_ = dup;
    }
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    try {
      setup(std::move(boolean_params), std::move(float_params));
    } catch (...) {
      release();
      throw;
    }
  }

  DataParallelTrainer(const DataParallelTrainer&) = delete;
  DataParallelTrainer& operator=(const DataParallelTrainer&) = delete;

  /// Frees the duplicated communicator (unless MPI is already finalized).
  ~DataParallelTrainer() { release(); }

  /// This process's rank and the number of ranks.
  int rank() const noexcept { return rank_; }
  int size() const noexcept { return size_; }
  /// Steps taken (the same on every rank).
  std::int64_t step_count() const noexcept { return step_; }
  /// Rows [first, second) of Boolean parameter `index` whose accumulators rank `rank` holds.
  /// Throws `InvalidArgument` for a bad index or rank.
  std::pair<std::size_t, std::size_t> slice_rows(std::size_t index, int rank) const {
    mbok::detail::require(index < tensors_.size(), "DataParallelTrainer: Boolean parameter ", index,
                          " does not exist (", tensors_.size(), " registered)");
    mbok::detail::require(rank >= 0 && rank < size_, "DataParallelTrainer: rank ", rank,
                          " does not exist (", size_, " ranks)");
    return {row_begin(tensors_[index].rows, rank), row_begin(tensors_[index].rows, rank + 1)};
  }

  /// One data-parallel step, with gradients that are means over this rank's `local_count`
  /// examples: the step uses sum_r (local_count_r / global count) g_r, the mean over the
  /// global batch (equal counts are summed first and the sum divided by P). Collective. Throws
  /// `InvalidArgument` on every rank when the global count is 0 or a reduced signal or
  /// gradient is not finite or overflows (nothing changed), `DistributedError` when a rank
  /// fails during the step or a collective times out.
  void step(std::size_t local_count) {
    not_in_overlapped_step("step");
    const auto [weight, scale] = open_step(local_count);
    run_step(weight, scale);
  }
  /// One data-parallel step that sums the ranks' gradients as they are (already normalized by
  /// the global batch). Collective; errors as `step(local_count)`.
  void step() {
    not_in_overlapped_step("step");
    wire_ = WireBytes{};
    check_initial_state();
    run_step(1.0, 1.0);
  }

  /// The same step as `step(local_count)`, split so that the signals' rings overlap the
  /// backward pass: `begin_step` before the backward (it agrees on the batch's weights),
  /// `signals_ready` as the backward finishes each Boolean parameter's signal (a bucket's ring
  /// starts once all of its tensors are ready; rings in flight advance at each call and at
  /// `progress`), `finish_step` after the backward (it waits for the rings, then steps as
  /// `step` does). The results equal `step(local_count)`'s bit for bit (each ring sums in a
  /// fixed order, whatever the timing). Every rank makes the same calls in the same order.
  /// Collective. Throws `InvalidArgument` when a step is already open, and what `step` throws.
  void begin_step(std::size_t local_count) {
    not_in_overlapped_step("begin_step");
    const auto [weight, scale] = open_step(local_count);
    open_overlapped(weight, scale);
  }
  /// `begin_step` for gradients already normalized by the global batch (as `step()`).
  void begin_step() {
    not_in_overlapped_step("begin_step");
    wire_ = WireBytes{};
    check_initial_state();
    open_overlapped(1.0, 1.0);
  }
  /// Boolean parameters [first, first + count) have their final signals for this step (the
  /// model no longer writes them until `finish_step` returns): their buckets' rings start
  /// once every tensor of the bucket is ready, and the rings in flight advance. Every rank
  /// calls it for the same parameters in the same order. Throws `InvalidArgument` outside
  /// `begin_step` .. `finish_step`, for a parameter out of range or marked twice;
  /// `DistributedError` when a ring fails or passes its deadline.
  void signals_ready(std::size_t first, std::size_t count = 1) {
    mbok::detail::require(overlap_.open, "DataParallelTrainer: signals_ready outside begin_step");
    mbok::detail::require(first <= tensors_.size() && count <= tensors_.size() - first,
                          "DataParallelTrainer: signals_ready: parameters [", first, ", ",
                          first + count, ") of ", tensors_.size());
    for (std::size_t t = first; t < first + count; ++t) {
      mbok::detail::require(!overlap_.ready[t], "DataParallelTrainer: signals_ready: '",
                            tensors_[t].param.name, "' is already marked ready in this step");
      overlap_.ready[t] = true;
      const std::size_t b = overlap_.bucket_of[t];
      if (++overlap_.ready_count[b] == buckets_[b].second - buckets_[b].first)
        overlap_.queue.push_back(b);
    }
    progress();
  }
  /// Advances the rings in flight of an overlapped step (tests their messages; no waiting)
  /// and starts queued rings as others finish. Call it between long computations: MPI moves
  /// large messages only while the ranks call it. Not collective; does nothing outside
  /// `begin_step` .. `finish_step`. Throws `DistributedError` when a ring fails or passes its
  /// deadline.
  void progress() {
    if (!overlap_.open) return;
    for (bool moved = true; moved;) {
      moved = false;
      for (auto& slot : overlap_.slots)
        if (slot.active && advance_ring(slot)) moved = true;
      for (auto& slot : overlap_.slots)
        if (!slot.active && overlap_.next < overlap_.queue.size()) {
          start_ring(slot, overlap_.queue[overlap_.next++]);
          moved = true;
        }
    }
  }
  /// Ends an overlapped step: starts the rings of buckets not yet marked ready (in bucket
  /// order), waits for every ring (each exchange at most `timeout_seconds`), then steps as
  /// `step` does. Collective. Throws `InvalidArgument` outside `begin_step`, and what `step`
  /// throws; after a `DistributedError` the trainer must not be used again (end the job).
  void finish_step() {
    mbok::detail::require(overlap_.open, "DataParallelTrainer: finish_step without begin_step");
    for (std::size_t b = 0; b < buckets_.size(); ++b)
      if (overlap_.ready_count[b] != buckets_[b].second - buckets_[b].first) {
        overlap_.ready_count[b] = buckets_[b].second - buckets_[b].first;
        overlap_.queue.push_back(b);
      }
    const WaitScope scope(mbok::detail::concat(
        "DataParallelTrainer, rank ", rank_, ", after step ", step_,
        ": signal reduce-scatter rings of the overlapped step, receiving from rank ", prev_rank(),
        ", sending to rank ", next_rank()));
    std::chrono::microseconds nap(0);
    for (long polls = 0;; ++polls) {
      progress();
      bool busy = overlap_.next < overlap_.queue.size();
      for (const auto& slot : overlap_.slots) busy = busy || slot.active;
      if (!busy) break;
      if (polls > 200) {  // leave the cores to ranks still computing
        nap = std::min(std::chrono::microseconds(1000), nap + std::chrono::microseconds(20));
        std::this_thread::sleep_for(nap);
      }
    }
    overlap_.open = false;
    complete_step(overlap_.weight, overlap_.scale);
  }

  /// Checks that every rank holds the same trainable bits and float parameters: throws
  /// `DistributedError` on every rank naming the step, the first tensor that differs and the
  /// ranks that differ from rank 0. Collective.
  void check_consistency() { check_state("at step " + std::to_string(step_)); }

 private:
  // check_consistency, naming when in the error ("at step 3", "before step 1").
  void check_state(const std::string& when) {
    // The hashed state, named for the error: the trainable bits, the float parameters, and
    // the optimizers' replicated state (each Boolean tensor's beta, the step counts, AdamW's
    // moments and step). The Boolean accumulators themselves are sharded: each row has one
    // owner, so there is no other rank's copy to compare with.
    std::vector<std::uint64_t> mine;
    std::vector<std::string> names;
    for (std::size_t t = 0; t < tensors_.size(); ++t) {
      const BitMatrix& b = *tensors_[t].param.bits;
      std::uint64_t h = 0x6D626F6Bull + t;
      for (std::size_t i = 0; i < b.rows(); ++i)
        h = detail::hash_words(h, b.view().row(i), b.row_words());
      mine.push_back(h);
      names.push_back(tensors_[t].param.name);
    }
    for (std::size_t f = 0; f < floats_.size(); ++f) {
      mine.push_back(detail::hash_bytes(0x466C6F6174ull + f, floats_[f].value,
                                        floats_[f].size * sizeof(float)));
      names.push_back(floats_[f].name);
    }
    for (std::size_t t = 0; t < tensors_.size(); ++t) {
      mine.push_back(detail::hash_bytes(0x62657461ull + t, &tensors_[t].beta, sizeof(double)));
      names.push_back(tensors_[t].param.name + " (optimizer beta)");
    }
    const std::int64_t steps[2] = {step_, boolean_.step_count()};
    mine.push_back(detail::hash_bytes(0x73746570ull, steps, sizeof steps));
    names.push_back("the step count");
    StateDict moments;  // the float parameters' AdamW state: small (scales, biases, norms)
    adamw_.export_state(moments, "adamw.");
    for (const auto& [name, tensor] : moments) {
      mine.push_back(detail::hash_bytes(0x6164616D77ull, tensor.bytes.data(), tensor.bytes.size()));
      names.push_back(name);
    }
    const std::size_t count = mine.size();
    std::vector<std::uint64_t> all(count * static_cast<std::size_t>(size_));
    MPI_Request request;
    check_mpi(MPI_Iallgather(mine.data(), static_cast<int>(count), MPI_UINT64_T, all.data(),
                             static_cast<int>(count), MPI_UINT64_T, comm_, &request),
              "consistency hashes");
    wait(request, "consistency hashes");
    wire_.control += count * 8 * static_cast<std::size_t>(size_ - 1);
    for (std::size_t c = 0; c < count; ++c) {
      std::string ranks;
      for (int r = 1; r < size_; ++r)
        if (all[static_cast<std::size_t>(r) * count + c] != all[c])
          ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
      if (ranks.empty()) continue;
      throw DistributedError(mbok::detail::concat(
          "mbok: DataParallelTrainer: ranks diverged ", when, ": '", names[c], "' on rank(s) ",
          ranks, " differs from rank 0 (checked ", count, " tensors)"));
    }
    state_checked_ = true;
  }

 public:
  /// Global flip statistics of the last step, one entry per Boolean parameter (every rank
  /// holds the same values).
  const BooleanStepStats& last_stats() const noexcept { return stats_; }
  /// Bytes this rank sent in the last step (see `WireBytes`).
  const WireBytes& last_wire_bytes() const noexcept { return last_wire_; }
  /// This rank's optimizer over its slices (its state is 1/P of the accumulators).
  const BooleanOptimizer& local_boolean_optimizer() const noexcept { return boolean_; }
  /// The AdamW over the float parameters (the same state on every rank).
  const AdamW& adamw() const noexcept { return adamw_; }
  /// Replaces the Boolean learning rate on this rank (call it on every rank alike, e.g. from a
  /// schedule). Throws `InvalidArgument` as `BooleanOptimizer::set_learning_rate`.
  void set_boolean_learning_rate(double eta) {
    boolean_.set_learning_rate(eta);
    options_.boolean.learning_rate = eta;
  }
  /// Replaces AdamW's learning rate on this rank (call it on every rank alike).
  void set_adamw_learning_rate(double lr) {
    adamw_.set_learning_rate(lr);
    options_.adamw.learning_rate = lr;
  }

  /// Sets the accumulators of Boolean parameter `index` (a warm start, as
  /// `BooleanOptimizer::set_accumulators`): every rank passes the whole tensor's rows x cols
  /// values, `ld` apart, and keeps its slice. With an adaptive beta the next step keeps them
  /// (beta 1). Not collective. Throws `InvalidArgument` for a bad index, a stride shorter
  /// than a row or a value that is not finite, changing nothing.
  void set_accumulators(std::size_t index, const float* values, std::size_t ld) {
    mbok::detail::require(index < tensors_.size(), "DataParallelTrainer: Boolean parameter ", index,
                          " does not exist (", tensors_.size(), " registered)");
    Shard& t = tensors_[index];
    mbok::detail::require(values != nullptr && ld >= t.cols,
                          "DataParallelTrainer: accumulators of '", t.param.name, "' need ", t.cols,
                          " values per row, stride ", ld);
    for (std::size_t i = 0; i < t.rows; ++i)
      for (std::size_t j = 0; j < t.cols; ++j)
        mbok::detail::require(std::isfinite(values[i * ld + j]),
                              "DataParallelTrainer: accumulator (", i, ", ", j, ") of '",
                              t.param.name, "' is not finite");
    if (t.local >= 0)
      boolean_.set_accumulators(static_cast<std::size_t>(t.local), values + t.r0 * ld, ld);
    if (!options_.boolean.beta) t.beta = 1.0;
  }

  /// Gathers the whole optimizer state on rank 0 into `dict` (other ranks add nothing): the
  /// state a one-process `BooleanOptimizer` over the same parameters exports, under
  /// `<prefix>boolean.`, and AdamW's under `<prefix>adamw.`. Checks consistency first.
  /// Collective; throws `DistributedError` as `check_consistency`.
  void export_state(StateDict& dict, const std::string& prefix = "") {
    check_consistency();
    StateDict local;
    boolean_.export_state(local, "");
    const std::string bp = prefix + "boolean.";
    const std::size_t acc = accumulator_size(options_.boolean.accumulator);
    for (std::size_t t = 0; t < tensors_.size(); ++t) {
      const Shard& tt = tensors_[t];
      // In units of one row of accumulators, so that counts stay far below INT_MAX.
      std::vector<int> counts(static_cast<std::size_t>(size_)), displs(counts.size());
      for (int r = 0; r < size_; ++r) {
        const std::size_t r0 = row_begin(tt.rows, r), r1 = row_begin(tt.rows, r + 1);
        counts[static_cast<std::size_t>(r)] = static_cast<int>(r1 - r0);
        displs[static_cast<std::size_t>(r)] = static_cast<int>(r0);
      }
      Tensor whole;
      whole.dtype = boolean_dtype();
      whole.shape = {static_cast<std::int64_t>(tt.rows), static_cast<std::int64_t>(tt.cols)};
      if (rank_ == 0) whole.bytes.resize(tt.rows * tt.cols * acc);
      const std::uint8_t* send = nullptr;
      if (tt.local >= 0) send = local.at(tt.param.name + ".accumulator").bytes.data();
      MPI_Datatype row = MPI_DATATYPE_NULL;
      check_mpi(MPI_Type_contiguous(static_cast<int>(tt.cols * acc), MPI_BYTE, &row),
                "state gather");
      MPI_Type_commit(&row);
      MPI_Request request;
      const int rc =
          MPI_Igatherv(send, counts[static_cast<std::size_t>(rank_)], row, whole.bytes.data(),
                       counts.data(), displs.data(), row, 0, comm_, &request);
      if (rc != MPI_SUCCESS) MPI_Type_free(&row);
      check_mpi(rc, "state gather");
      try {
        wait(request, "state gather");
      } catch (...) {
        MPI_Type_free(&row);
        throw;
      }
      MPI_Type_free(&row);
      if (rank_ == 0) dict[bp + tt.param.name + ".accumulator"] = std::move(whole);
    }
    if (rank_ == 0) export_replicated(dict, prefix);
  }

  /// Restores state saved by `export_state` (on any number of ranks) or by one-process
  /// optimizers under the same prefixes: every rank passes the whole state and keeps its
  /// slices. Checks everything first and changes nothing on failure: throws `FormatError` on
  /// every rank (naming the tensor on the ranks that found the problem) for a missing or
  /// malformed tensor. Collective.
  void import_state(const StateDict& dict, const std::string& prefix = "") {
    const std::size_t acc = accumulator_size(options_.boolean.accumulator);
    import_slices(dict, prefix, [&](const Shard& tt, const std::string& key) {
      const Tensor& whole =
          expect_tensor(dict, key, boolean_dtype(),
                        {static_cast<std::int64_t>(tt.rows), static_cast<std::int64_t>(tt.cols)});
      Tensor slice;
      slice.dtype = whole.dtype;
      slice.shape = {static_cast<std::int64_t>(tt.r1 - tt.r0), static_cast<std::int64_t>(tt.cols)};
      slice.bytes.assign(whole.bytes.begin() + static_cast<std::ptrdiff_t>(tt.r0 * tt.cols * acc),
                         whole.bytes.begin() + static_cast<std::ptrdiff_t>(tt.r1 * tt.cols * acc));
      return slice;
    });
  }

#if defined(MBOK_DISTRIBUTED_CHECKPOINTS)
  /// Saves a sharded checkpoint (sharded_checkpoint.hpp): each rank writes its slices of the
  /// accumulators to `<path>.shard-<rank>-of-<P>-<save id>` (atomically, with the checkpoint's
  /// checksum), then rank 0 writes the manifest `path` (atomically): the replicated optimizer
  /// state under `<prefix>boolean.` and `<prefix>adamw.` as `export_state` lays it out, the
  /// tensors of `replicated` (rank 0's: e.g. the model), `metadata` (rank 0's), the shard
  /// count, each shard's file and checksum and each tensor's row slices. Then rank 0 removes
  /// the shards of earlier saves to `path`. No rank holds more than its own slices. Every rank
  /// needs the same directory (a shared file system between machines). `sync` = false skips
  /// the flushes to disk (tests). Checks consistency first. Collective. Throws on every rank:
  /// `FormatError` naming the failing rank(s) and the first one's error when a write fails, a
  /// metadata key is one of the layout's own (`kShardedKeyPrefix`) or a `replicated` tensor is
  /// named like one of the optimizer's (the previous checkpoint at `path` and its shards are then
  /// intact, this save's shards removed); `DistributedError` as `check_consistency`.
  void save_sharded(const std::string& path, const StateDict& replicated = {},
                    const Metadata& metadata = {}, const std::string& prefix = "",
                    bool sync = true) {
    check_consistency();
    // One id for the save, from rank 0: the new shards get new names, so the old manifest's
    // shards stay intact until the new manifest replaces it.
    std::uint64_t id = 0;
    if (rank_ == 0) {
      std::random_device device;
      id = (std::uint64_t{device()} << 32 ^ device()) ^
           static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    }
    all_reduce(&id, 1, MPI_UINT64_T, MPI_MAX, "checkpoint id");
    const auto P = static_cast<std::size_t>(size_);
    const std::string base = detail::file_name_of(path), dir = detail::directory_prefix_of(path);
    const auto shard_name = [&](int r) {
      return mbok::detail::concat(base, ".shard-", r, "-of-", size_, "-", mbok::detail::hex64(id));
    };
    const std::string mine = dir + shard_name(rank_);
    const std::string bp = prefix + "boolean.";
    std::string error;
    std::vector<std::uint64_t> sums(P, 0);
    try {
      for (const auto& kv : metadata)
        mbok::detail::require(!detail::is_sharded_key(kv.first),
                              "sharded checkpoint: metadata key '", kv.first,
                              "' is reserved (the sharded layout's 'mbok.shards', "
                              "'mbok.shard.<r>' and 'mbok.slices.<key>')");
      StateDict local, slices;
      boolean_.export_state(local, "");
      for (const auto& t : tensors_)
        if (t.local >= 0)
          slices[bp + t.param.name + ".accumulator"] =
              std::move(local.at(t.param.name + ".accumulator"));
      Metadata own;
      own[std::string(kShardedKeyPrefix) + "shard"] =
          mbok::detail::concat(rank_, " of ", size_, " ", mbok::detail::hex64(id));
      save_checkpoint(mine, slices, own, sync);
      const std::string digits = detail::stored_checksum(mine);
      mbok::detail::require_format(digits.size() == mbok::detail::kChecksumDigits,
                                   "sharded checkpoint: cannot read back '", mine, "'");
      sums[static_cast<std::size_t>(rank_)] = std::stoull(digits, nullptr, 16);
    } catch (const std::exception& e) {
      error = e.what();
    }
    const auto fail = [&](const std::string& failed, const char* stage) {
      std::remove(mine.c_str());  // this save's shards only; the old checkpoint stays whole
      throw FormatError(mbok::detail::concat("mbok: DataParallelTrainer: sharded checkpoint '",
                                             path, "': ", stage, " failed on rank(s) ", failed));
    };
    std::string failed = first_error(error, "shard write");
    if (!failed.empty()) fail(failed, "writing the shards");
    all_reduce(sums.data(), size_, MPI_UINT64_T, MPI_SUM, "shard checksums");
    if (rank_ == 0) {
      try {
        StateDict manifest;
        export_replicated(manifest, prefix);
        for (const auto& [name, tensor] : replicated) {
          mbok::detail::require(manifest.count(name) == 0, "sharded checkpoint: tensor '", name,
                                "' is the optimizer's");
          manifest[name] = tensor;
        }
        Metadata md = metadata;
        md[std::string(kShardedKeyPrefix) + "shards"] = std::to_string(size_);
        for (int r = 0; r < size_; ++r)
          md[mbok::detail::concat(kShardedKeyPrefix, "shard.", r)] =
              shard_name(r) + " " + mbok::detail::hex64(sums[static_cast<std::size_t>(r)]);
        for (const auto& t : tensors_) {
          std::string splits = mbok::detail::concat(t.rows, " ", t.cols);
          for (int r = 0; r <= size_; ++r) splits += " " + std::to_string(row_begin(t.rows, r));
          md[mbok::detail::concat(kShardedKeyPrefix, "slices.", bp, t.param.name, ".accumulator")] =
              splits;
        }
        save_checkpoint(path, manifest, md, sync);
      } catch (const std::exception& e) {
        error = e.what();
      }
    }
    failed = first_error(error, "manifest write");
    if (!failed.empty()) fail(failed, "writing the manifest");
    if (rank_ == 0) remove_shards(path, mbok::detail::hex64(id));
  }

  /// Loads the checkpoint at `path` in either layout and imports this rank's part of the
  /// optimizer state under `prefix` (as `import_state`): a sharded checkpoint (`save_sharded`,
  /// on any number of ranks) is read through its manifest, each rank reading only the shards
  /// that hold its rows; a one-process checkpoint (`export_state` saved by rank 0, or the
  /// plain optimizers' state) is read whole by every rank. Returns the checkpoint without the
  /// optimizer's tensors: the caller's (the model) and its metadata. Checks everything first
  /// and changes nothing on failure. Collective. Throws `FormatError` on every rank, with the
  /// first failing rank's message (naming the file: the manifest, or the shard that is
  /// missing, corrupt or from another save).
  Checkpoint load_checkpoint(const std::string& path, const std::string& prefix = "") {
    Checkpoint out;
    std::optional<ShardedCheckpoint> sharded;
    std::string error;
    try {
      out = mbok::load_checkpoint(path);
      if (ShardedCheckpoint::is_manifest(out)) {
        sharded.emplace(path, std::move(out));
        out = sharded->manifest();
      }
    } catch (const std::exception& e) {
      error = e.what();
    }
    const std::string failed = first_error(error, "checkpoint read");
    if (!failed.empty())
      throw FormatError("mbok: DataParallelTrainer: loading '" + path + "' failed on rank(s) " +
                        failed);
    if (sharded) {
      import_slices(
          out.state, prefix,
          [&](const Shard& tt, const std::string& key) {
            return tt.local < 0 ? Tensor{}
                                : sharded->rows(key, tt.r0, tt.r1, boolean_dtype(), tt.cols);
          },
          "loading '" + path + "'");
    } else {
      import_state(out.state, prefix);
    }
    // What the optimizers restored is theirs; the rest is the caller's.
    for (auto it = out.state.begin(); it != out.state.end();) {
      const bool ours = it->first.rfind(prefix + "boolean.", 0) == 0 ||
                        it->first.rfind(prefix + "adamw.", 0) == 0;
      it = ours ? out.state.erase(it) : std::next(it);
    }
    return out;
  }
#endif

 private:
  // One Boolean parameter: the model's kernel and signal, this rank's rows [r0, r1), their
  // copy the local optimizer flips, and the reduced signal of those rows.
  struct Shard {
    BooleanParameter param;
    std::size_t rows = 0, cols = 0, r0 = 0, r1 = 0;
    long local = -1;  // index in the local optimizer; -1 when this rank holds no row
    BitMatrix slice;
    std::vector<float> signal;
    double beta = 0;  // beta of the next step (the whole tensor's)
  };

  // One bucket's ring reduce-scatter in flight (an overlapped step): its exchange k of P - 1,
  // the chunk it holds (partial sums) and the one it receives, the exchange's two requests
  // and when they were posted (for the deadline).
  struct RingSlot {
    bool active = false;
    std::size_t bucket = 0;
    int k = 0, held = 0;
    std::vector<float> send, recv;
    MPI_Request requests[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
    std::chrono::steady_clock::time_point since;
  };
  // The overlapped step between begin_step and finish_step: which tensors are ready, buckets
  // queued (in the order they became ready: the same on every rank) and the rings in flight.
  // Two slots: a ring starts while another finishes, and the buffers stay at twice the
  // non-overlapped step's (two chunks of the largest bucket per slot).
  struct Overlap {
    bool open = false;
    double weight = 1, scale = 1;
    std::vector<bool> ready;
    std::vector<std::size_t> ready_count, bucket_of, queue;
    std::size_t next = 0;  // queue[next] starts when a slot frees
    RingSlot slots[2];
  };

  // Restores the optimizers from `dict` (the replicated state under `prefix`) and
  // `slice_of(shard, key)` (this rank's rows of accumulator `key`, of shape [r1 - r0, cols];
  // anything for a rank without rows). Changes nothing unless every rank succeeds; throws
  // FormatError on every rank with the first failing rank's message.
  template <typename SliceOf>
  void import_slices(const StateDict& dict, const std::string& prefix, SliceOf&& slice_of,
                     const std::string& what = "import_state") {
    const std::string bp = prefix + "boolean.";
    std::string error;
    BooleanOptimizer boolean = boolean_;
    AdamW adamw = adamw_;
    std::vector<double> betas(tensors_.size());
    std::int64_t step = 0;
    try {
      StateDict local;
      for (const char* key : {"step", "seed", "accumulator_type"}) {
        const auto it = dict.find(bp + key);
        mbok::detail::require_format(it != dict.end(), "state: missing tensor '", bp, key, "'");
        local[key] = it->second;
      }
      step = read_scalar<std::int64_t>(dict, bp + "step");
      for (std::size_t t = 0; t < tensors_.size(); ++t) {
        const Shard& tt = tensors_[t];
        const std::string name = bp + tt.param.name;
        Tensor slice = slice_of(tt, name + ".accumulator");
        betas[t] = read_scalar<double>(dict, name + ".beta");
        mbok::detail::require_format(betas[t] >= 0 && betas[t] <= 1, "state: '", name,
                                     ".beta' must be in [0, 1], got ", betas[t]);
        if (tt.local < 0) continue;
        local[tt.param.name + ".accumulator"] = std::move(slice);
        local[tt.param.name + ".beta"] = dict.at(name + ".beta");
        local[tt.param.name + ".scale"] = expect_tensor(dict, name + ".scale", DType::f64, {});
      }
      boolean.import_state(local, "");
      adamw.import_state(dict, prefix + "adamw.");
    } catch (const std::exception& e) {
      error = e.what();
    }
    const std::string failed = first_error(error, "state import");
    if (!failed.empty())
      throw FormatError("mbok: DataParallelTrainer: " + what + " failed on rank(s) " + failed);
    boolean_ = std::move(boolean);
    adamw_ = std::move(adamw);
    for (std::size_t t = 0; t < tensors_.size(); ++t) tensors_[t].beta = betas[t];
    step_ = step;
    state_checked_ = false;  // the model was probably loaded with it: checked at the next step
  }

  // The optimizer state every rank holds alike, in the one-process layout: each tensor's beta
  // and fixed-point scale, the step, seed and accumulator type under `<prefix>boolean.`,
  // AdamW's state under `<prefix>adamw.`.
  void export_replicated(StateDict& dict, const std::string& prefix) const {
    const std::string bp = prefix + "boolean.";
    for (const auto& t : tensors_) {
      dict[bp + t.param.name + ".beta"] = Tensor::scalar<double>(t.beta);
      dict[bp + t.param.name + ".scale"] = Tensor::scalar<double>(
          options_.boolean.accumulator == AccumulatorType::i8 ? options_.boolean.threshold / 64.0
                                                              : 1.0);
    }
    dict[bp + "step"] = Tensor::scalar<std::int64_t>(step_);
    dict[bp + "seed"] =
        Tensor::scalar<std::int64_t>(static_cast<std::int64_t>(options_.boolean.seed));
    dict[bp + "accumulator_type"] =
        Tensor::scalar<std::int64_t>(static_cast<std::int64_t>(options_.boolean.accumulator));
    adamw_.export_state(dict, prefix + "adamw.");
  }

  // Agrees on a failure: "" when `error` is empty on every rank, else the failing ranks and
  // the lowest failing rank's message (broadcast, so that every rank throws the same text,
  // naming e.g. the file that rank could not read).
  std::string first_error(const std::string& error, const char* what) const {
    const std::string ranks = agree(!error.empty(), what);
    if (ranks.empty()) return {};
    const int first = std::stoi(ranks);
    long long length = rank_ == first ? static_cast<long long>(error.size()) : 0;
    all_reduce(&length, 1, MPI_LONG_LONG, MPI_MAX, what);
    std::string text(static_cast<std::size_t>(std::min<long long>(length, 1 << 20)), '\0');
    if (rank_ == first) text = error.substr(0, text.size());
    MPI_Request request;
    check_mpi(
        MPI_Ibcast(text.data(), static_cast<int>(text.size()), MPI_CHAR, first, comm_, &request),
        what);
    wait(request, what);
    return ranks + ": " + text;
  }

  // The ring's neighbours: rank r sends to r + 1 and receives from r - 1 (mod P).
  int next_rank() const noexcept { return (rank_ + 1) % size_; }
  int prev_rank() const noexcept { return (rank_ + size_ - 1) % size_; }
  // (x mod P) for x = rank + d, d >= -2 P.
  int ring_chunk(int d) const noexcept { return ((rank_ + d) % size_ + 2 * size_) % size_; }

  // Sends `send_count` items of `send` to the next rank while receiving `recv_count` items
  // from the previous one into `recv`; waits for both at most timeout_seconds.
  void exchange(const void* send, int send_count, void* recv, int recv_count, MPI_Datatype type,
                int tag, const char* what) const {
    MPI_Request requests[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
    check_mpi(MPI_Irecv(recv, recv_count, type, prev_rank(), tag, comm_, &requests[0]), what);
    check_mpi(MPI_Isend(send, send_count, type, next_rank(), tag, comm_, &requests[1]), what);
    // Each side waited and named on its own: a timeout names the peer that did not answer.
    wait(requests[0], mbok::detail::concat(what, ", receiving from rank ", prev_rank()));
    wait(requests[1], mbok::detail::concat(what, ", sending to rank ", next_rank()));
  }

  // Weights of slice c of tensors [t0, t1) (a chunk of their bucket).
  std::size_t chunk_elements(std::size_t t0, std::size_t t1, int c) const {
    std::size_t n = 0;
    for (std::size_t t = t0; t < t1; ++t)
      n += (row_begin(tensors_[t].rows, c + 1) - row_begin(tensors_[t].rows, c)) * tensors_[t].cols;
    return n;
  }
  // out = weight x (this rank's signal of chunk c), or out += it.
  void load_chunk(std::size_t t0, std::size_t t1, int c, float weight, float* out, bool add) const {
    for (std::size_t t = t0; t < t1; ++t) {
      const Shard& tt = tensors_[t];
      const std::size_t e0 = row_begin(tt.rows, c) * tt.cols,
                        e1 = row_begin(tt.rows, c + 1) * tt.cols;
      const float* q = tt.param.signal;
      if (add)
        for (std::size_t e = e0; e < e1; ++e) *out++ += q[e] * weight;
      else
        for (std::size_t e = e0; e < e1; ++e) *out++ = q[e] * weight;
    }
  }

  // Ring reduce-scatter of the signals of tensors [t0, t1) times `weight` into the slices
  // (Shard::signal). Chunk c is slice c of every tensor of the bucket. In step k = 0 .. P - 2
  // rank r sends its partial sum of chunk r - k - 1 to rank r + 1, receives chunk r - k - 2
  // from rank r - 1 and adds its own signal to it; after P - 1 steps it holds the sum of chunk
  // r (added in the order r + 1, r + 2, ..., r: fixed, whatever the timing). Each rank sends
  // P - 1 chunks, (P - 1) / P of the bucket: the bandwidth bound. Returns the bytes sent.
  std::size_t ring_reduce_scatter(std::size_t t0, std::size_t t1, float weight) {
    std::size_t largest = 0;
    for (int c = 0; c < size_; ++c) largest = std::max(largest, chunk_elements(t0, t1, c));
    ring_send_.resize(largest);
    ring_recv_.resize(largest);
    std::size_t sent = 0;
    int held = ring_chunk(size_ == 1 ? 0 : -1);
    load_chunk(t0, t1, held, weight, ring_send_.data(), false);
    for (int k = 0; k + 1 < size_; ++k) {
      const int incoming = ring_chunk(-k - 2);
      const std::size_t out_n = chunk_elements(t0, t1, held),
                        in_n = chunk_elements(t0, t1, incoming);
      exchange(ring_send_.data(), static_cast<int>(out_n), ring_recv_.data(),
               static_cast<int>(in_n), MPI_FLOAT, kTagSignals, "signal reduce-scatter");
      sent += out_n * sizeof(float);
      load_chunk(t0, t1, incoming, weight, ring_recv_.data(), true);
      ring_send_.swap(ring_recv_);
      held = incoming;
    }
    const float* sum = ring_send_.data();  // chunk `rank_`
    for (std::size_t t = t0; t < t1; ++t) {
      Shard& tt = tensors_[t];
      std::copy(sum, sum + tt.signal.size(), tt.signal.begin());
      sum += tt.signal.size();
    }
    return sent;
  }

  // Starts bucket b's ring reduce-scatter in `slot` (the overlapped step): the same exchanges
  // as ring_reduce_scatter, each posted when the previous one completed (advance_ring), on
  // the bucket's own tag so that messages of two buckets in flight never match each other.
  void start_ring(RingSlot& slot, std::size_t b) {
    const std::size_t t0 = buckets_[b].first, t1 = buckets_[b].second;
    std::size_t largest = 0;
    for (int c = 0; c < size_; ++c) largest = std::max(largest, chunk_elements(t0, t1, c));
    slot.send.resize(largest);
    slot.recv.resize(largest);
    slot.bucket = b;
    slot.k = 0;
    slot.held = ring_chunk(size_ == 1 ? 0 : -1);
    load_chunk(t0, t1, slot.held, static_cast<float>(overlap_.weight), slot.send.data(), false);
    slot.active = true;
    if (size_ == 1)
      end_ring(slot);
    else
      post_exchange(slot);
  }

  void post_exchange(RingSlot& slot) {
    const std::size_t t0 = buckets_[slot.bucket].first, t1 = buckets_[slot.bucket].second;
    const int incoming = ring_chunk(-slot.k - 2), tag = kTagBuckets + static_cast<int>(slot.bucket);
    slot.requests[0] = slot.requests[1] = MPI_REQUEST_NULL;
    check_mpi(MPI_Irecv(slot.recv.data(), static_cast<int>(chunk_elements(t0, t1, incoming)),
                        MPI_FLOAT, prev_rank(), tag, comm_, &slot.requests[0]),
              "signal reduce-scatter");
    check_mpi(MPI_Isend(slot.send.data(), static_cast<int>(chunk_elements(t0, t1, slot.held)),
                        MPI_FLOAT, next_rank(), tag, comm_, &slot.requests[1]),
              "signal reduce-scatter");
    slot.since = std::chrono::steady_clock::now();
  }

  // Tests the slot's exchange; when both sides completed, adds this rank's signal to the
  // received chunk and posts the next exchange, or ends the ring. Returns whether it moved.
  bool advance_ring(RingSlot& slot) {
    const auto what = [&](int side) {
      return mbok::detail::concat("signal reduce-scatter of bucket ", slot.bucket, " ('",
                                  tensors_[buckets_[slot.bucket].first].param.name, "' ...), ",
                                  side == 0 ? "receiving from rank " : "sending to rank ",
                                  side == 0 ? prev_rank() : next_rank());
    };
    bool complete = true;
    for (int side = 0; side < 2; ++side) {
      int done = 0;
      if (slot.requests[side] != MPI_REQUEST_NULL)
        check_mpi(MPI_Test(&slot.requests[side], &done, MPI_STATUS_IGNORE), what(side));
      if (slot.requests[side] == MPI_REQUEST_NULL) continue;
      complete = false;
      if (std::chrono::steady_clock::now() - slot.since >
          std::chrono::duration<double>(options_.timeout_seconds))
        throw DistributedError(mbok::detail::concat(
            "mbok: DataParallelTrainer: rank ", rank_, ", after step ", step_, ": ", what(side),
            " did not complete within ", options_.timeout_seconds,
            " s: another rank died, stopped or called something else; end the job"));
    }
    if (!complete) return false;
    const std::size_t t0 = buckets_[slot.bucket].first, t1 = buckets_[slot.bucket].second;
    const int incoming = ring_chunk(-slot.k - 2);
    wire_.signal_reduce_scatter += chunk_elements(t0, t1, slot.held) * sizeof(float);
    load_chunk(t0, t1, incoming, static_cast<float>(overlap_.weight), slot.recv.data(), true);
    slot.send.swap(slot.recv);
    slot.held = incoming;
    if (++slot.k + 1 < size_)
      post_exchange(slot);
    else
      end_ring(slot);
    return true;
  }

  // The slot holds chunk `rank_` summed: into the slices, scaled; the slot is free again.
  void end_ring(RingSlot& slot) {
    const float* sum = slot.send.data();
    for (std::size_t t = buckets_[slot.bucket].first; t < buckets_[slot.bucket].second; ++t) {
      Shard& tt = tensors_[t];
      std::copy(sum, sum + tt.signal.size(), tt.signal.begin());
      sum += tt.signal.size();
    }
    bucket_reduced(slot.bucket, overlap_.scale);
    slot.active = false;
  }

  // Ring all-reduce (sum) of n floats in place: a ring reduce-scatter of n / P chunks, then a
  // ring all-gather of the sums. The same sums, bit for bit, on every rank. Returns the bytes
  // sent.
  std::size_t ring_all_reduce(float* data, std::size_t n) {
    if (size_ == 1 || n == 0) return 0;
    const auto begin = [&](int c) { return row_begin(n, c); };
    const auto count = [&](int c) { return static_cast<int>(begin(c + 1) - begin(c)); };
    ring_recv_.resize(n / static_cast<std::size_t>(size_) + 1);
    std::size_t sent = 0;
    for (int k = 0; k + 1 < size_; ++k) {
      const int out = ring_chunk(-k - 1), in = ring_chunk(-k - 2);
      exchange(data + begin(out), count(out), ring_recv_.data(), count(in), MPI_FLOAT,
               kTagGradients, "gradient all-reduce");
      sent += static_cast<std::size_t>(count(out)) * sizeof(float);
      float* d = data + begin(in);
      for (int i = 0; i < count(in); ++i) d[i] += ring_recv_[static_cast<std::size_t>(i)];
    }
    for (int k = 0; k + 1 < size_; ++k) {
      const int out = ring_chunk(-k), in = ring_chunk(-k - 1);
      exchange(data + begin(out), count(out), data + begin(in), count(in), MPI_FLOAT, kTagGradients,
               "gradient all-gather");
      sent += static_cast<std::size_t>(count(out)) * sizeof(float);
    }
    return sent;
  }

  // The words of a packed row that hold its bits (the rest up to the stride is padding).
  static std::size_t used_words(std::size_t cols) noexcept { return (cols + 63) / 64; }

  // Ring all-gather of the flipped rows of tensors [t0, t1): chunk c is slice c of every tensor,
  // each row's ceil(cols / 64) used words (not the padding up to the stride). In step k rank r
  // forwards chunk r - k to rank r + 1 and receives chunk r - k - 1. Returns the bytes sent.
  std::size_t ring_all_gather_bits(std::size_t t0, std::size_t t1) {
    if (size_ == 1) return 0;
    const auto words = [&](int c) {
      std::size_t n = 0;
      for (std::size_t t = t0; t < t1; ++t)
        n += (row_begin(tensors_[t].rows, c + 1) - row_begin(tensors_[t].rows, c)) *
             used_words(tensors_[t].cols);
      return n;
    };
    std::size_t largest = 0;
    for (int c = 0; c < size_; ++c) largest = std::max(largest, words(c));
    bits_send_.resize(largest);
    bits_recv_.resize(largest);
    // Copies chunk c between the kernels and a packed buffer.
    const auto pack = [&](int c, std::uint64_t* out, bool to_kernels) {
      for (std::size_t t = t0; t < t1; ++t) {
        MutableBitMatrixView whole = tensors_[t].param.bits->mutable_view();
        const std::size_t rw = used_words(tensors_[t].cols);
        for (std::size_t i = row_begin(tensors_[t].rows, c); i < row_begin(tensors_[t].rows, c + 1);
             ++i, out += rw)
          if (to_kernels)
            std::memcpy(whole.row(i), out, rw * 8);
          else
            std::memcpy(out, whole.row(i), rw * 8);
      }
    };
    std::size_t sent = 0;
    int held = rank_;
    pack(held, bits_send_.data(), false);
    for (int k = 0; k + 1 < size_; ++k) {
      const int incoming = ring_chunk(-k - 1);
      exchange(bits_send_.data(), static_cast<int>(words(held)), bits_recv_.data(),
               static_cast<int>(words(incoming)), MPI_UINT64_T, kTagBits, "bit all-gather");
      sent += words(held) * 8;
      pack(incoming, bits_recv_.data(), true);
      bits_send_.swap(bits_recv_);
      held = incoming;
    }
    return sent;
  }

  // Ranks that start (or resume) from different bits, floats or optimizer state would train
  // apart from the first step on: the state is hashed before the first step after
  // construction or import_state, whatever check_every says.
  void check_initial_state() {
    if (!state_checked_) check_state("before step " + std::to_string(step_ + 1));
  }

  // Frees the communicator and the row datatypes (unless MPI is finalized).
  void release() noexcept {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
  }

  // floor(rows * rank / P) without forming rows * rank (which can wrap): with rows = a P + b,
  // it is a rank + floor(b rank / P), and b rank < P^2 < 2^62.
  std::size_t row_begin(std::size_t rows, int rank) const {
    const auto p = static_cast<std::size_t>(size_), r = static_cast<std::size_t>(rank);
    return rows / p * r + rows % p * r / p;
  }

  DType boolean_dtype() const noexcept {
    return options_.boolean.accumulator == AccumulatorType::f32   ? DType::f32
           : options_.boolean.accumulator == AccumulatorType::f16 ? DType::f16
                                                                  : DType::i8;
  }

  void check_mpi(int rc, const std::string& what) const {
    if (rc == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    throw DistributedError(
        mbok::detail::concat("mbok: DataParallelTrainer: rank ", rank_, ", step ", step_, ": ",
                             what, " failed: ", std::string(text, static_cast<std::size_t>(len))));
  }

  // Waits for a collective at most timeout_seconds (polls, sleeping up to 1 ms between tests,
  // so a waiting rank leaves the cores to ranks still computing).
  void wait(MPI_Request& request, const std::string& what) const {
    const WaitScope scope(mbok::detail::concat("DataParallelTrainer, rank ", rank_, ", after step ",
                                               step_, ": ", what));
    const auto start = std::chrono::steady_clock::now();
    const auto limit = std::chrono::duration<double>(options_.timeout_seconds);
    std::chrono::microseconds nap(0);
    for (long polls = 0;; ++polls) {
      int done = 0;
      check_mpi(MPI_Test(&request, &done, MPI_STATUS_IGNORE), what);
      if (done) return;
      if (std::chrono::steady_clock::now() - start > limit)
        throw DistributedError(mbok::detail::concat(
            "mbok: DataParallelTrainer: rank ", rank_, ", after step ", step_, ": ", what,
            " did not complete within ", options_.timeout_seconds,
            " s: another rank died, stopped or called something else; end the job"));
      if (polls > 200) {
        nap = std::min(std::chrono::microseconds(1000), nap + std::chrono::microseconds(20));
        std::this_thread::sleep_for(nap);
      }
    }
  }

  void all_reduce(void* data, int count, MPI_Datatype type, MPI_Op op, const char* what) const {
    MPI_Request request;
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, data, count, type, op, comm_, &request), what);
    wait(request, mbok::detail::concat(what, " (all-reduce over all ", size_, " ranks)"));
  }

  // All-reduces a failure flag: returns the ranks (comma-separated) where `failed` is true,
  // empty when none.
  std::string agree(bool failed, const char* what) const {
    std::vector<int> flags(static_cast<std::size_t>(size_), 0);
    flags[static_cast<std::size_t>(rank_)] = failed ? 1 : 0;
    all_reduce(flags.data(), size_, MPI_INT, MPI_SUM, what);
    std::string ranks;
    for (int r = 0; r < size_; ++r)
      if (flags[static_cast<std::size_t>(r)])
        ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
    return ranks;
  }

  // The configuration text that must be the same on every rank, one item per line.
  std::vector<std::string> describe() const {
    std::vector<std::string> lines;
    lines.push_back("Boolean parameters: " + std::to_string(tensors_.size()));
    for (const auto& t : tensors_)
      lines.push_back(
          mbok::detail::concat("Boolean parameter '", t.param.name, "': ", t.rows, " x ", t.cols));
    lines.push_back("float parameters: " + std::to_string(floats_.size()));
    for (const auto& f : floats_)
      lines.push_back(mbok::detail::concat("float parameter '", f.name, "': ", f.size,
                                           " values, weight decay ", f.weight_decay));
    const auto& b = options_.boolean;
    lines.push_back("Boolean learning rate " + detail::exact(b.learning_rate));
    lines.push_back(std::string("signal scaling ") + signal_scaling_name(b.signal_scaling));
    lines.push_back("threshold " + detail::exact(b.threshold));
    lines.push_back("beta " + (b.beta ? detail::exact(*b.beta) : std::string("adaptive")));
    lines.push_back(std::string("accumulator ") + accumulator_name(b.accumulator));
    lines.push_back("seed " + std::to_string(b.seed));
    const auto& a = options_.adamw;
    lines.push_back("AdamW learning rate " + detail::exact(a.learning_rate));
    lines.push_back("AdamW betas " + detail::exact(a.beta1) + " " + detail::exact(a.beta2));
    lines.push_back("AdamW eps " + detail::exact(a.eps));
    lines.push_back("AdamW weight decay " + detail::exact(a.weight_decay));
    lines.push_back("check_every " + std::to_string(options_.check_every));
    lines.push_back("bucket elements " + std::to_string(options_.bucket_elements));
    lines.push_back("timeout " + detail::exact(options_.timeout_seconds));
    return lines;
  }

  // Every rank's description; throws InvalidArgument on every rank when they differ.
  void check_configuration(const std::string& local_error) {
    std::string text;
    if (!local_error.empty())
      text = "invalid configuration: " + local_error + "\n";
    else
      for (const auto& line : describe()) text += line + "\n";
    int length = static_cast<int>(std::min<std::size_t>(text.size(), INT_MAX / 64));
    text.resize(static_cast<std::size_t>(length));
    std::vector<int> lengths(static_cast<std::size_t>(size_)), displs(lengths.size());
    MPI_Request request;
    check_mpi(MPI_Iallgather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, comm_, &request),
              "configuration check");
    wait(request, "configuration check");
    long long total = 0;
    for (std::size_t r = 0; r < lengths.size(); ++r) {
      displs[r] = static_cast<int>(total);
      total += lengths[r];
    }
    std::string all(static_cast<std::size_t>(total), '\0');
    check_mpi(MPI_Iallgatherv(text.data(), length, MPI_CHAR, all.data(), lengths.data(),
                              displs.data(), MPI_CHAR, comm_, &request),
              "configuration check");
    wait(request, "configuration check");
    auto lines_of = [&](int r) {
      std::vector<std::string> out;
      std::istringstream in(
          all.substr(static_cast<std::size_t>(displs[static_cast<std::size_t>(r)]),
                     static_cast<std::size_t>(lengths[static_cast<std::size_t>(r)])));
      for (std::string line; std::getline(in, line);) out.push_back(line);
      return out;
    };
    const std::vector<std::string> first = lines_of(0);
    const bool first_invalid = !first.empty() && first[0].rfind("invalid configuration: ", 0) == 0;
    std::string message;
    for (int r = 0; r < size_; ++r) {
      const std::vector<std::string> other = lines_of(r);
      if (!other.empty() && other[0].rfind("invalid configuration: ", 0) == 0) {
        message += mbok::detail::concat("; rank ", r, ": ", other[0]);
        continue;
      }
      if (r == 0 || other == first || first_invalid) continue;
      std::size_t i = 0;
      while (i < first.size() && i < other.size() && first[i] == other[i]) ++i;
      message += mbok::detail::concat("; rank 0 has '", i < first.size() ? first[i] : "(nothing)",
                                      "', rank ", r, " has '",
                                      i < other.size() ? other[i] : "(nothing)", "'");
    }
    if (!message.empty())
      throw InvalidArgument("mbok: DataParallelTrainer: configuration differs across ranks" +
                            message);
  }

  void setup(std::vector<BooleanParameter> boolean_params, std::vector<Parameter> float_params) {
    // Local checks first; their failure is reported through the configuration check, so that
    // every rank throws instead of one rank leaving the others waiting.
    std::string local_error;
    try {
      for (auto& p : boolean_params) {
        mbok::detail::require(p.bits != nullptr && !p.bits->empty(),
                              "DataParallelTrainer: parameter '", p.name, "' has no bits");
        mbok::detail::require(p.signal != nullptr && p.signal_ld == p.bits->cols(),
                              "DataParallelTrainer: the signal of '", p.name,
                              "' must be contiguous rows (stride ", p.bits->cols(), "), got ",
                              p.signal_ld);
        Shard t;
        t.rows = p.bits->rows();
        t.cols = p.bits->cols();
        t.r0 = row_begin(t.rows, rank_);
        t.r1 = row_begin(t.rows, rank_ + 1);
        for (int r = 0; r < size_; ++r)
          mbok::detail::require((row_begin(t.rows, r + 1) - row_begin(t.rows, r)) * t.cols <=
                                    static_cast<std::size_t>(INT_MAX),
                                "DataParallelTrainer: a slice of '", p.name,
                                "' exceeds MPI's int counts");
        t.beta = options_.boolean.beta ? *options_.boolean.beta : 0.0;
        t.param = std::move(p);
        tensors_.push_back(std::move(t));
      }
      // Buckets: runs of consecutive tensors of at most bucket_elements weights together (a
      // larger tensor alone), each summed and gathered by one ring, so that small tensors
      // share the ring's P - 1 latencies. A chunk of a bucket is one slice of a tensor beyond
      // the limit or at most about bucket_elements / P weights: checked against MPI's ints.
      for (std::size_t t = 0, elements = 0; t < tensors_.size(); ++t) {
        const std::size_t n = tensors_[t].rows * tensors_[t].cols;
        if (buckets_.empty() || elements + n > options_.bucket_elements) {
          buckets_.push_back({t, t});
          elements = 0;
        }
        buckets_.back().second = t + 1;
        elements += n;
      }
      for (const auto& [t0, t1] : buckets_)
        for (int c = 0; c < size_; ++c)
          mbok::detail::require(chunk_elements(t0, t1, c) <= static_cast<std::size_t>(INT_MAX),
                                "DataParallelTrainer: a chunk of the bucket of '",
                                tensors_[t0].param.name,
                                "' exceeds MPI's int counts (lower bucket_elements)");
      // Each bucket of an overlapped step has its own message tag (MPI_TAG_UB >= 32767).
      mbok::detail::require(buckets_.size() <= static_cast<std::size_t>(32767 - kTagBuckets),
                            "DataParallelTrainer: ", buckets_.size(),
                            " buckets exceed MPI's message tags (raise bucket_elements)");
      floats_ = std::move(float_params);
      std::size_t total = 0;
      for (const auto& f : floats_) {
        mbok::detail::require(f.value != nullptr && f.grad != nullptr && f.size > 0,
                              "DataParallelTrainer: float parameter '", f.name,
                              "' is empty or null");
        mbok::detail::require(mbok::detail::checked_add(total, f.size, total),
                              "DataParallelTrainer: the float parameters' sizes overflow");
      }
      mbok::detail::require(total <= static_cast<std::size_t>(INT_MAX),
                            "DataParallelTrainer: ", total,
                            " float parameter values exceed MPI's int counts");
      grads_.assign(total, 0.0f);
      std::vector<Parameter> reduced = floats_;
      std::size_t offset = 0;
      for (auto& f : reduced) {
        f.grad = grads_.data() + offset;
        offset += f.size;
      }
      adamw_ = AdamW(std::move(reduced), options_.adamw);
      std::vector<BooleanParameter> slices;
      for (auto& t : tensors_) {
        if (t.r1 == t.r0) continue;
        t.slice = BitMatrix(t.r1 - t.r0, t.cols);
        t.signal.assign((t.r1 - t.r0) * t.cols, 0.0f);
        t.local = static_cast<long>(slices.size());
        slices.push_back(  // on the layer's ISA, as the whole tensor would step
            BooleanParameter{t.param.name, &t.slice, t.signal.data(), t.cols, t.param.isa});
      }
      boolean_ = BooleanOptimizer(std::move(slices), options_.boolean);
      // i8 rounding keyed by the whole tensor's number and element indices: the same random
      // numbers as one process's, whatever the number of ranks.
      for (std::size_t t = 0; t < tensors_.size(); ++t)
        if (tensors_[t].local >= 0)
          boolean_.set_rounding_origin(static_cast<std::size_t>(tensors_[t].local), t,
                                       tensors_[t].r0);
    } catch (const std::exception& e) {
      local_error = e.what();
    }
    check_configuration(local_error);
  }

  // `weight` multiplies this rank's signals and gradients before the sum, `scale` the sums.
  void run_step(double weight, double scale) {
    // 1. Sum the signals into each rank's slices: rings of point-to-point messages
    // (ring_reduce_scatter), each rank sending (P - 1) / P of the data, whatever the MPI
    // library's own collectives do.
    const auto w = static_cast<float>(weight);
    for (std::size_t b = 0; b < buckets_.size(); ++b) {
      wire_.signal_reduce_scatter += ring_reduce_scatter(buckets_[b].first, buckets_[b].second, w);
      bucket_reduced(b, scale);
    }
    complete_step(weight, scale);
  }

  // The example-count all-reduce of `step(local_count)`: returns (weight, scale).
  std::pair<double, double> open_step(std::size_t local_count) {
    wire_ = WireBytes{};
    check_initial_state();
    // The sum of the counts and of their squares: the counts are all equal exactly when
    // P sum(c^2) = (sum c)^2, and then the sum is scaled once, after the reduction.
    const auto c = static_cast<double>(local_count);
    double counts[2] = {c, c * c};
    all_reduce(counts, 2, MPI_DOUBLE, MPI_SUM, "example count");
    wire_.control += 2 * 2 * sizeof(double) * static_cast<std::size_t>(size_ - 1) /
                     static_cast<std::size_t>(size_);
    mbok::detail::require(counts[0] > 0, "DataParallelTrainer: step ", step_ + 1,
                          ": the global batch has no examples");
    if (counts[1] * size_ == counts[0] * counts[0]) return {1.0, 1.0 / size_};
    return {c / counts[0], 1.0};
  }

  void not_in_overlapped_step(const char* what) const {
    mbok::detail::require(!overlap_.open, "DataParallelTrainer: ", what,
                          " while an overlapped step is open (call finish_step first)");
  }

  // Bucket b's slices hold their sums: scale them, count the plain all-reduce's bytes.
  void bucket_reduced(std::size_t b, double scale) {
    const auto P = static_cast<std::size_t>(size_);
    for (std::size_t t = buckets_[b].first; t < buckets_[b].second; ++t) {
      Shard& tt = tensors_[t];
      if (scale != 1.0)
        for (float& v : tt.signal) v *= static_cast<float>(scale);
      wire_.float_all_reduce_baseline += 2 * tt.rows * tt.cols * sizeof(float) * (P - 1) / P;
    }
  }

  // Opens an overlapped step (begin_step): no bucket ready, none started.
  void open_overlapped(double weight, double scale) {
    Overlap& o = overlap_;
    o.weight = weight;
    o.scale = scale;
    o.ready.assign(tensors_.size(), false);
    o.ready_count.assign(buckets_.size(), 0);
    if (o.bucket_of.size() != tensors_.size()) {
      o.bucket_of.assign(tensors_.size(), 0);
      for (std::size_t b = 0; b < buckets_.size(); ++b)
        for (std::size_t t = buckets_[b].first; t < buckets_[b].second; ++t) o.bucket_of[t] = b;
    }
    o.queue.clear();
    o.next = 0;
    o.open = true;
  }

  // The float gradients' all-reduce and everything after the signals' sums (steps 2 to 5).
  void complete_step(double weight, double scale) {
    WireBytes& wire = wire_;
    const auto P = static_cast<std::size_t>(size_);
    const auto w = static_cast<float>(weight);
    {
      std::size_t offset = 0;
      for (const auto& f : floats_) {
        for (std::size_t i = 0; i < f.size; ++i) grads_[offset + i] = f.grad[i] * w;
        offset += f.size;
      }
      wire.float_all_reduce = ring_all_reduce(grads_.data(), grads_.size());
      if (scale != 1.0)
        for (float& g : grads_) g *= static_cast<float>(scale);
      wire.float_all_reduce_baseline += 2 * grads_.size() * sizeof(float) * (P - 1) / P;
    }
    // 2. The whole tensors' sums of squares (for rms scaling) and peaks, and the float
    // gradients' finiteness: every rank decides the same.
    const std::size_t T = tensors_.size();
    std::vector<double> sums(T, 0.0), peaks(T + 1, 0.0);
    for (std::size_t t = 0; t < T; ++t)
      for (float v : tensors_[t].signal) {
        const double d = v;
        if (!std::isfinite(d)) {
          peaks[t] = std::numeric_limits<double>::infinity();
          continue;
        }
        sums[t] += d * d;
        peaks[t] = std::max(peaks[t], std::abs(d));
      }
    for (float g : grads_)
      if (!std::isfinite(g)) peaks[T] = std::numeric_limits<double>::infinity();
    if (T > 0) all_reduce(sums.data(), static_cast<int>(T), MPI_DOUBLE, MPI_SUM, "signal RMS");
    all_reduce(peaks.data(), static_cast<int>(T + 1), MPI_DOUBLE, MPI_MAX, "signal peaks");
    wire.control += 2 * (2 * T + 1) * sizeof(double) * (P - 1) / P;
    std::vector<double> rms(T, 0.0);
    for (std::size_t t = 0; t < T; ++t) {
      const auto& tt = tensors_[t];
      mbok::detail::require(std::isfinite(peaks[t]), "DataParallelTrainer: step ", step_ + 1,
                            ": the reduced signal of '", tt.param.name, "' is not finite");
      rms[t] = std::sqrt(sums[t] / static_cast<double>(tt.rows * tt.cols));
      double eta = options_.boolean.learning_rate;
      if (options_.boolean.signal_scaling == SignalScaling::rms)
        eta = mbok::detail::rms_step_eta(eta, rms[t]);  // 0 below FLT_MIN, at most FLT_MAX
      const double peak =
          options_.boolean.signal_scaling == SignalScaling::sign ? eta : peaks[t] * eta;
      mbok::detail::require(peak < 1e30, "DataParallelTrainer: step ", step_ + 1,
                            ": eta * |q| of '", tt.param.name, "' reaches ", peak, " (overflow)");
    }
    mbok::detail::require(std::isfinite(peaks[T]), "DataParallelTrainer: step ", step_ + 1,
                          ": a reduced float gradient is not finite");
    // 3. Step this rank's slices.
    std::string error;
    std::vector<long long> flips(T + 1, 0);
    try {
      std::vector<double> local_rms;
      for (auto& t : tensors_) {
        if (t.local < 0) continue;
        const BitMatrixView whole = t.param.bits->view();
        MutableBitMatrixView slice = t.slice.mutable_view();
        for (std::size_t i = t.r0; i < t.r1; ++i)
          std::memcpy(slice.row(i - t.r0), whole.row(i), t.slice.row_words() * 8);
        boolean_.set_beta(static_cast<std::size_t>(t.local), t.beta);
        local_rms.push_back(rms[static_cast<std::size_t>(&t - tensors_.data())]);
      }
      if (options_.boolean.signal_scaling == SignalScaling::rms)
        boolean_.set_next_signal_rms(local_rms);
      boolean_.step();
      for (std::size_t t = 0; t < T; ++t)
        if (tensors_[t].local >= 0)
          flips[t] = static_cast<long long>(
              boolean_.last_stats().tensors[static_cast<std::size_t>(tensors_[t].local)].flips);
    } catch (const std::exception& e) {
      error = e.what();
      flips[T] = 1;
    }
    all_reduce(flips.data(), static_cast<int>(T + 1), MPI_LONG_LONG, MPI_SUM, "flip counts");
    wire.control += 2 * (T + 1) * sizeof(long long) * (P - 1) / P;
    if (flips[T] != 0)
      throw DistributedError(mbok::detail::concat(
          "mbok: DataParallelTrainer: step ", step_ + 1, " failed on ", flips[T], " rank(s)",
          error.empty() ? std::string() : "; on rank " + std::to_string(rank_) + ": " + error));
    // 4. Global flip statistics and the next beta; gather the flipped slices everywhere.
    ++step_;
    stats_ = BooleanStepStats{};
    stats_.step = step_;
    for (std::size_t t = 0; t < T; ++t) {
      Shard& tt = tensors_[t];
      FlipStats f;
      f.name = tt.param.name;
      f.flips = static_cast<std::size_t>(flips[t]);
      f.weights = tt.rows * tt.cols;
      f.beta = tt.beta;
      stats_.tensors.push_back(f);
      tt.beta = options_.boolean.beta ? *options_.boolean.beta : 1.0 - f.rate();
      MutableBitMatrixView whole = tt.param.bits->mutable_view();
      if (tt.local >= 0)
        for (std::size_t i = tt.r0; i < tt.r1; ++i)
          std::memcpy(whole.row(i), tt.slice.view().row(i - tt.r0), tt.slice.row_words() * 8);
    }
    for (const auto& bucket : buckets_)
      wire.bits_all_gather += ring_all_gather_bits(bucket.first, bucket.second);
    // 5. The float parameters: the same AdamW step on the same sums everywhere.
    adamw_.step();
    if (options_.check_every > 0 && step_ % options_.check_every == 0) check_consistency();
    last_wire_ = wire_;
  }

  DataParallelOptions options_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  std::vector<Shard> tensors_;
  // Tensors [first, second) summed and gathered by one ring; a bucket holds at most
  // options_.bucket_elements weights unless it is a single tensor.
  std::vector<std::pair<std::size_t, std::size_t>> buckets_;
  // The rings' message tags (the trainer's duplicate communicator carries nothing else).
  // Buckets of an overlapped step use kTagBuckets + their index.
  static constexpr int kTagSignals = 1, kTagGradients = 2, kTagBits = 3, kTagBuckets = 16;
  std::vector<float> ring_send_, ring_recv_;          // chunks of signals or gradients
  std::vector<std::uint64_t> bits_send_, bits_recv_;  // chunks of packed bit rows
  Overlap overlap_;
  std::vector<Parameter> floats_;  // the model's parameters (values and local gradients)
  std::vector<float> grads_;       // their reduced gradients, read by adamw_
  BooleanOptimizer boolean_;
  AdamW adamw_;
  std::int64_t step_ = 0;
  bool state_checked_ = false;  // hashed since construction or the last import_state
  BooleanStepStats stats_;
  WireBytes wire_, last_wire_;
};

}  // namespace mbok::distributed
