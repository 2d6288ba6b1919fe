#include "nat_metrics.hpp"

namespace nat {

void write_nat_metrics(sluice::MetricsWriter& out,
                       const std::map<std::string, ServiceEntries>& applied) {
  std::uint64_t ready = 0, terminating = 0, not_ready = 0;
  for (const auto& [key, ports] : applied)
    for (const auto& [label, e] : ports) {
      ready += e.ready;
      terminating += e.terminating;
      not_ready += e.not_ready;
    }
  out.gauge("sluice_nat_services", "Services with frontends in the nat maps", {},
            static_cast<double>(applied.size()));
  const char* help = "Backend entries of all service ports, by state";
  out.gauge("sluice_nat_backends", help, {{"state", "ready"}}, static_cast<double>(ready));
  out.gauge("sluice_nat_backends", help, {{"state", "terminating"}},
            static_cast<double>(terminating));
  out.gauge("sluice_nat_backends", help, {{"state", "not_ready"}},
            static_cast<double>(not_ready));
}

}  // namespace nat
