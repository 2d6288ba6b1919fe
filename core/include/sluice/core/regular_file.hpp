// The one way sluiced reads its inputs (the node config, state files): only
// regular files, never more than a limit, and never a read that can block the
// event loop (a FIFO, /dev/zero, a directory, or a symlink to one of them).
#pragma once

#include <cstddef>
#include <string>

namespace sluice {

// Config and state files are hand-written or generated TOML: far below this.
inline constexpr std::size_t kMaxInputFileBytes = 64u << 20;

// Replaces `text` with the whole file (its buffer is reused when large
// enough). Throws sluice::Error naming the path, what it is and what to do
// when it is not a regular file, exceeds `max_bytes` or cannot be read.
void read_regular_file(const std::string& path, std::string& text,
                       std::size_t max_bytes = kMaxInputFileBytes);

}  // namespace sluice
