// Test runner entry point: Catch2 v2 needs one translation unit to define main; v3 links
// Catch2::Catch2WithMain instead.
#if defined(MBOK_CATCH2_V2)
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
#endif
