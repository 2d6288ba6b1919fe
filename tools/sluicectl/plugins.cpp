#include "cli.hpp"
namespace sluice::ctl { std::vector<CommandSpec> plugins_commands() { return {}; } }
