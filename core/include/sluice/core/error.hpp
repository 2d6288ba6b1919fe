#pragma once

// The core's errors are the SDK's: sluice::Error (what failed, what to do)
// and errno_text(), shared with the plugins.
#include <sluice/error.hpp>
