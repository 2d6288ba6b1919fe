#include "ct_cleaner.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>

namespace ct {

CleanerSkeleton open_cleaner(const std::string& map_pin_dir, std::uint32_t table_size,
                             const Settings& settings, std::string& error) {
  LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = map_pin_dir.c_str());
  CleanerSkeleton skel(conntrack_cleaner__open_opts(&opts));
  if (!skel) {
    error = std::string("cannot open the conntrack cleaner BPF object: ") + std::strerror(errno);
    return nullptr;
  }
  bpf_map__set_max_entries(skel->maps.sl_conntrack, table_size);
  for (std::size_t i = 0; i < SL_CT_TO_COUNT; ++i)
    skel->rodata->ct_timeouts[i] = settings.timeouts[i];
  return skel;
}

int run_cleaner(int prog_fd, bool all, CleanResult& result) {
  ct_clean_ctx ctx{};
  ctx.all = all ? 1 : 0;
  LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = &ctx, .ctx_size_in = sizeof(ctx));
  if (bpf_prog_test_run_opts(prog_fd, &opts) != 0) return errno;
  result.scanned = ctx.scanned;
  result.deleted = ctx.deleted;
  return 0;
}

void PeriodicCleaner::start(int prog_fd, std::chrono::seconds interval, sluice::Host& host) {
  sluice::Host* log_to = &host;
  timer_ = host.every(interval, [this, prog_fd, log_to] {
    CleanResult result;
    if (int e = run_cleaner(prog_fd, false, result)) {
      if (!warned_)
        log_to->log(sluice::LogLevel::warn,
                    std::string("conntrack: cleaner run failed: ") + std::strerror(e) +
                        "; expired entries stay until a run succeeds (sluicectl conntrack "
                        "clean runs one by hand)");
      warned_ = true;
      return;
    }
    cleaned_total_ += result.deleted;
  });
}

}  // namespace ct
