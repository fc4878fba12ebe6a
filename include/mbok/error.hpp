#pragma once
/// \file
/// Exceptions thrown by mbok. The library never prints and never aborts: bad shapes, bad
/// options and bad files throw one of these, with a message naming the object, the
/// expected and the actual value.

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace mbok {

/// A shape, size or option is wrong (a caller's error).
class InvalidArgument : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// Memory, a file or a stream breaks a contract (bit layout, file format, I/O failure).
class FormatError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {

template <typename... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}

/// Throws `InvalidArgument("mbok: " + parts...)` when `ok` is false.
template <typename... Parts>
inline void require(bool ok, const Parts&... parts) {
  if (!ok) throw InvalidArgument(concat("mbok: ", parts...));
}

/// Throws `FormatError("mbok: " + parts...)` when `ok` is false.
template <typename... Parts>
inline void require_format(bool ok, const Parts&... parts) {
  if (!ok) throw FormatError(concat("mbok: ", parts...));
}

}  // namespace detail
}  // namespace mbok
