// voxprint._voxprint: the C++ core of the Python module (voxprint/__init__.py
// is the public face: argument checks, docstrings, the Result class).
//
// Every call into the library runs with the GIL released, so Python threads
// sharing one Extractor embed in parallel. Only this file touches Python
// objects; the library sees plain C++ types.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/model-lookup.h"
#include "voxprint/audio.h"
#include "voxprint/error.h"
#include "voxprint/extractor.h"

namespace py = pybind11;

namespace voxprint::python {
namespace {

// voxprint.Error subclasses by ErrorCodeName, set by __init__.py.
py::dict& ErrorClasses() {
  static auto* classes = new py::dict();  // lives as long as the interpreter
  return *classes;
}

// The Python exception for `error` (an instance, not raised): its class
// matches the code, str() is the message the CLI prints.
py::object ToPythonError(const Error& error) {
  const char* code = ErrorCodeName(error.code());
  py::dict& classes = ErrorClasses();
  if (classes.contains(code)) return classes[code](error.what());
  return py::reinterpret_steal<py::object>(
      PyObject_CallFunction(PyExc_RuntimeError, "s", error.what()));
}

// Same range the decoder accepts from files (src/audio/decode.cc).
constexpr int kMinArrayRateHz = 1000;
constexpr int kMaxArrayRateHz = 1536000;
constexpr const char* kArrayName = "<array>";

// Python's main thread, the one signal handlers run in (set on import).
unsigned long main_thread_ident = 0;

// Runs `work` with the GIL released. In the main thread it runs on a helper
// thread while this one checks for signals, so Ctrl-C cancels a long call
// (through `cancel`) instead of waiting for it; elsewhere it runs inline.
template <typename Work>
auto WithoutGil(const CancelToken& cancel, Work&& work) -> decltype(work()) {
  if (PyThread_get_thread_ident() != main_thread_ident) {
    py::gil_scoped_release release;
    return work();
  }
  auto future = std::async(std::launch::async, std::forward<Work>(work));
  for (;;) {
    std::future_status status;
    {
      py::gil_scoped_release release;
      status = future.wait_for(std::chrono::milliseconds(50));
    }
    if (status == std::future_status::ready) break;
    if (PyErr_CheckSignals() != 0) {
      cancel.Cancel();
      {
        py::gil_scoped_release release;
        future.wait();
      }
      throw py::error_already_set();
    }
  }
  return future.get();
}

py::array_t<float> Vector(const std::vector<float>& values) {
  py::array_t<float> array(static_cast<py::ssize_t>(values.size()));
  std::memcpy(array.mutable_data(), values.data(),
              values.size() * sizeof(float));
  return array;
}

// Whole: float32 [dim]; sliding: (float32 [windows, dim], float64
// [windows, 2]). With `details`, a dict of everything the CLI's JSON holds.
py::object ToPython(const EmbeddingResult& result, bool details) {
  py::object embedding;
  py::object times = py::none();
  if (result.mode == WindowMode::kWhole) {
    embedding = Vector(result.embedding);
  } else {
    const auto windows = static_cast<py::ssize_t>(result.windows.size());
    const py::ssize_t dim =
        windows > 0
            ? static_cast<py::ssize_t>(result.windows[0].embedding.size())
            : 0;
    py::array_t<float> matrix({windows, dim});
    py::array_t<double> spans({windows, py::ssize_t{2}});
    float* row = matrix.mutable_data();
    double* span = spans.mutable_data();
    for (const WindowEmbedding& window : result.windows) {
      std::memcpy(row, window.embedding.data(), dim * sizeof(float));
      row += dim;
      *span++ = window.start_s;
      *span++ = window.end_s;
    }
    embedding = std::move(matrix);
    times = std::move(spans);
  }
  if (!details) {
    if (result.mode == WindowMode::kWhole) return embedding;
    return py::make_tuple(embedding, times);
  }
  py::dict fields;
  fields["path"] = result.source;
  fields["mode"] = result.mode == WindowMode::kWhole ? "whole" : "sliding";
  fields["embedding"] = embedding;
  fields["times"] = times;
  fields["duration"] = result.duration_s;
  fields["sample_rate"] = result.audio.sample_rate_hz;
  fields["channels"] = result.audio.channels;
  fields["codec"] = result.audio.codec;
  fields["container"] = result.audio.container;
  fields["shared_trunk"] = result.shared_trunk;
  fields["processing_time"] = result.processing_s;
  return fields;
}

// An EmbedRequest checked at construction (bad values raise at once).
struct Request {
  EmbedRequest request;
  bool details = false;
};

Request MakeRequest(const std::string& window, double duration, double step,
                    std::optional<double> start, std::optional<double> end,
                    bool shared_trunk, bool details) {
  Request made;
  EmbedRequest& request = made.request;
  if (window == "whole")
    request.mode = WindowMode::kWhole;
  else if (window == "sliding")
    request.mode = WindowMode::kSliding;
  else
    throw Error(ErrorCode::kInvalidArgument,
                "window '" + window + "' is not one of: whole, sliding");
  request.window_duration_s = duration;
  request.window_step_s = step;
  request.start_s = start;
  request.end_s = end;
  request.shared_trunk = shared_trunk;
  request.Validate();
  made.details = details;
  return made;
}

// Each call gets its own token, so that Ctrl-C stops that call only.
EmbedRequest Cancellable(const Request& request) {
  EmbedRequest copy = request.request;
  copy.cancel = CancelToken::Create();
  return copy;
}

// Samples of one channel of a NumPy array as the decoder makes them from a
// file of that sample format (audio/sample-convert.cc): integers scaled by
// a power of two, u8 centred on 128, doubles rounded to float.
template <typename T>
float SampleAt(const char* address) {
  T value;
  std::memcpy(&value, address, sizeof(T));
  if constexpr (std::is_same_v<T, uint8_t>)
    return static_cast<float>(static_cast<int>(value) - 128) * (1.0f / 128.0f);
  else if constexpr (std::is_same_v<T, int16_t>)
    return static_cast<float>(value) * (1.0f / 32768.0f);
  else if constexpr (std::is_same_v<T, int32_t>)
    return static_cast<float>(value) * (1.0f / 2147483648.0f);
  else
    return static_cast<float>(value);
}

// Where the samples of a [channels, frames] view lie (byte strides: any
// layout NumPy makes, slices and transposes included).
struct ArrayView {
  const char* data = nullptr;
  int channels = 1;
  int64_t frames = 0;
  py::ssize_t channel_stride = 0;
  py::ssize_t frame_stride = 0;
};

// Mono float32: the channels' mean, summed in order then divided, as the
// decoder downmixes. NaN or infinite samples are refused as the decoder
// refuses them.
template <typename T>
std::vector<float> ToMono(const ArrayView& view) {
  std::vector<float> mono(static_cast<size_t>(view.frames));
  const float count = static_cast<float>(view.channels);
  for (int64_t i = 0; i < view.frames; ++i) {
    const char* frame = view.data + i * view.frame_stride;
    float sum = SampleAt<T>(frame);
    for (int c = 1; c < view.channels; ++c)
      sum += SampleAt<T>(frame + c * view.channel_stride);
    const float value = view.channels == 1 ? sum : sum / count;
    if constexpr (std::is_floating_point_v<T>) {
      if (!std::isfinite(value))
        throw Error(ErrorCode::kCorruptInput,
                    std::string(kArrayName) + ": sample " + std::to_string(i) +
                        " is NaN or infinite");
    }
    mono[static_cast<size_t>(i)] = value;
  }
  return mono;
}

std::string ShapeText(const py::array& array) {
  std::string text = "(";
  for (py::ssize_t d = 0; d < array.ndim(); ++d)
    text += (d ? ", " : "") + std::to_string(array.shape(d));
  return text + (array.ndim() == 1 ? ",)" : ")");
}

DecodedAudio DecodeArray(const py::array& array, int sample_rate_hz) {
  if (sample_rate_hz < kMinArrayRateHz || sample_rate_hz > kMaxArrayRateHz)
    throw Error(ErrorCode::kInvalidArgument,
                "sample_rate " + std::to_string(sample_rate_hz) +
                    " is out of range: it must be " +
                    std::to_string(kMinArrayRateHz) + " to " +
                    std::to_string(kMaxArrayRateHz) + " Hz");
  ArrayView view;
  view.data = static_cast<const char*>(array.data());
  if (array.ndim() == 1) {
    view.frames = array.shape(0);
    view.frame_stride = array.strides(0);
  } else if (array.ndim() == 2 && array.shape(0) >= 1 &&
             array.shape(0) <= AudioLimits().max_channels) {
    view.channels = static_cast<int>(array.shape(0));
    view.frames = array.shape(1);
    view.channel_stride = array.strides(0);
    view.frame_stride = array.strides(1);
  } else {
    throw Error(ErrorCode::kInvalidArgument,
                std::string(kArrayName) + ": shape " + ShapeText(array) +
                    " is not [samples] or [channels, samples] with 1 to " +
                    std::to_string(AudioLimits().max_channels) +
                    " channels (a [samples, channels] array: pass array.T)");
  }
  const py::dtype dtype = array.dtype();
  DecodedAudio audio;
  audio.info.sample_rate_hz = sample_rate_hz;
  audio.info.channels = view.channels;
  audio.info.frames = view.frames;
  audio.info.container = "numpy";
  audio.info.codec = dtype.attr("name").cast<std::string>();
  audio.mono.sample_rate_hz = sample_rate_hz;
  // Sample formats of WAV files; native byte order only.
  const bool native = dtype.attr("isnative").cast<bool>();
  const char kind = dtype.kind();
  const py::ssize_t size = dtype.itemsize();
  std::vector<float> (*convert)(const ArrayView&) = nullptr;
  if (native && kind == 'u' && size == 1) convert = ToMono<uint8_t>;
  if (native && kind == 'i' && size == 2) convert = ToMono<int16_t>;
  if (native && kind == 'i' && size == 4) convert = ToMono<int32_t>;
  if (native && kind == 'f' && size == 4) convert = ToMono<float>;
  if (native && kind == 'f' && size == 8) convert = ToMono<double>;
  if (!convert)
    throw Error(ErrorCode::kInvalidArgument,
                std::string(kArrayName) + ": dtype " + audio.info.codec +
                    " is not a sample format: use int16, int32, float32, "
                    "float64 or uint8 (native byte order)");
  py::gil_scoped_release release;
  audio.mono.samples = convert(view);
  return audio;
}

// Extractor::EmbedFiles as a Python iterator: the library runs on a thread
// of its own and hands outcomes over through a short queue (the library
// waits when the caller falls behind, so memory stays bounded). Dropping
// the iterator early cancels the job.
class FilesIterator {
 public:
  FilesIterator(std::shared_ptr<const Extractor> extractor,
                std::vector<std::string> paths, const Request& request)
      : extractor_(std::move(extractor)),
        paths_(std::move(paths)),
        request_(Cancellable(request)),
        details_(request.details) {
    worker_ = std::thread([this] { Run(); });
  }
  ~FilesIterator() {
    request_.cancel.Cancel();
    {
      std::lock_guard lock(mutex_);
      changed_.notify_all();
    }
    py::gil_scoped_release release;
    worker_.join();
  }

  // The next input's result (or its error, as an exception instance);
  // StopIteration after the last.
  py::object Next() {
    for (;;) {
      std::optional<BatchOutcome> outcome;
      bool finished = false;
      {
        py::gil_scoped_release release;
        std::unique_lock lock(mutex_);
        changed_.wait_for(lock, std::chrono::milliseconds(50),
                          [&] { return !queue_.empty() || done_; });
        if (!queue_.empty()) {
          outcome = std::move(queue_.front());
          queue_.pop_front();
          changed_.notify_all();
        } else {
          finished = done_;
        }
      }
      if (outcome) {
        if (outcome->error) return ToPythonError(*outcome->error);
        return ToPython(*outcome->result, details_);
      }
      if (finished) {
        if (failure_) throw *failure_;
        throw py::stop_iteration();
      }
      if (PyErr_CheckSignals() != 0) {
        request_.cancel.Cancel();
        throw py::error_already_set();
      }
    }
  }

 private:
  static constexpr size_t kMaxQueued = 64;

  void Run() {
    try {
      extractor_->EmbedFiles(
          paths_, request_, [this](size_t, BatchOutcome&& outcome) {
            std::unique_lock lock(mutex_);
            changed_.wait(lock, [&] {
              return queue_.size() < kMaxQueued || request_.cancel.Cancelled();
            });
            request_.cancel.ThrowIfCancelled("embed_files");
            queue_.push_back(std::move(outcome));
            changed_.notify_all();
          });
    } catch (const Error& error) {
      failure_ = error;
    } catch (const std::exception& error) {
      failure_ = Error(ErrorCode::kInternal, error.what());
    }
    std::lock_guard lock(mutex_);
    done_ = true;
    changed_.notify_all();
  }

  std::shared_ptr<const Extractor> extractor_;
  std::vector<std::string> paths_;
  EmbedRequest request_;
  bool details_;
  std::thread worker_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<BatchOutcome> queue_;
  bool done_ = false;
  std::optional<Error> failure_;  // set before done_, read after it
};

// The model file, the CLI's way: the argument, $VOXPRINT_MODEL, the cache,
// else a download into the cache.
std::string FindModel(const std::string& model) {
  return apps::ResolveModelPath(
      model, +[](const std::string& line) {
        std::cerr << "voxprint: " << line << std::endl;
      });
}

class PyExtractor {
 public:
  PyExtractor(const std::string& model, const std::string& device, int threads,
              const std::string& precision, int max_parallel_runs) {
    py::gil_scoped_release release;
    ExtractorOptions options;
    options.model_path = FindModel(model);
    options.device = device;
    options.backend.num_threads = threads;
    options.backend.precision = precision;
    options.max_parallel_runs = max_parallel_runs;
    options.model_checksum = false;  // voxprint.Extractor.model_sha256 asks
    extractor_ = std::make_shared<const Extractor>(options);
  }

  py::object EmbedPath(const std::string& path, const Request& request) const {
    const EmbedRequest call = Cancellable(request);
    EmbeddingResult result = WithoutGil(
        call.cancel, [&] { return extractor_->EmbedFile(path, call); });
    return ToPython(result, request.details);
  }

  py::object EmbedBytes(const py::bytes& bytes, const std::string& name,
                        const Request& request) const {
    char* data = nullptr;
    py::ssize_t size = 0;
    if (PyBytes_AsStringAndSize(bytes.ptr(), &data, &size) != 0)
      throw py::error_already_set();
    // `bytes` is immutable and held by the caller for the whole call.
    const std::span<const uint8_t> view(reinterpret_cast<const uint8_t*>(data),
                                        static_cast<size_t>(size));
    const EmbedRequest call = Cancellable(request);
    EmbeddingResult result = WithoutGil(
        call.cancel, [&] { return extractor_->EmbedBytes(view, name, call); });
    return ToPython(result, request.details);
  }

  py::object EmbedArray(const py::array& array, int sample_rate_hz,
                        const Request& request) const {
    const DecodedAudio audio = DecodeArray(array, sample_rate_hz);
    const EmbedRequest call = Cancellable(request);
    EmbeddingResult result = WithoutGil(call.cancel, [&] {
      return extractor_->EmbedDecoded(audio, kArrayName, call);
    });
    return ToPython(result, request.details);
  }

  std::unique_ptr<FilesIterator> EmbedFiles(std::vector<std::string> paths,
                                            const Request& request) const {
    return std::make_unique<FilesIterator>(extractor_, std::move(paths),
                                           request);
  }

  py::dict Info() const {
    const ModelInfo& model = extractor_->Model();
    const BackendInfo device = extractor_->Device();
    py::dict info;
    info["model_path"] = model.path;
    info["model_format"] = ModelFormatName(model.format);
    info["model_file_size"] = model.file_size_bytes;
    info["model_format_has_checksum"] = model.format_has_checksum;
    info["architecture"] = model.architecture.name;
    info["parameter_count"] = model.architecture.ParameterCount();
    info["embedding_dim"] = extractor_->EmbeddingDim();
    info["sample_rate"] = kModelSampleRateHz;
    info["device"] = device.name;
    info["device_index"] = device.device_index;
    info["device_description"] = device.description;
    info["device_choice"] = extractor_->DeviceChoice();
    info["threads"] = device.num_threads;
    info["precision"] = device.precision;
    return info;
  }

 private:
  std::shared_ptr<const Extractor> extractor_;
};

double Cosine(
    const py::array_t<float, py::array::c_style | py::array::forcecast>& a,
    const py::array_t<float, py::array::c_style | py::array::forcecast>& b) {
  if (a.ndim() != 1 || b.ndim() != 1)
    throw Error(
        ErrorCode::kInvalidArgument,
        "cosine_similarity takes two vectors (1-D arrays), got shapes " +
            ShapeText(a) + " and " + ShapeText(b));
  return CosineSimilarity(
      std::span<const float>(a.data(), static_cast<size_t>(a.size())),
      std::span<const float>(b.data(), static_cast<size_t>(b.size())));
}

}  // namespace
}  // namespace voxprint::python

PYBIND11_MODULE(_voxprint, m) {
  using namespace voxprint::python;
  using voxprint::Error;
  m.doc() = "voxprint's C++ core; use the voxprint package.";
  main_thread_ident = py::module_::import("threading")
                          .attr("main_thread")()
                          .attr("ident")
                          .cast<unsigned long>();

  py::register_exception_translator([](std::exception_ptr pointer) {
    try {
      if (pointer) std::rethrow_exception(pointer);
    } catch (const Error& error) {
      const py::object instance = ToPythonError(error);
      PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(instance.ptr())),
                      instance.ptr());
    }
  });

  m.def("_set_error_classes",
        [](const py::dict& classes) { ErrorClasses() = classes; });

  py::class_<Request>(m, "Request")
      .def(py::init(&MakeRequest), py::arg("window"), py::arg("duration"),
           py::arg("step"), py::arg("start"), py::arg("end"),
           py::arg("shared_trunk"), py::arg("details"));

  py::class_<FilesIterator>(m, "FilesIterator")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__", &FilesIterator::Next);

  py::class_<PyExtractor>(m, "Extractor")
      .def(py::init<const std::string&, const std::string&, int,
                    const std::string&, int>(),
           py::arg("model"), py::arg("device"), py::arg("threads"),
           py::arg("precision"), py::arg("max_parallel_runs"))
      .def("embed_path", &PyExtractor::EmbedPath)
      .def("embed_bytes", &PyExtractor::EmbedBytes)
      .def("embed_array", &PyExtractor::EmbedArray)
      .def("embed_files", &PyExtractor::EmbedFiles)
      .def("info", &PyExtractor::Info);

  m.def("cosine_similarity", &Cosine);
  m.def("error_code_names", [] {
    std::vector<std::string> names;
    for (auto code :
         {voxprint::ErrorCode::kInvalidArgument,
          voxprint::ErrorCode::kUnsupportedInput,
          voxprint::ErrorCode::kCorruptInput, voxprint::ErrorCode::kModelError,
          voxprint::ErrorCode::kBackendUnavailable,
          voxprint::ErrorCode::kResourceLimit, voxprint::ErrorCode::kIoError,
          voxprint::ErrorCode::kInternal, voxprint::ErrorCode::kCancelled,
          voxprint::ErrorCode::kNotFound, voxprint::ErrorCode::kAlreadyExists})
      names.push_back(voxprint::ErrorCodeName(code));
    return names;
  });
}
