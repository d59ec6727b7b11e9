#include "model/model-file.h"

#include <openssl/evp.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <future>
#include <memory>

#include "memory/large-buffer.h"
#include "model/onnx-model.h"
#include "model/state-dict.h"
#include "model/torch-checkpoint.h"
#include "voxprint/error.h"

namespace voxprint::model {
namespace {

// Real WeSpeaker models are 25 MB (ResNet34) to ~120 MB (ResNet293).
constexpr uint64_t kMaxModelFileBytes = uint64_t{4} << 30;

std::string Sha256Hex(std::span<const uint8_t> bytes, const std::string& name) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(),
                 nullptr) != 1)
    throw Error(ErrorCode::kInternal, name + ": SHA-256 computation failed");
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 15]);
  }
  return hex;
}

bool IsZip(std::span<const uint8_t> bytes) {
  // Local file header, or the end-of-central-directory of an empty zip.
  return bytes.size() >= 4 && bytes[0] == 'P' && bytes[1] == 'K' &&
         ((bytes[2] == 3 && bytes[3] == 4) || (bytes[2] == 5 && bytes[3] == 6));
}

struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};

}  // namespace

LoadedModel LoadModelBytes(std::span<const uint8_t> bytes,
                           const std::string& name,
                           const LoadOptions& options) {
  if (bytes.empty())
    throw Error(ErrorCode::kModelError,
                name + ": empty file (not a model file)");
  if (bytes.size() > kMaxModelFileBytes)
    throw Error(ErrorCode::kModelError,
                name + ": " + std::to_string(bytes.size()) +
                    " bytes is larger than any supported model");
  // The checksum runs on another core while the weights are parsed (about
  // a quarter of a model's load time, which start-up latency feels). The
  // future of std::async waits in its destructor, so an error thrown below
  // leaves only once the checksum stopped reading `bytes`.
  std::future<std::string> sha256;
  if (options.checksum)
    sha256 = std::async(std::launch::async,
                        [bytes, &name] { return Sha256Hex(bytes, name); });
  LoadedModel loaded;
  if (IsZip(bytes)) {
    const std::unique_ptr<TorchCheckpoint> checkpoint =
        TorchCheckpoint::Open(bytes, name);
    loaded.weights = MapStateDict(*checkpoint, name);
    loaded.info.format = checkpoint->format();
  } else if (std::optional<ResNetWeights> weights =
                 ReadOnnxWeights(bytes, name)) {
    loaded.weights = std::move(*weights);
    loaded.info.format = ModelFormat::kOnnx;
  } else {
    throw Error(
        ErrorCode::kModelError,
        name + ": not a model file (neither a torch.save zip nor ONNX)");
  }
  loaded.info.path = name;
  if (sha256.valid()) loaded.info.sha256 = sha256.get();
  loaded.info.file_size_bytes = static_cast<int64_t>(bytes.size());
  loaded.info.architecture = loaded.weights.architecture;
  return loaded;
}

LoadedModel LoadModelFile(const std::string& path,
                          const LoadOptions& options) {
  std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (!file)
    throw Error(ErrorCode::kIoError, path + ": cannot open model file (" +
                                         std::strerror(errno) + ")");
  struct stat info;
  if (fstat(fileno(file.get()), &info) != 0 || !S_ISREG(info.st_mode))
    throw Error(ErrorCode::kIoError, path + ": not a regular file");
  const uint64_t size = static_cast<uint64_t>(info.st_size);
  if (size > kMaxModelFileBytes)
    throw Error(ErrorCode::kModelError,
                path + ": " + std::to_string(size) +
                    " bytes is larger than any supported model");
  // One read into memory: the checksum, the zip reader and the protobuf
  // parser all work on these bytes.
  // Uninitialised (every byte is read over), on huge pages where allowed.
  const memory::LargeBuffer bytes(static_cast<size_t>(size),
                                  /*huge_pages=*/true);
  if (size > 0 && std::fread(bytes.data(), 1, size, file.get()) != size)
    throw Error(ErrorCode::kIoError, path + ": cannot read model file");
  return LoadModelBytes({bytes.bytes(), static_cast<size_t>(size)}, path,
                        options);
}

}  // namespace voxprint::model
