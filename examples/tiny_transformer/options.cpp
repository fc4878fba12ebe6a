#include "options.hpp"

#include <sstream>

#include "corpus.hpp"

namespace tiny {

void Options::apply_quick() {
  model.d_model = 48;
  model.layers = 2;
  model.heads = 2;
  model.kv_heads = 1;
  model.intermediate = 128;
  model.context = 32;
  model.merges = 100;
  batch = 8;
  // A teacher trained long enough that binarizing it costs clearly measurable perplexity
  // at every K (an undertrained teacher is close to a unigram model, which K = 2 already
  // represents almost exactly): the tests then check finetuning on effects far larger than
  // any rounding difference between ISAs.
  pretrain_steps = 1000;
  pretrain_lr = 5e-3;
  kernels = {1, 2};
  budgets = {1.5};
  finetune_steps = 60;
  baseline_kernels = {1};
  checkpoint_every = 20;
  eval_every = 10;
  curve_windows = 16;
  valid_windows = 64;
  speed_tokens = 128;
  sample_tokens = 60;
}

std::string Options::teacher_key(const Corpus& corpus) const {
  std::ostringstream s;
  s << model.describe() << "|b" << batch << "|s" << pretrain_steps << "|lr" << pretrain_lr
    << "|seed" << seed << "|corpus" << corpus.hash() << "|" << corpus.size();
  const std::string text = s.str();
  std::ostringstream hex;
  hex << std::hex << fnv1a(text.data(), text.size());
  return hex.str();
}

std::string Options::finetune_key(const std::string& method, const std::string& variant) const {
  std::ostringstream s;
  s << method << "|" << variant << "|" << finetune_steps << "|" << gamma << "|" << scale_lr << "|"
    << train_kernels << "|" << batch << "|" << seed << "|" << finetune_seed;
  if (method == "mbok")
    s << "|" << eta << "|" << accumulator << "|" << signal_scaling << "|" << eta_schedule << "|"
      << warm_start;
  if (method == "latent") s << "|" << latent_lr;
  return s.str();
}

}  // namespace tiny
