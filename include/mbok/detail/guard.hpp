#pragma once
// Included first by every header under detail/: internals are reached through the public
// headers, never directly. config.hpp defines the macro and leaves it defined.
#if !defined(MBOK_PUBLIC_HEADER_INCLUDED)
#error "mbok/detail/ headers are internal: include <mbok/mbok.hpp> or a public header instead"
#endif
