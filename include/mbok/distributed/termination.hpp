#pragma once
/// \file
/// What a rank was waiting for when it is ended from outside, and a bounded `MPI_Finalize`.
///
/// When one rank of a job dies (killed, crashed), MPI launchers end the others with a signal
/// (Open MPI's: SIGTERM, then SIGKILL), usually long before their own deadlines run out: the
/// survivors then vanish without a word of their own. `report_termination(rank)` installs a
/// handler for SIGTERM, SIGINT and SIGHUP that writes one line to stderr naming the rank and
/// what it was waiting for at that moment (the collective or ring exchange, with the peer
/// ranks, as mbok's bounded waits record it: `WaitScope`), then ends the process with that
/// signal as before:
///
///     mbok: rank 0: ended by signal 15 (SIGTERM, the launcher ending the job: another rank
///     failed) while waiting for: DataParallelTrainer, step 3: signal reduce-scatter,
///     receiving from rank 1
///
/// `finalize_within(seconds)` calls `MPI_Finalize` with a deadline: Open MPI's finalize waits
/// for every rank, so one that died or stopped would hang the others there forever. Past the
/// deadline it writes a line naming the rank and ends the process with
/// `kFinalizeTimeoutStatus`.
///
/// Needs `<mpi.h>` (finalize_within) and POSIX signals.

#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include "../error.hpp"

namespace mbok::distributed {

/// The exit status of a process whose `MPI_Finalize` did not return within the deadline.
inline constexpr int kFinalizeTimeoutStatus = 75;

namespace detail {

// The current wait's description, readable from a signal handler: two buffers, the one in use
// named by `slot` (-1: not waiting), so that a new description never overwrites the one a
// handler may be reading.
struct WaitRecord {
  static constexpr std::size_t kText = 480;
  char text[2][kText] = {};
  std::atomic<int> slot{-1};
  std::atomic<int> rank{-1};
};

inline WaitRecord& wait_record() noexcept {
  static WaitRecord record;
  return record;
}

// Appends `s` to buf[at, cap) (async-signal-safe).
inline std::size_t append(char* buf, std::size_t at, std::size_t cap, const char* s) noexcept {
  while (*s != '\0' && at + 1 < cap) buf[at++] = *s++;
  return at;
}
inline std::size_t append_int(char* buf, std::size_t at, std::size_t cap, long v) noexcept {
  char digits[24];
  int n = 0;
  const bool negative = v < 0;
  unsigned long u = negative ? 0ul - static_cast<unsigned long>(v) : static_cast<unsigned long>(v);
  do {
    digits[n++] = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u != 0 && n < 22);
  if (negative) digits[n++] = '-';
  while (n > 0 && at + 1 < cap) buf[at++] = digits[--n];
  return at;
}

extern "C" inline void mbok_termination_handler(int sig) {
  WaitRecord& r = wait_record();
  char line[WaitRecord::kText + 256];
  const std::size_t cap = sizeof line;
  std::size_t at = append(line, 0, cap, "mbok: rank ");
  at = append_int(line, at, cap, r.rank.load());
  at = append(line, at, cap, ": ended by signal ");
  at = append_int(line, at, cap, sig);
  at = append(line, at, cap,
              sig == SIGTERM  ? " (SIGTERM, the launcher ending the job: another rank failed)"
              : sig == SIGINT ? " (SIGINT)"
                              : " (SIGHUP)");
  const int slot = r.slot.load();
  if (slot >= 0) {
    at = append(line, at, cap, " while waiting for: ");
    at = append(line, at, cap, r.text[slot]);
  } else {
    at = append(line, at, cap,
                " outside mbok's collectives (computing, or in the program's own code)");
  }
  line[at++] = '\n';
  for (std::size_t done = 0; done < at;) {
    const ssize_t n = ::write(2, line + done, at - done);
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  // End as the signal would have without the handler (status and core as before).
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

}  // namespace detail

/// Records what this thread waits for during its lifetime (mbok's bounded waits create one
/// per wait), for the line `report_termination`'s handler writes. Not nested: the innermost
/// scope's text is reported, and leaving it clears the record.
class WaitScope {
 public:
  explicit WaitScope(const std::string& what) noexcept {
    detail::WaitRecord& r = detail::wait_record();
    const int next = r.slot.load() == 0 ? 1 : 0;
    const std::size_t n = std::min(what.size(), detail::WaitRecord::kText - 1);
    std::memcpy(r.text[next], what.data(), n);
    r.text[next][n] = '\0';
    r.slot.store(next);
  }
  ~WaitScope() { detail::wait_record().slot.store(-1); }
  WaitScope(const WaitScope&) = delete;
  WaitScope& operator=(const WaitScope&) = delete;
};

/// Installs the handler described in the file comment for SIGTERM, SIGINT and SIGHUP (signals
/// the program ignores stay ignored), naming `rank` in its line. Call it once, after
/// `MPI_Init` (MPI libraries may install handlers of their own at init). Not thread-safe.
inline void report_termination(int rank) {
  detail::wait_record().rank.store(rank);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
    struct sigaction old {};
    sigaction(sig, nullptr, &old);
    if (old.sa_handler == SIG_IGN) continue;
    struct sigaction sa {};
    sa.sa_handler = detail::mbok_termination_handler;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, nullptr);
  }
}

/// `MPI_Finalize` with a deadline (see the file comment): returns once it returned; past
/// `timeout_seconds` writes "mbok: rank R: MPI_Finalize did not return within S s ..." to
/// stderr and ends the process with `kFinalizeTimeoutStatus` (std::_Exit: no destructors run,
/// as with a process killed by the launcher). Returns `MPI_Finalize`'s code.
inline int finalize_within(double timeout_seconds, int rank) {
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  std::thread watchdog([&] {
    std::unique_lock<std::mutex> lock(m);
    if (cv.wait_for(lock, std::chrono::duration<double>(timeout_seconds), [&] { return done; }))
      return;
    const std::string line = mbok::detail::concat(
        "mbok: rank ", rank, ": MPI_Finalize did not return within ", timeout_seconds,
        " s (another rank died or stopped before finalizing); exiting with status ",
        kFinalizeTimeoutStatus, "\n");
    const ssize_t ignored = ::write(2, line.data(), line.size());
    (void)ignored;
    std::_Exit(kFinalizeTimeoutStatus);
  });
  int rc = MPI_SUCCESS;
  {
    WaitScope scope("MPI_Finalize (every rank)");
    rc = MPI_Finalize();
  }
  {
    std::lock_guard<std::mutex> lock(m);
    done = true;
  }
  cv.notify_one();
  watchdog.join();
  return rc;
}

}  // namespace mbok::distributed
