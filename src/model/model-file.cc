#include "model/model-file.h"

#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <future>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <vector>

#include "memory/large-buffer.h"
#include "model/onnx-model.h"
#include "model/state-dict.h"
#include "model/torch-checkpoint.h"
#include "voxprint/error.h"

namespace voxprint::model {
namespace {

// Real WeSpeaker models are 25 MB (ResNet34) to ~120 MB (ResNet293); a
// model at the parameter limit (kMaxModelParameters) takes 256 MiB as
// float32, 512 MiB as float64.
constexpr uint64_t kMaxModelFileBytes = uint64_t{1} << 30;

std::string HexDigest(std::span<const unsigned char> digest) {
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  for (const unsigned char byte : digest) {
    hex.push_back(kHex[byte >> 4]);
    hex.push_back(kHex[byte & 15]);
  }
  return hex;
}

std::string Sha256Hex(std::span<const uint8_t> bytes, const std::string& name) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(),
                 nullptr) != 1)
    throw Error(ErrorCode::kInternal, name + ": SHA-256 computation failed");
  return HexDigest({digest, length});
}

bool IsZip(std::span<const uint8_t> bytes) {
  // Local file header, or the end-of-central-directory of an empty zip.
  return bytes.size() >= 4 && bytes[0] == 'P' && bytes[1] == 'K' &&
         ((bytes[2] == 3 && bytes[3] == 4) || (bytes[2] == 5 && bytes[3] == 6));
}

struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};

// The parts of a load that do not depend on where the bytes come from.
void FillInfo(LoadedModel& loaded, const std::string& name, uint64_t size,
              std::future<std::string>& sha256) {
  loaded.info.path = name;
  if (sha256.valid()) loaded.info.sha256 = sha256.get();
  loaded.info.file_size_bytes = static_cast<int64_t>(size);
  loaded.info.format_has_checksum = loaded.info.format != ModelFormat::kOnnx;
  loaded.info.architecture = loaded.weights.architecture;
}

LoadedModel MapCheckpoint(const TorchCheckpoint& checkpoint,
                          const std::string& name) {
  LoadedModel loaded;
  loaded.weights = MapStateDict(checkpoint, name);
  loaded.info.format = checkpoint.format();
  return loaded;
}

// SHA-256 of the `size` bytes of the open file `fd`, read in blocks.
std::string Sha256OfFile(int fd, uint64_t size, const std::string& name) {
  const std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(
      EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!context || EVP_DigestInit_ex(context.get(), EVP_sha256(), nullptr) != 1)
    throw Error(ErrorCode::kInternal, name + ": SHA-256 computation failed");
  std::vector<uint8_t> block(size_t{1} << 20);
  for (uint64_t offset = 0; offset < size;) {
    const ssize_t got =
        pread(fd, block.data(), block.size(), static_cast<off_t>(offset));
    if (got <= 0)
      throw Error(ErrorCode::kIoError, name + ": cannot read model file");
    EVP_DigestUpdate(context.get(), block.data(), static_cast<size_t>(got));
    offset += static_cast<uint64_t>(got);
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(context.get(), digest, &length) != 1)
    throw Error(ErrorCode::kInternal, name + ": SHA-256 computation failed");
  return HexDigest({digest, length});
}

// Runs `load`, reporting an allocation that fails on the way as the model
// file's fault (kModelError, as the CLI's exit code 4) rather than letting
// std::bad_alloc end the program as an internal error: the loader bounds
// every size a file claims, so only a machine short of memory or a file
// that gets past a bound can meet it.
template <typename Load>
LoadedModel ReportingAllocationFailures(const std::string& name, Load load) {
  try {
    return load();
  } catch (const std::bad_alloc&) {
    throw Error(ErrorCode::kModelError,
                name + ": out of memory while loading the model's weights");
  } catch (const std::length_error&) {
    throw Error(ErrorCode::kModelError,
                name + ": a size in the model file is too large to allocate");
  }
}

LoadedModel LoadBytes(std::span<const uint8_t> bytes, const std::string& name,
                      const LoadOptions& options) {
  if (bytes.empty())
    throw Error(ErrorCode::kModelError,
                name + ": empty file (not a model file)");
  if (bytes.size() > kMaxModelFileBytes)
    throw Error(ErrorCode::kModelError,
                name + ": " + std::to_string(bytes.size()) +
                    " bytes is larger than any supported model");
  // The checksum runs on another core while the weights are parsed. The
  // future of std::async waits in its destructor, so an error thrown below
  // leaves only once the checksum stopped reading `bytes`.
  std::future<std::string> sha256;
  if (options.checksum)
    sha256 = std::async(std::launch::async,
                        [bytes, &name] { return Sha256Hex(bytes, name); });
  LoadedModel loaded;
  if (IsZip(bytes)) {
    loaded = MapCheckpoint(*TorchCheckpoint::Open(bytes, name), name);
  } else if (std::optional<ResNetWeights> weights =
                 ReadOnnxWeights(bytes, name)) {
    loaded.weights = std::move(*weights);
    loaded.info.format = ModelFormat::kOnnx;
  } else {
    throw Error(
        ErrorCode::kModelError,
        name + ": not a model file (neither a torch.save zip nor ONNX)");
  }
  FillInfo(loaded, name, bytes.size(), sha256);
  return loaded;
}

LoadedModel LoadFile(const std::string& path, const LoadOptions& options) {
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
  // A torch.save zip is read where it lies: libzip reads each tensor
  // straight into its final place (a copy of the file in fresh memory cost
  // ~10 ms of start-up, mostly the kernel clearing its pages).
  const int fd = fileno(file.get());
  uint8_t magic[4] = {};
  if (size >= sizeof(magic) &&
      pread(fd, magic, sizeof(magic), 0) ==
          static_cast<ssize_t>(sizeof(magic)) &&
      IsZip(magic) &&
      access(("/proc/self/fd/" + std::to_string(fd)).c_str(), R_OK) == 0) {
    std::future<std::string> sha256;
    if (options.checksum)
      sha256 = std::async(std::launch::async, [fd, size, &path] {
        return Sha256OfFile(fd, size, path);
      });
    LoadedModel loaded =
        MapCheckpoint(*TorchCheckpoint::OpenFile(fd, path), path);
    FillInfo(loaded, path, size, sha256);
    return loaded;
  }
  // Anything else is read into memory once: the checksum and the protobuf
  // parser work on these bytes.
  // Uninitialised (every byte is read over), on huge pages where allowed.
  const memory::LargeBuffer bytes(static_cast<size_t>(size),
                                  /*huge_pages=*/true);
  if (size > 0 && std::fread(bytes.data(), 1, size, file.get()) != size)
    throw Error(ErrorCode::kIoError, path + ": cannot read model file");
  return LoadBytes({bytes.bytes(), static_cast<size_t>(size)}, path, options);
}

}  // namespace

LoadedModel LoadModelBytes(std::span<const uint8_t> bytes,
                           const std::string& name,
                           const LoadOptions& options) {
  return ReportingAllocationFailures(
      name, [&] { return LoadBytes(bytes, name, options); });
}

LoadedModel LoadModelFile(const std::string& path, const LoadOptions& options) {
  return ReportingAllocationFailures(path,
                                     [&] { return LoadFile(path, options); });
}

}  // namespace voxprint::model
