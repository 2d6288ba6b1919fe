// Shared helpers of the BPF tests: the SDK's stage harness
// (sluice/testing/stage_test.hpp, library Sluice::testing) and its GoogleTest
// assertions, plus the core's headers for tests that drive core internals.
#pragma once

#include <gtest/gtest.h>

#include <sluice/core/config.hpp>
#include <sluice/core/error.hpp>
#include <sluice/core/pipeline.hpp>
#include <sluice/testing/gtest.hpp>
#include <sluice/testing/stage_test.hpp>
