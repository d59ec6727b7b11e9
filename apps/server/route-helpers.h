// What every route file shares: the catch-all that turns any failure into an
// error response, and the parsing of request parameters (query string or
// multipart text fields), each a 422 naming the parameter when malformed.
#pragma once

#include <cstdint>
#include <map>
#include <new>
#include <optional>
#include <span>
#include <string>

#include "routes.h"
#include "voxprint/error.h"

namespace voxprint::server {

// Runs `body`, turning every exception into an error response: a route
// never throws, and one request's failure never touches another.
template <typename Body>
ApiResponse Guarded(Body&& body) noexcept {
  try {
    try {
      return body();
    } catch (const Error& error) {
      return ErrorResponse(HttpStatusFor(error.code()),
                           ErrorCodeName(error.code()), error.what());
    } catch (const std::bad_alloc&) {
      return ErrorResponse(503, "out_of_memory",
                           "the server ran out of memory for this request");
    } catch (const std::exception& error) {
      return ErrorResponse(500, "internal", error.what());
    } catch (...) {
      return ErrorResponse(500, "internal", "unknown failure");
    }
  } catch (...) {
    // Building the error response itself failed (out of memory).
    ApiResponse response;
    response.status = 500;
    return response;
  }
}

using Params = std::map<std::string, std::string>;

// kInvalidArgument "parameter 'NAME': WHY" (HTTP 422).
Error BadParameter(const std::string& name, const std::string& why);
// The value as sent; nothing when absent.
std::optional<std::string> TextParam(const Params& params,
                                     const std::string& name);
// A finite decimal number, the whole string (no units, no spaces).
std::optional<double> NumberParam(const Params& params,
                                  const std::string& name);
// A whole number >= 1.
std::optional<int> CountParam(const Params& params, const std::string& name);
// "true"/"1" or "false"/"0"; absent: false.
bool BoolParam(const Params& params, const std::string& name);
// A raw-cosine threshold in [-1, 1]; absent: kDefaultSameSpeakerThreshold.
double CosineThresholdParam(const Params& params, const std::string& name);

// An upload's bytes, as the library takes them.
std::span<const uint8_t> UploadBytes(const Upload& upload);

}  // namespace voxprint::server
