#pragma once
/// \file
/// `MappedFile`: a whole file mapped read-only into memory (POSIX mmap; elsewhere the file is
/// read into a buffer). Share it through `std::shared_ptr` so views into it (tensors, borrowed
/// bit matrices) keep it alive.
///
/// A mapping reflects the file on disk: if another program truncates the file while it is
/// mapped, reading the lost pages faults. mbok's writers never modify a file in place (they
/// write a new file and rename it over the old one), so files they write are safe to map.

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "../error.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define MBOK_HAVE_MMAP 1
#endif

namespace mbok {

/// A read-only view of a whole file's bytes, valid for the object's lifetime.
class MappedFile {
 public:
  /// Maps `path`. Throws `FormatError` naming the path and the system's reason when the file
  /// cannot be opened, is not a regular file, or cannot be mapped. An empty file gives
  /// `size() == 0` and `data() == nullptr`.
  static std::shared_ptr<const MappedFile> open(const std::string& path) {
    std::shared_ptr<MappedFile> f(new MappedFile());
    f->path_ = path;
#if defined(MBOK_HAVE_MMAP)
    // O_NONBLOCK: opening a FIFO (or a device) for reading would otherwise wait for a writer
    // forever; such a path is refused below as not a regular file. It changes nothing for
    // regular files.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) fail(path, "cannot open");
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      errno = err;
      fail(path, "cannot stat");
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      throw FormatError(detail::concat("mbok: '", path, "' is not a regular file"));
    }
    f->size_ = static_cast<std::size_t>(st.st_size);
    if (f->size_ > 0) {
      void* p = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        const int err = errno;
        ::close(fd);
        errno = err;
        fail(path, "cannot map");
      }
      f->mapped_ = p;
      f->data_ = static_cast<const std::uint8_t*>(p);
    }
    ::close(fd);  // the mapping stays valid without the descriptor
#else
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec))
      throw FormatError(detail::concat("mbok: '", path, "' is not a regular file",
                                       ec ? " (" + ec.message() + ")" : std::string()));
    std::ifstream in(path, std::ios::binary);
    if (!in) throw FormatError(detail::concat("mbok: cannot open '", path, "'"));
    in.seekg(0, std::ios::end);
    const auto end = in.tellg();
    in.seekg(0, std::ios::beg);
    f->buffer_.resize(static_cast<std::size_t>(end));
    if (!f->buffer_.empty() &&
        !in.read(reinterpret_cast<char*>(f->buffer_.data()), static_cast<std::streamsize>(end)))
      throw FormatError(detail::concat("mbok: cannot read '", path, "'"));
    f->size_ = f->buffer_.size();
    f->data_ = f->buffer_.empty() ? nullptr : f->buffer_.data();
#endif
    return f;
  }

  /// The file's bytes (page-aligned when mapped), `size()` of them.
  const std::uint8_t* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  /// The path it was opened with.
  const std::string& path() const noexcept { return path_; }
  /// True when the bytes are a memory map (no copy of the file was made).
  bool is_mapped() const noexcept { return mapped_ != nullptr; }

  ~MappedFile() {
#if defined(MBOK_HAVE_MMAP)
    if (mapped_ != nullptr) ::munmap(mapped_, size_);
#endif
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

 private:
  MappedFile() = default;

  [[noreturn]] static void fail(const std::string& path, const char* what) {
    throw FormatError(detail::concat("mbok: ", what, " '", path, "': ", std::strerror(errno)));
  }

  std::string path_;
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
  void* mapped_ = nullptr;
  std::vector<std::uint8_t> buffer_;
};

}  // namespace mbok
