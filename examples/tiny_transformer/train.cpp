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

double validation_loss(Transformer<float>& model, const std::vector<Batch>& batches) {
  double total = 0;
  Index rows = 0;
  Mat<float> logits;
  for (const auto& b : batches) {
    model.forward(b, logits, false);
    total += mbok::cross_entropy(logits, b.targets) * double(b.rows);
    rows += b.rows;
  }
  return total / double(rows);
}

std::vector<CurvePoint> pretrain(Transformer<float>& model, const Corpus& corpus,
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

DistillLoss distill_step(Transformer<float>& teacher, Transformer<float>& student,
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

}  // namespace tiny
