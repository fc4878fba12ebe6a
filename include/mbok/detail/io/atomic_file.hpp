#pragma once
#include "../guard.hpp"

// Crash-safe replacement of a file: the new content goes to a temporary file in the same
// directory (so the rename stays on one file system), which is flushed to disk, renamed over
// the target (atomic on POSIX: a reader sees the old file or the new one, never a mix), and
// the directory is flushed so the rename itself survives a power loss.

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "../../error.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/stat.h>
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

class FdSink final : public FileSink {
 public:
  FdSink(int fd, const std::string& path) : fd_(fd), path_(path) {}
  void write(const void* data, std::size_t size) override {
    const char* p = static_cast<const char*>(data);
    while (size > 0) {
      // Chunks of at most 1 GiB: some systems refuse larger single writes.
      const std::size_t chunk = size < (std::size_t{1} << 30) ? size : (std::size_t{1} << 30);
      const ssize_t n = ::write(fd_, p, chunk);
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

// Writes `path` through `fill(FileSink&)`, replacing any old file only once the new one is
// complete and on disk. On any failure (including an exception from `fill`) the temporary
// file is removed and the old file is left as it was.
template <typename Fill>
void write_file_atomically(const std::string& path, Fill&& fill, bool sync = true) {
  static std::atomic<unsigned> counter{0};
  const auto slash = path.find_last_of('/');
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  require(!base.empty(), "cannot write '", path, "': the path names a directory");
  const std::string dir = directory_of(path);
  const std::string tmp = (slash == std::string::npos ? std::string() : path.substr(0, slash + 1)) +
                          "." + base + ".tmp." + std::to_string(::getpid()) + "." +
                          std::to_string(counter.fetch_add(1));
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0)
    throw FormatError(concat("mbok: cannot create '", tmp, "' (to write '", path,
                             "'): ", std::strerror(errno)));
  bool closed = false;
  try {
    FdSink sink(fd, tmp);
    fill(static_cast<FileSink&>(sink));
    if (sync && ::fsync(fd) != 0)
      throw FormatError(concat("mbok: cannot flush '", tmp, "' to disk: ", std::strerror(errno)));
    closed = true;  // Linux releases the descriptor even when close reports an error
    if (::close(fd) != 0)
      throw FormatError(concat("mbok: cannot close '", tmp, "': ", std::strerror(errno)));
  } catch (...) {
    if (!closed) ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw FormatError(concat("mbok: cannot rename '", tmp, "' to '", path, "': ", std::strerror(err)));
  }
  if (sync) {
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_CLOEXEC);
    if (dfd >= 0) {
      // Some file systems refuse fsync on directories (EINVAL): the rename is done either way.
      const int rc = ::fsync(dfd);
      const int err = errno;
      ::close(dfd);
      if (rc != 0 && err != EINVAL)
        throw FormatError(concat("mbok: cannot flush directory '", dir, "': ", std::strerror(err)));
    }
  }
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
  const std::string tmp = path + ".tmp";
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
  std::remove(path.c_str());
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw FormatError(concat("mbok: cannot rename '", tmp, "' to '", path, "'"));
}

#endif

}  // namespace mbok::detail
