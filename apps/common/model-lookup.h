// Where the model file comes from, for the CLI and the server alike:
// --model, else $VOXPRINT_MODEL, else the cache directory, else a download of
// the official pyannote checkpoint into that cache.
#pragma once

#include <filesystem>
#include <string>

namespace voxprint::apps {

// Official checkpoint: pyannote/wespeaker-voxceleb-resnet34-LM on the hub.
inline constexpr const char* kModelDownloadUrl =
    "https://huggingface.co/pyannote/wespeaker-voxceleb-resnet34-LM/resolve/"
    "main/pytorch_model.bin";
inline constexpr const char* kCachedModelName = "pytorch_model.bin";

// $VOXPRINT_CACHE_DIR, else $XDG_CACHE_HOME/voxprint, else ~/.cache/voxprint.
std::filesystem::path ModelCacheDir();

// Returns the model path to use. `flag` is the --model value ("" if absent).
// When a download is needed and fails, throws voxprint::Error(kModelError)
// whose message says exactly which file to put where.
// `log` receives progress lines (may be null).
std::string ResolveModelPath(const std::string& flag,
                             void (*log)(const std::string&) = nullptr);

}  // namespace voxprint::apps
