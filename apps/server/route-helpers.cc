#include "route-helpers.h"

#include <charconv>
#include <cmath>

namespace voxprint::server {

Error BadParameter(const std::string& name, const std::string& why) {
  return Error(ErrorCode::kInvalidArgument, "parameter '" + name + "': " + why);
}

std::optional<std::string> TextParam(const Params& params,
                                     const std::string& name) {
  const auto it = params.find(name);
  if (it == params.end()) return std::nullopt;
  return it->second;
}

std::optional<double> NumberParam(const Params& params,
                                  const std::string& name) {
  const auto it = params.find(name);
  if (it == params.end()) return std::nullopt;
  const std::string& text = it->second;
  double value = 0.0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end || !std::isfinite(value))
    throw BadParameter(name, "'" + text.substr(0, 40) + "' is not a number");
  return value;
}

std::optional<int> CountParam(const Params& params, const std::string& name) {
  const auto it = params.find(name);
  if (it == params.end()) return std::nullopt;
  const std::string& text = it->second;
  int value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end || value < 1)
    throw BadParameter(
        name, "'" + text.substr(0, 40) + "' is not a whole number >= 1");
  return value;
}

bool BoolParam(const Params& params, const std::string& name) {
  const auto it = params.find(name);
  if (it == params.end() || it->second == "false" || it->second == "0")
    return false;
  if (it->second == "true" || it->second == "1") return true;
  throw BadParameter(name, "must be 'true' or 'false', not '" +
                               it->second.substr(0, 40) + "'");
}

double CosineThresholdParam(const Params& params, const std::string& name) {
  const double threshold =
      NumberParam(params, name).value_or(kDefaultSameSpeakerThreshold);
  if (threshold < -1.0 || threshold > 1.0)
    throw BadParameter(name, "must be within [-1, 1] (raw cosine)");
  return threshold;
}

std::span<const uint8_t> UploadBytes(const Upload& upload) {
  return {reinterpret_cast<const uint8_t*>(upload.bytes.data()),
          upload.bytes.size()};
}

}  // namespace voxprint::server
