// The voxprint::Error a call throws, for tests that check its code and
// message; a call that throws none fails the test.
#pragma once

#include <gtest/gtest.h>

#include <functional>

#include "voxprint/error.h"

namespace voxprint::testing {

inline Error ErrorOf(const std::function<void()>& call) {
  try {
    call();
  } catch (const Error& error) {
    return error;
  }
  ADD_FAILURE() << "no error";
  return Error(ErrorCode::kInternal, "no error");
}

}  // namespace voxprint::testing
