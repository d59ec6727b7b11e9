// Names read from model files (tensor keys, node names, zip entries) end up
// in error messages, which the CLI prints and the server puts into JSON:
// make them printable ASCII and bounded first.
#pragma once

#include <string>
#include <string_view>

namespace voxprint::model {

// Escapes bytes outside 0x20..0x7e as \xNN and cuts after `max_chars`.
inline std::string Printable(std::string_view text, size_t max_chars = 120) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : text) {
    if (out.size() >= max_chars) {
      out += "...";
      break;
    }
    if (c >= 0x20 && c <= 0x7e && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

}  // namespace voxprint::model
