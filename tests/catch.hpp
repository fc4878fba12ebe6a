#pragma once
// Catch2 v2 (Debian 12) or v3, behind one include.
#if defined(MBOK_CATCH2_V3)
#include <catch2/catch_all.hpp>
#else
#include <catch2/catch.hpp>
#endif

#include <string>

namespace mbok::test {
/// Substring matcher under one name in Catch2 v2 and v3.
inline auto contains(const std::string& text) {
#if defined(MBOK_CATCH2_V3)
  return Catch::Matchers::ContainsSubstring(text);
#else
  return Catch::Matchers::Contains(text);
#endif
}
}  // namespace mbok::test
