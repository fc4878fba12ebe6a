#pragma once
/// \file
/// MPI for the lifetime of a data-parallel program, with bounded exits.
///
///     int main(int argc, char** argv) {
///       mbok::distributed::MpiSession mpi(&argc, &argv);
///       ...   // DataParallelTrainer over MPI_COMM_WORLD
///     }       // MPI_Finalize, bounded; skipped when an exception leaves
///
/// The session initializes MPI (unless the program did), installs `report_termination`
/// (a rank ended by the launcher says what it was waiting for), and at its end:
///
/// - after a normal end, calls `MPI_Finalize` with a deadline (`finalize_within`): a peer that
///   died or stopped cannot hang this rank in finalize;
/// - when an exception leaves the scope (or after `mark_failed`), skips `MPI_Finalize` and
///   says so on stderr: the rank then exits without finalizing and the launcher ends the
///   whole job, instead of the other ranks waiting for it in a collective.
///
/// Needs `<mpi.h>` and a program linked with MPI (CMake: `mbok::mpi`).

#include <cstdio>
#include <exception>
#include <string>

#include "../error.hpp"
#include "termination.hpp"

namespace mbok::distributed {

/// See the file comment. One per program; not copyable.
class MpiSession {
 public:
  /// Initializes MPI with `argc` and `argv` (may be null) unless it is already initialized
  /// (then the program finalizes it, not the session), and installs `report_termination`.
  /// `finalize_timeout_seconds` (> 0) bounds `MPI_Finalize`. Throws `InvalidArgument` when
  /// `MPI_Init` fails or the timeout is not > 0.
  explicit MpiSession(int* argc = nullptr, char*** argv = nullptr,
                      double finalize_timeout_seconds = 60)
      : finalize_timeout_(finalize_timeout_seconds) {
    mbok::detail::require(finalize_timeout_seconds > 0,
                          "MpiSession: the finalize timeout must be > 0 s, got ",
                          finalize_timeout_seconds);
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      if (MPI_Init(argc, argv) != MPI_SUCCESS)
        throw InvalidArgument("mbok: MpiSession: MPI_Init failed");
      owned_ = true;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    report_termination(rank_);
  }
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  /// Finalizes as the file comment says (when the session initialized MPI). May end the
  /// process with `kFinalizeTimeoutStatus` (finalize past its deadline).
  ~MpiSession() {
    if (!owned_) return;
    if (failed_ || std::uncaught_exceptions() > 0) {
      std::fprintf(stderr,
                   "mbok: rank %d: leaving after an error without MPI_Finalize (the launcher "
                   "ends the other ranks)\n",
                   rank_);
      return;
    }
    finalize_within(finalize_timeout_, rank_);
  }

  int rank() const noexcept { return rank_; }
  int size() const noexcept { return size_; }
  /// The run failed (an error the program caught and reports itself): the session will not
  /// finalize.
  void mark_failed() noexcept { failed_ = true; }

 private:
  double finalize_timeout_;
  bool owned_ = false, failed_ = false;
  int rank_ = 0, size_ = 1;
};

}  // namespace mbok::distributed
