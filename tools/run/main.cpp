// mbok-run: runs a LLaMA-family model, a Hugging Face checkpoint directory (the float model)
// or an mbok file converted from one (see --help of each subcommand).
// Exit codes: 0 done, 2 bad options, a bad or unsupported file (one line on stderr), 1 anything
// else.

#include <CLI/CLI.hpp>

#include <mbok/llama/perplexity.hpp>
#include <mbok/llama/pretrained.hpp>
#include <mbok/llama/sampler.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#if defined(__unix__)
#include <unistd.h>
#endif

#if defined(_OPENMP)
#include <omp.h>
#endif

#include <common/progress_bar.hpp>
#include <common/tool_errors.hpp>
#include "bench.hpp"
#include "finetune.hpp"
#include "run_options.hpp"

namespace {

using mbok::llama::PretrainedModel;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

int fail(const std::string& message) { return mbok_examples::report_error("mbok-run", message); }

mbok::llama::ModelOptions model_options(const mbok::tools::RunOptions& o) {
  mbok::llama::ModelOptions mo;
  mo.activations =
      o.activations == "float" ? mbok::llama::Activations::float32 : mbok::llama::Activations::int8;
  mo.head = o.head == "int8" ? mbok::llama::HeadFormat::int8 : mbok::llama::HeadFormat::float32;
  return mo;
}

PretrainedModel load(const mbok::tools::RunOptions& o) {
  const mbok::llama::ModelOptions mo = model_options(o);
  PretrainedModel p = mbok::llama::load_pretrained(o.model, mo);
  if (!p.tokenizer)
    throw mbok::FormatError("mbok: '" + o.model +
                            "' has no tokenizer (tokenizer.json) to read the text with");
  return p;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw mbok::FormatError("mbok: cannot open text file '" + path + "'");
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) throw mbok::FormatError("mbok: cannot read text file '" + path + "'");
  return s.str();
}

int run_perplexity(const mbok::tools::RunOptions& o) {
  const PretrainedModel p = load(o);
  // Options the model cannot take fail before the text is read.
  if (o.context > p.model.config().max_position_embeddings)
    throw mbok::InvalidArgument("mbok: --context " + std::to_string(o.context) +
                                " exceeds the model's max_position_embeddings (" +
                                std::to_string(p.model.config().max_position_embeddings) + ")");
  const auto t0 = Clock::now();
  const std::vector<std::int32_t> tokens = p.tokenizer->encode(read_text(o.text), false);
  if (static_cast<std::int64_t>(tokens.size()) < o.context)
    throw mbok::InvalidArgument("mbok: the text has " + std::to_string(tokens.size()) +
                                " tokens, fewer than one window of " + std::to_string(o.context));
  if (!o.quiet)
    std::cerr << "tokenized " << tokens.size() << " tokens in " << std::fixed
              << std::setprecision(2) << seconds_since(t0) << " s\n";
  std::cout << "tokens: " << tokens.size() << std::endl;
  mbok_examples::ProgressBar bar(
      std::cerr, "perplexity",
      std::max<std::size_t>(
          1, tokens.size() / static_cast<std::size_t>(std::max<std::int64_t>(o.context, 1))),
      mbok_examples::ProgressBar::stderr_is_terminal());
  const auto t1 = Clock::now();
  const mbok::llama::PerplexityResult r =
      mbok::llama::perplexity(p.model, tokens, o.context, [&](std::size_t done, std::size_t) {
        if (!o.quiet) bar.update(done);
      });
  const double s = seconds_since(t1);
  if (!o.quiet)
    std::cerr << r.windows << " windows of " << o.context << " tokens, " << r.predictions
              << " predictions in " << std::fixed << std::setprecision(2) << s << " s ("
              << std::setprecision(1) << double(r.windows) * double(o.context) / s
              << " tokens/s)\n";
  std::cout << "perplexity: " << std::setprecision(6) << std::fixed << r.perplexity() << std::endl;
  return 0;
}

int run_generate(const mbok::tools::RunOptions& o) {
  const PretrainedModel p = load(o);
  const mbok::Tokenizer& tok = *p.tokenizer;
  const mbok::llama::LlamaConfig& cfg = p.model.config();
  const std::vector<std::int32_t> prompt = tok.encode(o.prompt, !o.no_special_tokens);
  if (prompt.empty()) throw mbok::InvalidArgument("mbok: the prompt has no tokens");
  const std::int64_t total = static_cast<std::int64_t>(prompt.size()) + o.tokens;
  if (total > cfg.max_position_embeddings)
    throw mbok::InvalidArgument("mbok: prompt (" + std::to_string(prompt.size()) +
                                " tokens) + -n " + std::to_string(o.tokens) +
                                " exceeds the model's max_position_embeddings (" +
                                std::to_string(cfg.max_position_embeddings) + ")");
  std::vector<std::int64_t> stops = cfg.eos_token_ids;
  if (stops.empty() && tok.eos_id()) stops.push_back(*tok.eos_id());

  mbok::llama::SamplerOptions so;
  so.temperature = o.temperature;
  so.top_k = o.top_k;
  so.top_p = o.top_p;
  so.seed = o.seed;
  mbok::llama::Sampler sampler(so);
  mbok::llama::KvCache cache = p.model.make_cache(total);
  std::vector<float> logits(static_cast<std::size_t>(cfg.vocab_size));

  std::cout << o.prompt << std::flush;
  const auto t0 = Clock::now();
  p.model.forward_last(prompt.data(), prompt.size(), cache, logits.data());
  const double prefill_s = seconds_since(t0);

  mbok::DecodeStream stream(tok, true);
  std::int64_t produced = 0;
  const auto t1 = Clock::now();
  for (;;) {
    const std::int32_t next = sampler.sample(logits.data(), logits.size());
    ++produced;
    const bool stop = !o.ignore_eos && std::find(stops.begin(), stops.end(), next) != stops.end();
    if (!stop) std::cout << stream.push(next) << std::flush;
    if (stop || produced == o.tokens) break;
    p.model.forward_last(&next, 1, cache, logits.data());
  }
  const double decode_s = seconds_since(t1);
  std::cout << stream.flush() << std::endl;
  // `produced` tokens were sampled; all but the last went through a decode step.
  const std::int64_t decoded = produced - 1;
  std::cerr << std::fixed << std::setprecision(2) << "prefill: " << prompt.size() << " tokens in "
            << prefill_s * 1e3 << " ms (" << double(prompt.size()) / prefill_s << " tokens/s)\n"
            << "decode: " << decoded << " tokens in " << decode_s * 1e3 << " ms ("
            << (decoded > 0 ? double(decoded) / decode_s : 0.0) << " tokens/s)\n";
  return 0;
}

// Resident memory of this process now, in bytes (mapped file pages it touched included), or 0
// where the platform does not say (/proc/self/statm).
double resident_bytes() {
#if defined(__unix__)
  std::ifstream statm("/proc/self/statm");
  double pages = 0, resident = 0;
  if (statm >> pages >> resident) return resident * static_cast<double>(sysconf(_SC_PAGESIZE));
#endif
  return 0.0;
}

int run_bench(const mbok::tools::RunOptions& o) {
  const mbok::llama::ModelOptions mo = model_options(o);
  const auto t0 = Clock::now();
  const PretrainedModel p = mbok::llama::load_pretrained(o.model, mo);
  const double load_s = seconds_since(t0);
  const mbok::tools::BenchResult r =
      mbok::tools::run_bench(p.model, o.bench_prompt, o.tokens, o.reps);
  std::cout << std::fixed << std::setprecision(2) << "model: " << o.model << " (loaded in "
            << load_s << " s)\n"
            << "threads: " << mbok::max_threads() << ", activations: " << o.activations
            << ", head: " << o.head << "\n"
            << "pp" << o.bench_prompt << ": " << r.prefill_tokens_per_s << " tokens/s\n"
            << "tg" << o.tokens << ": " << r.decode_tokens_per_s << " tokens/s\n"
            << "bytes read per decoded token: " << r.bytes_per_token / 1e6 << " MB\n"
            << "read bandwidth: " << r.read_gb_per_s << " GB/s, limit " << r.limit_tokens_per_s()
            << " tokens/s, decode at " << std::setprecision(1)
            << 100 * r.decode_tokens_per_s / r.limit_tokens_per_s() << " % of it\n"
            << "resident after the run: " << std::setprecision(2) << resident_bytes() / 1e6
            << " MB (" << resident_bytes() / r.bytes_per_token
            << "x the bytes read per token; the mapped pages the decode read included)\n";
  return 0;
}

int run_info(const mbok::tools::RunOptions& o) {
  const mbok::llama::ModelOptions mo = model_options(o);
  const PretrainedModel p = mbok::llama::load_pretrained(o.model, mo);
  const auto f = p.model.footprint();
  std::cout << "model: " << o.model << (p.converted ? " (mbok file)" : " (Hugging Face checkpoint)")
            << "\n"
            << "config: " << p.model.config().to_json().dump() << "\n"
            << "tokenizer: "
            << (p.tokenizer ? std::to_string(p.tokenizer->vocab_size()) + " tokens" : "none")
            << "\n"
            << "boolean layers: " << f.boolean_layers << " (" << f.boolean_parameters
            << " weights), dense layers: " << f.dense_layers << " (" << f.dense_block_parameters
            << " weights), float parameters: " << f.float_parameters << "\n"
            << "weight bytes read per token: " << f.bytes_per_token
            << ", resident: " << f.resident_bytes << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  mbok::tools::RunOptions o;
  CLI::App app{
      "Runs a LLaMA-family model: a Hugging Face checkpoint directory (config.json, safetensors, "
      "tokenizer.json) as the float model, or an mbok file made from one by mbok-convert.",
      "mbok-run"};
  app.require_subcommand(1);
  auto common = [&o](CLI::App* sub) {
    sub->add_option("-m,--model", o.model, "Hugging Face checkpoint directory or mbok file")
        ->required();
    sub->add_option("--activations", o.activations,
                    "activations of the Boolean layers: int8 (default) or float")
        ->check(CLI::IsMember({"int8", "float"}));
    sub->add_option("--head", o.head,
                    "the output head in memory: float (default, as loaded) or int8 (one scale per "
                    "row; a quarter of the bytes each token reads there)")
        ->check(CLI::IsMember({"float", "int8"}));
    sub->add_option("-t,--threads", o.threads, "threads (default: OpenMP's)")
        ->check(CLI::PositiveNumber);
  };
  CLI::App* ppl = app.add_subcommand("perplexity",
                                     "Perplexity over a text file: the text is tokenized once (no "
                                     "special tokens) and cut into consecutive "
                                     "non-overlapping windows of --context tokens (a last partial "
                                     "window is dropped); each token after the "
                                     "first of a window is predicted from its prefix. Prints "
                                     "'tokens: N' and 'perplexity: X' (exp of the "
                                     "mean negative log-likelihood).");
  common(ppl);
  ppl->add_option("--text", o.text, "UTF-8 text file")->required();
  ppl->add_option("-c,--context", o.context, "window length in tokens")
      ->required()
      ->check(CLI::Range(2, 1 << 30));
  ppl->add_flag("-q,--quiet", o.quiet, "no progress bar");
  CLI::App* gen = app.add_subcommand(
      "generate",
      "Generates text after a prompt, streaming it to standard output; reports prefill and decode "
      "tokens/s on standard error.");
  common(gen);
  gen->add_option("-p,--prompt", o.prompt, "the prompt text")->required();
  gen->add_option("-n,--tokens", o.tokens, "tokens to generate (default 128)")
      ->check(CLI::Range(1, 1 << 30));
  gen->add_option("--temperature", o.temperature,
                  "0 (default): greedy; else sample at this temperature")
      ->check(CLI::Range(0.0, 100.0));
  gen->add_option("--top-k", o.top_k, "sample from the k most likely tokens (0: all)");
  gen->add_option("--top-p", o.top_p, "sample from the nucleus of this probability (default 1)")
      ->check(CLI::Range(0.0, 1.0));
  gen->add_option("--seed", o.seed, "seed of the sampler (default 0)");
  gen->add_flag("--no-special-tokens", o.no_special_tokens,
                "do not add the tokenizer's special tokens (BOS)");
  gen->add_flag("--ignore-eos", o.ignore_eos, "keep generating past the end-of-sequence token");
  CLI::App* bench =
      app.add_subcommand("bench",
                         "Prefill (pp) and decode (tg) tokens/s on random tokens, best of --reps, "
                         "with the read bandwidth "
                         "measured in the same run: decode as a share of the memory limit.");
  common(bench);
  bench->add_option("-p,--prompt-tokens", o.bench_prompt, "prefill tokens (default 512; 0 skips)")
      ->check(CLI::Range(0, 1 << 20));
  bench->add_option("-n,--tokens", o.tokens, "decoded tokens (default 128; 0 skips)")
      ->check(CLI::Range(0, 1 << 20));
  bench->add_option("-r,--reps", o.reps, "repetitions, best kept (default 3)")
      ->check(CLI::Range(1, 100));
  CLI::App* info =
      app.add_subcommand("info", "Prints the model's configuration, layers and sizes.");
  common(info);
  mbok::tools::FinetuneCommand ftc;
  CLI::App* fine = app.add_subcommand("finetune",
                                      "Finetunes a converted model in the Boolean domain against "
                                      "its float teacher: KL to the teacher's logits "
                                      "plus lambda times the hidden-state MSE after each block; "
                                      "the Boolean optimizer flips the last kernel's "
                                      "bits of every projection, AdamW trains the scales and "
                                      "norms. Writes the finetuned mbok file atomically; "
                                      "prints perplexity before and after with --eval-text.");
  fine->add_option("--teacher", ftc.teacher, "the float model: Hugging Face checkpoint directory")
      ->required();
  fine->add_option("--student", ftc.student,
                   "the converted model to finetune (mbok file from mbok-convert)");
  fine->add_option("--kernels", ftc.kernels,
                   "convert the teacher on the fly into K kernels instead of --student")
      ->check(CLI::Range(1, 64));
  fine->add_option("--text", ftc.text, "training text (UTF-8)")->required();
  fine->add_option("-c,--context", ftc.context, "tokens per training window")
      ->required()
      ->check(CLI::Range(2, 1 << 20));
  fine->add_option("-b,--batch", ftc.batch, "windows per step (default 8)")
      ->check(CLI::Range(1, 1 << 20));
  fine->add_option("--steps", ftc.steps, "optimizer steps")
      ->required()
      ->check(CLI::Range(1, 1 << 30));
  fine->add_option("--lr", ftc.eta,
                   "peak Boolean learning rate eta, in units of each signal's RMS (default 0.03)")
      ->check(CLI::PositiveNumber);
  fine->add_option("--scale-lr", ftc.scale_lr,
                   "peak AdamW learning rate of scales and norms (default 1e-3)")
      ->check(CLI::NonNegativeNumber);
  fine->add_option("--warmup", ftc.warmup, "warmup steps of both schedules (default steps / 20)")
      ->check(CLI::NonNegativeNumber);
  fine->add_option("--lr-floor", ftc.floor,
                   "final rate as a fraction of the peak (cosine decay; default 0.1)");
  fine->add_option("--kl-temperature", ftc.kl_temperature, "temperature of the KL term (default 1)")
      ->check(CLI::PositiveNumber);
  fine->add_option("--hidden-weight", ftc.hidden_weight,
                   "lambda of the hidden-state MSE (default 10; 0: off)")
      ->check(CLI::NonNegativeNumber);
  fine->add_option("--accumulator", ftc.accumulator,
                   "Boolean accumulators: i8 (default), f16 or f32")
      ->check(CLI::IsMember({"i8", "f16", "f32"}));
  fine->add_option("--signal-scaling", ftc.signal_scaling, "rms (default), none or sign")
      ->check(CLI::IsMember({"rms", "none", "sign"}));
  fine->add_flag(
      "--freeze-norms", [&ftc](std::int64_t) { ftc.train_norms = false; },
      "keep the RMSNorm weights fixed");
  fine->add_option("--seed", ftc.seed,
                   "seed of the training windows and the i8 rounding (default 1)");
  fine->add_option("-o,--out", ftc.out, "the finetuned mbok file")->required();
  fine->add_option("--checkpoint-dir", ftc.checkpoint_dir,
                   "write D/finetune.ckpt (every --checkpoint-every steps and at the end)");
  fine->add_option("--checkpoint-every", ftc.checkpoint_every,
                   "steps between checkpoints (0: only at the end)")
      ->check(CLI::NonNegativeNumber);
  fine->add_option("--resume", ftc.resume, "continue from D/finetune.ckpt (same settings)");
  fine->add_option("--stop-after", ftc.stop_after,
                   "stop after this many steps of this run, checkpointed (tests)")
      ->check(CLI::NonNegativeNumber);
  fine->add_option("--eval-text", ftc.eval_text,
                   "text whose perplexity is printed before and after");
  fine->add_option("--activations", ftc.activations,
                   "activations of the Boolean layers in evaluation: int8 (default) or float")
      ->check(CLI::IsMember({"int8", "float"}));
  fine->add_flag("--distributed", ftc.distributed,
                 "data-parallel over MPI: run under mpirun -np P; every rank computes its share "
                 "of each batch, rank 0 writes the files (needs an mbok-run built with MPI)");
  fine->add_option("-t,--threads", o.threads, "threads (default: OpenMP's)")
      ->check(CLI::PositiveNumber);
  fine->add_flag("-q,--quiet", ftc.quiet, "no progress bar");
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return fail(std::string(e.what()) + " (see --help)");
  }
#if defined(_OPENMP)
  if (o.threads > 0) omp_set_num_threads(o.threads);
#endif
  return mbok_examples::run_reporting_errors("mbok-run", [&] {
    if (ppl->parsed()) return run_perplexity(o);
    if (gen->parsed()) return run_generate(o);
    if (fine->parsed()) return mbok::tools::run_finetune(ftc);
    if (bench->parsed()) return run_bench(o);
    return run_info(o);
  });
}
