#include "cli.hpp"
namespace sluice::ctl { std::vector<CommandSpec> monitor_commands() { return {}; } }
