#include "model/torch-checkpoint.h"

#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <string_view>
#include <utility>

#include "model/printable.h"
#include "voxprint/error.h"

namespace voxprint::model {
namespace {

using pickle::Kind;
using pickle::ScalarType;
using pickle::TensorRef;
using pickle::Value;

// Sane upper bounds, checked before anything is allocated: no tensor holds
// more than a whole model may (kMaxModelParameters, 64 Mi; ResNet293 has
// ~28 M), no storage more than that many float64s (512 MiB), and a load
// reads at most that many bytes of storages in all (ResNet34 reads 27 MB).
constexpr int64_t kMaxTensorElements = kMaxModelParameters;
constexpr uint64_t kMaxStorageBytes = uint64_t{kMaxModelParameters} * 8;
constexpr uint64_t kMaxStorageBytesPerLoad = kMaxStorageBytes;
constexpr size_t kMaxTensorRank = 8;
// A ResNet293 checkpoint's pickle is ~0.3 MB.
constexpr uint64_t kMaxPickleBytes = uint64_t{16} << 20;
// libzip keeps ~200 bytes per entry of the central directory (a zip of
// 1 M empty entries, 87 MB, took 290 MB to open); a ResNet293 checkpoint
// has ~1,500 entries.
constexpr uint64_t kMaxZipEntries = 100'000;
// Deflate expands at most ~1032-fold: an entry claiming more than that
// (or a stored one whose sizes differ) lies about what the file holds.
constexpr uint64_t kMaxDeflateRatio = 1032;

[[noreturn]] void Fail(const std::string& where, const std::string& what) {
  throw Error(ErrorCode::kModelError, where + ": " + what);
}

float HalfToFloat(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000) << 16;
  uint32_t exponent = (half >> 10) & 0x1f;
  uint32_t mantissa = half & 0x3ff;
  uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);  // inf / nan
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;
  } else {  // subnormal: normalise
    exponent = 113;
    while (!(mantissa & 0x400)) {
      mantissa <<= 1;
      --exponent;
    }
    bits = sign | (exponent << 23) | ((mantissa & 0x3ff) << 13);
  }
  return std::bit_cast<float>(bits);
}

float ElementToFloat(const uint8_t* p, ScalarType type) {
  switch (type) {
    case ScalarType::kFloat32: {
      float v;
      std::memcpy(&v, p, 4);
      return v;
    }
    case ScalarType::kFloat64: {
      double v;
      std::memcpy(&v, p, 8);
      return static_cast<float>(v);
    }
    case ScalarType::kFloat16: {
      uint16_t v;
      std::memcpy(&v, p, 2);
      return HalfToFloat(v);
    }
    case ScalarType::kBFloat16: {
      uint16_t v;
      std::memcpy(&v, p, 2);
      return std::bit_cast<float>(static_cast<uint32_t>(v) << 16);
    }
    default:
      return 0;  // refused before
  }
}

}  // namespace

namespace {

// What CheckTensorView learnt of a tensor's view of its storage.
struct TensorView {
  int64_t numel = 0;
  uint64_t storage_bytes = 0;  // the whole storage's, as its header claims
  bool contiguous = true;      // row-major strides: one run of elements
};

std::string IntsText(const std::vector<int64_t>& values) {
  std::string text = "[";
  for (size_t i = 0; i < values.size(); ++i)
    text += (i ? ", " : "") + std::to_string(values[i]);
  return text + "]";
}

// Refuses a view that reads some storage element twice: a stride-0 or
// overlapping view turns a few bytes into any number of weights (a 28 KB
// checkpoint of one number can describe 11 GB), which torch.save never
// writes for parameters. Sufficient and simple: ordered by stride, each
// dimension must step past everything the dimensions below it reach, as
// row-major tensors and their permutations (and slices) do. Dimensions of
// size 1 read nothing twice whatever their stride. Called once the view is
// known to lie inside its storage (no overflow below).
void CheckViewIsOneToOne(const TensorRef& ref, const std::string& what) {
  std::vector<size_t> dims;
  for (size_t d = 0; d < ref.sizes.size(); ++d) {
    if (ref.sizes[d] == 1) continue;
    if (ref.strides[d] == 0)
      Fail(what, "has stride 0 on dimension " + std::to_string(d) +
                     " of size " + std::to_string(ref.sizes[d]) +
                     ": its view reads the same storage elements repeatedly");
    dims.push_back(d);
  }
  std::sort(dims.begin(), dims.end(), [&](size_t a, size_t b) {
    return ref.strides[a] < ref.strides[b];
  });
  int64_t reach = 1;  // elements spanned by the dimensions below
  for (const size_t d : dims) {
    if (ref.strides[d] < reach)
      Fail(what, "has sizes " + IntsText(ref.sizes) + " and strides " +
                     IntsText(ref.strides) +
                     " that overlap: its view reads storage elements twice");
    reach += (ref.sizes[d] - 1) * ref.strides[d];
  }
}

// Checks the dtype, the storage size claim and that the view (offset,
// sizes, strides) stays inside the storage and reads each element at most
// once, before anything is read.
TensorView CheckTensorView(const TensorRef& ref, const std::string& what) {
  const ScalarType dtype = ref.dtype;
  if (dtype != ScalarType::kFloat32 && dtype != ScalarType::kFloat64 &&
      dtype != ScalarType::kFloat16 && dtype != ScalarType::kBFloat16)
    Fail(what, std::string("has dtype ") + pickle::ScalarName(dtype) +
                   ", expected a floating-point tensor");
  const uint64_t element_size =
      static_cast<uint64_t>(pickle::ScalarSize(dtype));
  if (ref.storage_numel < 0 || static_cast<uint64_t>(ref.storage_numel) >
                                   kMaxStorageBytes / element_size)
    Fail(what, "storage claims " + std::to_string(ref.storage_numel) +
                   " elements (more than the limit)");

  if (ref.sizes.size() != ref.strides.size() ||
      ref.sizes.size() > kMaxTensorRank)
    Fail(what, "has " + std::to_string(ref.sizes.size()) + " sizes and " +
                   std::to_string(ref.strides.size()) + " strides");
  int64_t numel = 1;
  int64_t last = ref.storage_offset;  // highest element index the view reads
  if (ref.storage_offset < 0) Fail(what, "has a negative storage offset");
  for (size_t d = 0; d < ref.sizes.size(); ++d) {
    const int64_t size = ref.sizes[d];
    const int64_t stride = ref.strides[d];
    if (size < 0 || stride < 0) Fail(what, "has a negative size or stride");
    if (size > 0 && numel > kMaxTensorElements / size)
      Fail(what,
           "has more than " + std::to_string(kMaxTensorElements) + " elements");
    numel *= size;
    if (size > 0) {
      int64_t reach = 0;
      if (__builtin_mul_overflow(size - 1, stride, &reach) ||
          __builtin_add_overflow(last, reach, &last))
        Fail(what, "has strides that overflow");
    }
  }
  if (numel > 0 && last >= ref.storage_numel)
    Fail(what, "reads element " + std::to_string(last) + " of a storage of " +
                   std::to_string(ref.storage_numel));
  if (numel > 0) CheckViewIsOneToOne(ref, what);

  TensorView view;
  view.numel = numel;
  view.storage_bytes = static_cast<uint64_t>(ref.storage_numel) * element_size;
  // Row-major strides: one contiguous run.
  int64_t expected = 1;
  for (size_t d = ref.sizes.size(); d > 0; --d) {
    if (ref.sizes[d - 1] != 1 && ref.strides[d - 1] != expected)
      view.contiguous = false;
    expected *= ref.sizes[d - 1];
  }
  return view;
}

}  // namespace

std::vector<float> MaterializeTensor(const TensorRef& ref,
                                     std::span<const uint8_t> storage,
                                     const std::string& what) {
  const TensorView view = CheckTensorView(ref, what);
  const ScalarType dtype = ref.dtype;
  const uint64_t element_size =
      static_cast<uint64_t>(pickle::ScalarSize(dtype));
  if (storage.size() != view.storage_bytes)
    Fail(what, "storage " + Printable(ref.storage_key) + " holds " +
                   std::to_string(storage.size()) + " bytes, its header says " +
                   std::to_string(ref.storage_numel) + " x " +
                   std::to_string(element_size));
  const int64_t numel = view.numel;
  std::vector<float> values(static_cast<size_t>(numel));
  if (numel == 0) return values;
  const bool contiguous = view.contiguous;
  const uint8_t* base = storage.data() + ref.storage_offset * element_size;
  if (contiguous && dtype == ScalarType::kFloat32) {
    std::memcpy(values.data(), base, values.size() * sizeof(float));
    return values;
  }
  if (contiguous) {
    for (size_t i = 0; i < values.size(); ++i)
      values[i] = ElementToFloat(base + i * element_size, dtype);
    return values;
  }
  // Gather a strided view with an odometer over the dimensions.
  const size_t rank = ref.sizes.size();
  std::vector<int64_t> index(rank, 0);
  int64_t offset = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    values[i] = ElementToFloat(base + offset * element_size, dtype);
    for (size_t d = rank; d > 0; --d) {
      if (++index[d - 1] < ref.sizes[d - 1]) {
        offset += ref.strides[d - 1];
        break;
      }
      offset -= (index[d - 1] - 1) * ref.strides[d - 1];
      index[d - 1] = 0;
    }
  }
  return values;
}

// One libzip handle on the checkpoint's bytes.
struct TorchCheckpoint::Zip {
  zip_t* archive = nullptr;
  ~Zip() {
    if (archive) zip_discard(archive);
  }
};

TorchCheckpoint::~TorchCheckpoint() = default;

std::unique_ptr<TorchCheckpoint::Zip> TorchCheckpoint::OpenZip() const {
  auto zip = std::make_unique<Zip>();
  zip_error_t error;
  zip_error_init(&error);
  zip_source_t* zip_source =
      file_.empty()
          ? zip_source_buffer_create(bytes_.data(), bytes_.size(), 0, &error)
          : zip_source_file_create(file_.c_str(), 0, -1, &error);
  if (zip_source) {
    zip->archive =
        zip_open_from_source(zip_source, ZIP_RDONLY | ZIP_CHECKCONS, &error);
    if (!zip->archive) zip_source_free(zip_source);
  }
  if (!zip->archive) {
    const std::string reason = zip_error_strerror(&error);
    zip_error_fini(&error);
    Fail(source_, "not a readable torch.save zip (" + reason + ")");
  }
  zip_error_fini(&error);
  return zip;
}

void TorchCheckpoint::ReadEntry(
    const std::string& name, uint64_t size,
    const std::function<uint8_t*()>& destination) const {
  // libzip handles are stateful: each reader borrows one (opening another
  // when all are busy) and gives it back unless the read failed.
  std::unique_ptr<Zip> zip;
  {
    std::lock_guard<std::mutex> lock(idle_zips_mutex_);
    if (!idle_zips_.empty()) {
      zip = std::move(idle_zips_.back());
      idle_zips_.pop_back();
    }
  }
  if (!zip) zip = OpenZip();
  ReadEntryWith(*zip, name, size, destination);
  std::lock_guard<std::mutex> lock(idle_zips_mutex_);
  idle_zips_.push_back(std::move(zip));
}

void TorchCheckpoint::ReadEntryWith(
    const Zip& zip, const std::string& name, uint64_t size,
    const std::function<uint8_t*()>& destination) const {
  const std::string where = source_ + ": " + Printable(name);
  const zip_int64_t index = zip_name_locate(zip.archive, name.c_str(), 0);
  if (index < 0) Fail(source_, "archive lacks " + Printable(name));
  zip_stat_t stat;
  zip_stat_init(&stat);
  constexpr zip_uint64_t kNeeded =
      ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_COMP_METHOD;
  if (zip_stat_index(zip.archive, static_cast<zip_uint64_t>(index), 0, &stat) !=
          0 ||
      (stat.valid & kNeeded) != kNeeded)
    Fail(where, std::string("cannot stat: ") + zip_strerror(zip.archive));
  if (stat.size != size)
    Fail(where, "holds " + std::to_string(stat.size) + " bytes, expected " +
                    std::to_string(size));
  // What the entry claims must be what the file holds, before `destination`
  // allocates for it: stored bytes in the file, or deflated ones that can
  // expand that far.
  const bool stored = stat.comp_method == ZIP_CM_STORE;
  if (stat.comp_size > archive_bytes_ ||
      (stored && stat.comp_size != stat.size) ||
      (!stored && stat.size / kMaxDeflateRatio > stat.comp_size))
    Fail(where, "claims " + std::to_string(stat.size) + " bytes from " +
                    std::to_string(stat.comp_size) + " in the file (of " +
                    std::to_string(archive_bytes_) +
                    "): more than the file holds");
  if (!stored && stat.comp_method != ZIP_CM_DEFLATE)
    Fail(where, "is compressed with method " +
                    std::to_string(stat.comp_method) +
                    " (torch.save stores entries; only deflate is also read)");
  uint8_t* const out = destination();
  zip_file_t* file =
      zip_fopen_index(zip.archive, static_cast<zip_uint64_t>(index), 0);
  if (!file)
    Fail(where, std::string("cannot open: ") + zip_strerror(zip.archive));
  uint64_t done = 0;
  while (done < size) {
    const zip_int64_t got = zip_fread(file, out + done, size - done);
    if (got <= 0) {
      const std::string reason =
          got < 0 ? zip_file_strerror(file) : "unexpected end of data";
      zip_fclose(file);
      Fail(where, "cannot read: " + reason);
    }
    done += static_cast<uint64_t>(got);
  }
  // Reading to the end lets libzip verify the CRC.
  uint8_t extra;
  const zip_int64_t tail = zip_fread(file, &extra, 1);
  const std::string tail_error = tail < 0 ? zip_file_strerror(file) : "";
  const int close_status = zip_fclose(file);
  if (tail != 0 || close_status != 0)
    Fail(where, "is corrupt" + (tail_error.empty() ? "" : ": " + tail_error));
}

std::unique_ptr<TorchCheckpoint> TorchCheckpoint::Open(
    std::span<const uint8_t> bytes, const std::string& source) {
  std::unique_ptr<TorchCheckpoint> checkpoint(new TorchCheckpoint());
  checkpoint->source_ = source;
  checkpoint->bytes_ = bytes;
  checkpoint->archive_bytes_ = bytes.size();
  checkpoint->ReadIndex();
  return checkpoint;
}

std::unique_ptr<TorchCheckpoint> TorchCheckpoint::OpenFile(
    int fd, const std::string& source) {
  std::unique_ptr<TorchCheckpoint> checkpoint(new TorchCheckpoint());
  checkpoint->source_ = source;
  // Each libzip handle opens its own description of the very file `fd` is
  // (its own read position), even if the path is renamed or replaced
  // meanwhile: every tensor comes from the same file.
  checkpoint->file_ = "/proc/self/fd/" + std::to_string(fd);
  struct stat file_stat;
  if (fstat(fd, &file_stat) != 0)
    throw Error(ErrorCode::kIoError, source + ": cannot stat model file");
  checkpoint->archive_bytes_ = static_cast<uint64_t>(file_stat.st_size);
  checkpoint->fd_ = fd;
  checkpoint->ReadIndex();
  return checkpoint;
}

bool TorchCheckpoint::ReadAt(uint64_t offset, std::span<uint8_t> out) const {
  if (offset > archive_bytes_ || out.size() > archive_bytes_ - offset)
    return false;
  if (file_.empty()) {
    std::memcpy(out.data(), bytes_.data() + offset, out.size());
    return true;
  }
  return pread(fd_, out.data(), out.size(), static_cast<off_t>(offset)) ==
         static_cast<ssize_t>(out.size());
}

void TorchCheckpoint::CheckEntryCount() const {
  // The end-of-central-directory record: 22 bytes and a comment of at most
  // 65535 after it, the last record with its signature.
  constexpr size_t kRecord = 22;
  const uint64_t tail_size =
      std::min<uint64_t>(archive_bytes_, kRecord + 65535);
  std::vector<uint8_t> tail(static_cast<size_t>(tail_size));
  if (tail_size < kRecord || !ReadAt(archive_bytes_ - tail_size, tail))
    return;  // libzip refuses it
  const auto u16 = [](const uint8_t* p) { return p[0] | p[1] << 8; };
  const auto u32 = [&](const uint8_t* p) {
    return static_cast<uint32_t>(u16(p)) | static_cast<uint32_t>(u16(p + 2))
                                               << 16;
  };
  const auto u64 = [&](const uint8_t* p) {
    return uint64_t{u32(p)} | uint64_t{u32(p + 4)} << 32;
  };
  size_t at = tail.size() - kRecord;
  while (u32(&tail[at]) != 0x06054b50) {
    if (at == 0) return;  // no record: libzip refuses it
    --at;
  }
  uint64_t entries = u16(&tail[at + 10]);
  if (entries == 0xffff && at >= 20 && u32(&tail[at - 20]) == 0x07064b50) {
    // Zip64: the locator before the record points to the zip64 record,
    // whose entry count is at byte 32.
    const uint64_t record = u64(&tail[at - 20 + 8]);
    uint8_t count[8];
    if (record < archive_bytes_ && ReadAt(record + 32, count))
      entries = u64(count);
  }
  if (entries > kMaxZipEntries)
    Fail(source_, "zip archive holds " + std::to_string(entries) +
                      " entries, more than the limit of " +
                      std::to_string(kMaxZipEntries) +
                      " (a checkpoint holds one per tensor)");
}

void TorchCheckpoint::ReadIndex() {
  CheckEntryCount();
  idle_zips_.push_back(OpenZip());
  zip_t* archive = idle_zips_.back()->archive;

  // The prefix is the archive's top folder ("archive/", "pytorch_model/").
  const zip_int64_t entries = zip_get_num_entries(archive, 0);
  std::string pickle_name;
  for (zip_int64_t i = 0; i < entries; ++i) {
    const char* name =
        zip_get_name(archive, static_cast<zip_uint64_t>(i), ZIP_FL_ENC_RAW);
    if (!name) continue;
    const std::string_view entry(name);
    const size_t slash = entry.find('/');
    if (slash == std::string_view::npos ||
        entry.substr(slash + 1) != "data.pkl")
      continue;
    if (!pickle_name.empty())
      Fail(source_, "archive holds several data.pkl entries");
    pickle_name = entry;
    prefix_ = entry.substr(0, slash + 1);
  }
  if (pickle_name.empty())
    Fail(source_,
         "zip archive without a data.pkl (not a torch.save checkpoint)");

  const std::string byteorder_name = prefix_ + "byteorder";
  const zip_int64_t byteorder =
      zip_name_locate(archive, byteorder_name.c_str(), 0);
  if (byteorder >= 0) {
    zip_stat_t stat;
    zip_stat_init(&stat);
    if (zip_stat_index(archive, static_cast<zip_uint64_t>(byteorder), 0,
                       &stat) != 0 ||
        !(stat.valid & ZIP_STAT_SIZE) || stat.size > 16)
      Fail(source_, "unreadable " + Printable(byteorder_name));
    std::vector<uint8_t> order;
    ReadEntry(byteorder_name, stat.size, [&] {
      order.resize(stat.size);
      return order.data();
    });
    if (std::string(order.begin(), order.end()) != "little")
      Fail(source_, "checkpoint was saved big-endian (" +
                        Printable(byteorder_name) +
                        "), which is not supported");
  }
  // Older torch writes no byteorder entry: it only ever saved little-endian.

  {
    const zip_int64_t index = zip_name_locate(archive, pickle_name.c_str(), 0);
    zip_stat_t stat;
    zip_stat_init(&stat);
    if (index < 0 ||
        zip_stat_index(archive, static_cast<zip_uint64_t>(index), 0, &stat) !=
            0 ||
        !(stat.valid & ZIP_STAT_SIZE))
      Fail(source_, "cannot stat " + Printable(pickle_name));
    if (stat.size > kMaxPickleBytes)
      Fail(source_, Printable(pickle_name) + " claims " +
                        std::to_string(stat.size) +
                        " bytes (more than the limit)");
    std::vector<uint8_t> pickle_bytes;
    ReadEntry(pickle_name, stat.size, [&] {
      pickle_bytes.resize(stat.size);
      return pickle_bytes.data();
    });
    pickle_ =
        pickle::Unpickle(pickle_bytes, source_ + ": " + Printable(pickle_name));
  }

  // Which dict holds the weights.
  const Value* root = pickle_.root;
  if (root->kind != Kind::kDict)
    Fail(source_,
         "checkpoint is not a dict (not a state dict or pyannote "
         "checkpoint)");
  const Value* state_dict = root;
  if (const Value* nested = root->Find("state_dict")) {
    if (nested->kind != Kind::kDict)
      Fail(source_, "checkpoint's state_dict is not a dict");
    state_dict = nested;
    format_ = ModelFormat::kPyannoteCheckpoint;
  } else if (root->Find("pyannote.audio")) {
    Fail(source_, "pyannote checkpoint without a state_dict");
  } else {
    format_ = ModelFormat::kWespeakerCheckpoint;
  }
  for (size_t i = 0; i + 1 < state_dict->items.size(); i += 2) {
    const Value* key = state_dict->items[i];
    const Value* value = state_dict->items[i + 1];
    if (key->kind != Kind::kString || value->kind != Kind::kTensor) continue;
    tensors_[key->text] = value->tensor.get();
  }
  if (tensors_.empty()) Fail(source_, "checkpoint holds no tensors");
}

std::vector<std::string> TorchCheckpoint::Keys() const {
  std::vector<std::string> keys;
  for (const auto& [key, ref] : tensors_) keys.push_back(key);
  return keys;
}

std::optional<std::vector<int64_t>> TorchCheckpoint::Shape(
    const std::string& key) const {
  auto it = tensors_.find(key);
  if (it == tensors_.end()) return std::nullopt;
  return it->second->sizes;
}

std::vector<float> TorchCheckpoint::Values(const std::string& key) const {
  auto it = tensors_.find(key);
  if (it == tensors_.end()) Fail(source_, "no tensor " + Printable(key));
  const TensorRef& ref = *it->second;
  const std::string what = source_ + ": tensor " + Printable(key);
  const TensorView view = CheckTensorView(ref, what);
  const std::string entry = prefix_ + "data/" + ref.storage_key;
  // Every read allocates its storage: bound them all together, so that many
  // tensors viewing one large storage cannot add up to a huge allocation.
  const uint64_t read_before =
      storage_bytes_read_.fetch_add(view.storage_bytes);
  if (view.storage_bytes >
      kMaxStorageBytesPerLoad - std::min(read_before, kMaxStorageBytesPerLoad))
    Fail(what, "would bring the storages read to " +
                   std::to_string(read_before + view.storage_bytes) +
                   " bytes, more than the limit of " +
                   std::to_string(kMaxStorageBytesPerLoad));
  if (ref.dtype == ScalarType::kFloat32 && view.contiguous &&
      ref.storage_offset == 0 && view.numel == ref.storage_numel) {
    // The usual case, a tensor that is its whole float32 storage: read in
    // place (no second copy of the model's weights).
    std::vector<float> values;
    ReadEntry(entry, view.storage_bytes, [&] {
      values.resize(static_cast<size_t>(view.numel));
      return reinterpret_cast<uint8_t*>(values.data());
    });
    return values;
  }
  std::vector<uint8_t> storage;
  ReadEntry(entry, view.storage_bytes, [&] {
    storage.resize(static_cast<size_t>(view.storage_bytes));
    return storage.data();
  });
  return MaterializeTensor(ref, storage, what);
}

}  // namespace voxprint::model
