#pragma once
#include "../guard.hpp"

// Crash-safe replacement of a file: the new content goes to a temporary file in the same
// directory (so the rename stays on one file system), which is flushed to disk, renamed over
// the target (atomic on POSIX: a reader sees the old file or the new one, never a mix), and
// the directory is flushed so the rename itself survives a power loss.
//
// Rules (POSIX):
// - The temporary file is `<target>.mbok-tmp-<pid>-<16 hex digits>` (pid of the writer,
//   random digits), created with O_EXCL.
// - It gets the mode of the file it replaces (a 0600 checkpoint stays 0600); a new file gets
//   0666 minus the umask, as open() gives.
// - Before writing, temporary files of the same target left by a crash are removed: names
//   that match the pattern exactly, regular files (not links), whose writer pid is not alive
//   (kill(pid, 0) fails with ESRCH), or which are older than 24 hours (a pid reused since).
//   A live writer of the same target (another thread or process) is never disturbed: its
//   file is at most as old as its last write. Writers on other hosts sharing the folder
//   cannot be told apart by pid; only the 24-hour rule removes theirs.
// - Every flush that fails throws FormatError naming the path: the file's fsync, and the
//   directory's (opening it included); only EINVAL from fsync on a directory is accepted
//   (file systems that cannot flush directories).
// Elsewhere: a temporary file renamed with std::filesystem::rename, which replaces the
// target in one step (MoveFileEx on Windows): the target is never removed first.

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include "../../error.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#define MBOK_HAVE_POSIX_FILES 1
#endif

namespace mbok::detail {

// Sequential writes to a file descriptor; every failure throws FormatError naming the file.
class FileSink {
 public:
  virtual ~FileSink() = default;
  virtual void write(const void* data, std::size_t size) = 0;
};

inline std::string directory_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

#if defined(MBOK_HAVE_POSIX_FILES)

// Test seam: each system call of write_file_atomically whose failure is handled goes through
// `io_call(step, ...)`; a test sets `io_fault()` to make the next call of one step fail with
// an errno of its choosing (one shot), so every error path runs without an LD_PRELOAD shim.
// A failed close or fsync still closes or flushes (the descriptor is released either way); a
// failed rename or open does not happen. One relaxed load per call when unused.
enum class IoStep : int { none = 0, fchmod, write, fsync, close, rename, dir_open, dir_fsync };
struct IoFault {
  std::atomic<int> step{0};
  std::atomic<int> err{0};
};
inline IoFault& io_fault() noexcept {
  static IoFault fault;
  return fault;
}
template <typename Call>
auto io_call(IoStep step, Call&& call) -> decltype(call()) {
  IoFault& f = io_fault();
  if (f.step.load(std::memory_order_relaxed) != static_cast<int>(step)) return call();
  f.step.store(0, std::memory_order_relaxed);
  if (step == IoStep::close || step == IoStep::fsync || step == IoStep::dir_fsync) (void)call();
  errno = f.err.load(std::memory_order_relaxed);
  return -1;
}

class FdSink final : public FileSink {
 public:
  FdSink(int fd, const std::string& path) : fd_(fd), path_(path) {}
  void write(const void* data, std::size_t size) override {
    const char* p = static_cast<const char*>(data);
    while (size > 0) {
      // Chunks of at most 1 GiB: some systems refuse larger single writes.
      const std::size_t chunk = size < (std::size_t{1} << 30) ? size : (std::size_t{1} << 30);
      const ssize_t n = io_call(IoStep::write, [&] { return ::write(fd_, p, chunk); });
      if (n < 0) {
        if (errno == EINTR) continue;
        throw FormatError(concat("mbok: cannot write '", path_, "': ", std::strerror(errno)));
      }
      p += n;
      size -= static_cast<std::size_t>(n);
    }
  }

 private:
  int fd_;
  const std::string& path_;
};

inline constexpr const char* kTempMarker = ".mbok-tmp-";
inline constexpr long long kStaleTempSeconds = 24 * 60 * 60;

inline std::uint64_t temp_random() noexcept {
  static std::atomic<std::uint64_t> counter{0};
  std::uint64_t x = static_cast<std::uint64_t>(
                        std::chrono::high_resolution_clock::now().time_since_epoch().count()) ^
                    (counter.fetch_add(1) * 0x9E3779B97F4A7C15ull) ^
                    (static_cast<std::uint64_t>(::getpid()) << 40);
  // splitmix64 finalizer
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// The writer pid of `name` when it is a temporary file of `base` (`<base>.mbok-tmp-<pid>-<16
// hex>`), else -1.
inline long long temp_writer_pid(const std::string& name, const std::string& base) {
  const std::string prefix = base + kTempMarker;
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return -1;
  std::size_t i = prefix.size();
  long long pid = 0;
  const std::size_t digits_start = i;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9' && i - digits_start < 18)
    pid = pid * 10 + (name[i++] - '0');
  if (i == digits_start || i >= name.size() || name[i] != '-') return -1;
  ++i;
  if (name.size() - i != 16) return -1;
  for (; i < name.size(); ++i) {
    const char c = name[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return -1;
  }
  return pid;
}

// Removes temporary files of `base` in `dir` whose writer is gone (see the rules above).
// Best effort: a file that cannot be inspected or removed is left alone.
inline void remove_stale_temps(const std::string& dir, const std::string& base) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  const std::string prefix = dir == "/" ? "/" : dir + "/";
  const auto now = static_cast<long long>(std::time(nullptr));
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    const long long pid = temp_writer_pid(name, base);
    if (pid < 0) continue;
    const std::string full = prefix + name;
    struct stat st {};
    if (::lstat(full.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    const bool too_old = now - static_cast<long long>(st.st_mtime) > kStaleTempSeconds;
    const bool writer_gone = pid == 0 || pid > 0x7fffffffLL ||
                             (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH);
    if (writer_gone || too_old) ::unlink(full.c_str());
  }
  ::closedir(d);
}

// Flushes directory `dir` to disk (so a rename in it survives a power loss). Throws
// FormatError naming it when it cannot be opened or flushed; EINVAL from fsync (file systems
// that cannot flush directories) is accepted.
inline void sync_directory(const std::string& dir) {
  const int dfd = io_call(IoStep::dir_open,
                          [&] { return ::open(dir.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECTORY); });
  if (dfd < 0)
    throw FormatError(
        concat("mbok: cannot open directory '", dir, "' to flush it: ", std::strerror(errno)));
  const int rc = io_call(IoStep::dir_fsync, [&] { return ::fsync(dfd); });
  const int err = errno;
  ::close(dfd);
  if (rc != 0 && err != EINVAL)
    throw FormatError(concat("mbok: cannot flush directory '", dir, "': ", std::strerror(err)));
}

// Writes `path` through `fill(FileSink&)`, replacing any old file only once the new one is
// complete and on disk (see the rules above). On any failure (including an exception from
// `fill`) the temporary file is removed and the old file is left as it was.
template <typename Fill>
void write_file_atomically(const std::string& path, Fill&& fill, bool sync = true) {
  const auto slash = path.find_last_of('/');
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  require(!base.empty(), "cannot write '", path, "': the path names a directory");
  const std::string dir = directory_of(path);
  remove_stale_temps(dir, base);
  struct stat old {};
  const bool replacing = ::stat(path.c_str(), &old) == 0 && S_ISREG(old.st_mode);
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 8 && fd < 0; ++attempt) {
    char suffix[64];
    std::snprintf(suffix, sizeof suffix, "%s%lld-%016llx", kTempMarker,
                  static_cast<long long>(::getpid()),
                  static_cast<unsigned long long>(temp_random()));
    tmp = path + suffix;
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0)
    throw FormatError(
        concat("mbok: cannot create '", tmp, "' (to write '", path, "'): ", std::strerror(errno)));
  bool closed = false;
  try {
    // The replaced file's permissions carry over (a private checkpoint stays private).
    if (replacing &&
        io_call(IoStep::fchmod, [&] { return ::fchmod(fd, old.st_mode & 07777); }) != 0)
      throw FormatError(concat("mbok: cannot set the mode of '", tmp, "': ", std::strerror(errno)));
    FdSink sink(fd, tmp);
    fill(static_cast<FileSink&>(sink));
    if (sync && io_call(IoStep::fsync, [&] { return ::fsync(fd); }) != 0)
      throw FormatError(concat("mbok: cannot flush '", tmp, "' to disk: ", std::strerror(errno)));
    closed = true;  // Linux releases the descriptor even when close reports an error
    if (io_call(IoStep::close, [&] { return ::close(fd); }) != 0)
      throw FormatError(concat("mbok: cannot close '", tmp, "': ", std::strerror(errno)));
  } catch (...) {
    if (!closed) ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (io_call(IoStep::rename, [&] { return ::rename(tmp.c_str(), path.c_str()); }) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw FormatError(
        concat("mbok: cannot rename '", tmp, "' to '", path, "': ", std::strerror(err)));
  }
  if (sync) sync_directory(dir);
}

#else  // no POSIX: write a temporary file and rename it (no fsync available portably)

class StreamSink final : public FileSink {
 public:
  StreamSink(std::ofstream& out, const std::string& path) : out_(out), path_(path) {}
  void write(const void* data, std::size_t size) override {
    out_.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
    if (!out_) throw FormatError(concat("mbok: cannot write '", path_, "'"));
  }

 private:
  std::ofstream& out_;
  const std::string& path_;
};

template <typename Fill>
void write_file_atomically(const std::string& path, Fill&& fill, bool = true) {
  const std::string tmp = path + ".mbok-tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw FormatError(concat("mbok: cannot create '", tmp, "'"));
    StreamSink sink(out, tmp);
    try {
      fill(static_cast<FileSink&>(sink));
    } catch (...) {
      out.close();
      std::remove(tmp.c_str());
      throw;
    }
  }
  // std::filesystem::rename replaces an existing target in one step (MoveFileEx with
  // MOVEFILE_REPLACE_EXISTING on Windows): removing the target first would leave no file at
  // all if the process died in between.
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    throw FormatError(concat("mbok: cannot rename '", tmp, "' to '", path, "': ", ec.message()));
  }
}

#endif

}  // namespace mbok::detail
