// A restricted reader for the pickles inside torch.save archives.
//
// It interprets the opcodes torch.save emits (protocols 2..5) into an inert
// value tree and NEVER imports or calls anything: a GLOBAL becomes a class
// reference, and a call (REDUCE, NEWOBJ) becomes either one of the few things
// a checkpoint needs (a tensor reference, an OrderedDict) or an inert
// placeholder that keeps its arguments. Calls on anything outside a short
// allow-list (torch.*, collections, numpy.*, pyannote.*, lightning, ...) are
// refused, so a pickle that would run os.system fails to load instead.
//
// Every read is bounds-checked and the number of values, memo entries,
// nested marks, stack entries and container items is limited; all failures
// throw voxprint::Error(kModelError) naming the source and the byte offset.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace voxprint::model::pickle {

// Element type of a torch storage.
enum class ScalarType {
  kFloat32,
  kFloat64,
  kFloat16,
  kBFloat16,
  kInt64,
  kInt32,
  kInt16,
  kInt8,
  kUInt8,
  kBool,
};
int ScalarSize(ScalarType type);
const char* ScalarName(ScalarType type);

// A tensor as torch._utils._rebuild_tensor_v2 describes it: a view into the
// storage stored in the archive as data/<storage_key>. Offsets, sizes and
// strides count elements of `dtype` and are NOT validated here.
struct TensorRef {
  std::string storage_key;
  ScalarType dtype = ScalarType::kFloat32;
  int64_t storage_numel = 0;  // as the persistent id claims
  int64_t storage_offset = 0;
  std::vector<int64_t> sizes;
  std::vector<int64_t> strides;
};

enum class Kind {
  kNone,
  kBool,
  kInt,
  kFloat,
  kString,
  kBytes,
  kTuple,
  kList,
  kDict,
  kSet,
  kGlobal,   // module + name, never resolved
  kObject,   // an inert result of a call: callable, args, state, items
  kStorage,  // a persistent-id storage (tensor fills key/dtype/numel)
  kTensor,
};

struct Value {
  Kind kind = Kind::kNone;
  int64_t integer = 0;  // kInt, kBool
  double real = 0;      // kFloat
  std::string text;     // kString, kBytes; kGlobal: the module
  std::string name;     // kGlobal: the attribute name
  // kTuple/kList/kSet: elements; kDict and kObject: key, value, key, ...
  std::vector<Value*> items;
  Value* callable = nullptr;          // kObject: the kGlobal that was "called"
  Value* args = nullptr;              // kObject: its argument tuple
  Value* state = nullptr;             // kObject: what BUILD attached
  std::unique_ptr<TensorRef> tensor;  // kStorage, kTensor

  // kDict lookup of a string key (linear; checkpoints are small); nullptr
  // when absent or when this is not a dict.
  const Value* Find(std::string_view key) const;
  // "module.name" of a kGlobal.
  std::string QualifiedName() const;
};

// Owns every value of one unpickled object graph (which may hold cycles).
struct PickleResult {
  std::vector<std::unique_ptr<Value>> arena;
  const Value* root = nullptr;
};

// A value takes ~170 bytes of memory for as little as one byte of pickle,
// so these bound the memory a pickle can claim (~50 MB at the limits). A
// ResNet34 checkpoint's pickle makes ~5 k values, a ResNet293 one ~25 k,
// a Lightning checkpoint with optimizer state a few times that.
struct PickleLimits {
  size_t max_values = 250'000;
  size_t max_memo_entries = 250'000;
  size_t max_stack = 250'000;
  size_t max_marks = 10'000;
  size_t max_container_items = 1'000'000;  // summed over all containers
  size_t max_text_bytes = 16u << 20;       // one string or bytes object
  size_t max_tensor_rank = 8;              // sizes and strides of a tensor
};

// Interprets `bytes`. `source` (e.g. "model.bin (archive/data.pkl)") starts
// every error message. Throws Error(kModelError).
PickleResult Unpickle(std::span<const uint8_t> bytes, const std::string& source,
                      const PickleLimits& limits = {});

}  // namespace voxprint::model::pickle
