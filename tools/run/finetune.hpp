#pragma once
// mbok-run finetune: Boolean-domain distillation of a converted LLaMA-family model against
// its float teacher (mbok/llama/train), with checkpoints, resume and perplexity before/after.
//
// The student is an mbok file (--student, its Boolean layers as they are) or the teacher
// converted on the fly (--kernels K, successive SVID). Each step draws --batch windows of
// --context tokens from the text (offsets from --seed and the step: a resumed run sees the
// same batches), runs the teacher and the student, and steps the Boolean optimizer on the last
// kernel of every projection and AdamW on the scales and norms.
//
// Checkpoints (--checkpoint-dir D, every --checkpoint-every steps and at the end) are
// D/finetune.ckpt (crash-safe, checksummed; mbok/io/checkpoint.hpp) holding the student's
// trainable state, both optimizers and the step; --resume D continues from it and the result
// is bit-identical to an uninterrupted run (the settings that shape training must match; the
// checkpoint records them). The output is written atomically.
//
// --distributed (run under mpirun -np P; needs an mbok-run built with MPI, MBOK_RUN_MPI):
// every rank loads the models and draws the same batches, computes its share of each batch's
// windows, and mbok/distributed/finetune.hpp sums the signals and gradients across the ranks
// (the step of one process on the whole batch, up to the order of float sums). Rank 0 alone
// prints, evaluates and writes the output. Checkpoints are sharded (mbok/distributed/
// sharded_checkpoint.hpp): each rank writes its rows of the accumulators next to
// D/finetune.ckpt, which rank 0 writes as the manifest (the student, the replicated state,
// the settings). --resume reads either layout, on any number of ranks or without
// --distributed.

#include <mbok/distributed/sharded_checkpoint.hpp>  // no MPI: reads sharded checkpoints
#include <mbok/io/checkpoint.hpp>
#include <mbok/llama/perplexity.hpp>
#include <mbok/llama/pretrained.hpp>
#include <mbok/llama/train/train.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <common/progress_bar.hpp>

#if defined(MBOK_RUN_MPI)
#include <mbok/distributed/finetune.hpp>
#include <mbok/distributed/session.hpp>
#endif

namespace mbok::tools {

struct FinetuneCommand {
  std::string teacher, student, text, eval_text, out, checkpoint_dir, resume;
  std::size_t kernels = 0;  // 0: --student
  std::int64_t context = 0, batch = 8, steps = 0, warmup = -1, checkpoint_every = 0, stop_after = 0;
  double eta = 0.03, scale_lr = 1e-3, kl_temperature = 1.0, hidden_weight = 10.0, floor = 0.1;
  std::string accumulator = "i8", signal_scaling = "rms", activations = "int8";
  std::uint64_t seed = 1;
  bool train_norms = true, quiet = false, distributed = false;

  // The settings a resumed run must share with the checkpoint's run.
  std::string settings() const {
    nlohmann::json j = {{"student", kernels > 0 ? "kernels=" + std::to_string(kernels) : "file"},
                        {"context", context},
                        {"batch", batch},
                        {"steps", steps},
                        {"warmup", warmup},
                        {"eta", eta},
                        {"scale_lr", scale_lr},
                        {"kl_temperature", kl_temperature},
                        {"hidden_weight", hidden_weight},
                        {"floor", floor},
                        {"accumulator", accumulator},
                        {"signal_scaling", signal_scaling},
                        {"seed", seed},
                        {"train_norms", train_norms}};
    return j.dump();
  }
};

namespace detail_finetune {

using Clock = std::chrono::steady_clock;

inline std::string read_file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FormatError("mbok: cannot open text file '" + path + "'");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void check(bool ok, const std::string& message) {
  if (!ok) throw InvalidArgument("mbok: " + message);
}

inline std::string fixed(double v, int digits = 4) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v;
  return s.str();
}

}  // namespace detail_finetune

/// Runs the command; returns the exit code (errors are thrown: InvalidArgument and
/// FormatError mean exit 2).
inline int run_finetune(const FinetuneCommand& o) {
  using namespace detail_finetune;
  namespace fs = std::filesystem;
  namespace lt = llama::train;
#if defined(MBOK_RUN_MPI)
  // MPI for the run: a rank ended by the launcher says what it waited for, MPI_Finalize is
  // bounded, and a rank that leaves with an error does not finalize (the launcher then ends
  // the whole job instead of leaving the other ranks waiting).
  std::optional<distributed::MpiSession> mpi;
  if (o.distributed) mpi.emplace();
  const int rank = mpi ? mpi->rank() : 0, ranks = mpi ? mpi->size() : 1;
#else
  check(!o.distributed,
        "--distributed: this mbok-run was built without MPI (install Open MPI, e.g. Debian's "
        "libopenmpi-dev and openmpi-bin, and rebuild)");
  const int rank = 0, ranks = 1;
#endif
  // Rank 0 alone prints, evaluates and writes files.
  const bool lead = rank == 0;
  const bool quiet = o.quiet || !lead;
  check(o.kernels > 0 || !o.student.empty(), "give --student FILE.mbok or --kernels K");
  check(o.kernels == 0 || o.student.empty(), "--student and --kernels exclude each other");
  check(o.context >= 2, "--context must be at least 2");
  check(o.batch >= 1, "--batch must be at least 1");
  check(o.batch >= ranks, "--batch " + std::to_string(o.batch) + " is smaller than the " +
                              std::to_string(ranks) + " ranks: every rank needs a window");
  check(o.steps >= 1, "--steps must be at least 1");
  check(o.checkpoint_every >= 0, "--checkpoint-every must be >= 0");
  check(o.checkpoint_every == 0 || !o.checkpoint_dir.empty(),
        "--checkpoint-every needs --checkpoint-dir");
  check(o.stop_after >= 0 && (o.stop_after == 0 || !o.checkpoint_dir.empty()),
        "--stop-after needs --checkpoint-dir");
  check(o.eta > 0 && o.scale_lr >= 0, "--lr must be > 0 and --scale-lr >= 0");
  check(o.kl_temperature > 0, "--kl-temperature must be > 0");
  check(o.hidden_weight >= 0, "--hidden-weight must be >= 0");
  check(o.floor >= 0 && o.floor <= 1, "--lr-floor must be in [0, 1]");
  check(o.warmup <= o.steps, "--warmup must not exceed --steps");
  const AccumulatorType acc = parse_accumulator_type(o.accumulator);
  const SignalScaling scaling = parse_signal_scaling(o.signal_scaling);
  const std::string ckpt_dir = !o.resume.empty() ? o.resume : o.checkpoint_dir;
  const std::string ckpt_path =
      ckpt_dir.empty() ? std::string() : (fs::path(ckpt_dir) / "finetune.ckpt").string();
  if (!o.resume.empty())
    check(fs::is_regular_file(ckpt_path), "--resume: no checkpoint '" + ckpt_path + "'");
  const llama::Activations eval_act =
      o.activations == "float" ? llama::Activations::float32 : llama::Activations::int8;

  // Teacher, tokenizer and student.
  llama::PretrainedModel teacher = llama::load_pretrained(o.teacher);
  check(!teacher.converted,
        "--teacher must be a Hugging Face checkpoint directory (the float model)");
  if (!teacher.tokenizer) throw FormatError("mbok: '" + o.teacher + "' has no tokenizer.json");
  const llama::LlamaConfig& cfg = teacher.model.config();
  check(o.context <= cfg.max_position_embeddings,
        "--context " + std::to_string(o.context) +
            " exceeds the model's max_position_embeddings (" +
            std::to_string(cfg.max_position_embeddings) + ")");
  std::optional<std::string> tokenizer_json;
  if (const auto tok = llama::open_llama_checkpoint(o.teacher).checkpoint.tokenizer_path())
    tokenizer_json = HfCheckpoint::read_text(*tok);

  std::optional<lt::TrainableLlama<float>> student;
  lt::TrainableParts parts;
  parts.norms = o.train_norms;
  if (!o.student.empty()) {
    llama::ModelOptions mo;
    mo.activations = llama::Activations::float32;
    const llama::PretrainedModel s = llama::load_pretrained(o.student, mo);
    check(s.converted, "--student must be an mbok file (mbok-convert's output)");
    check(
        s.model.config().to_json() == cfg.to_json(),
        "--student's config.json differs from the teacher's: it was not converted from this model");
    student.emplace(s.model, lt::boolean_projections<float>(0), parts);
  } else {
    student.emplace(teacher.model, lt::boolean_projections<float>(o.kernels), parts);
  }

  // Text.
  const std::vector<std::int32_t> stream = teacher.tokenizer->encode(read_file_text(o.text), false);
  check(static_cast<std::int64_t>(stream.size()) >= o.context,
        "the text has " + std::to_string(stream.size()) + " tokens, fewer than one window of " +
            std::to_string(o.context));
  std::vector<std::int32_t> eval_tokens;
  if (!o.eval_text.empty()) {
    eval_tokens = teacher.tokenizer->encode(read_file_text(o.eval_text), false);
    check(static_cast<std::int64_t>(eval_tokens.size()) >= o.context,
          "the eval text has " + std::to_string(eval_tokens.size()) +
              " tokens, fewer than one window of " + std::to_string(o.context));
  }

  lt::FinetuneOptions fo;
  fo.steps = o.steps;
  fo.warmup = o.warmup;
  fo.floor = o.floor;
  fo.distill.kl_temperature = o.kl_temperature;
  fo.distill.hidden_weight = o.hidden_weight;
  fo.boolean.learning_rate = o.eta;
  fo.boolean.accumulator = acc;
  fo.boolean.signal_scaling = scaling;
  fo.boolean.seed = o.seed;
  fo.adamw.learning_rate = o.scale_lr;
#if defined(MBOK_RUN_MPI)
  lt::Finetuner ft = mpi ? lt::Finetuner(teacher.model, *student, fo,
                                         std::make_unique<distributed::DataParallelUpdate>(
                                             MPI_COMM_WORLD, *student, fo))
                         : lt::Finetuner(teacher.model, *student, fo);
#else
  lt::Finetuner ft(teacher.model, *student, fo);
#endif

  std::int64_t start = 0;
  if (!o.resume.empty()) {
    // Either layout: each rank reads its rows of a sharded one; one process assembles it.
#if defined(MBOK_RUN_MPI)
    const Checkpoint ck = mpi ? distributed::load_checkpoint(ft, ckpt_path, "optimizer.")
                              : distributed::load_any_checkpoint(ckpt_path);
#else
    const Checkpoint ck = distributed::load_any_checkpoint(ckpt_path);
#endif
    const auto it = ck.metadata.find("mbok.finetune.settings");
    if (it == ck.metadata.end() || it->second != o.settings())
      throw InvalidArgument("mbok: checkpoint '" + ckpt_path + "' was made with other settings (" +
                            (it == ck.metadata.end() ? std::string("none") : it->second) +
                            "); this run has " + o.settings());
    student->import_state(ck.state, "student.");
#if defined(MBOK_RUN_MPI)
    if (!mpi) ft.import_state(ck.state, "optimizer.");
#else
    ft.import_state(ck.state, "optimizer.");
#endif
    start = ft.step_count();
    check(start <= o.steps,
          "the checkpoint is at step " + std::to_string(start) + ", beyond --steps");
    if (!quiet) std::cerr << "resuming at step " << start << " from " << ckpt_path << "\n";
  }
  // Collective with --distributed: each rank writes its shard, rank 0 the manifest.
  auto save = [&]() {
    const std::string file = (fs::path(o.checkpoint_dir) / "finetune.ckpt").string();
    const Metadata metadata = {{"mbok.finetune.settings", o.settings()}};
    fs::create_directories(o.checkpoint_dir);
    StateDict dict;
#if defined(MBOK_RUN_MPI)
    if (mpi) {
      if (lead) student->export_state(dict, "student.");
      distributed::save_sharded(ft, file, std::move(dict), metadata, "optimizer.");
      return;
    }
#endif
    ft.export_state(dict, "optimizer.");
    student->export_state(dict, "student.");
    save_checkpoint(file, dict, metadata);
    // A one-file save replaces a sharded one at the same path: its shards are no longer named.
    distributed::remove_shards(file);
  };

  auto ppl = [&](const llama::LlamaModel& m) {
    return llama::perplexity(m, eval_tokens, o.context).perplexity();
  };
  // The distillation loss on the eval text: its first (up to 8) consecutive windows.
  const std::size_t eval_windows =
      std::min<std::size_t>(8, eval_tokens.size() / static_cast<std::size_t>(o.context));
  auto eval_kl = [&]() {
    const std::vector<std::int32_t> head(
        eval_tokens.begin(),
        eval_tokens.begin() + std::ptrdiff_t(eval_windows * std::size_t(o.context)));
    return ft.evaluate(head, eval_windows, static_cast<std::size_t>(o.context)).kl;
  };
  if (lead && !eval_tokens.empty()) {
    std::cout << "teacher perplexity: " << fixed(ppl(teacher.model)) << std::endl;
    std::cout << "perplexity before: " << fixed(ppl(student->to_llama_model(eval_act)))
              << std::endl;
    std::cout << "eval kl before: " << fixed(eval_kl(), 6) << std::endl;
  }

  const std::size_t seqs = static_cast<std::size_t>(o.batch),
                    len = static_cast<std::size_t>(o.context);
  const std::int64_t end = o.stop_after > 0 ? std::min(o.steps, start + o.stop_after) : o.steps;
  if (lead)
    std::cout << "finetuning " << ft.boolean_weights() << " Boolean weights, steps " << start
              << ".." << end << " of " << o.steps << ", " << o.batch << " x " << o.context
              << " tokens per step"
              << (ranks > 1 ? " on " + std::to_string(ranks) + " ranks" : std::string())
              << std::endl;
  mbok_examples::ProgressBar bar(std::cerr, "finetune",
                                 static_cast<std::size_t>(std::max<std::int64_t>(1, end - start)),
                                 !quiet && mbok_examples::ProgressBar::stderr_is_terminal());
  const auto t0 = Clock::now();
  double loss_sum = 0, kl_last = 0, flips_sum = 0;
  std::int64_t done = 0;
  for (std::int64_t s = start; s < end; ++s) {
    const auto batch = lt::sample_windows(stream, seqs, len, o.seed, static_cast<std::uint64_t>(s));
    const lt::FinetuneStep r = ft.step(batch, seqs, len);
    ++done;
    loss_sum += r.loss.total();
    kl_last = r.loss.kl;
    flips_sum += r.flip_rate;
    if (!quiet)
      bar.update(static_cast<std::size_t>(done), "loss " + fixed(r.loss.total()) + " kl " +
                                                     fixed(r.loss.kl) + " flips " +
                                                     fixed(100 * r.flip_rate, 3) + "%");
    if (o.checkpoint_every > 0 && (s + 1) % o.checkpoint_every == 0 && s + 1 < end) save();
  }
  if (!quiet) bar.finish();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!o.checkpoint_dir.empty()) save();
  if (!lead) return 0;
  if (done > 0)
    std::cout << "steps: " << done << " in " << fixed(secs, 2) << " s ("
              << fixed(double(done) / secs, 3) << " steps/s, "
              << fixed(double(done) * double(seqs * len) / secs, 1) << " tokens/s), mean loss "
              << fixed(loss_sum / double(done)) << ", last kl " << fixed(kl_last)
              << ", mean flip rate " << fixed(100 * flips_sum / double(done), 4) << "%"
              << std::endl;
  if (end < o.steps) {
    std::cout << "stopped at step " << end << " (--stop-after); resume with --resume "
              << o.checkpoint_dir << std::endl;
    return 0;
  }
  student->write_mbok(o.out, tokenizer_json,
                      {{"finetuned_by", "mbok-run finetune"}, {"finetune_settings", o.settings()}});
  std::cout << "wrote " << o.out << std::endl;
  if (!eval_tokens.empty()) {
    std::cout << "perplexity after: " << fixed(ppl(student->to_llama_model(eval_act))) << std::endl;
    std::cout << "eval kl after: " << fixed(eval_kl(), 6) << std::endl;
  }
  return 0;
}

}  // namespace mbok::tools
