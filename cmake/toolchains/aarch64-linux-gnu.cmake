# Cross build for AArch64 Linux with Debian's g++-aarch64-linux-gnu; the tests run under
# qemu-aarch64 (user mode), so ctest works unchanged on an x86-64 host:
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake
# The environment variables MBOK_AARCH64_CXX and MBOK_QEMU_AARCH64 override the compiler and
# the emulator (read from the environment so that try_compile projects see them too).

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(_mbok_triple aarch64-linux-gnu)
if(DEFINED ENV{MBOK_AARCH64_CXX})
  set(CMAKE_CXX_COMPILER "$ENV{MBOK_AARCH64_CXX}")
else()
  set(CMAKE_CXX_COMPILER ${_mbok_triple}-g++)
endif()
set(CMAKE_C_COMPILER ${_mbok_triple}-gcc)

# The target's libraries live under /usr/<triple>, where Debian's cross packages put them.
set(_mbok_target_prefix /usr/${_mbok_triple})
set(CMAKE_FIND_ROOT_PATH ${_mbok_target_prefix})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
# Eigen and Catch2 v2 are header-only: the host's CMake packages and headers (under /usr)
# serve the target too, so those are searched in both places.
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)

if(DEFINED ENV{MBOK_QEMU_AARCH64})
  set(_mbok_qemu "$ENV{MBOK_QEMU_AARCH64}")
else()
  set(_mbok_qemu qemu-aarch64)
endif()
set(CMAKE_CROSSCOMPILING_EMULATOR "${_mbok_qemu};-L;${_mbok_target_prefix}")
