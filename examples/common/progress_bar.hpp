#pragma once
/// \file
/// A text progress bar with rate, ETA and a live status (such as the current loss), shared by
/// the examples and the tools (target `mbok_example_common`; not part of the library). It writes
/// only to the stream it is given; the library's own code never prints. On a terminal it redraws
/// one line; elsewhere (logs, CI) it prints a line every `log_every` percent so output stays short.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iomanip>
#include <ostream>
#include <sstream>
#include <string>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

namespace mbok_examples {

/// Progress of `total` steps, drawn on `out` (std::cerr by default in callers).
class ProgressBar {
 public:
  /// `label` prefixes the bar; `total` > 0 steps. `interactive` redraws one line (true when
  /// `out` is a terminal if left to `auto_detect`).
  ProgressBar(std::ostream& out, std::string label, std::size_t total, bool interactive,
              int log_every_percent = 10)
      : out_(out),
        label_(std::move(label)),
        total_(std::max<std::size_t>(total, 1)),
        interactive_(interactive),
        log_every_(std::max(1, log_every_percent)),
        start_(Clock::now()),
        last_draw_(start_) {}

  /// True when standard error is a terminal (for `interactive`).
  static bool stderr_is_terminal() noexcept {
#if defined(__unix__) || defined(__APPLE__)
    return isatty(2) == 1;
#else
    return false;
#endif
  }

  /// Marks `done` steps complete (absolute, not a delta) with an optional status text.
  void update(std::size_t done, const std::string& status = "") {
    done_ = std::min(done, total_);
    status_ = status;
    const auto now = Clock::now();
    const int percent = static_cast<int>(100 * done_ / total_);
    if (interactive_) {
      if (done_ == total_ || now - last_draw_ > std::chrono::milliseconds(100)) {
        out_ << '\r' << line() << "\033[K" << std::flush;
        last_draw_ = now;
      }
    } else if (percent / log_every_ > last_logged_ / log_every_ ||
               (done_ == total_ && last_logged_ < 100)) {
      out_ << line() << '\n' << std::flush;
      last_logged_ = percent;
    }
  }

  /// Ends the bar (draws it complete if it was not) and moves to a new line.
  void finish(const std::string& status = "") {
    if (finished_) return;
    if (done_ < total_ || !status.empty()) update(total_, status.empty() ? status_ : status);
    if (interactive_) out_ << '\n' << std::flush;
    finished_ = true;
  }

  /// Seconds since the bar was made.
  double elapsed_seconds() const {
    return std::chrono::duration<double>(Clock::now() - start_).count();
  }

  ~ProgressBar() {
    if (!finished_ && interactive_) out_ << '\n' << std::flush;
  }
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

 private:
  using Clock = std::chrono::steady_clock;

  static std::string format_duration(double seconds) {
    const long s = static_cast<long>(seconds + 0.5);
    char buf[32];
    if (s >= 3600)
      std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
    else
      std::snprintf(buf, sizeof buf, "%02ld:%02ld", s / 60, s % 60);
    return buf;
  }

  std::string line() const {
    constexpr int kWidth = 24;
    const double fraction = static_cast<double>(done_) / static_cast<double>(total_);
    const int filled = static_cast<int>(fraction * kWidth);
    const double elapsed = elapsed_seconds();
    const double eta =
        done_ > 0 ? elapsed * static_cast<double>(total_ - done_) / static_cast<double>(done_)
                  : 0.0;
    std::ostringstream s;
    s << label_ << " [" << std::string(static_cast<std::size_t>(filled), '#')
      << std::string(static_cast<std::size_t>(kWidth - filled), '.') << "] " << std::setw(3)
      << static_cast<int>(fraction * 100) << "% " << done_ << "/" << total_ << " "
      << format_duration(elapsed) << " elapsed, ETA "
      << (done_ > 0 ? format_duration(eta) : "--:--");
    if (!status_.empty()) s << "  " << status_;
    return s.str();
  }

  std::ostream& out_;
  std::string label_;
  std::size_t total_;
  bool interactive_;
  int log_every_;
  Clock::time_point start_;
  Clock::time_point last_draw_;
  std::size_t done_ = 0;
  int last_logged_ = -1;
  std::string status_;
  bool finished_ = false;
};

}  // namespace mbok_examples
