// The interface of a pretend minor 1 of the current ABI major: Plugin plus
// one appended virtual. The host test plays a daemon at that minor and must
// call the virtual only on plugins whose descriptor says they have it.
#pragma once

#include <sluice/plugin.hpp>

namespace sluice::test {

inline constexpr std::uint16_t kMinorOfAddedVirtual = 1;
inline constexpr int kAddedVirtualAnswer = 42;

class PluginWithMinor1Virtual : public Plugin {
 public:
  virtual int added_in_minor_1() const = 0;
};

}  // namespace sluice::test
