// Loading BPF objects with libbpf: log routing and verifier-log capture.
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace sluice {

// Routes libbpf's messages to spdlog (once per process).
void install_libbpf_logging();

// Runs `load` while capturing libbpf's output. On failure throws Error:
// "<what>: <errno text>" followed by the verifier log.
void load_with_verifier_log(std::string_view what, const std::function<int()>& load);

// Creates `path` and its parents (like mkdir -p).
void make_dirs(const std::string& path);

// Mounts bpffs at `root` unless a bpffs is already mounted there.
void ensure_bpffs(const std::string& root);

// Mounts tracefs at /sys/kernel/tracing if it is missing (for trace_pipe).
void ensure_tracefs();

}  // namespace sluice
