# The core area reads the ISA regions' target lists from the headers themselves: it finds them
# through the source folder (not __FILE__, which ccache's CCACHE_BASEDIR makes relative).
target_compile_definitions(${target} PRIVATE MBOK_SOURCE_DIR="${mbok_SOURCE_DIR}")
