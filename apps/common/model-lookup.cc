#include "model-lookup.h"

#include <curl/curl.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <system_error>

#include "voxprint/error.h"

namespace voxprint::apps {

namespace fs = std::filesystem;

namespace {

std::string Getenv(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

std::string WhereToPutIt(const fs::path& cached) {
  return "pass --model PATH, set VOXPRINT_MODEL, or save the official "
         "checkpoint (" +
         std::string(kModelDownloadUrl) + ") as " + cached.string();
}

size_t WriteToFile(char* data, size_t size, size_t count, void* file) {
  return std::fwrite(data, size, count, static_cast<FILE*>(file)) * size;
}

// Downloads `url` to `target` through a temporary file, so an interrupted
// download never leaves a truncated model in the cache.
void Download(const std::string& url, const fs::path& target) {
  std::error_code ignored;
  fs::create_directories(target.parent_path(), ignored);
  const fs::path partial = target.string() + ".part";
  FILE* file = std::fopen(partial.c_str(), "wb");
  if (!file)
    throw Error(ErrorCode::kModelError,
                "cannot write " + partial.string() + " for the model download");
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(),
                                                           curl_easy_cleanup);
  char error_text[CURL_ERROR_SIZE] = "";
  CURLcode code = CURLE_FAILED_INIT;
  long status = 0;
  if (curl) {
    curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl.get(), CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl.get(), CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(curl.get(), CURLOPT_CONNECTTIMEOUT, 15L);
    curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, WriteToFile);
    curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, file);
    curl_easy_setopt(curl.get(), CURLOPT_ERRORBUFFER, error_text);
    code = curl_easy_perform(curl.get());
    curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &status);
  }
  std::fclose(file);
  if (code != CURLE_OK) {
    fs::remove(partial, ignored);
    throw Error(ErrorCode::kModelError,
                std::string("no model file, and downloading it failed (") +
                    (*error_text ? error_text : curl_easy_strerror(code)) +
                    "): " + WhereToPutIt(target));
  }
  fs::rename(partial, target);
}

}  // namespace

fs::path ModelCacheDir() {
  if (std::string dir = Getenv("VOXPRINT_CACHE_DIR"); !dir.empty()) return dir;
  if (std::string xdg = Getenv("XDG_CACHE_HOME"); !xdg.empty())
    return fs::path(xdg) / "voxprint";
  return fs::path(Getenv("HOME")) / ".cache" / "voxprint";
}

std::string ResolveModelPath(const std::string& flag,
                             void (*log)(const std::string&)) {
  if (!flag.empty()) return flag;
  if (std::string env = Getenv("VOXPRINT_MODEL"); !env.empty()) return env;
  const fs::path cached = ModelCacheDir() / kCachedModelName;
  std::error_code error;
  if (fs::is_regular_file(cached, error)) return cached.string();
  if (!Getenv("VOXPRINT_OFFLINE").empty())
    throw Error(ErrorCode::kModelError,
                "no model file (VOXPRINT_OFFLINE is set, so nothing is "
                "downloaded): " +
                    WhereToPutIt(cached));
  if (log) log("downloading the model to " + cached.string());
  Download(kModelDownloadUrl, cached);
  return cached.string();
}

}  // namespace voxprint::apps
