# Finds xxhash.h (xxHash, used header-only by mbok's io/ checkpoints: XXH_INLINE_ALL, nothing
# to link) and defines the imported target mbok::xxhash for it. Sets mbok_xxhash_FOUND.
# Looks in pkg-config's libxxhash first (when pkg-config is available), then the usual
# include paths; MBOK_XXHASH_INCLUDE_DIR overrides both.
if(TARGET mbok::xxhash)
  set(mbok_xxhash_FOUND TRUE)
  return()
endif()
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(MBOK_PC_XXHASH QUIET libxxhash)
endif()
find_path(MBOK_XXHASH_INCLUDE_DIR xxhash.h HINTS ${MBOK_PC_XXHASH_INCLUDE_DIRS})
if(MBOK_XXHASH_INCLUDE_DIR)
  # GLOBAL: visible to the project that includes mbok with add_subdirectory or FetchContent.
  add_library(mbok::xxhash INTERFACE IMPORTED GLOBAL)
  set_target_properties(mbok::xxhash PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${MBOK_XXHASH_INCLUDE_DIR}")
  set(mbok_xxhash_FOUND TRUE)
else()
  set(mbok_xxhash_FOUND FALSE)
endif()
