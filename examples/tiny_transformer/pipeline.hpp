#pragma once
// The pipeline's stages: pretrain, convert, finetune, baseline, evaluate, sweep. Each reads
// what earlier stages left in the output folder and records its results in summary.json.
// The files are those of the Hugging Face road: the teacher a checkpoint directory, every
// Boolean model an mbok file in mbok-convert's layout; the stages print the mbok-convert and
// mbok-run commands that do the same on them.
// The stages are defined in pipeline.cpp (pretrain, convert, finetune, baseline),
// pipeline_finetune.cpp (one finetuning run), pipeline_evaluate.cpp and pipeline_sweep.cpp.

#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "corpus.hpp"
#include "model_io.hpp"
#include "options.hpp"

namespace tiny {

using nlohmann::json;

/// A way to binarize: K kernels everywhere, or an average-bit budget split by allocation.
struct Variant {
  std::string name;   ///< file-name part: "k2", "avg1.5"
  std::string label;  ///< table label: "K=2", "1.5 bits avg"
  int k = 0;          ///< uniform K, or 0
  double budget = 0;  ///< average kernels per weight, or 0
};

/// The variants the options ask for: uniform K first, then budgets.
std::vector<Variant> variants(const Options& o);

/// The output folder, the corpus and the summary shared by every stage.
class Pipeline {
 public:
  /// Reads the corpus, creates the output folder and loads its summary.json, if any.
  explicit Pipeline(Options o);

  const Options& options() const { return opt_; }
  json& summary() { return summary_; }
  /// `file` in the output folder.
  std::string path(const std::string& file) const;
  std::string summary_path() const { return path("summary.json"); }
  /// The teacher's Hugging Face directory, named by the settings and corpus it depends on.
  std::string teacher_path() const;
  /// An mbok model file of the output folder ("ptq-k2" -> DIR/ptq-k2.mbok).
  std::string model_path(const std::string& name) const { return path(name + ".mbok"); }
  /// The configuration of every model of this run.
  const mbok::llama::LlamaConfig& config() const { return config_; }

  /// Writes summary.json (through a temporary file, so it is never half written).
  void save_summary();

  /// Trains the full-precision teacher (skipped when its file exists).
  void pretrain_stage();
  /// Kernels per layer for a variant (budgets go through the greedy allocation).
  KernelPlan plan(const Variant& v);
  /// The mbok-convert command that makes variant `v` from the teacher's directory.
  std::string convert_command(const Variant& v) const;
  /// Successive-SVID conversion of every linear layer, for every variant.
  void convert_stage();
  /// Boolean-domain finetuning with distillation, for every variant.
  void finetune_stage();
  /// The latent-weight baseline, for every --baseline-kernels K.
  void baseline_stage();
  /// Boolean against latent finetuning over seeds, K and lengths (pipeline_sweep.cpp).
  void sweep_stage(const SweepOptions& so);
  /// Perplexity, bits/char, generation speed and samples of every model
  /// (pipeline_evaluate.cpp).
  void evaluate_stage();

 private:
  json settings_json() const;
  void require_teacher();
  mbok::llama::LlamaModel teacher_model();
  /// Makes the run's tokenizer (cached in the output folder by corpus and merges).
  void make_tokenizer();

  KernelPlan budget_plan(const mbok::llama::LlamaModel& teacher, double budget);

  /// One finetuning run; returns its record (null when it stopped early, --stop-after).
  json run_finetune(const std::string& method, const Variant& v);
  void record_run(const std::string& method, const Variant& v);

  Options opt_;
  std::string run_suffix_;  ///< appended to run names (the sweep's seed and length)
  std::unique_ptr<Corpus> corpus_;
  std::string tokenizer_json_;
  std::optional<mbok::Tokenizer> tokenizer_;
  mbok::llama::LlamaConfig config_;
  std::vector<Batch> curve_batches_, valid_batches_;
  json summary_ = json::object();
};

}  // namespace tiny
