// Where the Silero VAD file is looked for. The two default places come from
// the build: VOXPRINT_VAD_MODEL_SOURCE_PATH (the npm install in the source
// tree) and VOXPRINT_VAD_MODEL_INSTALL_PATH (<prefix>/share/voxprint).
#include <cstdlib>
#include <filesystem>

#include "voxprint/error.h"
#include "voxprint/vad.h"

namespace voxprint {

std::string FindVadModel(const std::string& explicit_path) {
  if (!explicit_path.empty()) return explicit_path;
  if (const char* variable = std::getenv("VOXPRINT_VAD_MODEL");
      variable && *variable)
    return variable;
  const std::string defaults[] = {VOXPRINT_VAD_MODEL_SOURCE_PATH,
                                  VOXPRINT_VAD_MODEL_INSTALL_PATH};
  for (const std::string& path : defaults) {
    std::error_code error;
    if (std::filesystem::is_regular_file(path, error)) return path;
  }
  throw Error(
      ErrorCode::kModelError,
      "Silero VAD v5 model (silero_vad_v5.onnx) not found: looked at " +
          defaults[0] + " and " + defaults[1] +
          ". Run `npm ci` in models/vad (scripts/install-deps.sh does it), "
          "copy the file to " +
          defaults[1] +
          ", or name it with --vad-model PATH or $VOXPRINT_VAD_MODEL");
}

}  // namespace voxprint
