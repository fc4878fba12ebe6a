#pragma once
/// \file
/// Umbrella header and the library's API: includes every public header that needs only Eigen
/// (layers, optimizers, initialization, kernels, losses, schedules, state dictionaries).
/// File I/O (io/, which needs nlohmann-json) is opt-in: include <mbok/io/...> on its own.

#include "activations.hpp"
#include "adamw.hpp"
#include "bit_matrix.hpp"
#include "boolean_linear.hpp"
#include "boolean_optimizer.hpp"
#include "config.hpp"
#include "error.hpp"
#include "forward_float.hpp"
#include "forward_int8.hpp"
#include "half.hpp"
#include "isa.hpp"
#include "kernel_allocation.hpp"
#include "kernel_tensors.hpp"
#include "losses.hpp"
#include "multi_kernel_weights.hpp"
#include "parallel.hpp"
#include "parameter.hpp"
#include "products.hpp"
#include "schedule.hpp"
#include "state_dict.hpp"
#include "svid.hpp"
#include "version.hpp"
