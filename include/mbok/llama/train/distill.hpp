#pragma once
/// \file
/// Boolean-domain finetuning of a `TrainableLlama<float>` against its float teacher
/// (method.md sections 3 and 4):
///
///     L = KL(softmax(teacher / T) || softmax(student / T))
///         + lambda * sum over blocks of MSE(student hidden, teacher hidden)
///
/// (hidden = the residual stream after each block), then `BooleanOptimizer::step` on the
/// trainable kernels' bits and `AdamW::step` on the scales (and norms, and whatever else the
/// student's `parameters()` lists), with warmup + cosine schedules (schedule.hpp) for both.
///
/// `Finetuner` holds the optimizers (through a `FinetuneUpdate`: one process, or data-parallel
/// over MPI with mbok/distributed/finetune.hpp) and the step count; its state (`export_state`)
/// together with the student's makes a resumed run continue bit-identically. `sample_windows` draws
/// reproducible training windows from a token stream.

#include <Eigen/Core>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "../../adamw.hpp"
#include "../../boolean_optimizer.hpp"
#include "../../error.hpp"
#include "../../losses.hpp"
#include "../../schedule.hpp"
#include "../../state_dict.hpp"
#include "../model.hpp"
#include "model.hpp"

namespace mbok {
namespace llama {
namespace train {

/// `sequences` windows of `len` tokens from `stream` (row-major), at offsets drawn from
/// (seed, step, row) by a counter-based hash: the same arguments give the same batch.
/// Throws `InvalidArgument` when the stream is shorter than one window.
inline std::vector<std::int32_t> sample_windows(const std::vector<std::int32_t>& stream,
                                                std::size_t sequences, std::size_t len,
                                                std::uint64_t seed, std::uint64_t step) {
  mbok::detail::require(len > 0 && stream.size() >= len, "sample_windows: ", stream.size(),
                        " tokens, fewer than one window of ", len);
  const std::uint64_t starts = stream.size() - len + 1;
  std::vector<std::int32_t> out(sequences * len);
  for (std::size_t r = 0; r < sequences; ++r) {
    std::uint64_t z = seed ^ (step * 0x9E3779B97F4A7C15ull) ^ ((r + 1) * 0xD1B54A32D192ED03ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    const std::size_t at = static_cast<std::size_t>(z % starts);
    std::copy(stream.begin() + std::ptrdiff_t(at), stream.begin() + std::ptrdiff_t(at + len),
              out.begin() + std::ptrdiff_t(r * len));
  }
  return out;
}

/// The loss of one batch.
struct DistillLoss {
  double kl = 0;      ///< KL(teacher || student), mean over tokens
  double hidden = 0;  ///< lambda * sum over blocks of the hidden-state MSE
  double total() const noexcept { return kl + hidden; }
};

/// Loss settings.
struct DistillOptions {
  double kl_temperature = 1.0;
  double hidden_weight = 10.0;  ///< lambda (gamma in method.md); 0 turns the hidden loss off
};

/// The teacher's outputs for one batch: logits (tokens x vocab) and the hidden state after
/// each block (tokens x hidden), sequences run one after the other on a cleared cache.
struct TeacherOutputs {
  RowMatrix logits;
  std::vector<RowMatrix> hidden;
};

inline TeacherOutputs teacher_forward(const LlamaModel& teacher,
                                      const std::vector<std::int32_t>& tokens,
                                      std::size_t sequences, std::size_t len, bool want_hidden) {
  TeacherOutputs out;
  const auto L = static_cast<Eigen::Index>(len);
  const std::size_t blocks = teacher.blocks().size();
  out.logits.resize(static_cast<Eigen::Index>(sequences * len),
                    static_cast<Eigen::Index>(teacher.config().vocab_size));
  if (want_hidden)
    out.hidden.assign(blocks, RowMatrix(out.logits.rows(),
                                        static_cast<Eigen::Index>(teacher.config().hidden_size)));
  KvCache cache = teacher.make_cache(static_cast<std::int64_t>(len));
  std::vector<std::int32_t> seq(len);
  std::vector<RowMatrix> hs;
  for (std::size_t b = 0; b < sequences; ++b) {
    std::copy(tokens.begin() + std::ptrdiff_t(b * len),
              tokens.begin() + std::ptrdiff_t((b + 1) * len), seq.begin());
    cache.clear();
    const RowMatrix logits = teacher.forward(seq, cache, want_hidden ? &hs : nullptr);
    out.logits.middleRows(Eigen::Index(b) * L, L) = logits;
    if (want_hidden)
      for (std::size_t l = 0; l < blocks; ++l)
        out.hidden[l].middleRows(Eigen::Index(b) * L, L) = hs[l + 1];
  }
  return out;
}

/// The same from a dense `TrainableLlama<float>` copy of the teacher (all sequences in one
/// batched forward, on the training step's products).
inline TeacherOutputs teacher_forward(TrainableLlama<float>& teacher,
                                      const std::vector<std::int32_t>& tokens,
                                      std::size_t sequences, std::size_t len, bool want_hidden) {
  TeacherOutputs out;
  teacher.forward(tokens, sequences, len, out.logits, false, want_hidden ? &out.hidden : nullptr);
  return out;
}

/// Loss of the student against the teacher's outputs on `tokens`; with `backward` the
/// student's gradients and signals are set (zero_grad, forward with tape, backward, which
/// tells `listener`, when not null, of each block's final signals).
inline DistillLoss distill_loss(TrainableLlama<float>& student, const TeacherOutputs& teacher,
                                const std::vector<std::int32_t>& tokens, std::size_t sequences,
                                std::size_t len, const DistillOptions& options, bool backward,
                                BackwardListener* listener = nullptr) {
  RowMatrix logits, dlogits;
  std::vector<RowMatrix> hidden;
  const bool use_hidden = options.hidden_weight > 0;
  if (backward) student.zero_grad();
  student.forward(tokens, sequences, len, logits, backward, use_hidden ? &hidden : nullptr);
  DistillLoss loss;
  loss.kl =
      kl_divergence(teacher.logits, logits, options.kl_temperature, backward ? &dlogits : nullptr);
  std::vector<RowMatrix> dh;
  if (use_hidden) {
    mbok::detail::require(teacher.hidden.size() == hidden.size(), "distill_loss: teacher has ",
                          teacher.hidden.size(), " hidden states, student ", hidden.size());
    dh.resize(hidden.size());
    for (std::size_t l = 0; l < hidden.size(); ++l) {
      loss.hidden +=
          options.hidden_weight * mse(teacher.hidden[l], hidden[l], backward ? &dh[l] : nullptr);
      if (backward) dh[l] *= static_cast<float>(options.hidden_weight);
    }
  }
  if (backward) student.backward(dlogits, use_hidden ? &dh : nullptr, listener);
  return loss;
}

/// Settings of `Finetuner`.
struct FinetuneOptions {
  DistillOptions distill;
  /// The Boolean optimizer (eta is the peak of its schedule). Defaults as the tiny example's:
  /// eta 0.03 per step in units of the signal's RMS, i8 accumulators.
  BooleanOptimizerOptions boolean = [] {
    BooleanOptimizerOptions o;
    o.learning_rate = 0.03;
    o.signal_scaling = SignalScaling::rms;
    o.accumulator = AccumulatorType::i8;
    return o;
  }();
  /// AdamW on the full-precision parameters (learning_rate is the peak).
  AdamWOptions adamw = [] {
    AdamWOptions o;
    o.learning_rate = 1e-3;
    o.weight_decay = 0;
    return o;
  }();
  long steps = 100;          ///< schedule length
  long warmup = -1;          ///< warmup steps (-1: steps / 20)
  double floor = 0.1;        ///< final rate as a fraction of the peak
  bool schedule_eta = true;  ///< eta follows the schedule too (else constant)
  /// Run the teacher as a dense `TrainableLlama<float>` copy (one batched forward on the
  /// ISA's float products: several times faster than `LlamaModel::forward` per sequence, at
  /// the cost of a second copy of the teacher's weights). Both compute the same function.
  bool teacher_copy = true;
};

/// What one step did.
struct FinetuneStep {
  DistillLoss loss;  ///< the mean over the whole (global) batch
  std::size_t flips = 0;
  double flip_rate = 0;  ///< flips / trainable Boolean weights
  double lr = 0, eta = 0;
  /// Wall seconds in the update after the backward (`FinetuneUpdate::apply`): the optimizers'
  /// step and, data-parallel, the communication the backward did not hide.
  double update_seconds = 0;
};

/// The learning rates of step `step` (0-based) of a run with `options`: AdamW's peak and the
/// Boolean eta on the warmup + cosine schedule (eta constant unless `schedule_eta`).
inline std::pair<double, double> finetune_rates(const FinetuneOptions& options, std::int64_t step) {
  const long warmup =
      options.warmup >= 0 ? std::min(options.warmup, options.steps) : options.steps / 20;
  const long at = std::min<long>(static_cast<long>(step), options.steps - 1);
  const WarmupCosine lr{options.adamw.learning_rate, options.steps, warmup, options.floor};
  const WarmupCosine eta{options.boolean.learning_rate, options.steps, warmup, options.floor};
  return {lr.at(at), options.schedule_eta ? eta.at(at) : options.boolean.learning_rate};
}

/// How a `Finetuner` turns the gradients and signals of a batch into an update of the
/// student. `LocalUpdate` runs the one-process optimizers on the whole batch;
/// `mbok::distributed::DataParallelUpdate` (mbok/distributed/finetune.hpp, needs MPI) makes
/// every process compute a share of the batch and sums the signals and gradients across
/// processes. Implementations communicate only where a comment says "collective". The
/// `Finetuner` calls `begin_backward` before each step's backward, tells the update of the
/// signals the backward finishes (`BackwardListener`: an update may start summing them while
/// the rest of the backward runs), then calls `apply`.
class FinetuneUpdate : public BackwardListener {
 public:
  virtual ~FinetuneUpdate() = default;
  /// Before the backward of a step on this process's `local_sequences`. Collective.
  virtual void begin_backward(std::size_t local_sequences) { (void)local_sequences; }
  void signals_final(std::size_t first, std::size_t count) override {
    (void)first;
    (void)count;
  }
  /// The sequences [first, second) of a global batch of `sequences` this process computes.
  virtual std::pair<std::size_t, std::size_t> share(std::size_t sequences) const {
    return {0, sequences};
  }
  /// Steps the student from the gradients of this process's `local_sequences` (means over
  /// them, as the losses return), at AdamW rate `lr` and Boolean rate `eta`; fills `flips`
  /// and `flip_rate` of `result` (whole-model figures). Collective.
  virtual void apply(double lr, double eta, std::size_t local_sequences, FinetuneStep& result) = 0;
  /// The mean over the global batch of a loss that is a mean over this process's
  /// `local_sequences`. Collective.
  virtual DistillLoss global_loss(const DistillLoss& local, std::size_t local_sequences) {
    (void)local_sequences;
    return local;
  }
  /// Sets the accumulators of trainable Boolean parameter `index` (a warm start; the whole
  /// tensor, rows `ld` floats apart). Not collective.
  virtual void set_accumulators(std::size_t index, const float* values, std::size_t ld) = 0;
  /// Bytes of Boolean optimizer state this process holds.
  virtual std::size_t boolean_state_bytes() const = 0;
  /// The optimizers' state in a one-process `BooleanOptimizer`'s and `AdamW`'s layout,
  /// under `<prefix>boolean.` and `<prefix>adamw.` (a data-parallel update fills `dict` on
  /// rank 0 only). Collective.
  virtual void export_state(StateDict& dict, const std::string& prefix) = 0;
  /// Whether `export_state` fills the dictionary on this process (the process that saves
  /// checkpoints: rank 0 of a data-parallel run).
  virtual bool writes_state() const { return true; }
  /// Restores `export_state`'s tensors, whichever update (and number of processes) saved
  /// them. Collective.
  virtual void import_state(const StateDict& dict, const std::string& prefix) = 0;
};

/// The one-process update: `BooleanOptimizer` on the student's trainable kernels and `AdamW`
/// on its full-precision parameters.
class LocalUpdate : public FinetuneUpdate {
 public:
  LocalUpdate(TrainableLlama<float>& student, const FinetuneOptions& options)
      : boolean_(student.boolean_parameters(), options.boolean),
        adamw_(student.parameters(), options.adamw) {}
  void apply(double lr, double eta, std::size_t, FinetuneStep& r) override {
    adamw_.set_learning_rate(lr);
    if (boolean_.num_parameters() > 0) {
      // eta 0 is not a valid rate (the schedule's floor may reach it): a vanishing one is.
      boolean_.set_learning_rate(std::max(eta, 1e-12));
      boolean_.step();
      r.flips = boolean_.last_stats().flips();
      r.flip_rate = boolean_.last_stats().rate();
    }
    adamw_.step();
  }
  void set_accumulators(std::size_t index, const float* values, std::size_t ld) override {
    boolean_.set_accumulators(index, values, ld);
  }
  std::size_t boolean_state_bytes() const override { return boolean_.state_bytes(); }
  void export_state(StateDict& dict, const std::string& prefix) override {
    boolean_.export_state(dict, prefix + "boolean.");
    adamw_.export_state(dict, prefix + "adamw.");
  }
  void import_state(const StateDict& dict, const std::string& prefix) override {
    boolean_.import_state(dict, prefix + "boolean.");
    adamw_.import_state(dict, prefix + "adamw.");
  }
  BooleanOptimizer& boolean_optimizer() noexcept { return boolean_; }
  AdamW& adamw() noexcept { return adamw_; }

 private:
  BooleanOptimizer boolean_;
  AdamW adamw_;
};

/// The optimizers and schedule of a distillation run (see the file comment). The teacher and
/// student must outlive it.
class Finetuner {
 public:
  /// One process: a `LocalUpdate`.
  Finetuner(const LlamaModel& teacher, TrainableLlama<float>& student, FinetuneOptions options)
      : Finetuner(teacher, student, options, std::make_unique<LocalUpdate>(student, options)) {}
  /// With the given update (e.g. a data-parallel one built over the same student and
  /// options). Throws `InvalidArgument` for steps <= 0, a null update or a teacher and
  /// student of different shapes.
  Finetuner(const LlamaModel& teacher, TrainableLlama<float>& student, FinetuneOptions options,
            std::unique_ptr<FinetuneUpdate> update)
      : teacher_(teacher),
        student_(student),
        options_(std::move(options)),
        update_(std::move(update)) {
    mbok::detail::require(options_.steps > 0, "Finetuner: steps must be > 0, got ", options_.steps);
    mbok::detail::require(update_ != nullptr, "Finetuner: the update is null");
    mbok::detail::require(
        teacher.config().vocab_size == student.config().vocab_size &&
            teacher.config().hidden_size == student.config().hidden_size &&
            teacher.config().num_hidden_layers == student.config().num_hidden_layers,
        "Finetuner: teacher and student have different shapes");
    if (options_.teacher_copy)
      teacher_copy_ = std::make_unique<TrainableLlama<float>>(teacher, dense_projections<float>(),
                                                              TrainableParts{false, false, false});
  }

  /// One step on the global batch `tokens` (sequences x len): this process runs the teacher
  /// and the student on its share (`FinetuneUpdate::share`), the update steps the student.
  /// Collective for a data-parallel update (every process passes the same batch). Throws
  /// what the losses and optimizers throw, `InvalidArgument` when the share is empty.
  FinetuneStep step(const std::vector<std::int32_t>& tokens, std::size_t sequences,
                    std::size_t len) {
    mbok::detail::require(tokens.size() == sequences * len, "Finetuner: ", tokens.size(),
                          " tokens, not ", sequences, " x ", len);
    const auto [first, last] = update_->share(sequences);
    mbok::detail::require(first < last && last <= sequences, "Finetuner: this process's share [",
                          first, ", ", last, ") of a batch of ", sequences, " is empty");
    const std::size_t mine = last - first;
    const std::vector<std::int32_t> local(tokens.begin() + std::ptrdiff_t(first * len),
                                          tokens.begin() + std::ptrdiff_t(last * len));
    const TeacherOutputs t = teacher_outputs(local, mine, len);
    FinetuneStep r;
    update_->begin_backward(mine);
    const DistillLoss loss =
        distill_loss(student_, t, local, mine, len, options_.distill, true, update_.get());
    std::tie(r.lr, r.eta) = finetune_rates(options_, step_);
    const auto t0 = std::chrono::steady_clock::now();
    update_->apply(r.lr, r.eta, mine, r);
    r.update_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.loss = update_->global_loss(loss, mine);
    ++step_;
    return r;
  }

  /// Loss of the student on `tokens` (no gradients; this process alone, whole batch).
  DistillLoss evaluate(const std::vector<std::int32_t>& tokens, std::size_t sequences,
                       std::size_t len) {
    const TeacherOutputs t = teacher_outputs(tokens, sequences, len);
    return distill_loss(student_, t, tokens, sequences, len, options_.distill, false);
  }

  std::int64_t step_count() const noexcept { return step_; }
  /// Sets the step count (the schedule's position) for a state restored without
  /// `import_state`, e.g. from a sharded checkpoint (mbok/distributed/finetune.hpp). Throws
  /// `InvalidArgument` for a negative step.
  void set_step_count(std::int64_t step) {
    mbok::detail::require(step >= 0, "Finetuner: step count must be >= 0, got ", step);
    step_ = step;
  }
  /// The one-process Boolean optimizer; throws `InvalidArgument` with another update.
  BooleanOptimizer& boolean_optimizer() { return local("boolean_optimizer").boolean_optimizer(); }
  /// The one-process AdamW; throws `InvalidArgument` with another update.
  AdamW& adamw() { return local("adamw").adamw(); }
  FinetuneUpdate& update() noexcept { return *update_; }
  const FinetuneOptions& options() const noexcept { return options_; }
  /// Trainable Boolean weights.
  std::size_t boolean_weights() const {
    std::size_t n = 0;
    for (auto& p : student_.boolean_parameters()) n += p.bits->rows() * p.bits->cols();
    return n;
  }

  /// The optimizers' state and the step ("<prefix>step", "<prefix>boolean.", "<prefix>adamw.";
  /// a data-parallel update fills `dict` on rank 0 only). Collective.
  void export_state(StateDict& dict, const std::string& prefix) {
    update_->export_state(dict, prefix);
    if (update_->writes_state()) dict[prefix + "step"] = Tensor::scalar<std::int64_t>(step_);
  }
  /// Restores `export_state`'s tensors (checked first by each optimizer), saved by any
  /// update. Collective.
  void import_state(const StateDict& dict, const std::string& prefix) {
    const auto step = read_scalar<std::int64_t>(dict, prefix + "step");
    mbok::detail::require_format(step >= 0, "state: '", prefix, "step' is negative");
    update_->import_state(dict, prefix);
    step_ = step;
  }

 private:
  LocalUpdate& local(const char* what) {
    auto* l = dynamic_cast<LocalUpdate*>(update_.get());
    mbok::detail::require(l != nullptr, "Finetuner::", what,
                          ": the finetuner does not run the one-process optimizers");
    return *l;
  }
  TeacherOutputs teacher_outputs(const std::vector<std::int32_t>& tokens, std::size_t sequences,
                                 std::size_t len) {
    const bool hidden = options_.distill.hidden_weight > 0;
    if (teacher_copy_) return teacher_forward(*teacher_copy_, tokens, sequences, len, hidden);
    return teacher_forward(teacher_, tokens, sequences, len, hidden);
  }

  const LlamaModel& teacher_;
  std::unique_ptr<TrainableLlama<float>> teacher_copy_;
  TrainableLlama<float>& student_;
  FinetuneOptions options_;
  std::unique_ptr<FinetuneUpdate> update_;
  std::int64_t step_ = 0;
};

}  // namespace train
}  // namespace llama
}  // namespace mbok
