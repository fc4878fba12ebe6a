# mbok_example_common: helpers shared by the examples and the tools (a progress bar), not
# part of the library and not installed. Included by examples/ and tools/; defined once.
if(NOT TARGET mbok_example_common)
  add_library(mbok_example_common INTERFACE)
  target_include_directories(mbok_example_common INTERFACE "${CMAKE_CURRENT_LIST_DIR}/..")
endif()
