// The sweep stage: Boolean finetuning against the latent-weight baseline with statistics.
// Both methods get the same tuning grid size (one seed, the first length), then every K and
// length runs with several finetuning seeds (same teacher, same PTQ start, batches drawn by
// the seed, identical for both methods at a seed). Writes sweep.md and sweep.png next to
// summary.json; runs already in summary.json with the same settings are reused, so an
// interrupted sweep continues where it stopped.

#include <algorithm>
#include <array>
#include <cmath>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "console.hpp"
#include "pipeline.hpp"
#include "train.hpp"

namespace tiny {

namespace {

/// Mean and sample standard deviation.
struct Spread {
  double mean = NAN, sd = NAN;
  std::size_t n = 0;
};
Spread spread_of(const std::vector<double>& v) {
  Spread s;
  s.n = v.size();
  if (v.empty()) return s;
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / double(v.size());
  double sq = 0;
  for (double x : v) sq += (x - s.mean) * (x - s.mean);
  s.sd = v.size() > 1 ? std::sqrt(sq / double(v.size() - 1)) : 0.0;
  return s;
}

std::string short_num(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}
std::string pm(const Spread& s, int digits) {
  return fixed(s.mean, digits) + " ± " + fixed(s.sd, digits);
}

/// Perplexity against bits per weight: PTQ, Boolean and latent (mean with the seed spread as
/// error bars) and the teacher's line, with gnuplot; returns the file, or "" without gnuplot.
std::string plot(const std::string& out_dir, const std::string& name,
                 const std::vector<std::string>& series_names,
                 const std::vector<std::vector<std::array<double, 3>>>& series, double teacher_ppl,
                 int steps) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) return "";
  const std::string data = out_dir + "/" + name + ".dat", script = out_dir + "/" + name + ".gp",
                    png = out_dir + "/" + name + ".png";
  std::ofstream d(data);
  for (std::size_t i = 0; i < series.size(); ++i) {
    d << "# " << series_names[i] << "\n";
    for (const auto& p : series[i]) d << p[0] << " " << p[1] << " " << p[2] << "\n";
    d << "\n\n";
  }
  d.close();
  std::ofstream g(script);
  // Left: everything on a log scale; right: the finetuned models only, zoomed, with the two
  // methods side by side (x offset) so their error bars do not overlap.
  g << "set terminal pngcairo size 1200,520\nset output '" << png << "'\n"
    << "set multiplot layout 1,2 title 'Validation perplexity against kernels K (" << steps
    << " finetuning steps; mean and seed spread)'\n"
    << "set xlabel 'kernels K (bits per weight)'\nset ylabel 'perplexity'\nset grid\n"
    << "set xrange [0.5:*]\nset xtics 1\nset key top right\nset logscale y\n"
    << "set title 'all models'\nplot ";
  const char* styles[] = {"pt 6 lc 'gray'", "pt 7 lc 'blue'", "pt 5 lc 'red'", "pt 9 lc 'green'"};
  for (std::size_t i = 0; i < series.size(); ++i)
    g << (i ? ", " : "") << "'" << data << "' index " << i << " using 1:2:3 with yerrorlines "
      << styles[i % 4] << " title '" << series_names[i] << "'";
  g << ", " << teacher_ppl << " with lines dt 2 lc 'black' title 'teacher'\n";
  g << "unset logscale y\nset title 'finetuned, zoomed'\nset ylabel 'perplexity / teacher'\n"
    << "plot ";
  for (std::size_t i = 1; i < series.size(); ++i)
    g << (i > 1 ? ", " : "") << "'" << data << "' index " << i << " using ($1 + "
      << (0.06 * (double(i) - 1.5)) << "):($2 / " << teacher_ppl << "):($3 / " << teacher_ppl
      << ") with yerrorbars " << styles[i % 4] << " ps 1.3 title '" << series_names[i] << "'";
  g << "\nunset multiplot\n";
  g.close();
  if (std::system(("gnuplot '" + script + "' 2>/dev/null").c_str()) == 0) return png;
  return "";
}

}  // namespace

void Pipeline::sweep_stage(const SweepOptions& so) {
  require_teacher();
  if (so.seeds < 1) throw mbok::InvalidArgument("sweep: --sweep-seeds must be >= 1");
  if (so.steps.empty() || so.kernels.empty())
    throw mbok::InvalidArgument("sweep: need at least one length and one K");
  for (int n : so.steps)
    if (n < 1) throw mbok::InvalidArgument("sweep: lengths must be >= 1, got " + std::to_string(n));
  for (int k : so.kernels)
    if (k < 1 || k > 8)
      throw mbok::InvalidArgument("sweep: K must be in [1, 8], got " + std::to_string(k));
  if (opt_.stop_after > 0) throw mbok::InvalidArgument("sweep: --stop-after is not supported");
  const Options saved = opt_;

  // The PTQ starts of every K (the convert stage makes the missing ones).
  opt_.kernels = so.kernels;
  if (std::find(opt_.kernels.begin(), opt_.kernels.end(), so.tune_kernels) == opt_.kernels.end())
    opt_.kernels.push_back(so.tune_kernels);
  opt_.budgets = {};
  bool missing = false;
  for (int k : opt_.kernels)
    missing = missing || !file_exists(model_path("ptq-k" + std::to_string(k))) ||
              !summary_["ptq"].contains("k" + std::to_string(k));
  if (missing) convert_stage();

  json& sw = summary_["sweep"];
  if (!sw.is_object()) sw = json::object();
  if (!sw.contains("teacher_valid_loss")) {
    Llama teacher(teacher_model(), mbok::llama::train::dense_projections<float>());
    sw["teacher_valid_loss"] = validation_loss(teacher, valid_batches_);
  }
  const double teacher_ppl = std::exp(sw["teacher_valid_loss"].get<double>());

  // One run, reused from summary.json when its settings match.
  auto run = [&](const std::string& method, int k, int steps, int seed,
                 const std::string& extra = std::string()) -> json {
    opt_.finetune_steps = steps;
    opt_.finetune_seed = std::uint64_t(seed);
    run_suffix_ = "-s" + std::to_string(seed) + "-n" + std::to_string(steps);
    if (method == "mbok") run_suffix_ += "-eta" + short_num(opt_.eta) + "-" + opt_.accumulator;
    if (method == "latent") run_suffix_ += "-lr" + short_num(opt_.latent_lr);
    run_suffix_ += extra;
    const Variant v{"k" + std::to_string(k), "K=" + std::to_string(k), k, 0};
    const std::string tag = method + "-" + v.name + run_suffix_;
    const std::string key = opt_.finetune_key(method, v.name);
    json& runs = sw["runs"];
    if (runs.contains(tag) && runs[tag].value("key", std::string()) == key) return runs[tag];
    json r = run_finetune(method, v);
    runs[tag] = r;
    save_summary();
    return r;
  };

  // Tuning: the same number of settings for both methods, K = tune_kernels, first length,
  // seed 1, chosen by the validation loss.
  const int n0 = so.steps.front();
  json tuning = json::object();
  auto tune = [&](const std::string& method, const std::vector<double>& grid, double& value) {
    if (grid.size() < 2) return;
    double best = INFINITY, best_value = value;
    for (double g : grid) {
      value = g;
      const double loss = run(method, so.tune_kernels, n0, 1)["valid_loss"].get<double>();
      tuning[method].push_back({g, loss});
      if (loss < best) best = loss, best_value = g;
    }
    value = best_value;
  };
  tune("mbok", so.etas, opt_.eta);
  tune("latent", so.latent_lrs, opt_.latent_lr);
  sw["tuning"] = tuning;
  sw["chosen"] = {{"eta", opt_.eta}, {"latent_lr", opt_.latent_lr}};

  // The main grid.
  struct Cell {
    std::vector<double> loss, ppl, flips, moved, ms;
    double state_bytes = 0;
  };
  std::map<std::tuple<std::string, int, int>, Cell> cells;    // (method, K, steps)
  std::map<std::pair<int, int>, std::vector<double>> paired;  // (K, steps): Boolean - latent
  auto add = [&](const std::string& label, int k, int steps, const json& r) {
    Cell& c = cells[{label, k, steps}];
    const double loss = r["valid_loss"].get<double>();
    c.loss.push_back(loss);
    c.ppl.push_back(std::exp(loss));
    c.flips.push_back(r.value("mean_flip_fraction", 0.0));
    c.moved.push_back(r.value("hamming_from_start", 0.0));
    c.ms.push_back(r.value("ms_per_step", 0.0));
    c.state_bytes = r.value("state_bytes_per_boolean_weight", 0.0);
    return loss;
  };
  for (int steps : so.steps)
    for (int k : so.kernels)
      for (int seed = 1; seed <= so.seeds; ++seed) {
        const double b = add("Boolean", k, steps, run("mbok", k, steps, seed));
        const double l = add("latent", k, steps, run("latent", k, steps, seed));
        paired[{k, steps}].push_back(b - l);
      }
  if (so.ablations) {
    // One change at a time from the chosen setting, K = tune_kernels, first length.
    struct Ablation {
      std::string label, method;
      std::function<void(Options&)> change;
    };
    std::vector<Ablation> ablations = {
        {"scales only (no bit updates)", "scales", [](Options&) {}},
        {"Boolean, signal scaling none (eta 100)", "mbok",
         [](Options& o) { o.signal_scaling = "none", o.eta = 100; }},
        {"Boolean, eta warmup + cosine", "mbok", [](Options& o) { o.eta_schedule = "cosine"; }},
        {"Boolean, warm-started accumulators", "mbok", [](Options& o) { o.warm_start = true; }},
        {"Boolean, gamma 10", "mbok", [](Options& o) { o.gamma = 10; }},
        {"latent, gamma 10", "latent", [](Options& o) { o.gamma = 10; }},
    };
    for (const std::string a : {"f32", "f16", "i8"})
      if (a != opt_.accumulator)
        ablations.push_back(
            {"Boolean, " + a + " accumulators", "mbok", [a](Options& o) { o.accumulator = a; }});
    const Options chosen = opt_;
    for (const auto& ab : ablations) {
      ab.change(opt_);
      // The tag names only eta and the accumulator: the other changes get their own suffix.
      const std::string extra = chosen.signal_scaling != opt_.signal_scaling ? "-none"
                                : chosen.eta_schedule != opt_.eta_schedule   ? "-cos"
                                : chosen.warm_start != opt_.warm_start       ? "-warm"
                                : chosen.gamma != opt_.gamma                 ? "-g10"
                                                                             : "";
      for (int seed = 1; seed <= so.seeds; ++seed)
        add(ab.label, so.tune_kernels, n0, run(ab.method, so.tune_kernels, n0, seed, extra));
      opt_ = chosen;
    }
  }

  // The report.
  std::ostringstream md;
  md << "# Sweep: Boolean finetuning against the latent-weight baseline\n\n"
     << "Model " << opt_.model.describe() << ", " << so.seeds
     << " finetuning seeds per row (the seed draws the batches; the teacher and the PTQ start "
        "are shared), validation split ("
     << opt_.valid_windows << " windows). Boolean: eta " << opt_.eta << ", signal scaling "
     << opt_.signal_scaling << ", eta schedule " << opt_.eta_schedule << ", " << opt_.accumulator
     << " accumulators" << (opt_.warm_start ? ", warm start" : "") << ", " << opt_.train_kernels
     << " kernel(s) trained. Latent: Adam, learning rate " << opt_.latent_lr << ". Scales: AdamW "
     << opt_.scale_lr << "; gamma " << opt_.gamma << ".\n\n"
     << "Teacher: loss " << fixed(sw["teacher_valid_loss"].get<double>()) << ", perplexity "
     << fixed(teacher_ppl, 3) << ".\n\n";
  if (!tuning.empty()) {
    md << "## Tuning (K = " << so.tune_kernels << ", " << n0 << " steps, seed 1)\n\n"
       << "| method | setting | validation loss |\n|---|---:|---:|\n";
    for (const auto& [method, rows] : tuning.items())
      for (const auto& r : rows)
        md << "| " << (method == "mbok" ? "Boolean (eta)" : "latent (learning rate)") << " | "
           << short_num(r[0].get<double>()) << " | " << fixed(r[1].get<double>()) << " |\n";
    md << "\n";
  }
  md << "## Results (mean ± sample standard deviation over seeds)\n\n"
     << "| method | K | steps | seeds | validation loss | perplexity | x teacher | flips per step "
        "| "
        "signs moved from SVID | ms/step | state bytes/weight |\n"
     << "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (int k : so.kernels) {
    const double loss = summary_["ptq"]["k" + std::to_string(k)]["valid_loss"].get<double>();
    md << "| PTQ (SVID) | " << k << " | 0 | - | " << fixed(loss) << " | "
       << fixed(std::exp(loss), 3) << " | " << fixed(std::exp(loss) / teacher_ppl, 3)
       << " | | | | |\n";
  }
  std::vector<std::string> series_names = {"PTQ (SVID)"};
  std::vector<std::vector<std::array<double, 3>>> series(1);
  for (int k : so.kernels) {
    const double loss = summary_["ptq"]["k" + std::to_string(k)]["valid_loss"].get<double>();
    series[0].push_back({double(k), std::exp(loss), 0.0});
  }
  const int n_last = so.steps.back();
  std::map<std::string, std::size_t> series_index;
  for (const auto& [id, c] : cells) {
    const auto& [label, k, steps] = id;
    const Spread loss = spread_of(c.loss), ppl = spread_of(c.ppl);
    md << "| " << label << " | " << k << " | " << steps << " | " << loss.n << " | " << pm(loss, 4)
       << " | " << pm(ppl, 3) << " | " << fixed(ppl.mean / teacher_ppl, 3) << " | "
       << std::scientific << std::setprecision(2) << spread_of(c.flips).mean << std::fixed << " | "
       << fixed(100 * spread_of(c.moved).mean, 2) << "% | " << fixed(spread_of(c.ms).mean, 0)
       << " | " << fixed(c.state_bytes, 2) << " |\n";
    if (steps == n_last && (label == "Boolean" || label == "latent")) {
      if (!series_index.count(label)) {
        series_index[label] = series.size();
        series_names.push_back(label + " (" + std::to_string(steps) + " steps)");
        series.emplace_back();
      }
      series[series_index[label]].push_back({double(k), ppl.mean, ppl.sd});
    }
  }
  md << "\n## Boolean against latent, paired by seed\n\n"
     << "Difference of validation loss (Boolean - latent; negative: Boolean better), its mean "
        "and standard deviation over the seeds, and the verdict: *distinguishable* when the "
        "mean difference is larger than the two methods' spreads added (sd_Boolean + "
        "sd_latent), else *not distinguishable*.\n\n"
     << "| K | steps | Boolean - latent | sd_Boolean + sd_latent | verdict |\n"
     << "|---:|---:|---:|---:|---|\n";
  json verdicts = json::array();
  for (const auto& [id, diffs] : paired) {
    const auto& [k, steps] = id;
    const Spread d = spread_of(diffs);
    const double band = spread_of(cells[{"Boolean", k, steps}].loss).sd +
                        spread_of(cells[{"latent", k, steps}].loss).sd;
    const bool distinct = std::abs(d.mean) > band;
    const std::string verdict = !distinct    ? "not distinguishable"
                                : d.mean < 0 ? "Boolean better"
                                             : "latent better";
    md << "| " << k << " | " << steps << " | " << pm(d, 4) << " | " << fixed(band, 4) << " | "
       << verdict << " |\n";
    verdicts.push_back({{"k", k},
                        {"steps", steps},
                        {"difference", d.mean},
                        {"sd", d.sd},
                        {"band", band},
                        {"verdict", verdict}});
  }
  sw["verdicts"] = verdicts;
  // Files named by the lengths, so sweeps of different lengths keep their own report.
  std::string name = "sweep";
  for (int n : so.steps) name += "-" + std::to_string(n);
  const std::string png = plot(opt_.out_dir, name, series_names, series, teacher_ppl, n_last);
  if (!png.empty()) md << "\n![perplexity against bits](" << name << ".png)\n";
  {
    std::ofstream out(path(name + ".md"));
    out << md.str();
  }
  std::cout << md.str() << "\nsweep: " << path(name + ".md") << (png.empty() ? "" : ", " + png)
            << "\n";
  opt_ = saved;
  run_suffix_.clear();
  save_summary();
}

}  // namespace tiny
