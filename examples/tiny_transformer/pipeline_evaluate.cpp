// The evaluate stage: validation perplexity and bits per character of every model, the
// generation speed of the teacher (Eigen) and of the Boolean models (fused float and int8
// kernels, through mbok::BooleanLinear's forward and forward_int8) with the share of each
// token's time spent in the linear layers, and samples from one prompt.

#include <mbok/boolean_linear.hpp>

#include <cmath>
#include <string>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "console.hpp"
#include "generate.hpp"
#include "pipeline.hpp"
#include "train.hpp"

namespace tiny {

namespace {

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

/// Generation speed of one model: tokens/s of sampling, and the fractions of that time spent
/// in the block linear layers and in the output head (timed around each call).
struct Speed {
  double tokens_per_second = 0, linear_fraction = 0, head_fraction = 0;
};

/// Sampling `tokens` bytes, best of two runs, one thread.
Speed generation_speed(Transformer<float>& model, const std::string& prompt, int tokens) {
  Speed best;
  single_threaded([&] {
    for (int r = 0; r < 2; ++r) {
      model.reset_decode_timers();
      const auto t0 = Clock::now();
      generate(model, prompt, tokens, 0.8, 1234);
      const double seconds = seconds_since(t0);
      if (double(tokens) / seconds > best.tokens_per_second)
        best = {double(tokens) / seconds, model.linear_seconds() / seconds,
                model.head_seconds() / seconds};
    }
  });
  return best;
}

nlohmann::json speed_json(const Speed& s) {
  return {{"tokens_per_second", s.tokens_per_second},
          {"linear_fraction", s.linear_fraction},
          {"head_fraction", s.head_fraction}};
}

}  // namespace

void Pipeline::evaluate_stage() {
  require_teacher();
  struct Entry {
    std::string name, file, kind;
  };
  std::vector<Entry> entries = {{"teacher", teacher_path(), "teacher"}};
  for (const auto& v : variants(opt_)) {
    entries.push_back({"ptq-" + v.name, path("ptq-" + v.name + ".safetensors"), "boolean"});
    entries.push_back({"mbok-" + v.name, path("mbok-" + v.name + ".safetensors"), "boolean"});
  }
  for (int k : opt_.baseline_kernels) {
    const std::string n = "latent-k" + std::to_string(k);
    entries.push_back({n, path(n + ".safetensors"), "boolean"});
  }
  auto bar = progress_bar("evaluate", entries.size());
  std::size_t done = 0;
  json results = json::object();
  for (const auto& e : entries) {
    bar.update(done++, e.name);
    if (!file_exists(e.file)) continue;
    auto model = e.kind == "teacher" ? load_dense_model(e.file, opt_.model)
                                     : load_boolean_model(e.file, opt_.model);
    const double loss = validation_loss(*model, valid_batches_);
    json r = {{"file", e.file},
              {"valid_loss", loss},
              {"perplexity", std::exp(loss)},
              {"bits_per_char", loss / std::log(2.0)}};
    double bits = 0, weights = 0;
    model->for_each_linear([&](const std::string&, std::unique_ptr<Linear<float>>& l) {
      const double n = double(l->in_features() * l->out_features());
      bits += l->bits_per_weight() * n;
      weights += n;
    });
    r["bits_per_weight"] = bits / weights;
    if (e.kind == "teacher") {
      const Speed t = generation_speed(*model, opt_.prompt, opt_.speed_tokens);
      r["tokens_per_second"] = {{"eigen_float", t.tokens_per_second}};
      r["speed"] = {{"eigen_float", speed_json(t)}};
    } else if (e.name.compare(0, 5, "mbok-") == 0) {
      set_inference_kernel(*model, InferenceKernel::fused_float);
      const Speed f = generation_speed(*model, opt_.prompt, opt_.speed_tokens);
      set_inference_kernel(*model, InferenceKernel::int8);
      const Speed q = generation_speed(*model, opt_.prompt, opt_.speed_tokens);
      model->for_each_linear([&](const std::string&, std::unique_ptr<Linear<float>>& l) {
        if (auto* b = dynamic_cast<BoolLinear<float>*>(l.get()))
          r["isa"] = mbok::isa_name(b->layer().isa());
      });
      r["tokens_per_second"] = {{"boolean_float", f.tokens_per_second},
                                {"boolean_int8", q.tokens_per_second}};
      r["speed"] = {{"boolean_float", speed_json(f)}, {"boolean_int8", speed_json(q)}};
      // Quality with int8 activations, as generated.
      r["valid_loss_int8"] = validation_loss(*model, valid_batches_);
    }
    set_inference_kernel(*model, InferenceKernel::fused_float);
    std::string sample = generate(*model, opt_.prompt, opt_.sample_tokens, 0.8, 42);
    // Bytes outside printable ASCII would not be valid UTF-8 in the summary.
    for (char& c : sample)
      if ((static_cast<unsigned char>(c) < 32 && c != '\n') || static_cast<unsigned char>(c) > 126)
        c = '?';
    r["sample"] = sample;
    results[e.name] = r;
  }
  bar.finish();
  summary_["evaluation"] = results;
  save_summary();
}

}  // namespace tiny
