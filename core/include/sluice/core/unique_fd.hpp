#pragma once
// The core uses the SDK's fd handle.
#include <sluice/unique_fd.hpp>
