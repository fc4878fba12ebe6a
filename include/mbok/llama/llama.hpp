#pragma once
/// \file
/// The LLaMA-family decoder on mbok layers (inference): `LlamaConfig` (config.hpp), the
/// model (`LlamaModel`, model.hpp) with its `KvCache` (kv_cache.hpp), and the pieces it is
/// built from (linear.hpp, rms_norm.hpp, rope.hpp, attention.hpp). Needs nlohmann/json.

#include "attention.hpp"
#include "config.hpp"
#include "kv_cache.hpp"
#include "linear.hpp"
#include "model.hpp"
#include "rms_norm.hpp"
#include "rope.hpp"
