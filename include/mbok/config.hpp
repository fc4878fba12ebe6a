#pragma once
/// \file
/// Compile-time knobs and platform detection.
///
/// - `MBOK_ENABLE_ASSERTS`: define to 1 to check hot-path preconditions (`MBOK_ASSERT`) in
///   release builds too; by default they are checked only when `NDEBUG` is not defined. The
///   value must be the same in every translation unit of a program (the checked functions
///   are inline). Checked today: row indices of bit-matrix views and int8 activations, the
///   stride of trusted bit-matrix views, and tensor sizes when state is copied out.
/// - `MBOK_DISABLE_SIMD`: define to compile only the scalar products.

#include <stdexcept>
#include <string>

// Defined by this header, which every public header includes, and never undefined: the
// headers under detail/ check it (detail/guard.hpp), so they are reached through a public
// header, never on their own (as Eigen's src/ headers check for their module's header).
#define MBOK_PUBLIC_HEADER_INCLUDED 1

#if defined(__x86_64__) || defined(_M_X64)
#define MBOK_ARCH_X86_64 1
#else
#define MBOK_ARCH_X86_64 0
#endif

#if defined(__aarch64__) || defined(_M_ARM64)
#define MBOK_ARCH_AARCH64 1
#else
#define MBOK_ARCH_AARCH64 0
#endif

// The SIMD regions rely on GCC/Clang target pragmas; other compilers get the scalar path.
#if !defined(MBOK_DISABLE_SIMD) && MBOK_ARCH_X86_64 && (defined(__GNUC__) || defined(__clang__))
#define MBOK_HAS_X86_KERNELS 1
#else
#define MBOK_HAS_X86_KERNELS 0
#endif

#if !defined(MBOK_DISABLE_SIMD) && MBOK_ARCH_AARCH64 && (defined(__GNUC__) || defined(__clang__))
#define MBOK_HAS_NEON_KERNELS 1
#else
#define MBOK_HAS_NEON_KERNELS 0
#endif

#if !defined(MBOK_ENABLE_ASSERTS)
#if defined(NDEBUG)
#define MBOK_ENABLE_ASSERTS 0
#else
#define MBOK_ENABLE_ASSERTS 1
#endif
#endif

namespace mbok {
/// Thrown by `MBOK_ASSERT` when a hot-path precondition fails (only when asserts are on).
class AssertionError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};
}  // namespace mbok

#if MBOK_ENABLE_ASSERTS
#define MBOK_ASSERT(cond)                                                                     \
  do {                                                                                        \
    if (!(cond))                                                                              \
      throw ::mbok::AssertionError(std::string("mbok: assertion failed: ") + #cond + " at " + \
                                   __FILE__ + ":" + std::to_string(__LINE__));                \
  } while (0)
#else
#define MBOK_ASSERT(cond) ((void)0)
#endif

/// `noexcept` on functions that check an `MBOK_ASSERT`, only when asserts are off (a failed
/// assert throws `AssertionError`; it must not turn into std::terminate).
#define MBOK_NOEXCEPT_UNLESS_ASSERTS noexcept(!MBOK_ENABLE_ASSERTS)
