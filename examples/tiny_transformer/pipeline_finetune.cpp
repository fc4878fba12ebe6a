// Finetuning runs with resumable checkpoints: Boolean-domain finetuning with the library's
// distillation step (`mbok::llama::train::Finetuner`: KL + hidden-state MSE, the Boolean
// optimizer on the bits, AdamW on the scales and norms), its scales-only ablation, and the
// latent-weight baseline (the same step, plus Adam on the latents).
//
// Checkpoints: one file in one process; with --distributed a sharded checkpoint (each rank
// writes its rows of the accumulators, rank 0 the manifest at the same path: no rank ever
// holds the whole optimizer state). --resume reads either layout on any number of ranks.

#include <mbok/adamw.hpp>
#include <mbok/boolean_optimizer.hpp>
#include <mbok/distributed/sharded_checkpoint.hpp>  // no MPI: reads either layout
#include <mbok/io/checkpoint.hpp>
#include <mbok/llama/train/distill.hpp>

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

#if defined(TINY_TRANSFORMER_MPI)
#include <mbok/distributed/finetune.hpp>
#endif

namespace tiny {

namespace {

namespace train = mbok::llama::train;

/// The model's Boolean projections (null for other kinds), in block order.
std::vector<train::BooleanProjection<float>*> boolean_projections(Llama& model) {
  std::vector<train::BooleanProjection<float>*> out;
  for (std::size_t l = 0; l < model.num_blocks(); ++l)
    for (std::size_t j = 0; j < train::projection_names().size(); ++j)
      out.push_back(dynamic_cast<train::BooleanProjection<float>*>(&model.projection(l, j)));
  return out;
}

/// Snapshots of the trainable kernels' signs of a Boolean or latent model, in layer order.
std::vector<mbok::BitMatrix> trainable_signs(Llama& model) {
  std::vector<mbok::BitMatrix> out;
  for (auto* b : boolean_projections(model))
    if (b)
      for (std::size_t k : b->layer().trainable_kernels())
        out.push_back(b->layer().weights().kernel(k));
  for (auto* t : latent_projections(model))
    for (auto& m : t->trainable_signs()) out.push_back(std::move(m));
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
void warm_start_accumulators(const mbok::llama::LlamaModel& teacher, Llama& student,
                             train::FinetuneUpdate& opt, double threshold_value) {
  const auto threshold = float(threshold_value);
  const auto projections = boolean_projections(student);
  std::size_t index = 0;
  for (std::size_t i = 0; i < projections.size(); ++i) {
    const auto& layer = projections[i]->layer();
    const auto& w = layer.weights();
    const std::size_t per_block = train::projection_names().size();
    Mat<float> residual = *teacher.blocks()[i / per_block].linears()[i % per_block]->dense_weight();
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
  }
}

}  // namespace

json Pipeline::run_finetune(const std::string& method, const Variant& v) {
  const std::string tag = method + "-" + v.name + run_suffix_;
  const std::string ckpt = path("ckpt-" + tag + ".safetensors");
  const std::string key = opt_.finetune_key(method, v.name);
  const mbok::llama::LlamaModel teacher = teacher_model();
  const KernelPlan kp = plan(v);
  const bool boolean = method == "mbok" || method == "scales";
  // The Boolean students start from the converted file (mbok-convert's output), the
  // baseline from the teacher with the same SVID.
  const std::string ptq = model_path("ptq-" + v.name);
  const std::string train_kernels = method == "scales" ? "none" : opt_.train_kernels;
  Llama student = !boolean ? latent_model(teacher, kp, opt_.train_kernels)
                  : file_exists(ptq)
                      ? boolean_model(load_model(ptq, config_).model, kp, train_kernels)
                      : boolean_model(teacher, kp, train_kernels);

  train::FinetuneOptions fo;
  fo.distill.kl_temperature = 1.0;
  fo.distill.hidden_weight = opt_.gamma;
  fo.boolean.learning_rate = opt_.eta;
  fo.boolean.signal_scaling = mbok::parse_signal_scaling(opt_.signal_scaling);
  fo.boolean.accumulator = mbok::parse_accumulator_type(opt_.accumulator);
  fo.boolean.seed = opt_.run_seed();
  fo.adamw.learning_rate = opt_.scale_lr;
  fo.adamw.weight_decay = 0;
  const int steps = opt_.finetune_steps;
  fo.steps = steps;
  fo.warmup = std::max(1, steps / 20);
  fo.floor = 0.1;
  fo.schedule_eta = opt_.eta_schedule == "cosine";
  // With --distributed every rank computes its share of each batch and the signals and
  // gradients are summed across ranks (mbok/distributed/finetune.hpp); rank 0 writes.
  std::unique_ptr<train::FinetuneUpdate> update;
#if defined(TINY_TRANSFORMER_MPI)
  if (opt_.distributed)
    update = std::make_unique<mbok::distributed::DataParallelUpdate>(MPI_COMM_WORLD, student, fo, 1,
                                                                     600, opt_.overlap);
#endif
  if (!update) update = std::make_unique<train::LocalUpdate>(student, fo);
  train::Finetuner finetuner(teacher, student, fo, std::move(update));
  const bool lead = opt_.rank == 0;
  if (method == "mbok" && run_suffix_.empty())
    std::cerr
        << "$ mbok-run finetune --teacher " << teacher_path() << " --student " << ptq << " --text "
        << path("train.txt") << " -c " << opt_.model.context << " -b " << opt_.batch << " --steps "
        << steps << " --lr " << opt_.eta << " --scale-lr " << opt_.scale_lr << " --hidden-weight "
        << opt_.gamma << " --accumulator " << opt_.accumulator << " -o " << model_path(tag)
        << "   (the same distillation step; here with this pipeline's batches and checkpoints)\n";
  if (method == "mbok" && opt_.warm_start)
    warm_start_accumulators(teacher, student, finetuner.update(), fo.boolean.threshold);

  // The baseline's latents train with their own Adam.
  std::unique_ptr<mbok::AdamW> latent_opt;
  double trainable_weights = 0;
  if (method == "latent") {
    std::vector<mbok::Parameter> latents;
    const auto layers = latent_projections(student);
    for (std::size_t i = 0; i < layers.size(); ++i)
      layers[i]->latent_parameters(latents, "p" + std::to_string(i) + ".");
    for (const auto& p : latents) trainable_weights += double(p.size);
    mbok::AdamWOptions lo;
    lo.learning_rate = opt_.latent_lr;
    latent_opt = std::make_unique<mbok::AdamW>(std::move(latents), lo);
  } else if (method == "mbok") {
    trainable_weights = double(finetuner.boolean_weights());
  } else {  // scales only: the bits of the kernels that would train
    for (auto* b : boolean_projections(student))
      trainable_weights += double(b->in_features() * b->out_features()) *
                           double(opt_.train_kernels == "all" ? b->layer().num_kernels() : 1);
  }

  // The signs at the start (the SVID's), to measure how far training moved them.
  const std::vector<mbok::BitMatrix> start_signs = trainable_signs(student);
  int start = 0;
  std::vector<CurvePoint> curve;
  double step_seconds = 0, flip_fraction_sum = 0;
  double update_seconds = 0;  // this invocation's, in FinetuneUpdate::apply
  // The training-loss mean since the last curve point, carried across a resume.
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
    // A data-parallel run imports its optimizers' part as it reads (each rank its rows of a
    // sharded checkpoint); one process assembles either layout.
    bool optimizers_loaded = false;
    try {
#if defined(TINY_TRANSFORMER_MPI)
      if (opt_.distributed) {
        loaded = mbok::distributed::load_checkpoint(finetuner, ckpt, "finetuner.");
        optimizers_loaded = true;
      }
#endif
      if (!optimizers_loaded) loaded = mbok::distributed::load_any_checkpoint(ckpt);
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
      if (step < 0 || step > steps)
        throw mbok::FormatError("tensor 'progress.step' is " + std::to_string(step) +
                                ", outside [0, " + std::to_string(steps) + "]");
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
      student.import_state(dict, "model.");
      if (!optimizers_loaded) finetuner.import_state(dict, "finetuner.");
      if (latent_opt) latent_opt->import_state(dict, "latent_opt.");
      start = int(step);
      step_seconds = seconds;
      flip_fraction_sum = flips;
      running = running_loss;
      since = int(running_steps);
      curve = std::move(points);
    } catch (const mbok::FormatError& e) {
      throw fail(e.what());
    } catch (const mbok::InvalidArgument& e) {
      throw fail(e.what());
    }
    std::cerr << "finetune " << tag << ": resuming at step " << start << " from " << ckpt << "\n";
  }

  // The model, the baseline's latent optimizer and the run's progress (rank 0's).
  auto fill_checkpoint = [&](mbok::StateDict& dict, int step) {
    student.export_state(dict, "model.");
    if (latent_opt) latent_opt->export_state(dict, "latent_opt.");
    dict["progress.step"] = mbok::Tensor::scalar<std::int64_t>(step);
    dict["progress.step_seconds"] = mbok::Tensor::scalar<double>(step_seconds);
    dict["progress.flip_fraction_sum"] = mbok::Tensor::scalar<double>(flip_fraction_sum);
    dict["progress.running_loss"] = mbok::Tensor::scalar<double>(running);
    dict["progress.running_steps"] = mbok::Tensor::scalar<std::int64_t>(since);
    std::vector<double> values;
    for (const auto& p : curve)
      values.insert(values.end(), {double(p.step), p.train_loss, p.valid_loss});
    dict["progress.curve"] = mbok::Tensor::from(values.data(), {std::int64_t(curve.size()), 3});
  };
  // Collective in a data-parallel run: every rank writes its shard of the optimizers' state,
  // rank 0 the manifest with the rest (sharded: rank 0 never gathers the accumulators).
  auto save_checkpoint = [&](int step) {
    const mbok::Metadata metadata = {{"tiny.finetune_key", key},
                                     {"tiny.config", opt_.model.describe()}};
    mbok::StateDict dict;
    if (!opt_.distributed) finetuner.export_state(dict, "finetuner.");
    if (lead) fill_checkpoint(dict, step);
#if defined(TINY_TRANSFORMER_MPI)
    if (opt_.distributed) {
      mbok::distributed::save_sharded(finetuner, ckpt, std::move(dict), metadata, "finetuner.");
      return;
    }
#endif
    mbok::save_checkpoint(ckpt, dict, metadata);
    // A one-file checkpoint replacing a sharded one: its shards are no longer named.
    mbok::distributed::remove_shards(ckpt);
  };

  if (start == 0)
    curve.push_back(
        {0, std::numeric_limits<double>::quiet_NaN(), validation_loss(student, curve_batches_)});
  auto bar = progress_bar((method == "mbok"     ? "finetune "
                           : method == "scales" ? "scales only "
                                                : "baseline ") +
                              v.label,
                          std::size_t(steps));
  bar.update(std::size_t(start));
  bool interrupted = false;
  const double seconds_before = step_seconds;
  for (int step = start; step < steps; ++step) {
    if (opt_.stop_after > 0 && step - start >= opt_.stop_after) {
      save_checkpoint(step);
      interrupted = true;
      break;
    }
    const Batch batch = corpus_->train_batch(opt_.batch, opt_.model.context, opt_.run_seed() + 7919,
                                             std::uint64_t(step));
    const auto t0 = Clock::now();
    double counting_seconds = 0;
    const train::FinetuneStep r =
        finetuner.step(batch.inputs, std::size_t(batch.rows), std::size_t(batch.len));
    if (method == "mbok") flip_fraction_sum += r.flip_rate;
    update_seconds += r.update_seconds;
    if (latent_opt) {
      latent_opt->set_learning_rate(schedule(opt_.latent_lr, step, steps, std::max(1, steps / 20)));
      // Sign changes of the latent weights: the baseline's counterpart of flips (counted
      // outside the step's time).
      const auto c0 = Clock::now();
      const auto before = trainable_signs(student);
      counting_seconds += seconds_since(c0);
      latent_opt->step();
      const auto c1 = Clock::now();
      const auto [changed, total] = sign_changes(before, trainable_signs(student));
      flip_fraction_sum += total > 0 ? changed / total : 0.0;
      counting_seconds += seconds_since(c1);
    }
    step_seconds += seconds_since(t0) - counting_seconds;
    running += r.loss.total();
    ++since;
    if ((step + 1) % opt_.eval_every == 0 || step + 1 == steps) {
      curve.push_back({step + 1, running / since, validation_loss(student, curve_batches_)});
      running = 0;
      since = 0;
    }
    if ((step + 1) % opt_.checkpoint_every == 0 || step + 1 == steps) save_checkpoint(step + 1);
    bar.update(std::size_t(step + 1),
               "loss " + fixed(r.loss.total()) + " (kl " + fixed(r.loss.kl) + ")" +
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

  if (lead)
    save_mbok(student, model_path(tag), tokenizer_json_, method, {{"tiny.finetune_key", key}});
  const auto [moved, signs] = sign_changes(start_signs, trainable_signs(student));
  const double final_loss = validation_loss(student, valid_batches_);
  std::cerr << tag << ": validation loss " << fixed(final_loss) << " (perplexity "
            << fixed(std::exp(final_loss), 3) << "), "
            << fixed(100 * moved / std::max(1.0, signs), 2) << "% of trainable signs moved, "
            << fixed(1000 * (step_seconds - seconds_before) / std::max(1, steps - start), 1)
            << " ms/step (" << fixed(1000 * update_seconds / std::max(1, steps - start), 1)
            << " in the update after the backward) -> " << model_path(tag) << "\n";
  json c = json::array();
  for (const auto& p : curve)
    c.push_back(
        {p.step, std::isnan(p.train_loss) ? json(nullptr) : json(p.train_loss), p.valid_loss});
  // Bytes per trainable weight: the bit (1/8 byte) plus the optimizer's state (this rank's
  // share of it in a data-parallel run), or the latent float plus Adam's moments.
  double state_bytes = method == "scales" ? 0.125 : 0.0;
  if (method == "mbok")
    state_bytes = (double(finetuner.update().boolean_state_bytes()) + trainable_weights / 8) /
                  trainable_weights;
  if (latent_opt)
    state_bytes = (4 * trainable_weights + double(latent_opt->state_bytes())) / trainable_weights;
  json record = {{"method", method},
                 {"variant", v.name},
                 {"label", v.label},
                 {"steps", steps},
                 {"curve", c},
                 {"ms_per_step", 1000 * step_seconds / std::max(1, steps)},
                 {"update_ms_per_step", 1000 * update_seconds / std::max(1, steps - start)},
                 {"state_bytes_per_boolean_weight", state_bytes},
                 {"trainable_boolean_weights", trainable_weights},
                 {"mean_flip_fraction", flip_fraction_sum / steps},
                 {"hamming_from_start", signs > 0 ? moved / signs : 0.0},
                 {"valid_loss", final_loss},
                 {"seed", opt_.run_seed()},
                 {"ranks", opt_.ranks},
                 {"key", key}};
  return record;
}

}  // namespace tiny
