// Finetuning runs (Boolean-domain and latent-weight baseline) with resumable checkpoints,
// and the kernel allocation of fractional budgets.

#include <mbok/adamw.hpp>
#include <mbok/boolean_optimizer.hpp>
#include <mbok/io/checkpoint.hpp>
#include <mbok/kernel_allocation.hpp>
#include <mbok/svid.hpp>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "console.hpp"
#include "pipeline.hpp"
#include "train.hpp"

namespace tiny {

namespace {

mbok::SignalScaling parse_signal_scaling(const std::string& s) {
  if (s == "none") return mbok::SignalScaling::none;
  if (s == "rms") return mbok::SignalScaling::rms;
  if (s == "sign") return mbok::SignalScaling::sign;
  throw mbok::InvalidArgument("signal scaling must be none, rms or sign, got '" + s + "'");
}

/// Snapshots of the trainable kernels' signs of a Boolean or latent model, in layer order.
std::vector<mbok::BitMatrix> trainable_signs(Transformer<float>& model) {
  std::vector<mbok::BitMatrix> out;
  model.for_each_linear([&](const std::string&, std::unique_ptr<Linear<float>>& l) {
    std::vector<mbok::BitMatrix> part;
    if (auto* b = dynamic_cast<BoolLinear<float>*>(l.get())) part = b->trainable_signs();
    if (auto* t = dynamic_cast<LatentLinear<float>*>(l.get())) part = t->trainable_signs();
    for (auto& m : part) out.push_back(std::move(m));
  });
  return out;
}

/// Signs that differ between two snapshots, and how many signs they hold.
std::pair<double, double> sign_changes(const std::vector<mbok::BitMatrix>& a,
                                       const std::vector<mbok::BitMatrix>& b) {
  double changed = 0, total = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    changed += double(mbok::hamming_distance(a[i], b.at(i)));
    total += double(a[i].rows() * a[i].cols());
  }
  return {changed, total};
}

/// Warm start of the Boolean accumulators from the teacher: for a trainable kernel k with
/// residual R (the teacher's weight minus kernels 0..k-1) and r_ij = |R_ij| / (s_out_i s_in_j)
/// (about 1 on average), m_ij = sign(w_ij) threshold (1 - min(r_ij, 2)): a weight the teacher
/// held near zero starts close to its flip, one far from zero needs up to twice the
/// threshold against it, the way a latent weight that starts at R_ij must travel |R_ij|.
void warm_start_accumulators(Transformer<float>& teacher, Transformer<float>& student,
                             mbok::BooleanOptimizer& opt) {
  std::map<std::string, Mat<float>> dense;
  teacher.for_each_linear([&](const std::string& n, std::unique_ptr<Linear<float>>& l) {
    dense[n] = l->dense_weight();
  });
  const auto threshold = float(opt.options().threshold);
  std::size_t index = 0;
  student.for_each_linear([&](const std::string& n, std::unique_ptr<Linear<float>>& l) {
    auto& layer = dynamic_cast<BoolLinear<float>&>(*l).layer();
    const auto& w = layer.weights();
    Mat<float> residual = dense.at(n);
    for (std::size_t k = 0; k < w.num_kernels(); ++k) {
      const Mat<float> signs = w.kernel(k).to_signs();
      const Mat<float> scale = w.s_out(k) * w.s_in(k).transpose();
      if (layer.trainable(k)) {
        const Mat<float> r = residual.cwiseAbs().cwiseQuotient(scale.cwiseAbs().cwiseMax(1e-30f));
        const Mat<float> m = threshold * signs.array() * (1.0f - r.array().min(2.0f));
        opt.set_accumulators(index++, m.data(), std::size_t(m.cols()));
      }
      residual -= (signs.array() * scale.array()).matrix();
    }
  });
}

}  // namespace

json Pipeline::run_finetune(const std::string& method, const Variant& v) {
  const std::string tag = method + "-" + v.name + run_suffix_;
  const std::string ckpt = path("ckpt-" + tag + ".safetensors");
  const std::string key = opt_.finetune_key(method, v.name);
  auto teacher = teacher_model();
  std::unique_ptr<Transformer<float>> student;
  const KernelPlan kp = plan(v);
  const bool boolean_model = method == "mbok" || method == "scales";
  if (boolean_model) {
    const std::string ptq = path("ptq-" + v.name + ".safetensors");
    student = file_exists(ptq) ? load_boolean_model(ptq, opt_.model, opt_.train_kernels)
                               : convert_model(teacher_path(), opt_.model, kp, opt_.train_kernels);
  } else {
    student = latent_model(teacher_path(), opt_.model, kp, opt_.train_kernels);
  }

  // Scales and norm gains train with AdamW; embeddings and head stay the teacher's.
  std::vector<mbok::Parameter> scales;
  for (auto& p : student->parameters())
    if (p.name != "tok_emb" && p.name != "pos_emb" && p.name.compare(0, 5, "head.") != 0)
      scales.push_back(p);
  mbok::AdamWOptions ao;
  ao.learning_rate = opt_.scale_lr;
  mbok::AdamW scale_opt(scales, ao);  // scales stays: --distributed hands it on

  std::unique_ptr<mbok::BooleanOptimizer> bool_opt;
  std::unique_ptr<mbok::AdamW> latent_opt;
  double trainable_weights = 0;
  if (method == "mbok") {
    std::vector<mbok::BooleanParameter> bp;
    student->for_each_linear([&](const std::string& name, std::unique_ptr<Linear<float>>& l) {
      for (auto& p : dynamic_cast<BoolLinear<float>&>(*l).layer().boolean_parameters(name + ".")) {
        trainable_weights += double(p.bits->rows() * p.bits->cols());
        bp.push_back(std::move(p));
      }
    });
    mbok::BooleanOptimizerOptions bo;
    bo.learning_rate = opt_.eta;
    bo.signal_scaling = parse_signal_scaling(opt_.signal_scaling);
    bo.accumulator = mbok::parse_accumulator_type(opt_.accumulator);
    bo.seed = opt_.run_seed();
    bool_opt = std::make_unique<mbok::BooleanOptimizer>(std::move(bp), bo);
    if (opt_.warm_start) warm_start_accumulators(*teacher, *student, *bool_opt);
  } else if (method == "scales") {
    // Ablation: the scales train, the bits stay the SVID's.
    student->for_each_linear([&](const std::string& name, std::unique_ptr<Linear<float>>& l) {
      for (auto& p : dynamic_cast<BoolLinear<float>&>(*l).layer().boolean_parameters(name + "."))
        trainable_weights += double(p.bits->rows() * p.bits->cols());
    });
  } else {
    std::vector<mbok::Parameter> latents;
    student->for_each_linear([&](const std::string& name, std::unique_ptr<Linear<float>>& l) {
      dynamic_cast<LatentLinear<float>&>(*l).latent_parameters(latents, name + ".");
    });
    for (const auto& p : latents) trainable_weights += double(p.size);
    mbok::AdamWOptions lo;
    lo.learning_rate = opt_.latent_lr;
    latent_opt = std::make_unique<mbok::AdamW>(std::move(latents), lo);
  }

  // The signs at the start (the SVID's), to measure how far training moved them.
  const std::vector<mbok::BitMatrix> start_signs = trainable_signs(*student);
  int start = 0;
  std::vector<CurvePoint> curve;
  double step_seconds = 0, flip_fraction_sum = 0;
  // The training-loss mean since the last curve point, carried across a resume.
  double resumed_running = 0;
  int resumed_since = 0;
  double running = 0;
  int since = 0;
  if (opt_.resume && file_exists(ckpt)) {
    // The checkpoint API verifies a checksum of the whole file before anything is used; every
    // problem below is reported as a ModelFileError naming the file (and the tensor).
    auto fail = [&](const std::string& what) {
      return ModelFileError("checkpoint '" + ckpt + "': " + what +
                            " (run without --resume to start over)");
    };
    mbok::Checkpoint loaded;
    try {
      loaded = mbok::load_checkpoint(ckpt);
    } catch (const mbok::FormatError& e) {
      throw fail(std::string("cannot be resumed: ") + e.what());
    }
    const mbok::StateDict& dict = loaded.state;
    auto meta = [&](const char* k) {
      const auto it = loaded.metadata.find(k);
      return it == loaded.metadata.end() ? std::string() : it->second;
    };
    if (meta("tiny.finetune_key") != key || meta("tiny.config") != opt_.model.describe())
      throw ModelFileError("checkpoint '" + ckpt + "' was made with other settings (" +
                           meta("tiny.finetune_key") + "); this run uses " + key +
                           ": run without --resume to start over");
    try {
      // Everything is read and checked before the model and optimizers change.
      const auto step = mbok::read_scalar<std::int64_t>(dict, "progress.step");
      if (step < 0 || step > opt_.finetune_steps)
        throw mbok::FormatError("tensor 'progress.step' is " + std::to_string(step) +
                                ", outside [0, " + std::to_string(opt_.finetune_steps) + "]");
      const auto seconds = mbok::read_scalar<double>(dict, "progress.step_seconds");
      const auto flips = mbok::read_scalar<double>(dict, "progress.flip_fraction_sum");
      const auto running_loss = mbok::read_scalar<double>(dict, "progress.running_loss");
      const auto running_steps = mbok::read_scalar<std::int64_t>(dict, "progress.running_steps");
      if (!(std::isfinite(seconds) && seconds >= 0) || !(std::isfinite(flips) && flips >= 0) ||
          !std::isfinite(running_loss))
        throw mbok::FormatError(
            "tensors 'progress.step_seconds', 'progress.flip_fraction_sum' and "
            "'progress.running_loss' must be finite (and the first two >= 0)");
      if (running_steps < 0 || running_steps > step)
        throw mbok::FormatError("tensor 'progress.running_steps' is " +
                                std::to_string(running_steps) + ", outside [0, " +
                                std::to_string(step) + "]");
      const auto c = dict.find("progress.curve");
      if (c == dict.end()) throw mbok::FormatError("missing tensor 'progress.curve'");
      if (c->second.shape.size() != 2 || c->second.shape[1] != 3 || c->second.shape[0] < 0 ||
          c->second.shape[0] > step + 1)
        throw mbok::FormatError("tensor 'progress.curve' must have shape [points <= step + 1, 3]");
      std::vector<double> values(c->second.numel());
      mbok::read_tensor(dict, "progress.curve", c->second.shape, values.data());
      std::vector<CurvePoint> points;
      for (std::size_t i = 0; i + 2 < values.size(); i += 3) {
        if (!(values[i] >= 0 && values[i] <= double(step)))
          throw mbok::FormatError("tensor 'progress.curve' row " + std::to_string(i / 3) +
                                  " has step " + std::to_string(values[i]) + ", outside [0, " +
                                  std::to_string(step) + "]");
        points.push_back({int(values[i]), values[i + 1], values[i + 2]});
      }
      student->load_state(mbok::sub_dict(dict, "model."));
      scale_opt.import_state(dict, "scale_opt.");
      if (bool_opt) bool_opt->import_state(dict, "boolean_opt.");
      if (latent_opt) latent_opt->import_state(dict, "latent_opt.");
      start = int(step);
      step_seconds = seconds;
      flip_fraction_sum = flips;
      resumed_running = running_loss;
      resumed_since = int(running_steps);
      curve = std::move(points);
    } catch (const mbok::FormatError& e) {
      throw fail(e.what());
    } catch (const mbok::InvalidArgument& e) {
      throw fail(e.what());
    }
    std::cerr << "finetune " << tag << ": resuming at step " << start << " from " << ckpt << "\n";
  }
  // --distributed: the trainer takes over both optimizers' steps and state.
  const auto dp = distributed_finetune(opt_, method, *student, scales, bool_opt.get(), scale_opt);

  auto save_checkpoint = [&](int step) {
    mbok::StateDict dict;
    mbok::add_prefixed(dict, student->state(), "model.");
    scale_opt.export_state(dict, "scale_opt.");
    if (bool_opt) bool_opt->export_state(dict, "boolean_opt.");
    if (latent_opt) latent_opt->export_state(dict, "latent_opt.");
    if (dp) dp->export_state(dict, "boolean_opt.", "scale_opt.");
    dict["progress.step"] = mbok::Tensor::scalar<std::int64_t>(step);
    dict["progress.step_seconds"] = mbok::Tensor::scalar<double>(step_seconds);
    dict["progress.flip_fraction_sum"] = mbok::Tensor::scalar<double>(flip_fraction_sum);
    dict["progress.running_loss"] = mbok::Tensor::scalar<double>(running);
    dict["progress.running_steps"] = mbok::Tensor::scalar<std::int64_t>(since);
    std::vector<double> values;
    for (const auto& p : curve)
      values.insert(values.end(), {double(p.step), p.train_loss, p.valid_loss});
    dict["progress.curve"] = mbok::Tensor::from(values.data(), {std::int64_t(curve.size()), 3});
    if (is_root_process())
      mbok::save_checkpoint(ckpt, dict,
                            {{"tiny.finetune_key", key}, {"tiny.config", opt_.model.describe()}});
  };

  const int steps = opt_.finetune_steps;
  if (start == 0)
    curve.push_back(
        {0, std::numeric_limits<double>::quiet_NaN(), validation_loss(*student, curve_batches_)});
  auto bar = progress_bar((method == "mbok"     ? "finetune "
                           : method == "scales" ? "scales only "
                                                : "baseline ") +
                              v.label,
                          std::size_t(steps));
  bar.update(std::size_t(start));
  running = resumed_running;
  since = resumed_since;
  bool interrupted = false;
  for (int step = start; step < steps; ++step) {
    if (opt_.stop_after > 0 && step - start >= opt_.stop_after) {
      save_checkpoint(step);
      interrupted = true;
      break;
    }
    Batch batch = corpus_->train_batch(opt_.batch, opt_.model.context, opt_.run_seed() + 7919,
                                       std::uint64_t(step));
    if (dp) batch = dp->local_share(batch);
    const auto t0 = Clock::now();
    double counting_seconds = 0;
    DistillLoss loss = distill_step(*teacher, *student, batch, opt_.gamma);
    if (dp) loss = dp->mean_over_ranks(loss, batch.rows);
    const int warmup = std::max(1, steps / 20);
    scale_opt.set_learning_rate(schedule(opt_.scale_lr, step, steps, warmup));
    if (!dp) scale_opt.step();
    if (bool_opt) {
      if (opt_.eta_schedule == "cosine")
        bool_opt->set_learning_rate(schedule(opt_.eta, step, steps, warmup));
      if (dp)
        dp->step(batch.rows, scale_opt.options().learning_rate, bool_opt->options().learning_rate);
      else
        bool_opt->step();
      flip_fraction_sum += dp ? dp->flip_rate() : bool_opt->last_stats().rate();
    }
    if (latent_opt) {
      latent_opt->set_learning_rate(schedule(opt_.latent_lr, step, steps, warmup));
      // Sign changes of the latent weights: the baseline's counterpart of flips (counted
      // outside the step's time).
      const auto c0 = Clock::now();
      const auto before = trainable_signs(*student);
      counting_seconds += seconds_since(c0);
      latent_opt->step();
      const auto c1 = Clock::now();
      const auto [changed, total] = sign_changes(before, trainable_signs(*student));
      flip_fraction_sum += total > 0 ? changed / total : 0.0;
      counting_seconds += seconds_since(c1);
    }
    step_seconds += seconds_since(t0) - counting_seconds;
    counting_seconds = 0;
    running += loss.total();
    ++since;
    if ((step + 1) % opt_.eval_every == 0 || step + 1 == steps) {
      curve.push_back({step + 1, running / since, validation_loss(*student, curve_batches_)});
      running = 0;
      since = 0;
    }
    if ((step + 1) % opt_.checkpoint_every == 0 || step + 1 == steps) save_checkpoint(step + 1);
    bar.update(std::size_t(step + 1),
               "loss " + fixed(loss.total()) + " (kl " + fixed(loss.kl) + ")" +
                   (curve.size() > 1 ? " valid " + fixed(curve.back().valid_loss) : ""));
  }
  bar.finish();
  if (interrupted) {
    std::cerr << "finetune " << tag << ": stopped after " << opt_.stop_after
              << " steps; checkpoint " << ckpt << " (continue with --resume)\n";
    if (summary_.contains("runs")) summary_["runs"].erase(tag);
    save_summary();
    return nullptr;
  }

  if (is_root_process())
    save_model(*student, path(tag + ".safetensors"), method, {{"tiny.finetune_key", key}});
  const auto [moved, signs] = sign_changes(start_signs, trainable_signs(*student));
  const double final_loss = validation_loss(*student, valid_batches_);
  std::cerr << tag << ": validation loss " << fixed(final_loss) << " (perplexity "
            << fixed(std::exp(final_loss), 3) << "), "
            << fixed(100 * moved / std::max(1.0, signs), 2) << "% of trainable signs moved\n";
  json c = json::array();
  for (const auto& p : curve)
    c.push_back(
        {p.step, std::isnan(p.train_loss) ? json(nullptr) : json(p.train_loss), p.valid_loss});
  // Bytes per trainable weight: the bit (1/8 byte) plus the optimizer's state, or the
  // latent float plus Adam's moments.
  double state_bytes = method == "scales" ? 0.125 : 0.0;
  if (bool_opt)
    state_bytes = (double(bool_opt->state_bytes()) + trainable_weights / 8) / trainable_weights;
  if (latent_opt)
    state_bytes = (4 * trainable_weights + double(latent_opt->state_bytes())) / trainable_weights;
  json record = {{"method", method},
                 {"variant", v.name},
                 {"label", v.label},
                 {"steps", steps},
                 {"curve", c},
                 {"ms_per_step", 1000 * step_seconds / std::max(1, steps)},
                 {"state_bytes_per_boolean_weight", state_bytes},
                 {"trainable_boolean_weights", trainable_weights},
                 {"mean_flip_fraction", flip_fraction_sum / steps},
                 {"hamming_from_start", signs > 0 ? moved / signs : 0.0},
                 {"valid_loss", final_loss},
                 {"seed", opt_.run_seed()},
                 {"key", key}};
  return record;
}

/// Kernels per layer under an average budget of `budget` kernel bits per weight: the
/// library's greedy allocation (method.md section 5) over each layer's SVID residuals for
/// K = 1..4.
KernelPlan Pipeline::budget_plan(Transformer<float>& teacher, double budget) {
  constexpr std::size_t kMax = 4;
  std::vector<mbok::LayerErrorCurve> curves;
  teacher.for_each_linear([&](const std::string& name, std::unique_ptr<Linear<float>>& l) {
    const Mat<float> w = l->dense_weight();
    mbok::LayerErrorCurve c;
    c.name = name;
    c.num_weights = std::size_t(w.size());
    c.errors = mbok::svid<float>(w, kMax).relative_residual;
    curves.push_back(std::move(c));
  });
  const auto alloc = mbok::allocate_kernels(curves, budget, kMax);
  KernelPlan plan;
  for (std::size_t i = 0; i < curves.size(); ++i) plan[curves[i].name] = int(alloc.kernels[i]);
  return plan;
}

}  // namespace tiny
