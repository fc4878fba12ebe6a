// tiny_transformer_shared_scales: what a K = 2 format with shared scales costs in quality on
// the tiny-transformer demo's teacher (docs/prefill.md, "Against IQ2_BN_R4"). The format
// (shared_scales.hpp) ties the two kernels: one s_in, and s_out_2 = c s_out_1, so that every
// weight is one 2-bit code times a rank-1 scale, which one int8 (VNNI) pass can read.
//
// Reads a finished demo output folder (the teacher's Hugging Face directory, train.txt and
// valid.txt), then for the standard K = 2 (successive SVID, free scales per kernel, as the
// demo converts), the same refitted by the shared format's alternating least squares (so that
// the two differ by the constraint only) and the shared-scale format at each ratio c (and c
// chosen per matrix from them):
//   1. post-training: relative Frobenius error per kind of projection and held-out perplexity
//      (mbok::llama::perplexity, the demo's windowed contract, float activations);
//   2. after Boolean finetuning with the demo's recipe (the library's Finetuner, the demo's
//      defaults, the same batches per seed), the shared formats projected back onto their
//      constraint after every step; held-out perplexity again.
// Prints markdown tables on standard output, progress on standard error.

#include <CLI/CLI.hpp>
#include <mbok/error.hpp>
#include <mbok/llama/perplexity.hpp>
#include <mbok/llama/train/distill.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "console.hpp"
#include "corpus.hpp"
#include "model_io.hpp"
#include "shared_scales.hpp"

namespace {

namespace train = mbok::llama::train;
using tiny::Llama;

struct Settings {
  std::string demo_dir = "tiny_transformer_out";
  std::vector<std::string> ratios = {"1/2", "1/3", "3/5", "2/3"};
  bool per_matrix = true;
  int fit_rounds = 20;
  std::vector<std::string> finetune = {"svid", "refit", "1/2"};
  std::vector<std::uint64_t> seeds = {1};
  // The demo's finetuning defaults (options.hpp, pipeline_finetune.cpp).
  int steps = 120;
  tiny::Index batch = 16;
  double eta = 0.03;
  double scale_lr = 1e-3;
  double gamma = 1.0;
  std::string accumulator = "i8";
  std::size_t valid_tokens = 0;  ///< 0: the whole held-out part
  int threads = 1;
};

/// One way to fit the block projections: the demo's SVID (no weights given), free K = 2
/// refitted, or the shared-scale format with a ratio per projection (in block order).
struct Format {
  std::string name;                                      ///< "svid", "refit", "1/2", "best"
  std::string label;                                     ///< table label
  std::vector<tiny::ScaleRatio> ratio;                   ///< shared formats only
  std::vector<mbok::MultiKernelWeights<float>> weights;  ///< empty: the SVID's
  bool shared() const { return !ratio.empty(); }
};

/// The teacher's Hugging Face directory in the demo folder: its one "teacher-*" directory.
std::string find_teacher(const std::string& dir) {
  std::vector<std::string> found;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.is_directory() && e.path().filename().string().rfind("teacher-", 0) == 0)
      found.push_back(e.path().string());
  if (found.size() != 1)
    throw mbok::InvalidArgument("expected one teacher-* directory in '" + dir + "', found " +
                                std::to_string(found.size()));
  return found[0];
}

/// The demo's corpus, split as the demo split it: train.txt then valid.txt. The pipeline cuts
/// at the first line break after 95 % of the text; a fraction that lands on train.txt's last
/// byte (its line break) reproduces that cut exactly, which is checked.
tiny::Corpus demo_corpus(const std::string& dir) {
  const std::string train = tiny::read_text_file(dir + "/train.txt");
  const std::string valid = tiny::read_text_file(dir + "/valid.txt");
  const double n = double(train.size() + valid.size());
  tiny::Corpus corpus(train + valid, (double(valid.size()) + 1.5) / n);
  if (corpus.valid_text() != valid)
    throw mbok::InvalidArgument("'" + dir +
                                "/train.txt' must end with a line break (the demo's split)");
  return corpus;
}

std::vector<train::BooleanProjection<float>*> boolean_projections(Llama& model) {
  std::vector<train::BooleanProjection<float>*> out;
  for (std::size_t l = 0; l < model.num_blocks(); ++l)
    for (std::size_t j = 0; j < train::projection_names().size(); ++j) {
      auto* p = dynamic_cast<train::BooleanProjection<float>*>(&model.projection(l, j));
      if (!p) throw mbok::InvalidArgument("the student has a projection that is not Boolean");
      out.push_back(p);
    }
  return out;
}

/// The teacher's dense projections, in block order.
std::vector<Eigen::MatrixXf> dense_weights(const mbok::llama::LlamaModel& teacher) {
  std::vector<Eigen::MatrixXf> out;
  for (const auto& b : teacher.blocks())
    for (const auto* l : b.linears()) out.push_back(*l->dense_weight());
  return out;
}

/// The K = 2 student of `format`: the demo's SVID conversion (bits of the last kernel
/// trainable), then every projection's kernels and scales replaced by the format's fit.
Llama make_student(const mbok::llama::LlamaModel& teacher, const Format& format) {
  tiny::KernelPlan plan;
  for (std::size_t l = 0; l < teacher.blocks().size(); ++l)
    for (const auto& n : train::projection_names())
      plan[mbok::llama::block_linear_name(std::int64_t(l), n)] = 2;
  Llama student = tiny::boolean_model(teacher, plan, "last");
  if (format.weights.empty()) return student;
  const auto projections = boolean_projections(student);
  for (std::size_t i = 0; i < projections.size(); ++i) {
    const auto& w = format.weights.at(i);
    auto& layer = projections[i]->layer();
    for (std::size_t k = 0; k < 2; ++k) {
      layer.kernel(k) = w.kernel(k);
      layer.s_out(k) = w.s_out(k);
      layer.s_in(k) = w.s_in(k);
    }
  }
  return student;
}

/// Held-out mean negative log-likelihood (nats per token; perplexity = exp) by the demo's
/// contract (float activations), with a progress bar.
double held_out_loss(const Llama& model, const std::vector<std::int32_t>& tokens,
                     std::int64_t context, const std::string& label) {
  const auto inference = model.to_llama_model(mbok::llama::Activations::float32);
  const std::size_t windows = tokens.size() / std::size_t(context);
  auto bar = tiny::progress_bar("perplexity " + label, std::max<std::size_t>(1, windows));
  const auto r = mbok::llama::perplexity(inference, tokens, context,
                                         [&](std::size_t done, std::size_t) { bar.update(done); });
  bar.finish();
  return r.mean_nll;
}

/// Per kind of projection (q, k, ..., down) and over all: ||W - W_hat||_F / ||W||_F pooled
/// over the blocks; and the storage bits per weight of the block projections.
struct FitStats {
  std::vector<double> kind_error;
  double all_error = 0;
  double bits_per_weight = 0;
};

FitStats fit_stats(Llama& student, const std::vector<Eigen::MatrixXf>& dense, bool shared) {
  const std::size_t kinds = train::projection_names().size();
  std::vector<double> err2(kinds, 0), ref2(kinds, 0);
  double bits = 0, weights = 0;
  const auto projections = boolean_projections(student);
  for (std::size_t i = 0; i < projections.size(); ++i) {
    const Eigen::MatrixXf diff = dense[i] - Eigen::MatrixXf(projections[i]->dense_weight());
    err2[i % kinds] += double(diff.squaredNorm());
    ref2[i % kinds] += double(dense[i].squaredNorm());
    const double m = double(dense[i].rows()), n = double(dense[i].cols());
    // The shared format stores one s_out, one s_in and c: 2 bits + (m + n + 1) floats.
    bits += shared ? 2 * m * n + 32 * (m + n + 1) : projections[i]->bits_per_weight() * m * n;
    weights += m * n;
  }
  FitStats s;
  double e = 0, r = 0;
  for (std::size_t k = 0; k < kinds; ++k) {
    s.kind_error.push_back(std::sqrt(err2[k] / ref2[k]));
    e += err2[k];
    r += ref2[k];
  }
  s.all_error = std::sqrt(e / r);
  s.bits_per_weight = bits / weights;
  return s;
}

/// Boolean finetuning of `student` against `teacher` with the demo's recipe; a shared format
/// is projected back onto its constraint after every step. Returns the held-out loss.
double finetune(const mbok::llama::LlamaModel& teacher, Llama& student, const Format& format,
                const Settings& s, std::uint64_t seed, const tiny::Corpus& corpus,
                std::int64_t context, const std::vector<std::int32_t>& valid) {
  train::FinetuneOptions fo;  // as Pipeline::run_finetune sets it
  fo.distill.kl_temperature = 1.0;
  fo.distill.hidden_weight = s.gamma;
  fo.boolean.learning_rate = s.eta;
  fo.boolean.signal_scaling = mbok::SignalScaling::rms;
  fo.boolean.accumulator = mbok::parse_accumulator_type(s.accumulator);
  fo.boolean.seed = seed;
  fo.adamw.learning_rate = s.scale_lr;
  fo.adamw.weight_decay = 0;
  fo.steps = s.steps;
  fo.warmup = std::max(1, s.steps / 20);
  fo.floor = 0.1;
  fo.schedule_eta = false;
  train::Finetuner finetuner(teacher, student, fo);
  const auto projections = boolean_projections(student);
  auto bar = tiny::progress_bar("finetune " + format.label + " seed " + std::to_string(seed),
                                std::size_t(s.steps));
  for (int step = 0; step < s.steps; ++step) {
    // The demo's batches: the same windows for every format of one seed.
    const tiny::Batch batch =
        corpus.train_batch(s.batch, context, seed + 7919, std::uint64_t(step));
    const train::FinetuneStep r =
        finetuner.step(batch.inputs, std::size_t(batch.rows), std::size_t(batch.len));
    // Projected AdamW: each optimizer steps its own copy of the tied scales from its own
    // gradient, then the copies are replaced by the nearest point of the constraint set. The
    // Boolean step on B2 needs nothing: its signal is dL/dB2 at the constrained scales.
    if (format.shared())
      for (std::size_t i = 0; i < projections.size(); ++i)
        tiny::project_shared_scales(projections[i]->layer(), format.ratio[i].value());
    bar.update(std::size_t(step + 1),
               "loss " + tiny::fixed(r.loss.total()) + " (kl " + tiny::fixed(r.loss.kl) + ")");
  }
  bar.finish();
  return held_out_loss(student, valid, context, format.label + " finetuned");
}

std::string ratio_counts(const Format& f, std::size_t kind, std::size_t kinds) {
  std::map<std::string, int> n;
  for (std::size_t i = kind; i < f.ratio.size(); i += kinds) ++n[f.ratio[i].label()];
  std::string out;
  for (const auto& [label, count] : n)
    out += (out.empty() ? "" : " ") + label + (count > 1 ? "x" + std::to_string(count) : "");
  return out;
}

int run(const Settings& s) {
  const std::string teacher_dir = find_teacher(s.demo_dir);
  mbok::llama::ModelOptions mo;
  mo.activations = mbok::llama::Activations::float32;
  const mbok::llama::PretrainedModel loaded = mbok::llama::load_pretrained(teacher_dir, mo);
  if (!loaded.tokenizer) throw mbok::InvalidArgument("'" + teacher_dir + "' has no tokenizer.json");
  const mbok::llama::LlamaModel& teacher = loaded.model;
  const std::int64_t context = teacher.config().max_position_embeddings;
  tiny::Corpus corpus = demo_corpus(s.demo_dir);
  corpus.tokenize(*loaded.tokenizer, context);
  std::vector<std::int32_t> valid = corpus.valid_tokens();
  if (s.valid_tokens > 0 && valid.size() > s.valid_tokens) valid.resize(s.valid_tokens);
  std::cerr << "teacher " << teacher_dir << ", context " << context << ", " << valid.size()
            << " held-out tokens\n";

  // The fits of every ratio (once; each format picks from them).
  const std::vector<Eigen::MatrixXf> dense = dense_weights(teacher);
  std::vector<tiny::ScaleRatio> ratios;
  for (const auto& text : s.ratios) ratios.push_back(tiny::parse_ratio(text));
  std::map<std::string, std::vector<tiny::SharedScaleFit>> fits;
  {
    auto bar = tiny::progress_bar("fit", ratios.size() * dense.size());
    std::size_t done = 0;
    for (const auto& r : ratios)
      for (const auto& w : dense) {
        fits[r.label()].push_back(tiny::fit_shared_scales(w, r.value(), s.fit_rounds));
        bar.update(++done);
      }
    bar.finish();
  }
  std::vector<Format> formats = {{"svid", "K=2 free scales, SVID (the demo's)", {}, {}}};
  if (s.fit_rounds > 0) {
    Format refit{
        "refit", "K=2 free scales, SVID + " + std::to_string(s.fit_rounds) + " ALS rounds", {}, {}};
    for (const auto& w : dense) {
      double error = 0;
      refit.weights.push_back(tiny::fit_free_k2(w, s.fit_rounds, error));
    }
    formats.push_back(std::move(refit));
  }
  for (const auto& r : ratios)
    formats.push_back({r.label(),
                       "K=2 shared, c = " + r.label() + " " + r.levels(),
                       std::vector<tiny::ScaleRatio>(dense.size(), r),
                       {}});
  if (s.per_matrix && ratios.size() > 1) {
    Format best{"best", "K=2 shared, c per matrix", {}, {}};
    for (std::size_t i = 0; i < dense.size(); ++i) {
      const tiny::ScaleRatio* pick = &ratios[0];
      for (const auto& r : ratios)
        if (fits[r.label()][i].relative_error < fits[pick->label()][i].relative_error) pick = &r;
      best.ratio.push_back(*pick);
    }
    formats.push_back(best);
  }
  for (auto& f : formats)
    for (std::size_t i = 0; i < f.ratio.size(); ++i)
      f.weights.push_back(tiny::to_weights(fits[f.ratio[i].label()][i], f.ratio[i].value()));

  for (const auto& name : s.finetune)
    if (std::none_of(formats.begin(), formats.end(),
                     [&](const Format& f) { return f.name == name; }))
      throw mbok::InvalidArgument("--finetune: no format '" + name +
                                  "' (svid, refit with --fit-rounds > 0, a ratio of --ratios, "
                                  "best with two ratios or more)");

  const double teacher_ppl = [&] {
    auto bar = tiny::progress_bar("perplexity teacher", valid.size() / std::size_t(context));
    const auto r = mbok::llama::perplexity(
        teacher, valid, context, [&](std::size_t done, std::size_t) { bar.update(done); });
    bar.finish();
    return std::exp(r.mean_nll);
  }();

  // 1. Post-training.
  const auto& names = train::projection_names();
  std::ostringstream out;
  out << "## Post-training fit (no finetuning)\n\n"
      << "Relative Frobenius error ||W - W_hat|| / ||W|| pooled over the "
      << teacher.blocks().size() << " blocks per kind of projection; shared fits: " << s.fit_rounds
      << " rounds of alternating least squares. Held-out perplexity over " << valid.size()
      << " tokens, windows of " << context << ", float activations; teacher "
      << tiny::fixed(teacher_ppl, 3) << ".\n\n| format | bits/weight |";
  for (const auto& n : names) out << " " << n.substr(n.find('.') + 1) << " |";
  out << " all | perplexity | ppl / teacher |\n|---|---:|";
  for (std::size_t j = 0; j <= names.size() + 2; ++j) out << "---:|";
  out << "\n";
  std::map<std::string, const Format*> by_name;
  for (const auto& f : formats) {
    by_name[f.name] = &f;
    Llama student = make_student(teacher, f);
    const FitStats st = fit_stats(student, dense, f.shared());
    const double ppl = std::exp(held_out_loss(student, valid, context, f.label));
    out << "| " << f.label << " | " << tiny::fixed(st.bits_per_weight, 2) << " |";
    for (double e : st.kind_error) out << " " << tiny::fixed(e, 4) << " |";
    out << " " << tiny::fixed(st.all_error, 4) << " | " << tiny::fixed(ppl, 3) << " | "
        << tiny::fixed(ppl / teacher_ppl, 3) << " |\n";
    std::cerr << out.str().substr(out.str().rfind('\n', out.str().size() - 2) + 1);
  }
  if (by_name.count("best")) {
    out << "\nc per matrix (" << by_name["best"]->label << "), per kind over the blocks:";
    for (std::size_t j = 0; j < names.size(); ++j)
      out << " " << names[j].substr(names[j].find('.') + 1) << " "
          << ratio_counts(*by_name["best"], j, names.size()) << (j + 1 < names.size() ? ";" : "");
    out << "\n";
  }

  // 2. Boolean finetuning, the same batches for every format of a seed.
  if (s.steps > 0 && !s.finetune.empty()) {
    out << "\n## After Boolean finetuning (" << s.steps << " steps, batch " << s.batch << ", eta "
        << s.eta << ", scale lr " << s.scale_lr << ", hidden-state weight " << s.gamma << ", "
        << s.accumulator << " accumulators; shared formats projected after every step)\n\n"
        << "| format | seed | val. loss (nats/token) | perplexity | ppl / teacher |\n"
        << "|---|---:|---:|---:|---:|\n";
    std::map<std::string, std::vector<double>> results;
    for (std::uint64_t seed : s.seeds)
      for (const auto& name : s.finetune) {
        const Format& f = *by_name.at(name);
        Llama student = make_student(teacher, f);
        const double loss = finetune(teacher, student, f, s, seed, corpus, context, valid);
        const double ppl = std::exp(loss);
        results[name].push_back(ppl);
        out << "| " << f.label << " | " << seed << " | " << tiny::fixed(loss, 5) << " | "
            << tiny::fixed(ppl, 3) << " | " << tiny::fixed(ppl / teacher_ppl, 3) << " |\n";
        std::cerr << out.str().substr(out.str().rfind('\n', out.str().size() - 2) + 1);
      }
    if (s.seeds.size() > 1) {
      out << "\nMean over " << s.seeds.size() << " seeds:\n\n"
          << "| format | perplexity | min - max | ppl / teacher |\n|---|---:|---:|---:|\n";
      for (const auto& name : s.finetune) {
        const auto& r = results[name];
        double sum = 0;
        for (double p : r) sum += p;
        const double mean = sum / double(r.size());
        out << "| " << by_name[name]->label << " | " << tiny::fixed(mean, 3) << " | "
            << tiny::fixed(*std::min_element(r.begin(), r.end()), 3) << " - "
            << tiny::fixed(*std::max_element(r.begin(), r.end()), 3) << " | "
            << tiny::fixed(mean / teacher_ppl, 3) << " |\n";
      }
    }
  }
  std::cout << out.str();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  CLI::App app{
      "Quality of a K = 2 format with shared scales (one s_in, s_out_2 = c s_out_1: one 2-bit "
      "code per weight) against free K = 2 scales, on the tiny-transformer demo's teacher: "
      "post-training fit and Boolean finetuning (docs/prefill.md)"};
  app.add_option("--demo", s.demo_dir,
                 "A finished tiny_transformer output folder (teacher-*/, train.txt, valid.txt)")
      ->check(CLI::ExistingDirectory)
      ->capture_default_str();
  app.add_option("--ratios", s.ratios, "Ratios c = p/q of the shared format")
      ->capture_default_str();
  app.add_flag("!--no-per-matrix", s.per_matrix,
               "Skip the format with c chosen per matrix (least fit error) from --ratios");
  app.add_option("--fit-rounds", s.fit_rounds, "Alternating least-squares rounds of the fit")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--finetune", s.finetune,
                 "Formats to finetune: svid (the demo's), refit (free scales refitted), a ratio of "
                 "--ratios, best (c per matrix)")
      ->capture_default_str();
  app.add_option("--seeds", s.seeds, "Finetuning seeds (batches and stochastic rounding)")
      ->capture_default_str();
  app.add_option("--steps", s.steps, "Finetuning steps (0: post-training only)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--batch", s.batch, "Sequences per step")->capture_default_str();
  app.add_option("--eta", s.eta, "Boolean learning rate")->capture_default_str();
  app.add_option("--scale-lr", s.scale_lr, "AdamW learning rate of scales and norms")
      ->capture_default_str();
  app.add_option("--gamma", s.gamma, "Weight of the hidden-state MSE")->capture_default_str();
  app.add_option("--accumulator", s.accumulator, "Boolean optimizer accumulator")
      ->check(CLI::IsMember({"f32", "f16", "i8"}))
      ->capture_default_str();
  app.add_option("--valid-tokens", s.valid_tokens,
                 "Held-out tokens for perplexity (0: all of valid.txt)")
      ->capture_default_str();
  app.add_option("--threads", s.threads, "OpenMP threads (0: default)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
#if defined(_OPENMP)
    if (s.threads > 0) omp_set_num_threads(s.threads);
#endif
    return run(s);
  } catch (const std::exception& e) {
    std::cerr << "tiny_transformer_shared_scales: error: " << e.what() << "\n";
    return 1;
  }
}
