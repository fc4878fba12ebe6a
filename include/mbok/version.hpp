#pragma once
/// \file
/// Version of mbok: the one source of truth (CMake parses these three lines).

#define MBOK_VERSION_MAJOR 0
#define MBOK_VERSION_MINOR 1
#define MBOK_VERSION_PATCH 0

#define MBOK_VERSION_STRING_(a, b, c) #a "." #b "." #c
#define MBOK_VERSION_STRING_EXPAND_(a, b, c) MBOK_VERSION_STRING_(a, b, c)
/// "MAJOR.MINOR.PATCH"
#define MBOK_VERSION_STRING \
  MBOK_VERSION_STRING_EXPAND_(MBOK_VERSION_MAJOR, MBOK_VERSION_MINOR, MBOK_VERSION_PATCH)

namespace mbok {
/// Version of the headers in use, as "MAJOR.MINOR.PATCH".
inline constexpr const char* version() noexcept { return MBOK_VERSION_STRING; }
}  // namespace mbok
