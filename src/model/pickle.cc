#include "model/pickle.h"

#include <array>
#include <bit>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <optional>
#include <unordered_map>
#include <utility>

#include "model/printable.h"
#include "voxprint/error.h"

namespace voxprint::model::pickle {

int ScalarSize(ScalarType type) {
  switch (type) {
    case ScalarType::kFloat64:
    case ScalarType::kInt64:
      return 8;
    case ScalarType::kFloat32:
    case ScalarType::kInt32:
      return 4;
    case ScalarType::kFloat16:
    case ScalarType::kBFloat16:
    case ScalarType::kInt16:
      return 2;
    case ScalarType::kInt8:
    case ScalarType::kUInt8:
    case ScalarType::kBool:
      return 1;
  }
  return 1;
}

const char* ScalarName(ScalarType type) {
  switch (type) {
    case ScalarType::kFloat32:
      return "float32";
    case ScalarType::kFloat64:
      return "float64";
    case ScalarType::kFloat16:
      return "float16";
    case ScalarType::kBFloat16:
      return "bfloat16";
    case ScalarType::kInt64:
      return "int64";
    case ScalarType::kInt32:
      return "int32";
    case ScalarType::kInt16:
      return "int16";
    case ScalarType::kInt8:
      return "int8";
    case ScalarType::kUInt8:
      return "uint8";
    case ScalarType::kBool:
      return "bool";
  }
  return "unknown";
}

const Value* Value::Find(std::string_view key) const {
  if (kind != Kind::kDict) return nullptr;
  for (size_t i = 0; i + 1 < items.size(); i += 2) {
    const Value* k = items[i];
    if (k->kind == Kind::kString && k->text == key) return items[i + 1];
  }
  return nullptr;
}

std::string Value::QualifiedName() const {
  return Printable(text) + "." + Printable(name);
}

namespace {

static_assert(std::endian::native == std::endian::little,
              "the pickle and tensor readers assume a little-endian host");

// Opcodes (Python's Lib/pickletools.py documents them).
enum Op : uint8_t {
  kMark = '(',
  kStop = '.',
  kPop = '0',
  kPopMark = '1',
  kDup = '2',
  kBinInt = 'J',
  kBinInt1 = 'K',
  kBinInt2 = 'M',
  kNone = 'N',
  kBinPersId = 'Q',
  kReduce = 'R',
  kBinString = 'T',
  kShortBinString = 'U',
  kBinUnicode = 'X',
  kAppend = 'a',
  kBuild = 'b',
  kGlobal = 'c',
  kDict = 'd',
  kEmptyDict = '}',
  kAppends = 'e',
  kBinGet = 'h',
  kLongBinGet = 'j',
  kList = 'l',
  kEmptyList = ']',
  kBinPut = 'q',
  kLongBinPut = 'r',
  kSetItem = 's',
  kTuple = 't',
  kEmptyTuple = ')',
  kSetItems = 'u',
  kBinFloat = 'G',
  kBinBytes = 'B',
  kShortBinBytes = 'C',
  kProto = 0x80,
  kNewObj = 0x81,
  kTuple1 = 0x85,
  kTuple2 = 0x86,
  kTuple3 = 0x87,
  kNewTrue = 0x88,
  kNewFalse = 0x89,
  kLong1 = 0x8a,
  kLong4 = 0x8b,
  kShortBinUnicode = 0x8c,
  kBinUnicode8 = 0x8d,
  kBinBytes8 = 0x8e,
  kEmptySet = 0x8f,
  kAddItems = 0x90,
  kFrozenSet = 0x91,
  kNewObjEx = 0x92,
  kStackGlobal = 0x93,
  kMemoize = 0x94,
  kFrame = 0x95,
  kByteArray8 = 0x96,
};

constexpr size_t kMaxGlobalNameBytes = 256;

bool InModule(std::string_view module, std::string_view root) {
  return module == root ||
         (module.size() > root.size() && module.starts_with(root) &&
          module[root.size()] == '.');
}

bool IsBuiltins(std::string_view module) {
  return module == "builtins" || module == "__builtin__";
}

std::optional<ScalarType> StorageScalarType(const Value& type) {
  if (type.kind != Kind::kGlobal) return std::nullopt;
  static const std::array<std::pair<std::string_view, ScalarType>, 28> kNames =
      {{
          {"FloatStorage", ScalarType::kFloat32},
          {"DoubleStorage", ScalarType::kFloat64},
          {"HalfStorage", ScalarType::kFloat16},
          {"BFloat16Storage", ScalarType::kBFloat16},
          {"LongStorage", ScalarType::kInt64},
          {"IntStorage", ScalarType::kInt32},
          {"ShortStorage", ScalarType::kInt16},
          {"CharStorage", ScalarType::kInt8},
          {"ByteStorage", ScalarType::kUInt8},
          {"BoolStorage", ScalarType::kBool},
          {"UntypedStorage", ScalarType::kUInt8},
          {"_UntypedStorage", ScalarType::kUInt8},
          // torch dtype objects, as _rebuild_tensor_v3 passes them.
          {"float32", ScalarType::kFloat32},
          {"float", ScalarType::kFloat32},
          {"float64", ScalarType::kFloat64},
          {"double", ScalarType::kFloat64},
          {"float16", ScalarType::kFloat16},
          {"half", ScalarType::kFloat16},
          {"bfloat16", ScalarType::kBFloat16},
          {"int64", ScalarType::kInt64},
          {"long", ScalarType::kInt64},
          {"int32", ScalarType::kInt32},
          {"int", ScalarType::kInt32},
          {"int16", ScalarType::kInt16},
          {"short", ScalarType::kInt16},
          {"int8", ScalarType::kInt8},
          {"uint8", ScalarType::kUInt8},
          {"bool", ScalarType::kBool},
      }};
  if (!InModule(type.text, "torch")) return std::nullopt;
  for (const auto& [name, scalar] : kNames)
    if (name == type.name) return scalar;
  return std::nullopt;
}

class Unpickler {
 public:
  Unpickler(std::span<const uint8_t> bytes, const std::string& source,
            const PickleLimits& limits)
      : bytes_(bytes), source_(source), limits_(limits) {}

  PickleResult Run() {
    while (true) {
      op_offset_ = pos_;
      const uint8_t op = U8();
      if (op == kStop) break;
      Step(op);
    }
    if (stack_.empty()) Fail("STOP with an empty stack");
    result_.root = stack_.back();
    return std::move(result_);
  }

 private:
  [[noreturn]] void Fail(const std::string& what) const {
    throw Error(ErrorCode::kModelError, source_ + ": pickle at offset " +
                                            std::to_string(op_offset_) + ": " +
                                            what);
  }

  // --- bounds-checked reads -------------------------------------------
  void Need(uint64_t count) const {
    if (count > bytes_.size() - pos_)
      Fail("truncated (needs " + std::to_string(count) + " more bytes, " +
           std::to_string(bytes_.size() - pos_) + " left)");
  }
  uint8_t U8() {
    Need(1);
    return bytes_[pos_++];
  }
  template <typename T>
  T Fixed() {
    Need(sizeof(T));
    T value;
    std::memcpy(&value, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }
  std::string Text(uint64_t length) {
    if (length > limits_.max_text_bytes)
      Fail("string of " + std::to_string(length) + " bytes exceeds the limit");
    Need(length);
    std::string text(reinterpret_cast<const char*>(bytes_.data() + pos_),
                     static_cast<size_t>(length));
    pos_ += static_cast<size_t>(length);
    return text;
  }
  std::string Line() {
    std::string line;
    while (true) {
      const uint8_t c = U8();
      if (c == '\n') return line;
      if (c < 0x20 || c > 0x7e) Fail("GLOBAL name holds a non-printable byte");
      if (line.size() >= kMaxGlobalNameBytes) Fail("GLOBAL name is too long");
      line.push_back(static_cast<char>(c));
    }
  }

  // --- values -----------------------------------------------------------
  Value* New(Kind kind) {
    if (result_.arena.size() >= limits_.max_values)
      Fail("more than " + std::to_string(limits_.max_values) + " values");
    result_.arena.push_back(std::make_unique<Value>());
    result_.arena.back()->kind = kind;
    return result_.arena.back().get();
  }
  Value* NewInt(int64_t value) {
    Value* v = New(Kind::kInt);
    v->integer = value;
    return v;
  }
  Value* NewText(Kind kind, std::string text) {
    Value* v = New(kind);
    v->text = std::move(text);
    return v;
  }
  void AddItem(Value* container, Value* item) {
    if (++container_items_ > limits_.max_container_items)
      Fail("containers hold more than " +
           std::to_string(limits_.max_container_items) + " items");
    container->items.push_back(item);
  }

  // --- stack ------------------------------------------------------------
  void Push(Value* value) {
    if (stack_.size() >= limits_.max_stack) Fail("stack too deep");
    stack_.push_back(value);
  }
  Value* Pop() {
    if (stack_.size() <= MarkFloor()) Fail("pop from an empty stack");
    Value* value = stack_.back();
    stack_.pop_back();
    return value;
  }
  Value* Top() {
    if (stack_.size() <= MarkFloor()) Fail("empty stack");
    return stack_.back();
  }
  size_t MarkFloor() const { return marks_.empty() ? 0 : marks_.back(); }
  // Removes the items above the innermost mark and the mark itself.
  std::vector<Value*> PopMark() {
    if (marks_.empty()) Fail("no MARK to pop to");
    const size_t start = marks_.back();
    marks_.pop_back();
    std::vector<Value*> items(stack_.begin() + static_cast<ptrdiff_t>(start),
                              stack_.end());
    stack_.resize(start);
    return items;
  }

  Value* MakeTuple(std::vector<Value*> items) {
    Value* tuple = New(Kind::kTuple);
    for (Value* item : items) AddItem(tuple, item);
    return tuple;
  }

  void Memoize(uint64_t index, Value* value) {
    if (memo_.size() >= limits_.max_memo_entries && !memo_.contains(index))
      Fail("memo holds more than " + std::to_string(limits_.max_memo_entries) +
           " entries");
    memo_[index] = value;
  }
  Value* Recall(uint64_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end())
      Fail("memo entry " + std::to_string(index) + " was never stored");
    return it->second;
  }

  Value* MakeGlobal(std::string module, std::string name) {
    Value* global = New(Kind::kGlobal);
    global->text = std::move(module);
    global->name = std::move(name);
    return global;
  }

  // Integer from a little-endian two's-complement byte string (LONG1/4).
  Value* Long(uint64_t length) {
    if (length > 8)
      Fail("integer of " + std::to_string(length) +
           " bytes is larger than 64 bits");
    Need(length);
    uint64_t value = 0;
    for (uint64_t i = 0; i < length; ++i)
      value |= static_cast<uint64_t>(bytes_[pos_ + i]) << (8 * i);
    if (length > 0 && length < 8 && (bytes_[pos_ + length - 1] & 0x80))
      value |= ~uint64_t{0} << (8 * length);  // sign-extend
    pos_ += static_cast<size_t>(length);
    return NewInt(static_cast<int64_t>(value));
  }

  // --- calls ------------------------------------------------------------
  // Throws unless calling `callable` would be harmless for a checkpoint.
  void CheckCallAllowed(const Value& callable, const Value* args) {
    if (callable.kind != Kind::kGlobal)
      Fail("calls something that is not a class or function reference");
    const std::string& module = callable.text;
    const std::string& name = callable.name;
    bool allowed = InModule(module, "torch") || module == "collections" ||
                   InModule(module, "numpy") || InModule(module, "pyannote") ||
                   InModule(module, "pytorch_lightning") ||
                   module.starts_with("lightning") || module == "typing" ||
                   module == "copyreg" || module == "copy_reg";
    if (module == "_codecs") allowed = name == "encode";
    if (IsBuiltins(module)) {
      static constexpr std::array<std::string_view, 8> kSafe = {
          "set",       "frozenset", "slice", "complex",
          "bytearray", "list",      "dict",  "tuple"};
      for (std::string_view safe : kSafe) allowed = allowed || name == safe;
      // Enums pickle as getattr(EnumClass, "MEMBER"): allow that shape only.
      if (name == "getattr" && args && args->kind == Kind::kTuple &&
          args->items.size() == 2 && args->items[0]->kind == Kind::kGlobal &&
          !IsBuiltins(args->items[0]->text) &&
          args->items[1]->kind == Kind::kString &&
          !args->items[1]->text.starts_with("_")) {
        CheckCallAllowed(*args->items[0], nullptr);
        allowed = true;
      }
    }
    if (!allowed) Fail("refuses to call " + callable.QualifiedName());
    // copyreg helpers instantiate the class they are given: check it too.
    if ((module == "copyreg" || module == "copy_reg") && args &&
        args->kind == Kind::kTuple && !args->items.empty() &&
        args->items[0]->kind == Kind::kGlobal)
      CheckCallAllowed(*args->items[0], nullptr);
  }

  int64_t IntArg(const Value* value, const char* what) {
    if (value->kind != Kind::kInt && value->kind != Kind::kBool)
      Fail(std::string("tensor ") + what + " is not an integer");
    return value->integer;
  }
  std::vector<int64_t> IntTupleArg(const Value* value, const char* what) {
    if (value->kind != Kind::kTuple && value->kind != Kind::kList)
      Fail(std::string("tensor ") + what + " is not a tuple");
    std::vector<int64_t> out;
    for (const Value* item : value->items) out.push_back(IntArg(item, what));
    return out;
  }

  // torch._utils._rebuild_tensor{,_v2,_v3}(storage, offset, size, stride,
  // ..., [v3: dtype at index 6]).
  Value* RebuildTensor(const Value& callable, const Value& args) {
    const size_t needed = callable.name == "_rebuild_tensor_v3" ? 7 : 4;
    if (args.kind != Kind::kTuple || args.items.size() < needed)
      Fail(callable.QualifiedName() + " with malformed arguments");
    const Value* storage = args.items[0];
    if (storage->kind != Kind::kStorage || !storage->tensor)
      Fail(callable.QualifiedName() + " on something that is not a storage");
    Value* tensor = New(Kind::kTensor);
    tensor->tensor = std::make_unique<TensorRef>(*storage->tensor);
    TensorRef& ref = *tensor->tensor;
    ref.storage_offset = IntArg(args.items[1], "storage offset");
    for (const Value* shape : {args.items[2], args.items[3]})
      if (shape->items.size() > limits_.max_tensor_rank)
        Fail(callable.QualifiedName() + " with " +
             std::to_string(shape->items.size()) + " dimensions (more than " +
             std::to_string(limits_.max_tensor_rank) + ")");
    ref.sizes = IntTupleArg(args.items[2], "size");
    ref.strides = IntTupleArg(args.items[3], "stride");
    if (needed == 7) {
      const std::optional<ScalarType> dtype = StorageScalarType(*args.items[6]);
      if (!dtype) Fail("_rebuild_tensor_v3 with an unknown dtype");
      if (*dtype != ref.dtype) {
        // Untyped (byte) storages are reinterpreted as the tensor's dtype.
        if (ref.dtype != ScalarType::kUInt8 ||
            ref.storage_numel % ScalarSize(*dtype) != 0)
          Fail("_rebuild_tensor_v3 dtype does not match its storage");
        ref.storage_numel /= ScalarSize(*dtype);
        ref.dtype = *dtype;
      }
    }
    return tensor;
  }

  Value* Call(Value* callable, Value* args) {
    CheckCallAllowed(*callable, args);
    const std::string& module = callable->text;
    const std::string& name = callable->name;
    if (module == "torch._utils" &&
        (name == "_rebuild_tensor" || name == "_rebuild_tensor_v2" ||
         name == "_rebuild_tensor_v3"))
      return RebuildTensor(*callable, *args);
    if (module == "torch._utils" &&
        (name == "_rebuild_parameter" ||
         name == "_rebuild_parameter_with_state") &&
        args->kind == Kind::kTuple && !args->items.empty() &&
        args->items[0]->kind == Kind::kTensor)
      return args->items[0];  // a Parameter is its data for inference
    if (module == "collections" && name == "OrderedDict") {
      Value* dict = New(Kind::kDict);
      // OrderedDict([(k, v), ...]) is how some pickles pass the items.
      if (args->kind == Kind::kTuple && args->items.size() == 1 &&
          (args->items[0]->kind == Kind::kList ||
           args->items[0]->kind == Kind::kTuple)) {
        for (Value* pair : args->items[0]->items) {
          if (pair->kind != Kind::kTuple || pair->items.size() != 2)
            Fail("OrderedDict item is not a pair");
          AddItem(dict, pair->items[0]);
          AddItem(dict, pair->items[1]);
        }
      }
      return dict;
    }
    Value* object = New(Kind::kObject);
    object->callable = callable;
    object->args = args;
    return object;
  }

  // BINPERSID: torch.save stores ('storage', type, key, location, numel).
  Value* PersistentLoad(const Value& pid) {
    if (pid.kind != Kind::kTuple || pid.items.size() != 5 ||
        pid.items[0]->kind != Kind::kString || pid.items[0]->text != "storage")
      Fail("unsupported persistent id (not a torch storage)");
    const Value& type = *pid.items[1];
    const Value& key = *pid.items[2];
    const Value& numel = *pid.items[4];
    const std::optional<ScalarType> dtype = StorageScalarType(type);
    if (!dtype)
      Fail("unsupported storage type " + (type.kind == Kind::kGlobal
                                              ? type.QualifiedName()
                                              : std::string("(not a class)")));
    if (key.kind != Kind::kString || key.text.empty() || key.text.size() > 64)
      Fail("storage key is not a short string");
    for (char c : key.text) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_'))
        Fail("storage key '" + Printable(key.text) +
             "' holds unexpected characters");
    }
    if (numel.kind != Kind::kInt || numel.integer < 0)
      Fail("storage " + key.text + " has an invalid element count");
    Value* storage = New(Kind::kStorage);
    storage->tensor = std::make_unique<TensorRef>();
    storage->tensor->storage_key = key.text;
    storage->tensor->dtype = *dtype;
    storage->tensor->storage_numel = numel.integer;
    return storage;
  }

  void SetItems(Value* target, const std::vector<Value*>& items) {
    if (items.size() % 2 != 0) Fail("SETITEMS with an odd number of items");
    if (target->kind != Kind::kDict && target->kind != Kind::kObject)
      Fail("SETITEM on something that is not a dict");
    for (Value* item : items) AddItem(target, item);
  }

  void Step(uint8_t op) {
    switch (op) {
      case kProto: {
        const uint8_t version = U8();
        if (version > 5)
          Fail("unsupported pickle protocol " + std::to_string(version));
        return;
      }
      case kFrame: {
        const uint64_t length = Fixed<uint64_t>();
        if (length > bytes_.size() - pos_) Fail("frame longer than the data");
        return;
      }
      case kMark:
        if (marks_.size() >= limits_.max_marks) Fail("MARKs nested too deep");
        marks_.push_back(stack_.size());
        return;
      case kPop:
        if (stack_.size() > MarkFloor()) {
          stack_.pop_back();
        } else {
          PopMark();
        }
        return;
      case kPopMark:
        PopMark();
        return;
      case kDup:
        Push(Top());
        return;
      case kNone:
        Push(New(Kind::kNone));
        return;
      case kNewTrue:
      case kNewFalse: {
        Value* v = New(Kind::kBool);
        v->integer = op == kNewTrue ? 1 : 0;
        Push(v);
        return;
      }
      case kBinInt:
        Push(NewInt(Fixed<int32_t>()));
        return;
      case kBinInt1:
        Push(NewInt(U8()));
        return;
      case kBinInt2:
        Push(NewInt(Fixed<uint16_t>()));
        return;
      case kLong1:
        Push(Long(U8()));
        return;
      case kLong4: {
        const int32_t length = Fixed<int32_t>();
        if (length < 0) Fail("LONG4 with a negative length");
        Push(Long(static_cast<uint64_t>(length)));
        return;
      }
      case kBinFloat: {
        // The only big-endian field of the format.
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | U8();
        Value* v = New(Kind::kFloat);
        v->real = std::bit_cast<double>(bits);
        Push(v);
        return;
      }
      case kShortBinUnicode:
        Push(NewText(Kind::kString, Text(U8())));
        return;
      case kBinUnicode:
        Push(NewText(Kind::kString, Text(Fixed<uint32_t>())));
        return;
      case kBinUnicode8:
        Push(NewText(Kind::kString, Text(Fixed<uint64_t>())));
        return;
      case kShortBinString:
        Push(NewText(Kind::kString, Text(U8())));
        return;
      case kBinString: {
        const int32_t length = Fixed<int32_t>();
        if (length < 0) Fail("BINSTRING with a negative length");
        Push(NewText(Kind::kString, Text(static_cast<uint64_t>(length))));
        return;
      }
      case kShortBinBytes:
        Push(NewText(Kind::kBytes, Text(U8())));
        return;
      case kBinBytes:
        Push(NewText(Kind::kBytes, Text(Fixed<uint32_t>())));
        return;
      case kBinBytes8:
      case kByteArray8:
        Push(NewText(Kind::kBytes, Text(Fixed<uint64_t>())));
        return;
      case kEmptyTuple:
        Push(New(Kind::kTuple));
        return;
      case kTuple1:
      case kTuple2:
      case kTuple3: {
        const size_t count = op - kTuple1 + 1;
        std::vector<Value*> items(count);
        for (size_t i = count; i > 0; --i) items[i - 1] = Pop();
        Push(MakeTuple(std::move(items)));
        return;
      }
      case kTuple:
        Push(MakeTuple(PopMark()));
        return;
      case kEmptyList:
        Push(New(Kind::kList));
        return;
      case kList: {
        Value* list = New(Kind::kList);
        for (Value* item : PopMark()) AddItem(list, item);
        Push(list);
        return;
      }
      case kEmptyDict:
        Push(New(Kind::kDict));
        return;
      case kDict: {
        Value* dict = New(Kind::kDict);
        SetItems(dict, PopMark());
        Push(dict);
        return;
      }
      case kEmptySet:
        Push(New(Kind::kSet));
        return;
      case kFrozenSet: {
        Value* set = New(Kind::kSet);
        for (Value* item : PopMark()) AddItem(set, item);
        Push(set);
        return;
      }
      case kAppend: {
        Value* item = Pop();
        Value* list = Top();
        if (list->kind != Kind::kList && list->kind != Kind::kObject)
          Fail("APPEND to something that is not a list");
        AddItem(list, item);
        return;
      }
      case kAppends: {
        std::vector<Value*> items = PopMark();
        Value* list = Top();
        if (list->kind != Kind::kList && list->kind != Kind::kObject)
          Fail("APPENDS to something that is not a list");
        for (Value* item : items) AddItem(list, item);
        return;
      }
      case kAddItems: {
        std::vector<Value*> items = PopMark();
        Value* set = Top();
        if (set->kind != Kind::kSet) Fail("ADDITEMS to something not a set");
        for (Value* item : items) AddItem(set, item);
        return;
      }
      case kSetItem: {
        Value* value = Pop();
        Value* key = Pop();
        SetItems(Top(), {key, value});
        return;
      }
      case kSetItems: {
        std::vector<Value*> items = PopMark();
        SetItems(Top(), items);
        return;
      }
      case kBinPut:
        Memoize(U8(), Top());
        return;
      case kLongBinPut:
        Memoize(Fixed<uint32_t>(), Top());
        return;
      case kMemoize:
        Memoize(memo_.size(), Top());
        return;
      case kBinGet:
        Push(Recall(U8()));
        return;
      case kLongBinGet:
        Push(Recall(Fixed<uint32_t>()));
        return;
      case kGlobal: {
        std::string module = Line();
        std::string name = Line();
        Push(MakeGlobal(std::move(module), std::move(name)));
        return;
      }
      case kStackGlobal: {
        Value* name = Pop();
        Value* module = Pop();
        if (module->kind != Kind::kString || name->kind != Kind::kString ||
            module->text.size() > kMaxGlobalNameBytes ||
            name->text.size() > kMaxGlobalNameBytes)
          Fail("STACK_GLOBAL without two short strings");
        Push(MakeGlobal(module->text, name->text));
        return;
      }
      case kReduce: {
        Value* args = Pop();
        Value* callable = Pop();
        if (args->kind != Kind::kTuple) Fail("REDUCE arguments not a tuple");
        Push(Call(callable, args));
        return;
      }
      case kNewObj: {
        Value* args = Pop();
        Value* cls = Pop();
        if (args->kind != Kind::kTuple) Fail("NEWOBJ arguments not a tuple");
        Push(Call(cls, args));
        return;
      }
      case kNewObjEx: {
        Pop();  // keyword arguments: kept nowhere, the object stays inert
        Value* args = Pop();
        Value* cls = Pop();
        if (args->kind != Kind::kTuple) Fail("NEWOBJ_EX arguments not a tuple");
        Push(Call(cls, args));
        return;
      }
      case kBuild: {
        Value* state = Pop();
        Value* target = Top();
        // Objects keep their state; dicts (OrderedDict._metadata), tensors
        // (Parameter hooks) and the rest need none of it.
        if (target->kind == Kind::kObject) target->state = state;
        return;
      }
      case kBinPersId:
        Push(PersistentLoad(*Pop()));
        return;
      default: {
        char hex[8];
        std::snprintf(hex, sizeof(hex), "0x%02x", op);
        Fail(std::string("unsupported opcode ") + hex);
      }
    }
  }

  std::span<const uint8_t> bytes_;
  const std::string& source_;
  PickleLimits limits_;
  size_t pos_ = 0;
  size_t op_offset_ = 0;
  size_t container_items_ = 0;
  std::vector<Value*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Value*> memo_;
  PickleResult result_;
};

}  // namespace

PickleResult Unpickle(std::span<const uint8_t> bytes, const std::string& source,
                      const PickleLimits& limits) {
  return Unpickler(bytes, source, limits).Run();
}

}  // namespace voxprint::model::pickle
