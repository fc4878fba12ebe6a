// Closes what vbmi_begin.hpp opened. No include guard.
#include "../../guard.hpp"

#undef MBOK_AVX512_VBMI_TARGET

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
