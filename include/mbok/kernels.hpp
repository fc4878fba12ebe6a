#pragma once
/// \file
/// Former name of products.hpp, kept so that existing includes still build.

#include "products.hpp"
