#pragma once
/// \file
/// Training of LLaMA-family models in mbok: `TrainableLlama` (tape-keeping forward, exact
/// backward; model.hpp) over `Projection`s (projection.hpp: dense, Boolean, or a caller's),
/// the operations' backward passes (ops.hpp), and Boolean-domain distillation against a float
/// teacher (`Finetuner`, distill.hpp). Needs nlohmann/json.

#include "distill.hpp"
#include "model.hpp"
#include "ops.hpp"
#include "projection.hpp"
