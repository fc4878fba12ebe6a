#pragma once
// The training loops the pipeline's stages share: the learning-rate schedule, validation
// loss and teacher pretraining, on the library's trainable LLaMA.

#include <cstdint>
#include <vector>

#include "common.hpp"
#include "corpus.hpp"
#include "model_io.hpp"

namespace tiny {

/// Linear warm-up over `warmup` steps, then cosine decay to `floor` x the peak.
double schedule(double peak, int step, int steps, int warmup, double floor = 0.1);

/// Mean next-token cross-entropy (nats per token) over the given windows.
double validation_loss(Llama& model, const std::vector<Batch>& batches);

/// One point of a loss curve.
struct CurvePoint {
  int step = 0;
  double train_loss = 0;  ///< mean over the steps since the previous point
  double valid_loss = 0;
};

struct PretrainSettings {
  int steps = 2000;
  Index batch = 16;
  Index len = 64;
  double lr = 3e-3;
  double weight_decay = 0.1;
  std::uint64_t seed = 1;
  int eval_every = 100;
};

/// Trains `model` (dense projections, embedding trainable) with AdamW on next-token
/// cross-entropy; returns the loss curve.
std::vector<CurvePoint> pretrain(Llama& model, const Corpus& corpus,
                                 const std::vector<Batch>& curve_batches,
                                 const PretrainSettings& s);

}  // namespace tiny
