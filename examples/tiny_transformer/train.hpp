#pragma once
// Training and evaluation loops shared by the pipeline's stages: the learning-rate
// schedule, validation loss, teacher pretraining and distillation finetuning, and
// generation with a key/value cache.

#include <common/progress_bar.hpp>
#include <mbok/adamw.hpp>
#include <mbok/losses.hpp>
#include <mbok/schedule.hpp>

#include <chrono>
#include <cmath>
#include <functional>
#include <iomanip>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "corpus.hpp"
#include "model.hpp"

namespace tiny {

using Clock = std::chrono::steady_clock;
inline double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

/// Linear warm-up over `warmup` steps, then cosine decay to `floor` x the peak.
inline double schedule(double peak, int step, int steps, int warmup, double floor = 0.1) {
  return mbok::WarmupCosine{peak, steps, warmup, floor}.at(step);
}

/// Mean next-byte cross-entropy (nats) over the given windows.
template <typename T>
double validation_loss(Transformer<T>& model, const std::vector<Batch>& batches) {
  double total = 0;
  Index rows = 0;
  Mat<T> logits;
  for (const auto& b : batches) {
    model.forward(b, logits, false);
    total += mbok::cross_entropy(logits, b.targets) * double(b.rows);
    rows += b.rows;
  }
  return total / double(rows);
}

/// One point of a loss curve.
struct CurvePoint {
  int step = 0;
  double train_loss = 0;  ///< mean over the steps since the previous point
  double valid_loss = 0;
};

/// A fresh progress bar on standard error.
inline mbok_examples::ProgressBar progress_bar(const std::string& label, std::size_t total) {
  return mbok_examples::ProgressBar(std::cerr, label, total,
                                    mbok_examples::ProgressBar::stderr_is_terminal());
}

inline std::string fixed(double v, int digits = 3) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v;
  return s.str();
}

struct PretrainSettings {
  int steps = 2000;
  Index batch = 16;
  double lr = 3e-3;
  double weight_decay = 0.1;
  std::uint64_t seed = 1;
  int eval_every = 100;
};

/// Trains `model` with AdamW on next-byte cross-entropy; returns the loss curve.
inline std::vector<CurvePoint> pretrain(Transformer<float>& model, const Corpus& corpus,
                                        const std::vector<Batch>& curve_batches,
                                        const PretrainSettings& s) {
  mbok::AdamWOptions o;
  o.beta2 = 0.95;
  o.weight_decay = s.weight_decay;
  mbok::AdamW adamw(model.parameters(), o);
  std::vector<CurvePoint> curve;
  auto bar = progress_bar("pretrain", std::size_t(s.steps));
  const Index len = model.config().context;
  double running = 0;
  int since = 0;
  Mat<float> logits, dlogits;
  for (int step = 0; step < s.steps; ++step) {
    const Batch batch = corpus.train_batch(s.batch, len, s.seed, std::uint64_t(step));
    model.zero_grad();
    model.forward(batch, logits, true);
    running += mbok::cross_entropy(logits, batch.targets, &dlogits);
    ++since;
    model.backward(dlogits);
    adamw.set_learning_rate(schedule(s.lr, step, s.steps, std::max(1, s.steps / 20)));
    adamw.step();
    if ((step + 1) % s.eval_every == 0 || step + 1 == s.steps) {
      const double v = validation_loss(model, curve_batches);
      curve.push_back({step + 1, running / since, v});
      running = 0;
      since = 0;
    }
    bar.update(std::size_t(step + 1), curve.empty()
                                          ? ""
                                          : "train " + fixed(curve.back().train_loss) + " valid " +
                                                fixed(curve.back().valid_loss));
  }
  bar.finish();
  return curve;
}

/// Distillation objective of one step: KL(teacher || student) on logits plus gamma times
/// the sum over blocks of the MSE between block outputs. Runs the student's backward.
struct DistillLoss {
  double kl = 0, mse = 0;
  double total() const { return kl + mse; }
};

inline DistillLoss distill_step(Transformer<float>& teacher, Transformer<float>& student,
                                const Batch& batch, double gamma) {
  Mat<float> t_logits, s_logits, dlogits;
  teacher.forward(batch, t_logits, false);
  std::vector<Mat<float>> t_hidden;
  for (std::size_t l = 0; l < teacher.num_blocks(); ++l) t_hidden.push_back(teacher.hidden(l));
  student.zero_grad();
  student.forward(batch, s_logits, true);
  DistillLoss loss;
  loss.kl = mbok::kl_divergence(t_logits, s_logits, 1.0, &dlogits);
  std::vector<Mat<float>> dh(student.num_blocks());
  if (gamma > 0)
    for (std::size_t l = 0; l < student.num_blocks(); ++l) {
      loss.mse += gamma * mbok::mse(t_hidden[l], student.hidden(l), &dh[l]);
      dh[l] *= float(gamma);
    }
  student.backward(dlogits, &dh);
  return loss;
}

/// Samples `count` bytes after `prompt` (temperature > 0; 0 = greedy); the cache restarts
/// from the last half context when it fills. Returns the generated text.
template <typename T>
std::string generate(Transformer<T>& model, const std::string& prompt, int count,
                     double temperature, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  const Index ctx = model.config().context;
  std::string text = prompt.empty() ? std::string("\n") : prompt;
  auto state = model.start_decoding();
  Vec<T> logits;
  auto feed_window = [&]() {
    state = model.start_decoding();
    const std::size_t keep = std::min<std::size_t>(text.size(), std::size_t(ctx / 2));
    for (std::size_t i = text.size() - keep; i < text.size(); ++i)
      model.decode_step(state, std::uint8_t(text[i]), logits);
  };
  feed_window();
  std::vector<double> p(kVocab);
  for (int i = 0; i < count; ++i) {
    int next = 0;
    if (temperature <= 0) {
      logits.maxCoeff(&next);
    } else {
      const double mx = double(logits.maxCoeff());
      for (Index j = 0; j < kVocab; ++j)
        p[std::size_t(j)] = std::exp((double(logits(j)) - mx) / temperature);
      next = std::discrete_distribution<int>(p.begin(), p.end())(rng);
    }
    text.push_back(char(next));
    if (state.length == ctx)
      feed_window();
    else
      model.decode_step(state, std::uint8_t(next), logits);
  }
  return text.substr(prompt.empty() ? 1 : prompt.size());
}

}  // namespace tiny
