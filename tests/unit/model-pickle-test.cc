// The restricted pickle interpreter: opcode semantics, torch tensors,
// refusal of dangerous calls, and limits.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "model/pickle.h"
#include "voxprint/error.h"

namespace voxprint::model::pickle {
namespace {

// Hand-assembles pickles opcode by opcode.
class Builder {
 public:
  Builder& Op(uint8_t op) {
    bytes_.push_back(op);
    return *this;
  }
  Builder& Raw(std::initializer_list<uint8_t> raw) {
    bytes_.insert(bytes_.end(), raw);
    return *this;
  }
  template <typename T>
  Builder& Le(T value) {
    uint8_t buffer[sizeof(T)];
    std::memcpy(buffer, &value, sizeof(T));
    bytes_.insert(bytes_.end(), buffer, buffer + sizeof(T));
    return *this;
  }
  Builder& Proto() { return Op(0x80).Op(2); }
  Builder& Mark() { return Op('('); }
  Builder& Global(const std::string& module, const std::string& name) {
    Op('c');
    bytes_.insert(bytes_.end(), module.begin(), module.end());
    Op('\n');
    bytes_.insert(bytes_.end(), name.begin(), name.end());
    return Op('\n');
  }
  Builder& Str(const std::string& text) {
    Op('X').Le<uint32_t>(static_cast<uint32_t>(text.size()));
    bytes_.insert(bytes_.end(), text.begin(), text.end());
    return *this;
  }
  Builder& Int(int32_t value) { return Op('J').Le(value); }
  Builder& Tuple1() { return Op(0x85); }
  Builder& Tuple2() { return Op(0x86); }
  Builder& Tuple() { return Op('t'); }
  Builder& EmptyTuple() { return Op(')'); }
  Builder& Reduce() { return Op('R'); }
  Builder& Stop() { return Op('.'); }
  // (module.name)(args...) with one string argument.
  Builder& CallWithString(const std::string& module, const std::string& name,
                          const std::string& arg) {
    return Global(module, name).Str(arg).Tuple1().Reduce();
  }
  // torch._utils._rebuild_tensor_v2 of a FloatStorage.
  Builder& Tensor(const std::string& key, int32_t numel, int32_t offset,
                  std::vector<int32_t> sizes, std::vector<int32_t> strides,
                  const std::string& storage = "FloatStorage") {
    Global("torch._utils", "_rebuild_tensor_v2").Mark();
    Mark().Str("storage").Global("torch", storage).Str(key).Str("cpu");
    Int(numel).Tuple().Op('Q');
    Int(offset).Mark();
    for (int32_t s : sizes) Int(s);
    Tuple().Mark();
    for (int32_t s : strides) Int(s);
    Tuple().Op(0x89);  // requires_grad False
    Global("collections", "OrderedDict").EmptyTuple().Reduce();
    return Tuple().Reduce();
  }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

PickleResult Interpret(const std::vector<uint8_t>& bytes,
                       const PickleLimits& limits = {}) {
  return Unpickle(bytes, "test.bin (archive/data.pkl)", limits);
}

void ExpectRefused(const std::vector<uint8_t>& bytes,
                   const std::string& fragment,
                   const PickleLimits& limits = {}) {
  try {
    Interpret(bytes, limits);
    ADD_FAILURE() << "accepted; expected an error containing " << fragment;
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::kModelError);
    const std::string message = error.what();
    EXPECT_EQ(
        message.rfind("test.bin (archive/data.pkl): pickle at offset ", 0), 0u)
        << message;
    EXPECT_NE(message.find(fragment), std::string::npos) << message;
  }
}

// pickle.dumps({'a': [1, 2.5, 'x', -300, 2**40], 'b': (True, None),
//               'c': b'\x00\x01', 'd': {1, 2}, 'e': frozenset([3]),
//               'f': bytearray(b'ab')}, protocol=P) from /usr/bin/python3.
const std::vector<uint8_t> kPythonProtocol2 = {
    0x80, 0x02, 0x7d, 0x71, 0x00, 0x28, 0x58, 0x01, 0x00, 0x00, 0x00, 0x61,
    0x71, 0x01, 0x5d, 0x71, 0x02, 0x28, 0x4b, 0x01, 0x47, 0x40, 0x04, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x58, 0x01, 0x00, 0x00, 0x00, 0x78, 0x71,
    0x03, 0x4a, 0xd4, 0xfe, 0xff, 0xff, 0x8a, 0x06, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x01, 0x65, 0x58, 0x01, 0x00, 0x00, 0x00, 0x62, 0x71, 0x04, 0x88,
    0x4e, 0x86, 0x71, 0x05, 0x58, 0x01, 0x00, 0x00, 0x00, 0x63, 0x71, 0x06,
    0x63, 0x5f, 0x63, 0x6f, 0x64, 0x65, 0x63, 0x73, 0x0a, 0x65, 0x6e, 0x63,
    0x6f, 0x64, 0x65, 0x0a, 0x71, 0x07, 0x58, 0x02, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x71, 0x08, 0x58, 0x06, 0x00, 0x00, 0x00, 0x6c, 0x61, 0x74, 0x69,
    0x6e, 0x31, 0x71, 0x09, 0x86, 0x71, 0x0a, 0x52, 0x71, 0x0b, 0x58, 0x01,
    0x00, 0x00, 0x00, 0x64, 0x71, 0x0c, 0x63, 0x5f, 0x5f, 0x62, 0x75, 0x69,
    0x6c, 0x74, 0x69, 0x6e, 0x5f, 0x5f, 0x0a, 0x73, 0x65, 0x74, 0x0a, 0x71,
    0x0d, 0x5d, 0x71, 0x0e, 0x28, 0x4b, 0x01, 0x4b, 0x02, 0x65, 0x85, 0x71,
    0x0f, 0x52, 0x71, 0x10, 0x58, 0x01, 0x00, 0x00, 0x00, 0x65, 0x71, 0x11,
    0x63, 0x5f, 0x5f, 0x62, 0x75, 0x69, 0x6c, 0x74, 0x69, 0x6e, 0x5f, 0x5f,
    0x0a, 0x66, 0x72, 0x6f, 0x7a, 0x65, 0x6e, 0x73, 0x65, 0x74, 0x0a, 0x71,
    0x12, 0x5d, 0x71, 0x13, 0x4b, 0x03, 0x61, 0x85, 0x71, 0x14, 0x52, 0x71,
    0x15, 0x58, 0x01, 0x00, 0x00, 0x00, 0x66, 0x71, 0x16, 0x63, 0x5f, 0x5f,
    0x62, 0x75, 0x69, 0x6c, 0x74, 0x69, 0x6e, 0x5f, 0x5f, 0x0a, 0x62, 0x79,
    0x74, 0x65, 0x61, 0x72, 0x72, 0x61, 0x79, 0x0a, 0x71, 0x17, 0x68, 0x07,
    0x58, 0x02, 0x00, 0x00, 0x00, 0x61, 0x62, 0x71, 0x18, 0x68, 0x09, 0x86,
    0x71, 0x19, 0x52, 0x71, 0x1a, 0x85, 0x71, 0x1b, 0x52, 0x71, 0x1c, 0x75,
    0x2e};
const std::vector<uint8_t> kPythonProtocol4 = {
    0x80, 0x04, 0x95, 0x75, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x7d,
    0x94, 0x28, 0x8c, 0x01, 0x61, 0x94, 0x5d, 0x94, 0x28, 0x4b, 0x01, 0x47,
    0x40, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x8c, 0x01, 0x78, 0x94,
    0x4a, 0xd4, 0xfe, 0xff, 0xff, 0x8a, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x65, 0x8c, 0x01, 0x62, 0x94, 0x88, 0x4e, 0x86, 0x94, 0x8c, 0x01,
    0x63, 0x94, 0x43, 0x02, 0x00, 0x01, 0x94, 0x8c, 0x01, 0x64, 0x94, 0x8f,
    0x94, 0x28, 0x4b, 0x01, 0x4b, 0x02, 0x90, 0x8c, 0x01, 0x65, 0x94, 0x28,
    0x4b, 0x03, 0x91, 0x94, 0x8c, 0x01, 0x66, 0x94, 0x8c, 0x08, 0x62, 0x75,
    0x69, 0x6c, 0x74, 0x69, 0x6e, 0x73, 0x94, 0x8c, 0x09, 0x62, 0x79, 0x74,
    0x65, 0x61, 0x72, 0x72, 0x61, 0x79, 0x94, 0x93, 0x94, 0x43, 0x02, 0x61,
    0x62, 0x94, 0x85, 0x94, 0x52, 0x94, 0x75, 0x2e};
const std::vector<uint8_t> kPythonProtocol5 = {
    0x80, 0x05, 0x95, 0x5f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x7d,
    0x94, 0x28, 0x8c, 0x01, 0x61, 0x94, 0x5d, 0x94, 0x28, 0x4b, 0x01, 0x47,
    0x40, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x8c, 0x01, 0x78, 0x94,
    0x4a, 0xd4, 0xfe, 0xff, 0xff, 0x8a, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x65, 0x8c, 0x01, 0x62, 0x94, 0x88, 0x4e, 0x86, 0x94, 0x8c, 0x01,
    0x63, 0x94, 0x43, 0x02, 0x00, 0x01, 0x94, 0x8c, 0x01, 0x64, 0x94, 0x8f,
    0x94, 0x28, 0x4b, 0x01, 0x4b, 0x02, 0x90, 0x8c, 0x01, 0x65, 0x94, 0x28,
    0x4b, 0x03, 0x91, 0x94, 0x8c, 0x01, 0x66, 0x94, 0x96, 0x02, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x61, 0x62, 0x94, 0x75, 0x2e};

TEST(Pickle, ReadsWhatPythonWritesInProtocols2To5) {
  for (const auto* bytes :
       {&kPythonProtocol2, &kPythonProtocol4, &kPythonProtocol5}) {
    SCOPED_TRACE(static_cast<int>((*bytes)[1]));
    const PickleResult result = Interpret(*bytes);
    const Value* root = result.root;
    ASSERT_EQ(root->kind, Kind::kDict);
    ASSERT_EQ(root->items.size(), 12u);
    const Value* a = root->Find("a");
    ASSERT_NE(a, nullptr);
    ASSERT_EQ(a->kind, Kind::kList);
    ASSERT_EQ(a->items.size(), 5u);
    EXPECT_EQ(a->items[0]->integer, 1);
    EXPECT_EQ(a->items[1]->kind, Kind::kFloat);
    EXPECT_EQ(a->items[1]->real, 2.5);
    EXPECT_EQ(a->items[2]->text, "x");
    EXPECT_EQ(a->items[3]->integer, -300);
    EXPECT_EQ(a->items[4]->integer, int64_t{1} << 40);
    const Value* b = root->Find("b");
    ASSERT_EQ(b->kind, Kind::kTuple);
    EXPECT_EQ(b->items[0]->kind, Kind::kBool);
    EXPECT_EQ(b->items[0]->integer, 1);
    EXPECT_EQ(b->items[1]->kind, Kind::kNone);
    // Protocol 2 rebuilds bytes and sets through (allowed) calls.
    const Value* c = root->Find("c");
    const Value* d = root->Find("d");
    if ((*bytes)[1] == 2) {
      EXPECT_EQ(c->kind, Kind::kObject);
      EXPECT_EQ(c->callable->QualifiedName(), "_codecs.encode");
      EXPECT_EQ(d->kind, Kind::kObject);
    } else {
      EXPECT_EQ(c->kind, Kind::kBytes);
      EXPECT_EQ(c->text, std::string("\x00\x01", 2));
      ASSERT_EQ(d->kind, Kind::kSet);
      EXPECT_EQ(d->items.size(), 2u);
      EXPECT_EQ(root->Find("e")->kind, Kind::kSet);
    }
    EXPECT_EQ(root->Find("missing"), nullptr);
  }
}

TEST(Pickle, SmallIntegersAndLongs) {
  Builder p;
  p.Proto().Mark();
  p.Op('K').Op(200);                                  // BININT1
  p.Op('M').Le<uint16_t>(60000);                      // BININT2
  p.Op(0x8a).Op(1).Op(0xff);                          // LONG1 -1
  p.Op(0x8a).Op(0);                                   // LONG1 0
  p.Op(0x8b).Le<int32_t>(2).Raw({0x00, 0x80});        // LONG4 -32768
  p.Op(0x8a).Op(8).Raw({0, 0, 0, 0, 0, 0, 0, 0x80});  // INT64_MIN
  p.Tuple().Stop();
  const PickleResult result = Interpret(p.bytes());
  const auto& items = result.root->items;
  ASSERT_EQ(items.size(), 6u);
  EXPECT_EQ(items[0]->integer, 200);
  EXPECT_EQ(items[1]->integer, 60000);
  EXPECT_EQ(items[2]->integer, -1);
  EXPECT_EQ(items[3]->integer, 0);
  EXPECT_EQ(items[4]->integer, -32768);
  EXPECT_EQ(items[5]->integer, INT64_MIN);
}

TEST(Pickle, MemoDupPopAndPopMark) {
  Builder p;
  p.Proto().Op(']').Op('q').Op(7);  // [] -> memo 7
  p.Op('K').Op(1).Op('a');          // append 1
  p.Op('h').Op(7);                  // the same list again
  p.Op('K').Op(2).Op('a');          // append 2 through the second reference
  p.Op('0');                        // POP the second reference
  p.Op('2');                        // DUP
  p.Op('0');                        // POP the duplicate
  p.Mark().Op('K').Op(9).Op('K').Op(9).Op('1');  // POP_MARK discards
  p.Stop();
  const PickleResult result = Interpret(p.bytes());
  ASSERT_EQ(result.root->kind, Kind::kList);
  ASSERT_EQ(result.root->items.size(), 2u);
  EXPECT_EQ(result.root->items[1]->integer, 2);
}

TEST(Pickle, SelfReferencingListIsHeldWithoutLeaking) {
  Builder p;
  p.Proto().Op(']').Op('q').Op(0).Op('h').Op(0).Op('a').Stop();
  const PickleResult result = Interpret(p.bytes());
  ASSERT_EQ(result.root->items.size(), 1u);
  EXPECT_EQ(result.root->items[0], result.root);
}

TEST(Pickle, RebuildsTensorReferences) {
  Builder p;
  p.Proto().Global("collections", "OrderedDict").EmptyTuple().Reduce();
  p.Mark().Str("w").Tensor("42", 24, 4, {2, 3}, {1, 2});
  p.Str("h").Tensor("7", 8, 0, {8}, {1}, "HalfStorage");
  p.Op('u');
  p.Op('}').Op('b');  // BUILD with OrderedDict state: ignored
  p.Stop();
  const PickleResult result = Interpret(p.bytes());
  const Value* w = result.root->Find("w");
  ASSERT_NE(w, nullptr);
  ASSERT_EQ(w->kind, Kind::kTensor);
  EXPECT_EQ(w->tensor->storage_key, "42");
  EXPECT_EQ(w->tensor->dtype, ScalarType::kFloat32);
  EXPECT_EQ(w->tensor->storage_numel, 24);
  EXPECT_EQ(w->tensor->storage_offset, 4);
  EXPECT_EQ(w->tensor->sizes, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(w->tensor->strides, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(result.root->Find("h")->tensor->dtype, ScalarType::kFloat16);
}

TEST(Pickle, ParameterUnwrapsToItsTensor) {
  Builder p;
  p.Proto().Global("torch._utils", "_rebuild_parameter").Mark();
  p.Tensor("0", 4, 0, {4}, {1}).Op(0x88);
  p.Global("collections", "OrderedDict").EmptyTuple().Reduce();
  p.Tuple().Reduce().Stop();
  const PickleResult result = Interpret(p.bytes());
  EXPECT_EQ(result.root->kind, Kind::kTensor);
}

TEST(Pickle, EnumsAndCustomClassesStayInert) {
  // pyannote's Specifications(problem=Problem.REPRESENTATION), as pickled.
  Builder p;
  p.Proto().Global("pyannote.audio.core.task", "Specifications");
  p.EmptyTuple().Op(0x81);  // NEWOBJ
  p.Op('}').Str("problem").Global("__builtin__", "getattr");
  p.Global("pyannote.audio.core.task", "Problem").Str("REPRESENTATION");
  p.Tuple2().Reduce().Op('s').Op('b').Stop();
  const PickleResult result = Interpret(p.bytes());
  const Value* spec = result.root;
  ASSERT_EQ(spec->kind, Kind::kObject);
  EXPECT_EQ(spec->callable->QualifiedName(),
            "pyannote.audio.core.task.Specifications");
  ASSERT_NE(spec->state, nullptr);
  const Value* problem = spec->state->Find("problem");
  ASSERT_NE(problem, nullptr);
  EXPECT_EQ(problem->kind, Kind::kObject);
  EXPECT_EQ(problem->args->items[1]->text, "REPRESENTATION");
}

TEST(Pickle, RefusesDangerousCalls) {
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"os", "system"},
      {"posix", "system"},
      {"nt", "system"},
      {"subprocess", "Popen"},
      {"subprocess", "check_output"},
      {"builtins", "eval"},
      {"builtins", "exec"},
      {"__builtin__", "eval"},
      {"builtins", "__import__"},
      {"builtins", "open"},
      {"builtins", "compile"},
      {"shutil", "rmtree"},
      {"_codecs", "decode"},
      {"sys", "exit"},
      {"runpy", "run_path"},
      {"webbrowser", "open"},
      {"pickle", "loads"},
      {"importlib", "import_module"},
  };
  for (const auto& [module, name] : refused) {
    SCOPED_TRACE(module + "." + name);
    Builder reduce;
    reduce.Proto().CallWithString(module, name, "touch /tmp/pwned").Stop();
    ExpectRefused(reduce.bytes(), "refuses to call " + module + "." + name);

    Builder newobj;  // NEWOBJ is a call too
    newobj.Proto().Global(module, name).Str("x").Tuple1().Op(0x81).Stop();
    ExpectRefused(newobj.bytes(), "refuses to call " + module + "." + name);

    Builder stack_global;  // protocol 4 spelling
    stack_global.Proto().Str(module).Str(name).Op(0x93);
    stack_global.Str("x").Tuple1().Reduce().Stop();
    ExpectRefused(stack_global.bytes(),
                  "refuses to call " + module + "." + name);
  }
}

TEST(Pickle, RefusesGetattrAndCopyregTricks) {
  {  // getattr(posix, 'system') is refused through its target
    Builder p;
    p.Proto().Global("builtins", "getattr").Global("posix", "x");
    p.Str("system").Tuple2().Reduce().Stop();
    ExpectRefused(p.bytes(), "refuses to call posix.x");
  }
  {  // getattr of a private attribute, even of an allowed class
    Builder p;
    p.Proto().Global("builtins", "getattr").Global("torch", "Tensor");
    p.Str("__class__").Tuple2().Reduce().Stop();
    ExpectRefused(p.bytes(), "refuses to call builtins.getattr");
  }
  {  // getattr with a computed target
    Builder p;
    p.Proto().Global("builtins", "getattr").Str("os").Str("system");
    p.Tuple2().Reduce().Stop();
    ExpectRefused(p.bytes(), "refuses to call builtins.getattr");
  }
  {  // copyreg._reconstructor instantiating a dangerous class
    Builder p;
    p.Proto().Global("copyreg", "_reconstructor").Global("subprocess", "Popen");
    p.Global("builtins", "object").Op('N').Op(0x87).Reduce().Stop();
    ExpectRefused(p.bytes(), "refuses to call subprocess.Popen");
  }
  {  // calling the result of a call
    Builder p;
    p.Proto().Op('}').EmptyTuple().Reduce().Stop();
    ExpectRefused(p.bytes(), "calls something that is not a class");
  }
}

TEST(Pickle, RefusesMalformedAndAbsurdInput) {
  ExpectRefused({}, "truncated");
  ExpectRefused({0x80, 0x02, 'N'}, "truncated");  // no STOP
  ExpectRefused({0x80, 0x02, '.'}, "STOP with an empty stack");
  ExpectRefused({0x80, 0x09, 'N', '.'}, "unsupported pickle protocol 9");
  ExpectRefused({0x80, 0x02, 'N', 0xff, '.'},
                "offset 3: unsupported opcode 0xff");
  ExpectRefused({0x80, 0x02, 'i', 'o', 's', '\n'}, "unsupported opcode 0x69");
  ExpectRefused({0x80, 0x02, 'h', 5, '.'}, "memo entry 5 was never stored");
  ExpectRefused({0x80, 0x02, 'a', '.'}, "pop from an empty stack");
  ExpectRefused({0x80, 0x02, '(', 'K', 1, 0x86, '.'},
                "pop from an empty stack");  // TUPLE2 across a MARK
  ExpectRefused({0x80, 0x02, 't', '.'}, "no MARK");
  ExpectRefused({0x80, 0x02, 'N', 'N', 'a', '.'}, "APPEND to something");
  ExpectRefused({0x80, 0x02, '}', '(', 'K', 1, 'u', '.'}, "odd number");
  {
    Builder p;  // BINUNICODE claiming 4 GB
    p.Proto().Op('X').Le<uint32_t>(0xfffffff0u).Stop();
    ExpectRefused(p.bytes(), "exceeds the limit");
  }
  {
    Builder p;  // BINUNICODE claiming more than what is left
    p.Proto().Op('X').Le<uint32_t>(1000).Str("abc").Stop();
    ExpectRefused(p.bytes(), "truncated (needs 1000 more bytes");
  }
  {
    Builder p;  // BINUNICODE8 claiming 2^62 bytes
    p.Proto().Op(0x8d).Le<uint64_t>(uint64_t{1} << 62).Stop();
    ExpectRefused(p.bytes(), "exceeds the limit");
  }
  {
    Builder p;  // BINBYTES8 / BYTEARRAY8 claiming 2^63 bytes
    p.Proto().Op(0x96).Le<uint64_t>(uint64_t{1} << 63).Stop();
    ExpectRefused(p.bytes(), "exceeds the limit");
  }
  {
    Builder p;  // LONG4 of 2 GB
    p.Proto().Op(0x8b).Le<int32_t>(0x7fffffff).Stop();
    ExpectRefused(p.bytes(), "larger than 64 bits");
  }
  {
    Builder p;  // LONG4 with a negative length
    p.Proto().Op(0x8b).Le<int32_t>(-5).Stop();
    ExpectRefused(p.bytes(), "negative length");
  }
  {
    Builder p;  // a GLOBAL line without end
    p.Proto().Op('c');
    for (int i = 0; i < 1000; ++i) p.Op('a');
    ExpectRefused(p.bytes(), "GLOBAL name is too long");
  }
  {
    Builder p;  // frame longer than the data
    p.Proto().Op(0x95).Le<uint64_t>(1000).Op('N').Stop();
    ExpectRefused(p.bytes(), "frame longer than the data");
  }
  {
    Builder p;  // persistent id that is not a torch storage
    p.Proto().Str("evil").Tuple1().Op('Q').Stop();
    ExpectRefused(p.bytes(), "unsupported persistent id");
  }
  {
    Builder p;  // storage key with a path in it
    p.Proto().Tensor("../../etc/passwd", 4, 0, {4}, {1}).Stop();
    ExpectRefused(p.bytes(), "unexpected characters");
  }
  {
    Builder p;  // unknown storage class
    p.Proto().Tensor("0", 4, 0, {4}, {1}, "EvilStorage").Stop();
    ExpectRefused(p.bytes(), "unsupported storage type torch.EvilStorage");
  }
}

TEST(Pickle, EnforcesLimits) {
  PickleLimits limits;
  limits.max_marks = 100;
  std::vector<uint8_t> marks = {0x80, 0x02};
  marks.insert(marks.end(), 101, '(');
  ExpectRefused(marks, "MARKs nested too deep", limits);

  limits = {};
  limits.max_values = 50;
  Builder many;
  many.Proto().Mark();
  for (int i = 0; i < 60; ++i) many.Op('N');
  ExpectRefused(many.Tuple().Stop().bytes(), "more than 50 values", limits);

  limits = {};
  limits.max_memo_entries = 3;
  Builder memo;
  memo.Proto().Op('N');
  for (int i = 0; i < 5; ++i) memo.Op('q').Op(static_cast<uint8_t>(i));
  ExpectRefused(memo.Stop().bytes(), "memo holds more than 3", limits);

  limits = {};
  limits.max_container_items = 100;
  Builder items;  // a list appended to itself over and over
  items.Proto().Op(']').Op('q').Op(0);
  for (int i = 0; i < 200; ++i) items.Op('h').Op(0).Op('a');
  ExpectRefused(items.Stop().bytes(), "containers hold more than 100", limits);

  limits = {};
  limits.max_stack = 10;
  Builder deep;
  deep.Proto();
  for (int i = 0; i < 11; ++i) deep.Op('N');
  ExpectRefused(deep.Stop().bytes(), "stack too deep", limits);
}

}  // namespace
}  // namespace voxprint::model::pickle
