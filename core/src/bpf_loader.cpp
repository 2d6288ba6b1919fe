#include "sluice/core/bpf_loader.hpp"

#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include <cstdarg>
#include <filesystem>
#include <mutex>

#include "sluice/core/error.hpp"

#ifndef BPF_FS_MAGIC
#define BPF_FS_MAGIC 0xcafe4a11
#endif
#ifndef TRACEFS_MAGIC
#define TRACEFS_MAGIC 0x74726163
#endif

namespace sluice {

namespace {

thread_local std::string* capture_buffer = nullptr;

int libbpf_print(enum libbpf_print_level level, const char* format, va_list args) {
  char line[4096];
  int n = vsnprintf(line, sizeof(line), format, args);
  if (n < 0) return n;
  std::string_view text(line);
  if (capture_buffer) capture_buffer->append(text);
  while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  if (level == LIBBPF_WARN)
    spdlog::debug("libbpf: {}", text);  // the caller reports failures with context
  else
    spdlog::trace("libbpf: {}", text);
  return n;
}

// The verifier's own output sits between BEGIN/END markers in libbpf's
// messages; prefer it, else keep everything libbpf said.
std::string extract_verifier_log(const std::string& captured) {
  auto begin = captured.find("-- BEGIN PROG LOAD LOG --");
  auto end = captured.find("-- END PROG LOAD LOG --");
  if (begin != std::string::npos && end != std::string::npos && end > begin) {
    begin = captured.find('\n', begin);
    if (begin != std::string::npos && begin < end) return captured.substr(begin + 1, end - begin - 1);
  }
  return captured;
}

}  // namespace

void install_libbpf_logging() {
  static std::once_flag once;
  std::call_once(once, [] { libbpf_set_print(libbpf_print); });
}

void load_with_verifier_log(std::string_view what, const std::function<int()>& load) {
  install_libbpf_logging();
  std::string captured;
  capture_buffer = &captured;
  int rc = 0;
  try {
    rc = load();
  } catch (...) {
    capture_buffer = nullptr;
    throw;
  }
  capture_buffer = nullptr;
  if (rc == 0) return;
  std::string log = extract_verifier_log(captured);
  while (!log.empty() && log.back() == '\n') log.pop_back();
  throw Error(std::string(what) + ": " + errno_text(rc < 0 ? rc : errno) +
              (log.empty() ? "" : "\n--- verifier / libbpf log ---\n" + log));
}

void make_dirs(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) throw Error("cannot create directory " + path + ": " + ec.message());
}

void ensure_bpffs(const std::string& root) {
  struct statfs fs {};
  if (statfs(root.c_str(), &fs) == 0 && static_cast<unsigned long>(fs.f_type) == BPF_FS_MAGIC)
    return;
  make_dirs(root);
  if (mount("bpf", root.c_str(), "bpf", 0, "mode=0700") != 0)
    throw Error("cannot mount bpffs at " + root + ": " + errno_text(errno) +
                ". Mount it yourself (mount -t bpf bpf " + root +
                ") or point [bpf] root at a bpffs mount.");
  spdlog::info("mounted bpffs at {}", root);
}

void ensure_tracefs() {
  const char* path = "/sys/kernel/tracing";
  struct statfs fs {};
  if (statfs(path, &fs) == 0 && static_cast<unsigned long>(fs.f_type) == TRACEFS_MAGIC) return;
  if (mount("tracefs", path, "tracefs", 0, nullptr) != 0) {
    spdlog::warn("cannot mount tracefs at {}: {}; debug logs go to the trace pipe once it is "
                 "mounted",
                 path, errno_text(errno));
    return;
  }
  spdlog::info("mounted tracefs at {}", path);
}

}  // namespace sluice
