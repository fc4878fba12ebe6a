#pragma once
/// \file
/// Umbrella header: includes every public header of mbok's core (the parts that need only
/// Eigen). Optional parts (io/) are included on their own.

#include "bit_matrix.hpp"
#include "config.hpp"
#include "error.hpp"
#include "forward_float.hpp"
#include "isa.hpp"
#include "kernels.hpp"
#include "multi_kernel_weights.hpp"
#include "parallel.hpp"
#include "state_dict.hpp"
#include "version.hpp"
