#include "sluice/core/regular_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sluice/resource_blocks.hpp>

#include "sluice/core/error.hpp"
#include "sluice/core/unique_fd.hpp"

namespace sluice {

namespace {

std::string file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

std::string size_text(std::size_t bytes) {
  if (bytes >= (1u << 20) && bytes % (1u << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  return std::to_string(bytes) + " bytes";
}

}  // namespace

void read_regular_file(const std::string& path, std::string& text, std::size_t max_bytes) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (!fd) {
    int open_errno = errno;
    // A socket (ENXIO) or a device without a driver: say what the path is.
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
      throw Error(path + " is " + file_kind(st.st_mode) + ", not a regular file",
                  "point it at a TOML file");
    throw Error("cannot open " + path + ": " + errno_text(open_errno));
  }
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) throw Error("cannot stat " + path + ": " + errno_text(errno));
  if (!S_ISREG(st.st_mode))
    throw Error(path + " is " + file_kind(st.st_mode) + ", not a regular file",
                "point it at a TOML file");
  const auto size = static_cast<std::size_t>(st.st_size);
  if (size > max_bytes)
    throw Error(path + " is " + size_text(size) + ", more than the limit of " +
                    size_text(max_bytes),
                "is it the right file?");
  config::reserve_text_buffer(text, size);
  text.resize(size);
  std::size_t filled = 0;
  for (;;) {
    char beyond[4096];  // past the size fstat gave: the file may have grown since
    const bool into_text = filled < text.size();
    ssize_t n = into_text ? ::read(fd.get(), text.data() + filled, text.size() - filled)
                          : ::read(fd.get(), beyond, sizeof(beyond));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error("cannot read " + path + ": " + errno_text(errno));
    if (n == 0) break;
    if (!into_text) text.append(beyond, static_cast<std::size_t>(n));
    filled += static_cast<std::size_t>(n);
    if (filled > max_bytes)
      throw Error(path + " grew past the limit of " + size_text(max_bytes) + " while being read",
                  "is it the right file?");
  }
  text.resize(filled);
}

}  // namespace sluice
