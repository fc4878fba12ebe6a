// The evaluate stage, the user's road on the pipeline's files: perplexity of every model by
// the library's windowed contract (`mbok::llama::perplexity`, what `mbok-run perplexity`
// prints) on the held-out text, with float and int8 activations for the Boolean models;
// generation speed (one thread, the KV cache, as `mbok-run generate`), and samples.

#include <mbok/llama/perplexity.hpp>

#include <cmath>
#include <iostream>
#include <string>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "console.hpp"
#include "generate.hpp"
#include "pipeline.hpp"

namespace tiny {

namespace {

/// Rounds of the generation-speed timing (each times every model once).
constexpr int kSpeedRounds = 5;

/// Runs `body` with OpenMP (and so Eigen) limited to one thread.
template <typename Body>
void single_threaded(Body&& body) {
#if defined(_OPENMP)
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  try {
    body();
  } catch (...) {
    omp_set_num_threads(saved);
    throw;
  }
  omp_set_num_threads(saved);
#else
  body();
#endif
}

/// A model whose generation speed is timed, and where its figure goes in the results.
struct SpeedRun {
  std::string entry, key;
  mbok::llama::LlamaModel model;
  double best = 0;  ///< tokens/s, the best round
};

/// Tokens/s of sampling `tokens` tokens after `prompt` with each model, one thread, the best
/// of `rounds` interleaved rounds (every model once per round): on a shared machine a burst
/// of other work then slows one round of every model, not every round of one model, and the
/// ratios between models hold.
void time_generation(std::vector<SpeedRun>& runs, const mbok::Tokenizer& tokenizer,
                     const std::string& prompt, int tokens, int rounds) {
  single_threaded([&] {
    for (int r = 0; r < rounds; ++r)
      for (auto& run : runs) {
        mbok::llama::Sampler sampler({0.8, 0, 1.0, 1234});
        const auto t0 = Clock::now();
        generate(run.model, tokenizer, prompt, tokens, sampler);
        run.best = std::max(run.best, double(tokens) / seconds_since(t0));
      }
  });
}

/// Bits per weight of the block projections.
double bits_per_weight(const mbok::llama::LlamaModel& model) {
  double bits = 0, weights = 0;
  for (const auto& b : model.blocks())
    for (const auto* l : b.linears()) {
      const double n = double(l->in_features() * l->out_features());
      bits += n * (l->is_boolean() ? l->to_boolean_linear().weights().bits_per_weight() : 32.0);
      weights += n;
    }
  return bits / weights;
}

}  // namespace

void Pipeline::evaluate_stage() {
  require_teacher();
  struct Entry {
    std::string name, file;
  };
  std::vector<Entry> entries = {{"teacher", teacher_path()}};
  for (const auto& v : variants(opt_)) {
    entries.push_back({"ptq-" + v.name, model_path("ptq-" + v.name)});
    entries.push_back({"mbok-" + v.name, model_path("mbok-" + v.name)});
  }
  for (int k : opt_.baseline_kernels) {
    const std::string n = "latent-k" + std::to_string(k);
    entries.push_back({n, model_path(n)});
  }
  const std::string valid = path("valid.txt");
  const std::int64_t ctx = opt_.model.context;
  // Bits per character from nats per token: the held-out text's tokens per byte.
  const double tokens_per_byte =
      double(corpus_->valid_tokens().size()) / double(corpus_->valid_size());
  json results = json::object();
  std::vector<SpeedRun> speed;
  for (const auto& e : entries) {
    if (!file_exists(e.file)) continue;
    const bool boolean = e.name != "teacher";
    auto ppl = [&](mbok::llama::Activations a) {
      const auto p = load_model(e.file, config_, a);
      const auto r = mbok::llama::perplexity(p.model, corpus_->valid_tokens(), ctx);
      return r.mean_nll;
    };
    std::cerr << "$ mbok-run perplexity -m " << e.file << " --text " << valid << " -c " << ctx
              << (boolean ? " --activations float" : "") << "\n";
    const double loss = ppl(mbok::llama::Activations::float32);
    std::cerr << "perplexity: " << fixed(std::exp(loss), 6) << "\n";
    auto model = load_model(e.file, config_).model;
    json r = {{"file", e.file},
              {"valid_loss", loss},
              {"perplexity", std::exp(loss)},
              {"bits_per_char", loss / std::log(2.0) * tokens_per_byte},
              {"bits_per_weight", bits_per_weight(model)}};
    const bool timed = !boolean || e.name.compare(0, 5, "mbok-") == 0;
    if (boolean && timed) {
      r["isa"] = mbok::isa_name(mbok::ProductSet().isa());
      // Quality with int8 activations, as mbok-run runs it by default.
      std::cerr << "$ mbok-run perplexity -m " << e.file << " --text " << valid << " -c " << ctx
                << "\n";
      const double q = ppl(mbok::llama::Activations::int8);
      std::cerr << "perplexity: " << fixed(std::exp(q), 6) << "\n";
      r["valid_loss_int8"] = q;
    }
    mbok::llama::Sampler sampler({0.8, 0, 1.0, 42});
    std::string sample = generate(model, *tokenizer_, opt_.prompt, opt_.sample_tokens, sampler);
    // Bytes outside printable ASCII would not be valid UTF-8 in the summary.
    for (char& c : sample)
      if ((static_cast<unsigned char>(c) < 32 && c != '\n') || static_cast<unsigned char>(c) > 126)
        c = '?';
    r["sample"] = sample;
    r["generate_command"] = "mbok-run generate -m " + e.file + " -p '" + opt_.prompt + "' -n " +
                            std::to_string(opt_.sample_tokens) + " --temperature 0.8 --seed 42";
    results[e.name] = r;
    if (timed)
      speed.push_back({e.name, boolean ? "boolean_float" : "eigen_float", std::move(model)});
    if (boolean && timed)
      speed.push_back({e.name, "boolean_int8",
                       load_model(e.file, config_, mbok::llama::Activations::int8).model});
  }
  std::cerr << "timing generation: " << speed.size() << " models, " << kSpeedRounds
            << " interleaved rounds of " << opt_.speed_tokens << " tokens\n";
  time_generation(speed, *tokenizer_, opt_.prompt, opt_.speed_tokens, kSpeedRounds);
  for (const auto& run : speed) results[run.entry]["tokens_per_second"][run.key] = run.best;
  summary_["evaluation"] = results;
  save_summary();
}

}  // namespace tiny
