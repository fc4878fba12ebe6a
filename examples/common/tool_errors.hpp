#pragma once
/// \file
/// How the command-line tools end on an error (target `mbok_example_common`; not part of the
/// library): bad input (the library's `InvalidArgument` and `FormatError`, or a bad option)
/// prints one line "<tool>: error: <message>" on standard error and exits with 2; anything
/// else prints the same line and exits with 1.

#include <mbok/error.hpp>

#include <exception>
#include <iostream>
#include <string>
#include <utility>

namespace mbok_examples {

/// Prints "<tool>: error: <message>" on one line (the library's "mbok: " prefix dropped,
/// newlines joined) and returns `code`.
inline int report_error(const std::string& tool, const std::string& message, int code = 2) {
  std::string m = message.rfind("mbok: ", 0) == 0 ? message.substr(6) : message;
  for (char& c : m)
    if (c == '\n') c = ' ';
  std::cerr << tool << ": error: " << m << std::endl;
  return code;
}

/// Runs `body` (returning the exit code) and turns exceptions into exit codes as the file
/// comment says.
template <typename Body>
int run_reporting_errors(const std::string& tool, Body&& body) {
  try {
    return std::forward<Body>(body)();
  } catch (const mbok::InvalidArgument& e) {
    return report_error(tool, e.what());
  } catch (const mbok::FormatError& e) {
    return report_error(tool, e.what());
  } catch (const std::exception& e) {
    return report_error(tool, e.what(), 1);
  }
}

}  // namespace mbok_examples
