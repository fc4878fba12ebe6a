// Closes the NEON code region opened by begin.hpp.
#include "../../guard.hpp"
#if !defined(MBOK_NEON_REGION_OPEN)
#error "mbok: neon region closed without being opened"
#endif
#undef MBOK_NEON_REGION_OPEN
