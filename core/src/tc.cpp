#include "sluice/core/tc.hpp"

#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include <cerrno>

#include "sluice/core/error.hpp"

namespace sluice {

namespace {

bpf_tc_attach_point attach_point(sl_hook hook) {
  return hook == SL_HOOK_INGRESS ? BPF_TC_INGRESS : BPF_TC_EGRESS;
}

}  // namespace

ClsactQdisc::ClsactQdisc(int ifindex, const std::string& ifname) : ifindex_(ifindex) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
  int rc = bpf_tc_hook_create(&hook);
  if (rc == 0) {
    created_ = true;
  } else if (rc != -EEXIST) {
    throw Error("cannot create the clsact qdisc on interface " + ifname + " (ifindex " +
                std::to_string(ifindex) + "): " + errno_text(rc));
  }
}

ClsactQdisc::~ClsactQdisc() {
  if (created_ && !keep_) destroy_clsact(ifindex_);
}

void attach_tc_filter(int ifindex, const std::string& ifname, sl_hook hook, int prog_fd) {
  LIBBPF_OPTS(bpf_tc_hook, tc_hook, .ifindex = ifindex, .attach_point = attach_point(hook));
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd, .flags = BPF_TC_F_REPLACE,
              .handle = kFilterHandle, .priority = kFilterPriority);
  int rc = bpf_tc_attach(&tc_hook, &opts);
  if (rc != 0)
    throw Error("cannot attach the " + std::string(hook == SL_HOOK_INGRESS ? "ingress" : "egress") +
                " program to interface " + ifname + " (ifindex " + std::to_string(ifindex) +
                "): " + errno_text(rc));
}

bool detach_tc_filter(int ifindex, sl_hook hook) {
  LIBBPF_OPTS(bpf_tc_hook, tc_hook, .ifindex = ifindex, .attach_point = attach_point(hook));
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = kFilterHandle, .priority = kFilterPriority);
  int rc = bpf_tc_detach(&tc_hook, &opts);
  if (rc != 0 && rc != -ENOENT && rc != -ENODEV && rc != -EINVAL) {
    spdlog::warn("detaching filter from ifindex {}: {}", ifindex, errno_text(rc));
    return false;
  }
  return true;
}

void destroy_clsact(int ifindex) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
              .attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS));
  int rc = bpf_tc_hook_destroy(&hook);
  if (rc != 0 && rc != -ENOENT && rc != -ENODEV && rc != -EINVAL)
    spdlog::warn("removing clsact qdisc from ifindex {}: {}", ifindex, errno_text(rc));
}

unsigned query_tc_filter(int ifindex, sl_hook hook) {
  LIBBPF_OPTS(bpf_tc_hook, tc_hook, .ifindex = ifindex, .attach_point = attach_point(hook));
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = kFilterHandle, .priority = kFilterPriority);
  if (bpf_tc_query(&tc_hook, &opts) != 0) return 0;
  return opts.prog_id;
}

}  // namespace sluice
