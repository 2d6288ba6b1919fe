#include "resource_fields.hpp"

#include <sluice/output.hpp>

namespace nat {

std::string address_text(std::uint8_t family, const __be32* words) {
  return sluice::output::address_text(family == 6, words);
}

std::string endpoint_text(std::uint8_t family, const __be32* words, __be16 port) {
  return sluice::output::endpoint_text(family == 6, words, port);
}

}  // namespace nat
