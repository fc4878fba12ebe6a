#pragma once
/// \file
/// The binary16 and bfloat16 conversions moved to the core (<mbok/half.hpp>); this header
/// keeps includes of the old path working.

#include "../half.hpp"
