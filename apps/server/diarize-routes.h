// POST /api/diarize (Routes::Diarize, in diarize-routes.cc).
#pragma once

#include <nlohmann/json.hpp>

namespace voxprint::server {

// The "/api/diarize" entry of the OpenAPI document's paths.
nlohmann::json DiarizeOpenApi();

}  // namespace voxprint::server
