#pragma once
// The training loops the pipeline's stages share: the learning-rate schedule, validation
// loss, teacher pretraining and one step of distillation finetuning.

#include <cstdint>
#include <vector>

#include "common.hpp"
#include "corpus.hpp"
#include "model.hpp"

namespace tiny {

/// Linear warm-up over `warmup` steps, then cosine decay to `floor` x the peak.
double schedule(double peak, int step, int steps, int warmup, double floor = 0.1);

/// Mean next-byte cross-entropy (nats) over the given windows.
double validation_loss(Transformer<float>& model, const std::vector<Batch>& batches);

/// One point of a loss curve.
struct CurvePoint {
  int step = 0;
  double train_loss = 0;  ///< mean over the steps since the previous point
  double valid_loss = 0;
};

struct PretrainSettings {
  int steps = 2000;
  Index batch = 16;
  double lr = 3e-3;
  double weight_decay = 0.1;
  std::uint64_t seed = 1;
  int eval_every = 100;
};

/// Trains `model` with AdamW on next-byte cross-entropy; returns the loss curve.
std::vector<CurvePoint> pretrain(Transformer<float>& model, const Corpus& corpus,
                                 const std::vector<Batch>& curve_batches,
                                 const PretrainSettings& s);

/// Distillation objective of one step: KL(teacher || student) on logits plus gamma times
/// the sum over blocks of the MSE between block outputs.
struct DistillLoss {
  double kl = 0, mse = 0;
  double total() const { return kl + mse; }
};

/// Runs the teacher and the student on `batch` and the student's backward pass (its
/// gradients are zeroed first); returns the loss.
DistillLoss distill_step(Transformer<float>& teacher, Transformer<float>& student,
                         const Batch& batch, double gamma);

}  // namespace tiny
