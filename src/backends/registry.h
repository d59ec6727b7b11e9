// What the backend registry (CreateBackend) was built with; for tests and
// diagnostics (internal).
#pragma once

namespace voxprint::backends {

// Whether this build contains the CUDA backend (VOXPRINT_WITH_CUDA). A true
// result says nothing about a usable GPU: CreateBackend("cuda") still throws
// ErrorCode::kBackendUnavailable without one.
bool BuiltWithCuda();

}  // namespace voxprint::backends
