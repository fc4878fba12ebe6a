# Finds PCRE2's 8-bit library (pcre2.h and libpcre2-8, used by mbok's tokenizer/ headers for
# the regular expressions of tokenizer.json) and defines the imported target mbok::pcre2 for
# it. Sets mbok_pcre2_FOUND. Looks in pkg-config's libpcre2-8 first (when pkg-config is
# available), then the usual paths; MBOK_PCRE2_INCLUDE_DIR and MBOK_PCRE2_LIBRARY override
# both. In a cross build the library must be the target's (CMAKE_FIND_ROOT_PATH), so a host's
# PCRE2 is not taken for the target's.
if(TARGET mbok::pcre2)
  set(mbok_pcre2_FOUND TRUE)
  return()
endif()
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND AND NOT CMAKE_CROSSCOMPILING)
  pkg_check_modules(MBOK_PC_PCRE2 QUIET libpcre2-8)
endif()
find_path(MBOK_PCRE2_INCLUDE_DIR pcre2.h HINTS ${MBOK_PC_PCRE2_INCLUDE_DIRS})
find_library(MBOK_PCRE2_LIBRARY NAMES pcre2-8 HINTS ${MBOK_PC_PCRE2_LIBRARY_DIRS})
if(MBOK_PCRE2_INCLUDE_DIR AND MBOK_PCRE2_LIBRARY)
  # GLOBAL: visible to the project that includes mbok with add_subdirectory or FetchContent.
  add_library(mbok::pcre2 INTERFACE IMPORTED GLOBAL)
  set_target_properties(mbok::pcre2 PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${MBOK_PCRE2_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES "${MBOK_PCRE2_LIBRARY}"
    INTERFACE_COMPILE_DEFINITIONS "PCRE2_CODE_UNIT_WIDTH=8")
  set(mbok_pcre2_FOUND TRUE)
else()
  set(mbok_pcre2_FOUND FALSE)
endif()
