// The one exception type the voxprint library throws.
//
// Every failure of the library surfaces as voxprint::Error. Its message names
// the input (a file path, an upload name, a parameter) and the reason, so the
// CLI can print it as one line and the server can return it as JSON. The code
// tells the caller how to map it (exit status, HTTP status).
#pragma once

#include <stdexcept>
#include <string>

namespace voxprint {

enum class ErrorCode {
  kInvalidArgument,     // a parameter is out of range (bad window, step, ...)
  kUnsupportedInput,    // not audio, or audio we cannot decode
  kCorruptInput,        // audio that is damaged or too short to analyse
  kModelError,          // a model file that is missing, corrupt or unsafe
  kBackendUnavailable,  // requested device cannot be used
  kResourceLimit,       // input beyond a configured limit
  kIoError,             // file cannot be opened, read or written
  kInternal,            // an invariant of voxprint itself was broken
  kCancelled,           // the caller cancelled the work (CancelToken)
  kNotFound,            // a named thing (a speaker) does not exist
  kAlreadyExists,       // a named thing (a speaker) exists already
};

// Stable lower-case name of the code ("invalid_argument", ...), used in JSON.
const char* ErrorCodeName(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message)
      : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

// Always-on invariant check: throws ErrorCode::kInternal (never aborts).
#define VOXPRINT_CHECK(condition, message)                             \
  do {                                                                 \
    if (!(condition))                                                  \
      throw ::voxprint::Error(::voxprint::ErrorCode::kInternal,        \
                              std::string("internal check failed: ") + \
                                  #condition + ": " + (message));      \
  } while (0)

}  // namespace voxprint
