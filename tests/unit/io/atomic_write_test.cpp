// Atomic replacement of files: the replaced file's mode is kept, temporary files left by a
// crashed writer are removed by the next save of the same target (and nothing else is),
// and a directory that cannot be flushed is an error naming it.

#include <mbok/io/safetensors.hpp>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io_support.hpp"
#include "support.hpp"

using namespace mbok;

namespace {

StateDict small_state(double v) { return {{"v", Tensor::scalar<double>(v)}}; }

mode_t mode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

std::set<std::string> names_in(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    out.insert(e.path().filename().string());
  return out;
}

// A pid that is certainly not alive: a child that has exited and been reaped.
pid_t dead_pid() {
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) ::_exit(0);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  return child;
}

}  // namespace

TEST_CASE("replacing a file keeps its mode", "[atomic]") {
  test::TempDir dir;
  const std::string path = dir.file("private.safetensors");
  save_state_dict(path, small_state(1));
  REQUIRE(::chmod(path.c_str(), 0600) == 0);
  save_state_dict(path, small_state(2));
  CHECK(mode_of(path) == 0600);
  REQUIRE(::chmod(path.c_str(), 0640) == 0);
  save_state_dict(path, small_state(3), {}, /*sync=*/false);
  CHECK(mode_of(path) == 0640);
  CHECK(load_state_dict(path).at("v").bytes == small_state(3).at("v").bytes);
  // A new file gets the usual 0666 minus the umask.
  const mode_t mask = ::umask(022);
  ::umask(mask);
  const std::string fresh = dir.file("fresh.safetensors");
  save_state_dict(fresh, small_state(1));
  CHECK(mode_of(fresh) == (0666 & ~mask));
}

TEST_CASE("temporary files of a crashed writer are removed by the next save", "[atomic]") {
  test::TempDir dir;
  const std::string path = dir.file("model.safetensors");
  const std::string base = "model.safetensors";
  const pid_t gone = dead_pid();
  const std::string stale = base + ".mbok-tmp-" + std::to_string(gone) + "-0123456789abcdef";
  const std::string live = base + ".mbok-tmp-" + std::to_string(::getpid()) + "-fedcba9876543210";
  const std::string old_live =
      base + ".mbok-tmp-" + std::to_string(::getppid()) + "-00000000000000aa";
  const std::string other_target =
      "other.safetensors.mbok-tmp-" + std::to_string(gone) + "-0123456789abcdef";
  const std::string lookalike = base + ".mbok-tmp-" + std::to_string(gone) + "-notes";
  const std::string dir_named = base + ".mbok-tmp-" + std::to_string(gone) + "-1111111111111111";
  for (const auto& name : {stale, live, old_live, other_target, lookalike})
    test::write_bytes(dir.file(name), {1, 2, 3});
  std::filesystem::create_directory(dir.file(dir_named));
  // old_live's writer (our parent) is alive, but the file has not changed for two days.
  const auto two_days = std::filesystem::file_time_type::clock::now() - std::chrono::hours(48);
  std::filesystem::last_write_time(dir.file(old_live), two_days);

  save_state_dict(path, small_state(1));
  const auto names = names_in(dir.path());
  CHECK(names.count(stale) == 0);         // writer gone
  CHECK(names.count(old_live) == 0);      // older than 24 hours
  CHECK(names.count(live) == 1);          // a live writer's file is never touched
  CHECK(names.count(other_target) == 1);  // another target's
  CHECK(names.count(lookalike) == 1);     // not the exact pattern
  CHECK(names.count(dir_named) == 1);     // not a regular file
  CHECK(names.count(base) == 1);
  // The save itself leaves no temporary file.
  for (const auto& n : names)
    if (n.rfind(base + ".mbok-tmp-", 0) == 0)
      CHECK((n == live || n == lookalike || n == dir_named));
}

TEST_CASE("a directory that cannot be flushed is an error naming it", "[atomic]") {
  // Running as root defeats permission tricks, so the directory step is called directly.
  try {
    detail::sync_directory("/nonexistent-mbok-dir");
    FAIL("no error");
  } catch (const FormatError& e) {
    CHECK_THAT(std::string(e.what()), test::contains("'/nonexistent-mbok-dir'"));
    CHECK_THAT(std::string(e.what()), test::contains("directory"));
  }
  test::TempDir dir;
  CHECK_NOTHROW(detail::sync_directory(dir.path()));
}

TEST_CASE("temporary file names are recognized exactly", "[atomic]") {
  CHECK(detail::temp_writer_pid("m.st.mbok-tmp-123-0123456789abcdef", "m.st") == 123);
  CHECK(detail::temp_writer_pid("m.st.mbok-tmp-123-0123456789abcdeF", "m.st") == -1);
  CHECK(detail::temp_writer_pid("m.st.mbok-tmp-123-0123456789abcde", "m.st") == -1);
  CHECK(detail::temp_writer_pid("m.st.mbok-tmp--0123456789abcdef", "m.st") == -1);
  CHECK(detail::temp_writer_pid("xm.st.mbok-tmp-1-0123456789abcdef", "m.st") == -1);
  CHECK(detail::temp_writer_pid("m.st", "m.st") == -1);
}

// Every handled failure of an atomic write, injected through the seam of atomic_file.hpp
// (detail::io_fault: the next call of one step fails with a chosen errno): the error is a
// FormatError naming the step, the file and the errno's text; before the rename the old file
// survives byte for byte and no temporary file is left; a failed flush of the folder comes
// after the rename (the new file is in place) and names the folder.
TEST_CASE("each failed step of an atomic write is an error that keeps the old file", "[atomic]") {
  struct Case {
    detail::IoStep step;
    int err;
    const char* what;  // part of the message
    bool renamed;      // the failure comes after the rename
  };
  const Case cases[] = {
      {detail::IoStep::fchmod, EPERM, "cannot set the mode of '", false},
      {detail::IoStep::write, ENOSPC, "cannot write '", false},
      {detail::IoStep::fsync, EIO, "cannot flush '", false},
      {detail::IoStep::close, EIO, "cannot close '", false},
      {detail::IoStep::rename, EXDEV, "cannot rename '", false},
      {detail::IoStep::dir_open, EACCES, "cannot open directory '", true},
      {detail::IoStep::dir_fsync, EIO, "cannot flush directory '", true},
  };
  for (const Case& c : cases) {
    INFO("step " << static_cast<int>(c.step));
    test::TempDir dir;
    const std::string path = dir.file("model.safetensors");
    save_state_dict(path, small_state(1));
    const std::vector<std::uint8_t> old = test::read_bytes(path);
    detail::io_fault().err = c.err;
    detail::io_fault().step = static_cast<int>(c.step);
    try {
      save_state_dict(path, small_state(2));
      FAIL_CHECK("no error");
    } catch (const FormatError& e) {
      const std::string msg = e.what();
      INFO("message: " << msg);
      CHECK_THAT(msg, test::contains(c.what));
      CHECK_THAT(msg, test::contains(std::strerror(c.err)));
      CHECK_THAT(msg, test::contains(c.renamed ? "'" + dir.path() + "'" : path));
    }
    CHECK(detail::io_fault().step == 0);  // the fault was taken
    detail::io_fault().step = 0;
    CHECK(names_in(dir.path()) == std::set<std::string>{"model.safetensors"});
    if (c.renamed)
      CHECK(load_state_dict(path).at("v").bytes == small_state(2).at("v").bytes);
    else
      CHECK(test::read_bytes(path) == old);
    // The next write succeeds.
    save_state_dict(path, small_state(3));
    CHECK(load_state_dict(path).at("v").bytes == small_state(3).at("v").bytes);
  }
}
