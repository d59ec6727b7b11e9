#include "voxprint/error.h"

namespace voxprint {

const char* ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return "invalid_argument";
    case ErrorCode::kUnsupportedInput:
      return "unsupported_input";
    case ErrorCode::kCorruptInput:
      return "corrupt_input";
    case ErrorCode::kModelError:
      return "model_error";
    case ErrorCode::kBackendUnavailable:
      return "backend_unavailable";
    case ErrorCode::kResourceLimit:
      return "resource_limit";
    case ErrorCode::kIoError:
      return "io_error";
    case ErrorCode::kInternal:
      return "internal";
    case ErrorCode::kCancelled:
      return "cancelled";
    case ErrorCode::kNotFound:
      return "not_found";
    case ErrorCode::kAlreadyExists:
      return "already_exists";
  }
  return "internal";
}

}  // namespace voxprint
