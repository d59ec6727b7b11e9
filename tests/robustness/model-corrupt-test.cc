// Malformed, truncated, hostile and absurd model files must fail with a clean
// voxprint::Error(kModelError) naming the file, and never crash.
//
// Hostile checkpoints are assembled here: a stored-only zip writer and a
// pickle writer that spells a state dict the way torch.save does, so each
// case changes exactly one thing of an otherwise valid checkpoint.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <new>
#include <random>
#include <string>
#include <vector>

// The ONNX schema as Debian's onnx package builds it (ONNX_ML).
#define ONNX_ML 1
#include <onnx/onnx_pb.h>

#include "model/model-file.h"
#include "model/resnet-weights.h"
#include "support/reference-kit.h"
#include "support/sanitizers.h"
#include "voxprint/error.h"

// Allocations of at least this many bytes fail with std::bad_alloc (0:
// none), for the test of a load that runs out of memory.
std::atomic<size_t> g_fail_allocations_from{0};

void* operator new(size_t size) {
  const size_t limit = g_fail_allocations_from.load(std::memory_order_relaxed);
  if (limit != 0 && size >= limit) throw std::bad_alloc();
  if (void* memory = std::malloc(size == 0 ? 1 : size)) return memory;
  throw std::bad_alloc();
}
// GCC cannot tell that these pair with the operator new above.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* memory) noexcept { std::free(memory); }
void operator delete(void* memory, size_t) noexcept { std::free(memory); }
#pragma GCC diagnostic pop

namespace voxprint::model {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

fs::path StubDir() { return fs::path(VOXPRINT_SOURCE_DIR) / "tests" / "data"; }

// One read call (the kit's models are 27 MB; sanitizer builds are slow).
Bytes ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  Bytes bytes(fs::file_size(path));
  in.read(reinterpret_cast<char*>(bytes.data()),
          static_cast<std::streamsize>(bytes.size()));
  if (!in) throw std::runtime_error("cannot read " + path.string());
  return bytes;
}

// --- a stored-only zip writer ---------------------------------------------

uint32_t Crc32(const Bytes& data) {
  static const std::array<uint32_t, 256> kTable = [] {
    std::array<uint32_t, 256> table{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
    return table;
  }();
  uint32_t crc = 0xffffffffu;
  for (uint8_t byte : data) crc = kTable[(crc ^ byte) & 0xff] ^ (crc >> 8);
  return crc ^ 0xffffffffu;
}

void Put16(Bytes& out, uint32_t v) {
  out.push_back(v & 0xff);
  out.push_back((v >> 8) & 0xff);
}
void Put32(Bytes& out, uint32_t v) {
  Put16(out, v & 0xffff);
  Put16(out, v >> 16);
}

struct ZipEntry {
  std::string name;
  Bytes data;
  int64_t claimed_size = -1;  // uncompressed size written; -1: data.size()
  uint16_t method = 0;        // 0 stored, 8 deflated (data as given)
};

Bytes MakeZip(const std::vector<ZipEntry>& entries) {
  Bytes out, central;
  for (const ZipEntry& entry : entries) {
    const uint32_t offset = static_cast<uint32_t>(out.size());
    const uint32_t crc = Crc32(entry.data);
    const uint32_t size = static_cast<uint32_t>(entry.data.size());
    const uint32_t claimed = entry.claimed_size >= 0
                                 ? static_cast<uint32_t>(entry.claimed_size)
                                 : size;
    Put32(out, 0x04034b50);
    Put16(out, 20);  // version needed
    Put16(out, 0);   // flags
    Put16(out, entry.method);
    Put16(out, 0);     // time
    Put16(out, 0x21);  // date 1980-01-01
    Put32(out, crc);
    Put32(out, size);
    Put32(out, claimed);
    Put16(out, static_cast<uint32_t>(entry.name.size()));
    Put16(out, 0);
    out.insert(out.end(), entry.name.begin(), entry.name.end());
    out.insert(out.end(), entry.data.begin(), entry.data.end());

    Put32(central, 0x02014b50);
    Put16(central, 20);
    Put16(central, 20);
    Put16(central, 0);
    Put16(central, entry.method);
    Put16(central, 0);
    Put16(central, 0x21);
    Put32(central, crc);
    Put32(central, size);
    Put32(central, claimed);
    Put16(central, static_cast<uint32_t>(entry.name.size()));
    Put16(central, 0);  // extra
    Put16(central, 0);  // comment
    Put16(central, 0);  // disk
    Put16(central, 0);  // internal attributes
    Put32(central, 0);  // external attributes
    Put32(central, offset);
    central.insert(central.end(), entry.name.begin(), entry.name.end());
  }
  const uint32_t central_offset = static_cast<uint32_t>(out.size());
  out.insert(out.end(), central.begin(), central.end());
  Put32(out, 0x06054b50);
  Put16(out, 0);
  Put16(out, 0);
  Put16(out, static_cast<uint32_t>(entries.size()));
  Put16(out, static_cast<uint32_t>(entries.size()));
  Put32(out, static_cast<uint32_t>(central.size()));
  Put32(out, central_offset);
  Put16(out, 0);
  return out;
}

// --- a pickle writer for torch.save-style state dicts -----------------------

class PickleWriter {
 public:
  PickleWriter& Op(uint8_t op) {
    bytes_.push_back(op);
    return *this;
  }
  PickleWriter& Str(const std::string& text) {
    Op('X');
    Put32(bytes_, static_cast<uint32_t>(text.size()));
    bytes_.insert(bytes_.end(), text.begin(), text.end());
    return *this;
  }
  PickleWriter& Global(const std::string& module, const std::string& name) {
    Op('c');
    bytes_.insert(bytes_.end(), module.begin(), module.end());
    Op('\n');
    bytes_.insert(bytes_.end(), name.begin(), name.end());
    return Op('\n');
  }
  PickleWriter& Int(int64_t value) {
    if (value >= INT32_MIN && value <= INT32_MAX) {
      Op('J');
      Put32(bytes_, static_cast<uint32_t>(value));
      return *this;
    }
    Op(0x8a).Op(8);  // LONG1, 8 bytes
    for (int i = 0; i < 8; ++i)
      Op(static_cast<uint8_t>(static_cast<uint64_t>(value) >> (8 * i)));
    return *this;
  }
  PickleWriter& Ints(const std::vector<int64_t>& values) {
    Op('(');
    for (int64_t v : values) Int(v);
    return Op('t');
  }
  Bytes& bytes() { return bytes_; }

 private:
  Bytes bytes_;
};

// One tensor of a synthetic checkpoint, with knobs to make it malformed.
struct Tensor {
  std::string key;
  std::vector<int64_t> shape;
  std::vector<float> values;
  std::string storage_type = "FloatStorage";
  int64_t claimed_numel = -1;  // -1: values.size()
  int64_t offset = 0;
  std::vector<int64_t> strides;  // empty: contiguous
  bool write_storage = true;
  std::string storage_key;  // empty: the tensor's index
};

std::vector<int64_t> ContiguousStrides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (size_t d = shape.size(); d > 1; --d)
    strides[d - 2] = strides[d - 1] * shape[d - 1];
  return strides;
}

Bytes StateDictPickle(const std::vector<Tensor>& tensors) {
  PickleWriter p;
  p.Op(0x80).Op(2);
  p.Global("collections", "OrderedDict").Op(')').Op('R');
  p.Op('(');
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    p.Str(t.key).Global("torch._utils", "_rebuild_tensor_v2").Op('(');
    p.Op('(').Str("storage").Global("torch", t.storage_type);
    p.Str(t.storage_key.empty() ? std::to_string(i) : t.storage_key);
    p.Str("cpu");
    p.Int(t.claimed_numel >= 0 ? t.claimed_numel
                               : static_cast<int64_t>(t.values.size()));
    p.Op('t').Op('Q');
    p.Int(t.offset).Ints(t.shape);
    p.Ints(t.strides.empty() ? ContiguousStrides(t.shape) : t.strides);
    p.Op(0x89).Global("collections", "OrderedDict").Op(')').Op('R');
    p.Op('t').Op('R');
  }
  p.Op('u').Op('.');
  return p.bytes();
}

Bytes FloatBytes(const std::vector<float>& values) {
  Bytes out(values.size() * 4);
  std::memcpy(out.data(), values.data(), out.size());
  return out;
}

Bytes CheckpointZip(const std::vector<Tensor>& tensors, const Bytes& pickle) {
  std::vector<ZipEntry> entries = {{"archive/data.pkl", pickle}};
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (tensors[i].write_storage)
      entries.push_back(
          {"archive/data/" + std::to_string(i), FloatBytes(tensors[i].values)});
  }
  entries.push_back({"archive/version", {'3', '\n'}});
  return MakeZip(entries);
}

Bytes CheckpointZip(const std::vector<Tensor>& tensors) {
  return CheckpointZip(tensors, StateDictPickle(tensors));
}

// A WeSpeaker state dict of architecture `arch`: BatchNorm is the identity,
// weights a small pattern. With `stride0`, every tensor is a stride-0 view
// of a one-number storage, as a weight bomb is: a few bytes per tensor
// whatever its shape.
std::vector<Tensor> StateDictFor(const ResNetArchitecture& arch,
                                 bool stride0 = false) {
  std::vector<Tensor> tensors;
  auto add = [&](const std::string& key, std::vector<int64_t> shape,
                 float fill) {
    if (stride0) {
      Tensor t{key, shape, {fill != 0 ? fill : 0.01f}};
      t.strides.assign(shape.size(), 0);
      tensors.push_back(t);
      return;
    }
    size_t count = 1;
    for (int64_t d : shape) count *= static_cast<size_t>(d);
    std::vector<float> values(count);
    for (size_t i = 0; i < count; ++i)
      values[i] = fill != 0 ? fill : 0.01f * static_cast<float>(i % 7);
    tensors.push_back({key, shape, values});
  };
  auto add_conv = [&](const std::string& conv, const std::string& bn,
                      const ConvSpec& s) {
    add(conv + ".weight", {s.out_channels, s.in_channels, s.kernel, s.kernel},
        0);
    add(bn + ".weight", {s.out_channels}, 1);
    add(bn + ".bias", {s.out_channels}, 0.5f);
    add(bn + ".running_mean", {s.out_channels}, 0.25f);
    add(bn + ".running_var", {s.out_channels}, 1);
  };
  add_conv("conv1", "bn1", StemSpec(arch));
  for (int s = 0; s < 4; ++s) {
    for (int b = 0; b < arch.blocks_per_stage[s]; ++b) {
      const std::string block =
          "layer" + std::to_string(s + 1) + "." + std::to_string(b) + ".";
      const auto specs = BlockConvSpecs(arch, s, b);
      for (size_t c = 0; c < specs.size(); ++c)
        add_conv(block + "conv" + std::to_string(c + 1),
                 block + "bn" + std::to_string(c + 1), specs[c]);
      if (auto shortcut = ShortcutSpec(arch, s, b))
        add_conv(block + "shortcut.0", block + "shortcut.1", *shortcut);
    }
  }
  add("seg_1.weight", {arch.embedding_dim, arch.PooledDim()}, 0);
  add("seg_1.bias", {arch.embedding_dim}, 0);
  return tensors;
}

// A valid WeSpeaker state dict: 2 channels, one block per stage, 2-dim
// embedding.
std::vector<Tensor> TinyStateDict() {
  ResNetArchitecture arch;
  arch.base_channels = 2;
  arch.blocks_per_stage = {1, 1, 1, 1};
  arch.embedding_dim = 2;
  return StateDictFor(arch);
}

Tensor& Find(std::vector<Tensor>& tensors, const std::string& key) {
  for (Tensor& t : tensors)
    if (t.key == key) return t;
  throw std::runtime_error("no tensor " + key);
}

// --- assertions -------------------------------------------------------------

// Messages go to terminals and JSON: bytes from the file must be escaped.
bool IsPrintable(const std::string& message) {
  return std::all_of(message.begin(), message.end(),
                     [](char c) { return c >= 0x20 && c <= 0x7e; });
}

::testing::AssertionResult FailsCleanly(std::span<const uint8_t> bytes,
                                        const std::string& name,
                                        const std::string& fragment = "") {
  try {
    LoadModelBytes(bytes, name);
  } catch (const Error& error) {
    const std::string message = error.what();
    if (error.code() != ErrorCode::kModelError)
      return ::testing::AssertionFailure()
             << "code " << ErrorCodeName(error.code()) << ": " << message;
    if (message.rfind(name + ": ", 0) != 0)
      return ::testing::AssertionFailure()
             << "message does not start with the name: " << message;
    if (!IsPrintable(message))
      return ::testing::AssertionFailure() << "unprintable: " << message;
    if (!fragment.empty() && message.find(fragment) == std::string::npos)
      return ::testing::AssertionFailure()
             << "message lacks '" << fragment << "': " << message;
    return ::testing::AssertionSuccess() << message;
  } catch (const std::exception& other) {
    return ::testing::AssertionFailure()
           << "not a voxprint::Error: " << other.what();
  }
  return ::testing::AssertionFailure() << "loaded without an error";
}

// A damaged file may still load (a flipped weight bit), but then its weights
// must be valid; otherwise the error must be clean.
::testing::AssertionResult LoadsOrFailsCleanly(std::span<const uint8_t> bytes,
                                               const std::string& name) {
  try {
    const LoadedModel model = LoadModelBytes(bytes, name);
    ValidateWeights(model.weights, name);
    return ::testing::AssertionSuccess();
  } catch (const Error& error) {
    const std::string message = error.what();
    if (error.code() != ErrorCode::kModelError ||
        message.rfind(name + ": ", 0) != 0 || !IsPrintable(message))
      return ::testing::AssertionFailure()
             << ErrorCodeName(error.code()) << ": " << message;
    return ::testing::AssertionSuccess();
  } catch (const std::exception& other) {
    return ::testing::AssertionFailure()
           << "not a voxprint::Error: " << other.what();
  }
}

// Resident memory of this process now, in KiB.
long ResidentKiB() {
  std::ifstream statm("/proc/self/statm");
  long size = 0, resident = 0;
  statm >> size >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

// Runs `body` in a forked child and returns how far the child's peak
// resident memory rose while it ran, in MiB (the child measures it: this
// process's earlier peak does not hide it), at most 63; *outcome gets
// body's result (0..3). -1 when the child died.
long ChildPeakGrowthMiB(const std::function<int()>& body, int* outcome) {
  const pid_t pid = fork();
  if (pid == 0) {
    struct rusage usage {};
    getrusage(RUSAGE_SELF, &usage);
    const long before = std::max(ResidentKiB(), usage.ru_maxrss);
    int result = 2;
    try {
      result = body();
    } catch (...) {  // never back into the test framework's copy
    }
    getrusage(RUSAGE_SELF, &usage);
    const long growth = std::clamp((usage.ru_maxrss - before) / 1024, 0L, 63L);
    _exit(static_cast<int>(growth) * 4 + result);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
  *outcome = WEXITSTATUS(status) % 4;
  return WEXITSTATUS(status) / 4;
}

// 0 when loading `bytes` fails with kModelError, 1 when it loads, 2 for any
// other outcome (for a child's exit status).
int LoadOutcome(std::span<const uint8_t> bytes, const std::string& name) {
  try {
    LoadModelBytes(bytes, name, {.checksum = false});
    return 1;
  } catch (const Error& error) {
    return error.code() == ErrorCode::kModelError ? 0 : 2;
  } catch (...) {
    return 2;
  }
}

// Guards the measurement: touching 100 MiB shows.
TEST(ModelCorrupt, ChildPeakGrowthSeesALargeAllocation) {
  int outcome = -1;
  const long growth = ChildPeakGrowthMiB(
      [] {
        std::vector<char> big(size_t{100} << 20);
        // Volatile writes: neither they nor the allocation can be elided.
        volatile char* pages = big.data();
        for (size_t i = 0; i < big.size(); i += 4096) pages[i] = 1;
        return pages[big.size() - 4096] == 1 ? 0 : 1;
      },
      &outcome);
  EXPECT_EQ(outcome, 0);
  EXPECT_EQ(growth, 63);
}

// Asserts that loading `bytes` is refused cleanly (message with `fragment`)
// and that the refusal raises the peak memory by less than 64 MiB.
void ExpectRefusedWithoutLargeAllocation(const Bytes& bytes,
                                         const std::string& name,
                                         const std::string& fragment) {
  EXPECT_TRUE(FailsCleanly(bytes, name, fragment));
  int outcome = -1;
  const long growth =
      ChildPeakGrowthMiB([&] { return LoadOutcome(bytes, name); }, &outcome);
  EXPECT_EQ(outcome, 0) << "0: refused as a model error";
  EXPECT_GE(growth, 0) << "the child died";
  // Under ASan every allocation carries redzones and freed blocks stay in
  // quarantine: the bound holds for the real allocator only.
  if (!testing::kAddressSanitizer) {
    EXPECT_LT(growth, 63) << "MiB more at the peak (63: at least)";
  }
}

// --- synthetic checkpoints
// ----------------------------------------------------

TEST(ModelCorrupt, SyntheticCheckpointIsValid) {
  // Guards the cases below: they change one thing of this file.
  const LoadedModel model =
      LoadModelBytes(CheckpointZip(TinyStateDict()), "tiny.pt");
  EXPECT_EQ(model.info.format, ModelFormat::kWespeakerCheckpoint);
  EXPECT_EQ(model.info.architecture.name, "ResNet10");
  // Identity BatchNorm with beta 0.5, mean 0.25: folded bias 0.25.
  EXPECT_NEAR(model.weights.stem.bias[0], 0.25f, 1e-5f);
}

TEST(ModelCorrupt, RefusesPicklesThatCallDangerousFunctions) {
  const std::vector<std::pair<std::string, std::string>> calls = {
      {"os", "system"},          {"posix", "system"},
      {"builtins", "eval"},      {"builtins", "exec"},
      {"__builtin__", "eval"},   {"subprocess", "Popen"},
      {"builtins", "__import__"}};
  for (const auto& [module, name] : calls) {
    SCOPED_TRACE(module + "." + name);
    // {'state_dict': module.name('touch /tmp/pwned')} inside a real-looking
    // checkpoint: the call must be refused, not deferred.
    PickleWriter p;
    p.Op(0x80).Op(2).Op('}').Str("state_dict");
    p.Global(module, name).Str("touch /tmp/voxprint-pwned").Op(0x85).Op('R');
    p.Op('s').Op('.');
    const std::vector<Tensor> tensors = TinyStateDict();
    EXPECT_TRUE(FailsCleanly(CheckpointZip(tensors, p.bytes()), "evil.pt",
                             "refuses to call " + module + "." + name));
  }
  // The same call hidden behind NEWOBJ and STACK_GLOBAL.
  PickleWriter p;
  p.Op(0x80).Op(4).Str("subprocess").Str("Popen").Op(0x93);
  p.Str("sh").Op(0x85).Op(0x81).Op('.');
  EXPECT_TRUE(FailsCleanly(CheckpointZip({}, p.bytes()), "evil.pt",
                           "refuses to call subprocess.Popen"));
  EXPECT_FALSE(fs::exists("/tmp/voxprint-pwned"));
}

TEST(ModelCorrupt, RefusesAbsurdSizesBeforeAllocating) {
  {
    std::vector<Tensor> t = TinyStateDict();
    Find(t, "layer1.0.conv1.weight").claimed_numel = int64_t{1} << 62;
    EXPECT_TRUE(FailsCleanly(CheckpointZip(t), "absurd.pt",
                             "storage claims 4611686018427387904 elements"));
  }
  {
    std::vector<Tensor> t = TinyStateDict();
    Find(t, "seg_1.weight").shape = {int64_t{1} << 31, int64_t{1} << 31};
    EXPECT_TRUE(FailsCleanly(CheckpointZip(t), "absurd.pt", "seg_1.weight"));
  }
  {  // a view far outside its storage
    std::vector<Tensor> t = TinyStateDict();
    Find(t, "seg_1.bias").offset = int64_t{1} << 62;
    EXPECT_TRUE(FailsCleanly(CheckpointZip(t), "absurd.pt", "reads element"));
  }
  {  // strides that overflow
    std::vector<Tensor> t = TinyStateDict();
    Find(t, "layer2.0.conv1.weight").strides = {int64_t{1} << 62, 1, 1, 1};
    EXPECT_TRUE(FailsCleanly(CheckpointZip(t), "absurd.pt", "overflow"));
  }
  {  // negative stride
    std::vector<Tensor> t = TinyStateDict();
    Find(t, "layer2.0.conv1.weight").strides = {-1, 1, 1, 1};
    EXPECT_TRUE(FailsCleanly(CheckpointZip(t), "absurd.pt", "negative"));
  }
  {  // storage entry shorter than the pickle claims
    std::vector<Tensor> t = TinyStateDict();
    Find(t, "bn1.bias").claimed_numel = 3;
    EXPECT_TRUE(FailsCleanly(CheckpointZip(t), "absurd.pt",
                             "holds 8 bytes, expected 12"));
  }
  {  // huge string length in the pickle
    PickleWriter p;
    p.Op(0x80).Op(2).Op('X');
    Put32(p.bytes(), 0xfffffff0u);
    p.Op('.');
    EXPECT_TRUE(FailsCleanly(CheckpointZip({}, p.bytes()), "absurd.pt",
                             "exceeds the limit"));
  }
  {  // LONG4 of 2 GB
    PickleWriter p;
    p.Op(0x80).Op(2).Op(0x8b);
    Put32(p.bytes(), 0x7fffffffu);
    p.Op('.');
    EXPECT_TRUE(FailsCleanly(CheckpointZip({}, p.bytes()), "absurd.pt",
                             "larger than 64 bits"));
  }
}

// The weight bomb: 28 KB of stride-0 views shaped as a ResNet34 with 1024
// base channels claim 5.5 G weights (it once allocated 11.5 GB and ended in
// std::bad_alloc). The parameter bound refuses it from the shapes alone.
TEST(ModelCorrupt, RefusesStrideZeroWeightBombBeforeAllocating) {
  ResNetArchitecture arch;
  arch.base_channels = 1024;
  const Bytes bomb = CheckpointZip(StateDictFor(arch, /*stride0=*/true));
  EXPECT_LT(bomb.size(), 64u * 1024);
  ExpectRefusedWithoutLargeAllocation(
      bomb, "bomb1024.pt",
      "ResNet34 with 1024 base channels has 5484334336 parameters, more than "
      "the limit of 67108864");
}

// The same bombs as torch.save writes them (tests/support/
// make_bomb_models.py: every tensor an `expand`ed view of one number).
TEST(ModelCorrupt, RefusesTorchMadeStrideZeroBombs) {
  ExpectRefusedWithoutLargeAllocation(
      ReadAll(StubDir() / "stride0-base1024.pt"), "stride0-base1024.pt",
      "ResNet34 with 1024 base channels has 5484334336 parameters");
  ExpectRefusedWithoutLargeAllocation(
      ReadAll(StubDir() / "stride0-base2.pt"), "stride0-base2.pt",
      "stride0-base2.pt: tensor conv1.weight: has stride 0 on dimension 0 "
      "of size 2");
  // From the file itself, read in place.
  const std::string path = (StubDir() / "stride0-base1024.pt").string();
  try {
    LoadModelFile(path);
    ADD_FAILURE() << "loaded " << path;
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::kModelError);
    EXPECT_EQ(std::string(error.what()).rfind(path + ": ResNet34 with 1024", 0),
              0u)
        << error.what();
  }
}

// The kit's hostile checkpoint (stride-0 views, 256 base channels, finite
// weights that gave non-finite embeddings) must now be a model error.
TEST(ModelCorrupt, RefusesTheKitsStrideZeroBomb) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  const fs::path path =
      testing::ReferenceDir() / "hostile" / "bomb_stride0_base256.pt";
  try {
    LoadModelFile(path.string());
    FAIL() << "loaded " << path;
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::kModelError);
    const std::string message = error.what();
    EXPECT_EQ(message.rfind(path.string() + ": ", 0), 0u) << message;
    EXPECT_NE(message.find("256 base channels has"), std::string::npos)
        << message;
    EXPECT_NE(message.find("more than the limit of 67108864"),
              std::string::npos)
        << message;
  }
}

// Within the parameter bound, a view that reads a storage element twice is
// refused by name: stride 0 makes one number a whole tensor, overlapping
// strides repeat part of a storage.
TEST(ModelCorrupt, RefusesViewsThatReadAStorageElementTwice) {
  ResNetArchitecture arch;
  arch.base_channels = 2;
  arch.blocks_per_stage = {1, 1, 1, 1};
  arch.embedding_dim = 2;
  EXPECT_TRUE(FailsCleanly(CheckpointZip(StateDictFor(arch, true)),
                           "stride0.pt",
                           "stride0.pt: tensor conv1.weight: has stride 0 on "
                           "dimension 0 of size 2"));
  {  // one stride 0 among real strides
    std::vector<Tensor> t = TinyStateDict();
    Find(t, "layer1.0.conv1.weight").strides = {9, 0, 3, 1};
    EXPECT_TRUE(FailsCleanly(CheckpointZip(t), "stride0.pt",
                             "layer1.0.conv1.weight: has stride 0 on "
                             "dimension 1 of size 2"));
  }
  {  // [2, 2, 3, 3] with strides [9, 9, 3, 1]: dims 0 and 1 read alike
    std::vector<Tensor> t = TinyStateDict();
    Find(t, "layer1.0.conv1.weight").strides = {9, 9, 3, 1};
    EXPECT_TRUE(FailsCleanly(CheckpointZip(t), "overlap.pt",
                             "layer1.0.conv1.weight: has sizes [2, 2, 3, 3] "
                             "and strides [9, 9, 3, 1] that overlap"));
  }
  {  // rows that overlap by one element
    std::vector<Tensor> t = TinyStateDict();
    Find(t, "layer1.0.conv1.weight").strides = {18, 9, 2, 1};
    EXPECT_TRUE(FailsCleanly(CheckpointZip(t), "overlap.pt", "overlap"));
  }
  {  // a permuted layout and a strided slice read each element once: fine
    std::vector<Tensor> t = TinyStateDict();
    Find(t, "layer1.0.conv1.weight").strides = {1, 2, 12, 4};
    Tensor& bias = Find(t, "seg_1.bias");
    bias.values = {0, 7, 0};  // elements 0 and 2 of a storage of 3
    bias.strides = {2};
    const LoadedModel model = LoadModelBytes(CheckpointZip(t), "views.pt");
    EXPECT_EQ(model.weights.embedding_bias, (std::vector<float>{0, 0}));
  }
}

// A zip entry that claims more bytes than the file holds is refused before
// anything is allocated for it (the loader used to allocate the declared
// storage, up to 1 GiB, before looking at the entry).
TEST(ModelCorrupt, RefusesEntriesClaimingMoreThanTheFileHolds) {
  constexpr int64_t kClaimedFloats = 100'000'000;  // 400 MB
  std::vector<Tensor> t = TinyStateDict();
  Find(t, "seg_1.bias").claimed_numel = kClaimedFloats;
  const auto zip_with = [](const std::vector<Tensor>& t, int64_t claimed_size,
                           uint16_t method) {
    const Bytes pickle = StateDictPickle(t);
    std::vector<ZipEntry> entries = {{"archive/data.pkl", pickle}};
    for (size_t i = 0; i < t.size(); ++i) {
      ZipEntry entry{"archive/data/" + std::to_string(i),
                     FloatBytes(t[i].values)};
      if (t[i].key == "seg_1.bias") {
        entry.claimed_size = claimed_size;
        entry.method = method;
      }
      entries.push_back(entry);
    }
    return MakeZip(entries);
  };
  const std::string entry_name = "archive/data/" + std::to_string(t.size() - 1);
  // Stored: 8 bytes in the file, 400 MB claimed.
  ExpectRefusedWithoutLargeAllocation(
      zip_with(t, kClaimedFloats * 4, 0), "claims.pt",
      entry_name + ": claims 400000000 bytes from 8 in the file");
  // Deflated: no 8 bytes of deflate expand to 400 MB.
  ExpectRefusedWithoutLargeAllocation(zip_with(t, kClaimedFloats * 4, 8),
                                      "deflate.pt", "more than the file holds");
  // Other compression methods (bzip2: far higher ratios) are refused.
  EXPECT_TRUE(FailsCleanly(zip_with(TinyStateDict(), 8, 12), "bzip2.pt",
                           "is compressed with method 12"));
}

// Every tensor read allocates its storage: many small views of one large
// storage are bounded together (at most 512 MiB of storages per load).
TEST(ModelCorrupt, BoundsTheStorageBytesOfALoad) {
  // Every BatchNorm vector of ResNet10 (48 of them) a view of one storage
  // of `floats` ones, which tensor 0 (conv1.weight) writes.
  const auto shared = [](int64_t floats) {
    std::vector<Tensor> t = TinyStateDict();
    for (size_t i = 0; i < t.size(); ++i) {
      if (t[i].key.find("bn") == std::string::npos &&
          t[i].key.find("shortcut.1") == std::string::npos)
        continue;
      t[i].storage_key = "big";
      t[i].claimed_numel = floats;
      t[i].write_storage = false;
    }
    std::vector<ZipEntry> entries = {
        {"archive/data.pkl", StateDictPickle(t)},
        {"archive/data/big", FloatBytes(std::vector<float>(floats, 1.0f))}};
    for (size_t i = 0; i < t.size(); ++i)
      if (t[i].write_storage)
        entries.push_back(
            {"archive/data/" + std::to_string(i), FloatBytes(t[i].values)});
    return MakeZip(entries);
  };
  // 48 reads of 4 MiB: shared storages as such are fine.
  const LoadedModel model = LoadModelBytes(shared(1 << 20), "shared.pt");
  EXPECT_NEAR(model.weights.stem.bias[0], 0.0f, 1e-5f);  // beta - mean
  // 48 reads of 12 MiB: refused once 512 MiB have been read.
  EXPECT_TRUE(FailsCleanly(shared(3 << 20), "shared.pt",
                           "bytes, more than the limit of 536870912"));
}

// A bit flipped inside a tensor's bytes of a torch.save file fails the
// entry's CRC-32 (which libzip checks once the entry is read to its end),
// whether the zip is read from memory or from the file in place.
TEST(ModelCorrupt, RefusesAFlippedBitInATensorByItsCrc) {
  Bytes bytes = ReadAll(StubDir() / "stub-basic-wespeaker.pt");
  // The largest entry under data/, from the central directory; its bytes
  // follow its local header.
  const auto u16 = [&](size_t i) -> size_t {
    return bytes[i] | bytes[i + 1] << 8;
  };
  size_t best_start = 0, best_size = 0;
  for (size_t at = 0; at + 46 <= bytes.size(); ++at) {
    if (bytes[at] != 'P' || bytes[at + 1] != 'K' || bytes[at + 2] != 1 ||
        bytes[at + 3] != 2)
      continue;
    const size_t size = u16(at + 20) | u16(at + 22) << 16;
    const size_t name_length = u16(at + 28);
    const std::string name(
        bytes.begin() + static_cast<ptrdiff_t>(at + 46),
        bytes.begin() + static_cast<ptrdiff_t>(at + 46 + name_length));
    const size_t local = u16(at + 42) | u16(at + 44) << 16;
    if (name.find("/data/") != std::string::npos && size > best_size) {
      best_start = local + 30 + u16(local + 26) + u16(local + 28);
      best_size = size;
    }
  }
  ASSERT_GT(best_size, 100u);
  bytes[best_start + best_size / 2] ^= 0x04;
  EXPECT_TRUE(FailsCleanly(bytes, "flipped.pt", "is corrupt: CRC error"));

  const fs::path path =
      fs::temp_directory_path() /
      ("voxprint-flipped-" + std::to_string(::getpid()) + ".pt");
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
  try {
    LoadModelFile(path.string());
    ADD_FAILURE() << "loaded a flipped file";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::kModelError);
    EXPECT_NE(std::string(error.what()).find("is corrupt: CRC error"),
              std::string::npos)
        << error.what();
  }
  fs::remove(path);
}

// A load that runs out of memory is a model error naming the file, not
// std::bad_alloc ending the program as an internal error. (Which
// allocations fail is set by this executable's operator new, below.)
TEST(ModelCorrupt, AllocationFailureWhileLoadingIsAModelError) {
  ResNetArchitecture arch;
  arch.base_channels = 16;  // seg_1.weight: 2.6 MB
  arch.blocks_per_stage = {1, 1, 1, 1};
  const Bytes zip = CheckpointZip(StateDictFor(arch));
  ASSERT_NO_THROW(LoadModelBytes(zip, "big.pt"));
  g_fail_allocations_from = size_t{1} << 20;
  EXPECT_TRUE(FailsCleanly(zip, "big.pt",
                           "big.pt: out of memory while loading the model's "
                           "weights"));
  g_fail_allocations_from = 0;
}

TEST(ModelCorrupt, RefusesWrongDtypesAndShapes) {
  {
    std::vector<Tensor> t = TinyStateDict();
    Find(t, "conv1.weight").storage_type = "LongStorage";
    Find(t, "conv1.weight").claimed_numel = 9;  // the 72 bytes as int64
    EXPECT_TRUE(FailsCleanly(CheckpointZip(t), "dtype.pt",
                             "conv1.weight: has dtype int64"));
  }
  {
    std::vector<Tensor> t = TinyStateDict();
    Find(t, "layer3.0.conv2.weight").shape = {8, 8, 1, 1};
    EXPECT_TRUE(FailsCleanly(CheckpointZip(t), "shape.pt",
                             "layer3.0.conv2.weight has shape [8, 8, 1, 1]"));
  }
  EXPECT_TRUE(FailsCleanly(
      ReadAll(StubDir() / "stub-wrong-shape.pt"), "stub-wrong-shape.pt",
      "layer2.0.conv2.weight has shape [4, 4, 1, 1], expected [4, 4, 3, 3]"));
  EXPECT_TRUE(FailsCleanly(ReadAll(StubDir() / "stub-int-weight.pt"),
                           "stub-int-weight.pt",
                           "layer1.0.conv1.weight: has dtype int64"));
}

// Tensors are read on several threads; with several bad ones the error is
// still the one a sequential read meets first (stem before deep layers),
// whatever thread reached which first. Repeated to give races a chance.
TEST(ModelCorrupt, SeveralBadTensorsReportTheFirstInModelOrder) {
  std::vector<Tensor> t = TinyStateDict();
  Find(t, "layer4.0.bn2.running_var").values.assign(16, -3.0f);
  Find(t, "layer2.0.conv1.weight").storage_type = "LongStorage";
  Find(t, "seg_1.bias").shape = {3};
  const Bytes zip = CheckpointZip(t);
  for (int run = 0; run < 20; ++run)
    ASSERT_TRUE(
        FailsCleanly(zip, "several.pt", "layer2.0.conv1.weight: has dtype"))
        << "run " << run;
}

TEST(ModelCorrupt, RefusesBrokenArchives) {
  const std::vector<Tensor> tensors = TinyStateDict();
  const Bytes pickle = StateDictPickle(tensors);
  EXPECT_TRUE(FailsCleanly(MakeZip({{"archive/version", {'3'}}}), "nopickle.pt",
                           "without a data.pkl"));
  EXPECT_TRUE(FailsCleanly(MakeZip({}), "emptyzip.pt", "data.pkl"));
  {
    std::vector<Tensor> t = tensors;
    Find(t, "layer4.0.bn2.running_var").write_storage = false;
    EXPECT_TRUE(FailsCleanly(CheckpointZip(t), "nostorage.pt",
                             "archive lacks archive/data/"));
  }
  {
    std::vector<ZipEntry> entries = {{"archive/data.pkl", pickle},
                                     {"archive/byteorder", {'b', 'i', 'g'}}};
    EXPECT_TRUE(FailsCleanly(MakeZip(entries), "bigendian.pt", "big-endian"));
  }
  {
    std::vector<ZipEntry> entries = {{"a/data.pkl", pickle},
                                     {"b/data.pkl", pickle}};
    EXPECT_TRUE(FailsCleanly(MakeZip(entries), "twice.pt", "several data.pkl"));
  }
  {  // a pickle of something else than a dict
    PickleWriter p;
    p.Op(0x80).Op(2).Op(']').Op('.');
    EXPECT_TRUE(
        FailsCleanly(CheckpointZip({}, p.bytes()), "list.pt", "not a dict"));
  }
  {  // a dict without tensors
    PickleWriter p;
    p.Op(0x80).Op(2).Op('}').Op('.');
    EXPECT_TRUE(
        FailsCleanly(CheckpointZip({}, p.bytes()), "nothing.pt", "no tensors"));
  }
  {  // a zip whose data is damaged (CRC mismatch)
    Bytes zip = CheckpointZip(tensors);
    const std::string marker = "archive/data/3";
    auto it = std::search(zip.begin(), zip.end(), marker.begin(), marker.end());
    ASSERT_NE(it, zip.end());
    *(it + static_cast<ptrdiff_t>(marker.size()) + 1) ^= 0x40;
    EXPECT_TRUE(FailsCleanly(zip, "crc.pt"));
  }
}

// libzip keeps ~200 bytes per central-directory entry: a zip64 archive of
// hundreds of thousands of empty entries is refused before libzip reads it.
TEST(ModelCorrupt, RefusesZipsOfTooManyEntries) {
  constexpr uint32_t kEntries = 300'000;
  Bytes zip, central;
  for (uint32_t i = 0; i < kEntries; ++i) {
    const std::string name = "a/" + std::to_string(i);
    const uint32_t offset = static_cast<uint32_t>(zip.size());
    Put32(zip, 0x04034b50);
    for (uint32_t v : {20, 0, 0, 0, 0x21}) Put16(zip, v);
    for (int k = 0; k < 3; ++k) Put32(zip, 0);  // crc, sizes
    Put16(zip, static_cast<uint32_t>(name.size()));
    Put16(zip, 0);
    zip.insert(zip.end(), name.begin(), name.end());
    Put32(central, 0x02014b50);
    for (uint32_t v : {20, 20, 0, 0, 0, 0x21}) Put16(central, v);
    for (int k = 0; k < 3; ++k) Put32(central, 0);
    Put16(central, static_cast<uint32_t>(name.size()));
    for (int k = 0; k < 4; ++k) Put16(central, 0);
    Put32(central, 0);
    Put32(central, offset);
    central.insert(central.end(), name.begin(), name.end());
  }
  const uint64_t central_offset = zip.size();
  zip.insert(zip.end(), central.begin(), central.end());
  const uint64_t zip64_record = zip.size();
  const auto put64 = [&](uint64_t v) {
    Put32(zip, static_cast<uint32_t>(v));
    Put32(zip, static_cast<uint32_t>(v >> 32));
  };
  Put32(zip, 0x06064b50);
  put64(44);
  Put16(zip, 45);
  Put16(zip, 45);
  Put32(zip, 0);
  Put32(zip, 0);
  put64(kEntries);
  put64(kEntries);
  put64(central.size());
  put64(central_offset);
  Put32(zip, 0x07064b50);  // locator
  Put32(zip, 0);
  put64(zip64_record);
  Put32(zip, 1);
  Put32(zip, 0x06054b50);
  for (uint32_t v : {0, 0, 0xffff, 0xffff}) Put16(zip, v);
  Put32(zip, 0xffffffffu);
  Put32(zip, 0xffffffffu);
  Put16(zip, 0);
  ExpectRefusedWithoutLargeAllocation(
      zip, "entries.pt",
      "zip archive holds 300000 entries, more than the limit of 100000");
}

TEST(ModelCorrupt, RefusesNonModels) {
  EXPECT_TRUE(FailsCleanly(Bytes{}, "empty.bin", "empty file"));
  std::mt19937 rng(1234);
  for (size_t size : {1u, 3u, 4u, 100u, 4096u, 1u << 20}) {
    Bytes random(size);
    for (uint8_t& b : random) b = static_cast<uint8_t>(rng());
    EXPECT_TRUE(FailsCleanly(random, "random.bin")) << size;
    if (size >= 4) {
      random[0] = 'P', random[1] = 'K', random[2] = 3, random[3] = 4;
      EXPECT_TRUE(FailsCleanly(random, "random-zip.bin")) << size;
    }
  }
  const std::string text = "# not a model\nhello world\n";
  EXPECT_TRUE(FailsCleanly(Bytes(text.begin(), text.end()), "text.bin",
                           "not a model file (neither a torch.save zip nor "
                           "ONNX)"));
  const Bytes npy = ReadAll(StubDir() / "stub-basic.mean-vec.npy");
  EXPECT_TRUE(FailsCleanly(npy, "mean-vec.npy", "not a model file"));
}

TEST(ModelCorrupt, DirectoryIsAnIoError) {
  try {
    LoadModelFile(StubDir().string());
    FAIL() << "loaded a directory";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::kIoError);
  }
}

// Every value of a pickle takes ~170 bytes for as little as one byte of
// the file: the default limits keep a pickle of millions of them (it once
// took 350 MB for 4 MB) to a few tens of MB.
TEST(ModelCorrupt, RefusesPicklesOfMillionsOfValues) {
  PickleWriter p;
  p.Op(0x80).Op(2);
  for (int i = 0; i < 2'000'000; ++i) p.Op(']').Op('0');  // [] then POP
  p.Op('}').Op('.');
  ExpectRefusedWithoutLargeAllocation(CheckpointZip({}, p.bytes()), "values.pt",
                                      "more than 250000 values");
  // A tensor of 100 000 dimensions.
  std::vector<Tensor> t = TinyStateDict();
  Find(t, "seg_1.bias").shape.assign(100'000, 1);
  EXPECT_TRUE(FailsCleanly(CheckpointZip(t), "rank.pt",
                           "_rebuild_tensor_v2 with 100000 dimensions "
                           "(more than 8)"));
}

// protobuf makes an object of every message and field it reads: a file of
// tiny entries would take ~75 times its size to parse. Refused before
// protobuf runs.
TEST(ModelCorrupt, RefusesOnnxFilesThatWouldTakeHugeMemoryToParse) {
  const auto varint = [](Bytes& out, uint64_t value) {
    while (value >= 0x80) {
      out.push_back(static_cast<uint8_t>(value | 0x80));
      value >>= 7;
    }
    out.push_back(static_cast<uint8_t>(value));
  };
  // ModelProto.graph (field 7) holding `count` copies of `entry`.
  const auto model_of = [&](const Bytes& entry, size_t count) {
    Bytes graph;
    graph.reserve(entry.size() * count);
    for (size_t i = 0; i < count; ++i)
      graph.insert(graph.end(), entry.begin(), entry.end());
    Bytes model = {0x3a};
    varint(model, graph.size());
    model.insert(model.end(), graph.begin(), graph.end());
    return model;
  };
  // 5 M empty nodes (GraphProto.node, field 1): 10 MB; it took 750 MB.
  ExpectRefusedWithoutLargeAllocation(model_of({0x0a, 0x00}, 5'000'000),
                                      "nodes.onnx",
                                      "ONNX protobuf would take more than");
  // 5 M empty graph inputs (field 11), then 5 M unknown varint fields.
  ExpectRefusedWithoutLargeAllocation(model_of({0x5a, 0x00}, 5'000'000),
                                      "inputs.onnx",
                                      "bytes of memory to parse");
  ExpectRefusedWithoutLargeAllocation(model_of({0xf8, 0x06, 0x00}, 5'000'000),
                                      "unknown.onnx",
                                      "bytes of memory to parse");
  // Truncated inside a nested message: not ONNX, as protobuf would say.
  Bytes cut = model_of({0x0a, 0x00}, 10);
  cut.resize(cut.size() - 1);
  EXPECT_TRUE(FailsCleanly(cut, "cut.onnx", "not a model file"));
}

// An initializer whose dims claim more elements than its bytes hold is
// refused before anything is allocated for the dims (the reader used to
// allocate them first: 151 MB here); dims beyond the parameter bound are out
// of range.
TEST(ModelCorrupt, RefusesOnnxInitializersLargerThanTheirBytes) {
  onnx::ModelProto model;
  const Bytes stub = ReadAll(StubDir() / "stub-basic.onnx");
  ASSERT_TRUE(model.ParseFromArray(stub.data(), static_cast<int>(stub.size())));
  const std::string stem_weight = [&] {
    for (const onnx::NodeProto& node : model.graph().node())
      if (node.op_type() == "Conv") return node.input(1);
    return std::string();
  }();
  onnx::TensorProto* weight = nullptr;
  for (onnx::TensorProto& tensor :
       *model.mutable_graph()->mutable_initializer())
    if (tensor.name() == stem_weight) weight = &tensor;
  ASSERT_NE(weight, nullptr);
  ASSERT_TRUE(weight->has_raw_data());
  const auto with_dims = [&](std::vector<int64_t> dims) {
    weight->clear_dims();
    for (int64_t d : dims) weight->add_dims(d);
    std::string bytes;
    model.SerializeToString(&bytes);
    return Bytes(bytes.begin(), bytes.end());
  };
  ExpectRefusedWithoutLargeAllocation(
      with_dims({2048, 2048, 3, 3}), "dims.onnx",
      "weight '" + stem_weight + "' holds " +
          std::to_string(weight->raw_data().size()) +
          " bytes for 37748736 elements");
  EXPECT_TRUE(FailsCleanly(with_dims({8192, 8192, 3, 3}), "dims.onnx",
                           "has dimensions [8192, 8192, 3, 3] (out of range)"));
  EXPECT_TRUE(FailsCleanly(with_dims({2, -1, 3, 3}), "dims.onnx",
                           "has dimensions [2, -1, 3, 3] (out of range)"));
}

TEST(ModelCorrupt, RefusesBrokenOnnxGraphs) {
  EXPECT_TRUE(FailsCleanly(ReadAll(StubDir() / "stub-missing-initializer.onnx"),
                           "missing.onnx", "is missing (no initializer)"));
  EXPECT_TRUE(FailsCleanly(ReadAll(StubDir() / "stub-wrong-kernel.onnx"),
                           "kernel.onnx",
                           "kernel_shape [5, 5] does not match its weight"));
  EXPECT_TRUE(FailsCleanly(
      ReadAll(StubDir() / "stub-stem-5x5.onnx"), "stem.onnx",
      "conv1 (stem) is [2, 1, 5x5] stride 1 padding 2, the architecture "
      "needs [2, 1, 3x3] stride 1 padding 1"));
}

// --- fuzzing: truncation and flipped bytes -----------------------------------

TEST(ModelCorrupt, TruncatedSyntheticPicklesFailCleanly) {
  const std::vector<Tensor> tensors = TinyStateDict();
  const Bytes pickle = StateDictPickle(tensors);
  for (size_t length = 0; length < pickle.size(); length += 11) {
    const Bytes cut(pickle.begin(), pickle.begin() + length);
    ASSERT_TRUE(FailsCleanly(CheckpointZip(tensors, cut), "cut.pt")) << length;
  }
}

TEST(ModelCorrupt, FlippedSyntheticPicklesLoadOrFailCleanly) {
  const std::vector<Tensor> tensors = TinyStateDict();
  const Bytes pickle = StateDictPickle(tensors);
  std::mt19937 rng(42);
  int loaded = 0;
  constexpr int kTrials = 1000;
  for (int trial = 0; trial < kTrials; ++trial) {
    Bytes flipped = pickle;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int f = 0; f < flips; ++f)
      flipped[rng() % flipped.size()] ^= static_cast<uint8_t>(1 + rng() % 255);
    const Bytes zip = CheckpointZip(tensors, flipped);
    try {
      const LoadedModel model = LoadModelBytes(zip, "flipped.pt");
      ValidateWeights(model.weights, "flipped.pt");
      ++loaded;
    } catch (const Error& error) {
      ASSERT_EQ(error.code(), ErrorCode::kModelError) << error.what();
      ASSERT_EQ(std::string(error.what()).rfind("flipped.pt: ", 0), 0u)
          << error.what();
      ASSERT_TRUE(IsPrintable(error.what())) << error.what();
    }
  }
  // Most flips hit structure; a few only change a name or a number.
  EXPECT_LT(loaded, kTrials);
}

void FlipFile(const fs::path& path, int trials, uint32_t seed) {
  Bytes bytes = ReadAll(path);
  ASSERT_FALSE(bytes.empty());
  std::mt19937 rng(seed);
  const std::string name = path.filename().string();
  for (int trial = 0; trial < trials; ++trial) {
    const size_t at = rng() % bytes.size();
    const uint8_t mask = static_cast<uint8_t>(1 + rng() % 255);
    bytes[at] ^= mask;
    ASSERT_TRUE(LoadsOrFailsCleanly(bytes, name)) << "byte " << at;
    bytes[at] ^= mask;
  }
}

void TruncateFile(const fs::path& path, int cuts) {
  const Bytes bytes = ReadAll(path);
  const std::string name = path.filename().string();
  for (int i = 0; i < cuts; ++i) {
    // Spread over the file, the last cut one byte short of the end.
    const size_t length =
        i + 1 == cuts ? bytes.size() - 1 : bytes.size() * i / cuts;
    ASSERT_TRUE(FailsCleanly(std::span(bytes.data(), length), name))
        << "truncated to " << length;
  }
}

TEST(ModelCorrupt, DamagedStubFilesLoadOrFailCleanly) {
  for (const char* name : {"stub-basic-pyannote.bin", "stub-basic-wespeaker.pt",
                           "stub-basic-mixed.pt", "stub-basic.onnx",
                           "stub-bottleneck.pt", "stub-bottleneck.onnx"}) {
    SCOPED_TRACE(name);
    FlipFile(StubDir() / name, 200, 7);
    TruncateFile(StubDir() / name, 60);
  }
}

TEST(ModelCorrupt, TruncatedKitModelsFailCleanly) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  for (const char* name :
       {"pytorch_model.bin", "avg_model.pt", "voxceleb_resnet34_LM.onnx"}) {
    SCOPED_TRACE(name);
    TruncateFile(testing::ReferenceDir() / "models" / name, 30);
  }
}

// LoadModelFile reads a checkpoint zip from the file itself (no copy in
// memory): damaged files on disk load or fail as cleanly as damaged bytes,
// with the file's path in the message. A flipped byte inside a tensor fails
// its CRC.
TEST(ModelCorrupt, DamagedCheckpointFilesOnDiskFailCleanly) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  const Bytes bytes =
      ReadAll(testing::ReferenceDir() / "models" / "pytorch_model.bin");
  const fs::path dir = fs::temp_directory_path() /
                       ("voxprint-damaged-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const auto load = [&](const Bytes& content, const std::string& file) {
    const fs::path path = dir / file;
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(content.data()),
               static_cast<std::streamsize>(content.size()));
    try {
      const LoadedModel model = LoadModelFile(path.string());
      ValidateWeights(model.weights, path.string());
      return std::string();
    } catch (const Error& error) {
      const std::string message = error.what();
      EXPECT_EQ(error.code(), ErrorCode::kModelError) << message;
      EXPECT_EQ(message.rfind(path.string() + ": ", 0), 0u) << message;
      return message;
    }
  };
  for (const size_t length :
       {size_t{4}, size_t{100}, bytes.size() / 2, bytes.size() - 1}) {
    SCOPED_TRACE("truncated to " + std::to_string(length));
    EXPECT_FALSE(
        load(Bytes(bytes.begin(), bytes.begin() + length), "cut.bin").empty());
  }
  Bytes flipped = bytes;
  flipped[bytes.size() / 2] ^= 0x40;  // inside the largest tensors
  const std::string message = load(flipped, "flipped.bin");
  EXPECT_NE(message.find("corrupt"), std::string::npos) << message;
  fs::remove_all(dir);
}

TEST(ModelCorrupt, FlippedKitModelsLoadOrFailCleanly) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  for (const char* name :
       {"pytorch_model.bin", "avg_model.pt", "voxceleb_resnet34_LM.onnx"}) {
    SCOPED_TRACE(name);
    Bytes bytes = ReadAll(testing::ReferenceDir() / "models" / name);
    // The structure lives at the ends: the pickle and zip headers at the
    // start, the central directory at the end; the ONNX graph nodes first.
    std::mt19937 rng(99);
    for (int trial = 0; trial < 8; ++trial) {
      const size_t span = 64 * 1024;
      size_t at = rng() % span;
      if (trial % 2) at = bytes.size() - 1 - at;
      const uint8_t mask = static_cast<uint8_t>(1 + rng() % 255);
      bytes[at] ^= mask;
      ASSERT_TRUE(LoadsOrFailsCleanly(bytes, name)) << "byte " << at;
      bytes[at] ^= mask;
    }
  }
}

}  // namespace
}  // namespace voxprint::model
