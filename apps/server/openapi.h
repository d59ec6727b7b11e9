// The OpenAPI 3 description of the server's API, served at
// GET /api/openapi.json. Kept next to the routes it describes.
#pragma once

#include <nlohmann/json.hpp>

namespace voxprint::server {

// Parsed once; thread-safe.
const nlohmann::json& OpenApiDocument();

}  // namespace voxprint::server
