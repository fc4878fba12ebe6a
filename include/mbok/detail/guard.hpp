#pragma once
// Included first by every header under detail/: internals are reached through the public
// headers, never directly.
#if !defined(MBOK_INTERNAL_INCLUDE)
#error "mbok/detail/ headers are internal: include <mbok/mbok.hpp> or a public header instead"
#endif
