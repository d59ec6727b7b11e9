// torch.save archives: a zip with <prefix>/data.pkl (the pickled object),
// <prefix>/data/<key> (raw little-endian storages), <prefix>/version and,
// in newer torch, <prefix>/byteorder.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "model/pickle.h"
#include "model/state-dict.h"
#include "voxprint/model.h"

namespace voxprint::model {

// Converts the tensor `ref` views in `storage` (the raw bytes of its
// storage) to row-major float32: checks the storage size against the
// claimed element count, that the view (offset, sizes, strides) fits,
// gathers non-contiguous views, and converts float16/bfloat16/float64.
// Integer dtypes are refused. Throws Error(kModelError) naming `what`.
std::vector<float> MaterializeTensor(const pickle::TensorRef& ref,
                                     std::span<const uint8_t> storage,
                                     const std::string& what);

// An opened checkpoint. It reads from `bytes`, which must outlive it.
// Thread-safe: concurrent Values() calls each read through their own libzip
// handle (a checkpoint keeps the handles it opened for later reads).
class TorchCheckpoint : public StateDictSource {
 public:
  // Opens the zip, finds data.pkl, checks the byte order and interprets the
  // pickle (restricted: nothing is executed). Picks the state dict: the
  // `state_dict` entry of a pyannote/Lightning checkpoint, or the top-level
  // dict of a bare WeSpeaker state dict. Throws Error(kModelError) naming
  // `source`.
  static std::unique_ptr<TorchCheckpoint> Open(std::span<const uint8_t> bytes,
                                               const std::string& source);
  // Same, reading the open file `fd` (Linux: through /proc/self/fd), which
  // must stay open as long as the checkpoint: no copy of the file in
  // memory, which start-up latency feels.
  static std::unique_ptr<TorchCheckpoint> OpenFile(int fd,
                                                   const std::string& source);
  ~TorchCheckpoint() override;

  ModelFormat format() const { return format_; }

  std::vector<std::string> Keys() const override;
  std::optional<std::vector<int64_t>> Shape(
      const std::string& key) const override;
  std::vector<float> Values(const std::string& key) const override;

 private:
  struct Zip;
  TorchCheckpoint() = default;
  // Opens the zip, reads data.pkl and picks the state dict (Open's work).
  void ReadIndex();
  std::unique_ptr<Zip> OpenZip() const;
  // Reads out.size() bytes at `offset` of the archive; false when they are
  // not all there.
  bool ReadAt(uint64_t offset, std::span<uint8_t> out) const;
  // Refuses, before libzip reads the central directory (and keeps ~200
  // bytes per entry), an archive that claims too many entries.
  void CheckEntryCount() const;
  // Reads entry `name`, which must hold exactly `size` bytes, into the
  // buffer `destination` returns, checking its CRC. `destination` (which
  // allocates) runs only once the archive is known to hold those bytes.
  void ReadEntry(const std::string& name, uint64_t size,
                 const std::function<uint8_t*()>& destination) const;
  void ReadEntryWith(const Zip& zip, const std::string& name, uint64_t size,
                     const std::function<uint8_t*()>& destination) const;

  std::string source_;
  std::span<const uint8_t> bytes_;  // what the zip is read from, or
  std::string file_;                // a path to the open file
  int fd_ = -1;                     // the open file, for file_
  uint64_t archive_bytes_ = 0;      // the size of either
  // Bytes of storages read so far (each Values() call allocates its own).
  mutable std::atomic<uint64_t> storage_bytes_read_{0};
  mutable std::mutex idle_zips_mutex_;
  mutable std::vector<std::unique_ptr<Zip>> idle_zips_;
  std::string prefix_;  // "archive/" (with the slash)
  pickle::PickleResult pickle_;
  std::map<std::string, const pickle::TensorRef*> tensors_;
  ModelFormat format_ = ModelFormat::kWespeakerCheckpoint;
};

}  // namespace voxprint::model
