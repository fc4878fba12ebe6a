#include "train.hpp"

#include <mbok/adamw.hpp>
#include <mbok/losses.hpp>
#include <mbok/schedule.hpp>

#include <algorithm>

#include "console.hpp"

namespace tiny {

double schedule(double peak, int step, int steps, int warmup, double floor) {
  return mbok::WarmupCosine{peak, steps, warmup, floor}.at(step);
}

double validation_loss(Llama& model, const std::vector<Batch>& batches) {
  double total = 0;
  Index rows = 0;
  Mat<float> logits;
  for (const auto& b : batches) {
    model.forward(b.inputs, std::size_t(b.rows), std::size_t(b.len), logits, false);
    total += mbok::cross_entropy(logits, b.targets) * double(b.rows);
    rows += b.rows;
  }
  return total / double(rows);
}

std::vector<CurvePoint> pretrain(Llama& model, const Corpus& corpus,
                                 const std::vector<Batch>& curve_batches,
                                 const PretrainSettings& s) {
  mbok::AdamWOptions o;
  o.beta2 = 0.95;
  o.weight_decay = s.weight_decay;
  mbok::AdamW adamw(model.parameters(), o);
  std::vector<CurvePoint> curve;
  auto bar = progress_bar("pretrain", std::size_t(s.steps));
  double running = 0;
  int since = 0;
  Mat<float> logits, dlogits;
  for (int step = 0; step < s.steps; ++step) {
    const Batch batch = corpus.train_batch(s.batch, s.len, s.seed, std::uint64_t(step));
    model.zero_grad();
    model.forward(batch.inputs, std::size_t(batch.rows), std::size_t(batch.len), logits, true);
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

}  // namespace tiny
