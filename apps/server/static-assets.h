// The web page's files (web/dist), compiled into the binary by
// embed-assets.cmake so that `voxprint serve` needs nothing on disk and works
// offline.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

namespace voxprint::server {

struct StaticAsset {
  std::string_view path;          // URL path, e.g. "/index.html"
  std::string_view content_type;  // e.g. "text/html; charset=utf-8"
  const unsigned char* data = nullptr;
  size_t size = 0;
};

// All embedded files (generated code).
std::span<const StaticAsset> StaticAssets();

// The asset served at `path` ("/" is "/index.html"); null if none.
const StaticAsset* FindStaticAsset(std::string_view path);

}  // namespace voxprint::server
