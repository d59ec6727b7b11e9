// The HTTP side of `voxprint serve`, and the only file that knows httplib:
// sockets, limits, timeouts, authentication, the embedded web page, request
// logging and signals. Everything about the API itself is in routes.cc.
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "common/result-json.h"
#include "routes.h"
#include "server.h"
#include "static-assets.h"
#include "voxprint/error.h"

namespace voxprint::server {

namespace {

using Clock = std::chrono::steady_clock;

// Parts of one multipart request, files and text fields together.
constexpr size_t kMaxParts = 256;
constexpr size_t kMaxFieldBytes = 4096;

// Request timing and outcome for the log line. httplib runs each connection
// on one pool thread from start to end, so thread-locals are per request.
thread_local bool t_started = false;
thread_local Clock::time_point t_start;
thread_local std::string t_error_code;

void MarkRequestStart() {
  if (t_started) return;
  t_started = true;
  t_start = Clock::now();
  t_error_code.clear();
}

void Log(const std::string& line) {
  // One fprintf per line: stdio locks the stream, so lines never interleave.
  std::fprintf(stderr, "voxprint: %s\n", line.c_str());
}

// The decoded path may hold anything (%0A...): one log line must stay one.
std::string Printable(const std::string& text) {
  std::string out = text.substr(0, 300);
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return out;
}

void LogRequest(const httplib::Request& request,
                const httplib::Response& response) {
  char elapsed[32] = "-";
  if (t_started) {
    std::snprintf(
        elapsed, sizeof(elapsed), "%.1f ms",
        std::chrono::duration<double, std::milli>(Clock::now() - t_start)
            .count());
  }
  std::fprintf(stderr, "voxprint: %s %s %s %d %zu B %s%s%s\n",
               request.remote_addr.c_str(), Printable(request.method).c_str(),
               Printable(request.path).c_str(), response.status,
               response.body.size(), elapsed, t_error_code.empty() ? "" : " ",
               t_error_code.c_str());
  t_started = false;
  t_error_code.clear();
}

void Send(httplib::Response& response, const ApiResponse& api) {
  response.status = api.status;
  for (const auto& [name, value] : api.headers)
    response.set_header(name, value);
  if (api.status >= 400 && api.body.contains("error"))
    t_error_code = api.body["error"].get<std::string>();
  response.set_content(apps::DumpJson(api.body, -1), "application/json");
}

std::string Lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return text;
}

// Equal strings, in a time that does not depend on where they differ.
bool SameSecret(const std::string& given, const std::string& expected) {
  unsigned char difference = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i)
    difference |= static_cast<unsigned char>((i < given.size() ? given[i] : 0) ^
                                             expected[i]);
  return difference == 0;
}

// A connection's socket with per-call timeouts and a read buffer (header
// lines are read a byte at a time).
class SocketStream final : public httplib::Stream {
 public:
  SocketStream(int fd, int read_timeout_ms, int write_timeout_ms)
      : fd_(fd),
        read_timeout_ms_(read_timeout_ms),
        write_timeout_ms_(write_timeout_ms) {}

  bool is_readable() const override {
    return buffered_ < filled_ || Wait(POLLIN, read_timeout_ms_);
  }
  bool is_writable() const override { return Wait(POLLOUT, write_timeout_ms_); }

  ssize_t read(char* data, size_t size) override {
    if (buffered_ == filled_) {
      if (!Wait(POLLIN, read_timeout_ms_)) return -1;
      if (size >= sizeof(buffer_)) return Receive(data, size);
      const ssize_t received = Receive(buffer_, sizeof(buffer_));
      if (received <= 0) return received;
      buffered_ = 0;
      filled_ = static_cast<size_t>(received);
    }
    const size_t count = std::min(size, filled_ - buffered_);
    std::memcpy(data, buffer_ + buffered_, count);
    buffered_ += count;
    return static_cast<ssize_t>(count);
  }

  ssize_t write(const char* data, size_t size) override {
    if (!Wait(POLLOUT, write_timeout_ms_)) return -1;
    ssize_t sent;
    do {
      sent = ::send(fd_, data, size, MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    return sent;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    Address(&getpeername, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    Address(&getsockname, ip, port);
  }
  socket_t socket() const override { return fd_; }

 private:
  bool Wait(short events, int timeout_ms) const {
    pollfd entry{fd_, events, 0};
    int ready;
    do {
      ready = ::poll(&entry, 1, timeout_ms);
    } while (ready < 0 && errno == EINTR);
    return ready > 0 && (entry.revents & (events | POLLHUP)) != 0;
  }

  ssize_t Receive(char* data, size_t size) {
    ssize_t received;
    do {
      received = ::recv(fd_, data, size, 0);
    } while (received < 0 && errno == EINTR);
    return received;
  }

  void Address(int (*query)(int, sockaddr*, socklen_t*), std::string& ip,
               int& port) const {
    sockaddr_storage address{};
    socklen_t length = sizeof(address);
    ip.clear();
    port = 0;
    if (query(fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) return;
    char text[INET6_ADDRSTRLEN] = "";
    if (address.ss_family == AF_INET) {
      const auto* v4 = reinterpret_cast<const sockaddr_in*>(&address);
      inet_ntop(AF_INET, &v4->sin_addr, text, sizeof(text));
      port = ntohs(v4->sin_port);
    } else if (address.ss_family == AF_INET6) {
      const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&address);
      inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof(text));
      port = ntohs(v6->sin6_port);
    }
    ip = text;
  }

  const int fd_;
  const int read_timeout_ms_;
  const int write_timeout_ms_;
  char buffer_[16384];
  size_t buffered_ = 0;  // next unread byte of buffer_
  size_t filled_ = 0;    // bytes in buffer_
};

// httplib's server with its per-connection step replaced: one request per
// connection, then a lingering close. A request refused from its headers
// (401, 413) leaves its body unread, and close() on a socket with unread
// data sends a reset; a client still uploading then fails its write, and
// fetch() reports "EPIPE" instead of our answer if that error wins the race
// with reading the response. So the response is followed by a half-close
// (FIN), and the socket stays open, still unread, until the client hangs up
// or a second passes (Go's net/http waits likewise). The client has the
// answer before any reset, and the refused body is never read. One request
// per connection also means an unread body is never parsed as a next request.
class HttpServer final : public httplib::Server {
 private:
  static constexpr int kLingerMs = 1000;

  bool process_and_close_socket(socket_t fd) override {
    bool ok = false;
    try {
      SocketStream stream(fd,
                          static_cast<int>(read_timeout_sec_ * 1000 +
                                           read_timeout_usec_ / 1000),
                          static_cast<int>(write_timeout_sec_ * 1000 +
                                           write_timeout_usec_ / 1000));
      bool closed = false;
      ok = process_request(stream, /*close_connection=*/true, closed, nullptr);
    } catch (...) {
      // Out of memory while parsing: drop the connection, keep the server.
      ok = false;
    }
    LingeringClose(fd);
    return ok;
  }

  static void LingeringClose(int fd) {
    ::shutdown(fd, SHUT_WR);
    // POLLRDHUP: the client's FIN, seen without reading what precedes it.
    pollfd entry{fd, POLLRDHUP, 0};
    while (::poll(&entry, 1, kLingerMs) < 0 && errno == EINTR) {
    }
    ::close(fd);
  }
};

struct HttpConfig {
  size_t max_upload_bytes = 0;
  std::string api_key;
};

bool NeedsKey(const std::string& path) {
  return path.rfind("/api/", 0) == 0 && path != "/api/openapi.json";
}

bool HasKey(const httplib::Request& request, const std::string& key) {
  const std::string authorization = request.get_header_value("Authorization");
  if (authorization.size() > 7 &&
      Lower(authorization.substr(0, 7)) == "bearer " &&
      SameSecret(authorization.substr(7), key))
    return true;
  return request.has_header("X-API-Key") &&
         SameSecret(request.get_header_value("X-API-Key"), key);
}

// Checks made from the headers alone, before any of the body is read:
// authentication, then the declared body size.
std::optional<ApiResponse> Gatekeep(const httplib::Request& request,
                                    const HttpConfig& config) {
  if (!config.api_key.empty() && NeedsKey(request.path) &&
      !HasKey(request, config.api_key)) {
    ApiResponse response = ErrorResponse(
        401, "unauthorized",
        "this server needs an API key: send 'Authorization: Bearer KEY' or "
        "'X-API-Key: KEY'");
    response.headers.emplace_back("WWW-Authenticate", "Bearer");
    return response;
  }
  if (request.has_header("Content-Length")) {
    const std::string text = request.get_header_value("Content-Length");
    uint64_t length = 0;
    const auto [end, ec] =
        std::from_chars(text.data(), text.data() + text.size(), length);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size())
      return ErrorResponse(400, "bad_request", "invalid Content-Length");
    if (length > config.max_upload_bytes)
      return ErrorResponse(413, "payload_too_large",
                           "request body of " + std::to_string(length) +
                               " bytes is over the server's limit of " +
                               std::to_string(config.max_upload_bytes) +
                               " bytes (--max-upload-mb)");
  }
  return std::nullopt;
}

bool HasBody(const httplib::Request& request) {
  if (request.has_header("Content-Length"))
    return request.get_header_value("Content-Length") != "0";
  return Lower(request.get_header_value("Transfer-Encoding")).find("chunked") !=
         std::string::npos;
}

bool IsRawAudioType(const std::string& content_type) {
  const std::string media =
      Lower(content_type.substr(0, content_type.find(';')));
  return media.rfind("audio/", 0) == 0 || media.rfind("video/", 0) == 0 ||
         media == "application/octet-stream";
}

// Reads the body into `out` (multipart parts or one raw upload), counting
// bytes as they arrive so that a body without Content-Length (chunked) is
// cut off at the limit too. Returns an error response, or nullopt.
std::optional<ApiResponse> ReadRequest(const httplib::Request& request,
                                       const httplib::ContentReader& reader,
                                       const HttpConfig& config,
                                       ApiRequest* out) {
  for (const auto& [name, value] : request.params)
    out->params.emplace(name, value);
  if (!HasBody(request)) return std::nullopt;

  size_t total = 0;
  bool too_large = false;
  std::string problem;
  auto count = [&](size_t n) {
    total += n;
    if (total > config.max_upload_bytes) too_large = true;
    return !too_large;
  };

  bool ok = false;
  if (request.is_multipart_form_data()) {
    std::vector<std::pair<std::string, std::string>> fields;
    bool in_file = false;
    ok = reader(
        [&](const httplib::MultipartFormData& part) {
          if (out->uploads.size() + fields.size() >= kMaxParts) {
            problem = "more than " + std::to_string(kMaxParts) + " parts";
            return false;
          }
          in_file = !part.filename.empty();
          if (in_file)
            out->uploads.push_back(
                {part.name, part.filename, part.content_type, {}});
          else
            fields.emplace_back(part.name, std::string());
          return true;
        },
        [&](const char* data, size_t n) {
          if (!count(n)) return false;
          std::string& target =
              in_file ? out->uploads.back().bytes : fields.back().second;
          if (!in_file && target.size() + n > kMaxFieldBytes) {
            problem = "form field '" + fields.back().first + "' is too long";
            return false;
          }
          target.append(data, n);
          return true;
        });
    for (auto& [name, value] : fields) out->params[name] = std::move(value);
  } else {
    const std::string content_type = request.get_header_value("Content-Type");
    if (!IsRawAudioType(content_type))
      return ErrorResponse(
          415, "unsupported_media_type",
          "send audio as multipart/form-data (curl -F file=@x.wav) or as the "
          "body with Content-Type audio/* or application/octet-stream, not '" +
              content_type.substr(0, 60) + "'");
    const std::string name = request.get_param_value("name");
    Upload upload{"body", name.empty() ? "upload" : name, content_type, {}};
    if (request.has_header("Content-Length"))
      upload.bytes.reserve(std::min<uint64_t>(
          config.max_upload_bytes,
          std::strtoull(request.get_header_value("Content-Length").c_str(),
                        nullptr, 10)));
    ok = reader([&](const char* data, size_t n) {
      if (!count(n)) return false;
      upload.bytes.append(data, n);
      return true;
    });
    out->uploads.push_back(std::move(upload));
  }
  if (too_large)
    return ErrorResponse(413, "payload_too_large",
                         "request body is over the server's limit of " +
                             std::to_string(config.max_upload_bytes) +
                             " bytes (--max-upload-mb)");
  if (!ok)
    return ErrorResponse(400, "bad_request",
                         problem.empty()
                             ? "could not read the request body (malformed "
                               "multipart data, or the connection failed)"
                             : problem);
  return std::nullopt;
}

void ServeStatic(const httplib::Request& request, httplib::Response& response) {
  const std::string& path = request.path;
  if (path == "/api/embed" || path == "/api/compare") {
    ApiResponse api =
        ErrorResponse(405, "method_not_allowed", path + " takes POST requests");
    api.headers.emplace_back("Allow", "POST");
    Send(response, api);
    return;
  }
  const StaticAsset* asset = FindStaticAsset(path);
  if (asset == nullptr || path.rfind("/api/", 0) == 0) {
    Send(response, ErrorResponse(404, "not_found",
                                 "no such page: " + path.substr(0, 200)));
    return;
  }
  // Vite names assets by content hash; only the page itself can change.
  response.set_header("Cache-Control",
                      path.rfind("/assets/", 0) == 0
                          ? "public, max-age=31536000, immutable"
                          : "no-cache");
  response.set_header(
      "Content-Security-Policy",
      "default-src 'self'; img-src 'self' data: blob:; media-src 'self' "
      "blob:; style-src 'self' 'unsafe-inline'; object-src 'none'; "
      "frame-ancestors 'none'; base-uri 'none'");
  response.set_header("Referrer-Policy", "no-referrer");
  response.set_content(reinterpret_cast<const char*>(asset->data), asset->size,
                       std::string(asset->content_type));
}

// Reason phrases for the statuses httplib may set on its own.
const char* StatusText(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Payload Too Large";
    case 414:
      return "URI Too Long";
    case 416:
      return "Range Not Satisfiable";
    case 417:
      return "Expectation Failed";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Error";
  }
}

std::string HostForUrl(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

void CheckOptions(const ServerOptions& options) {
  auto fail = [](const std::string& message) {
    throw Error(ErrorCode::kInvalidArgument, message);
  };
  if (options.port < 0 || options.port > 65535)
    fail("--port must be within 0..65535 (0: any free port)");
  if (options.workers < 0) fail("--workers must be >= 0 (0: auto)");
  if (options.queue < 0) fail("--queue must be >= 0");
  if (options.max_upload_bytes == 0) fail("--max-upload-mb must be > 0");
  if (!(options.max_audio_seconds >= 0))
    fail("--max-audio-seconds must be >= 0 (0: no limit)");
  if (!(options.request_timeout_s > 0))
    fail("the request timeout must be > 0 seconds");
  if (options.io_timeout_s <= 0) fail("the I/O timeout must be > 0 seconds");
}

}  // namespace

int RunServer(const ServerOptions& options) {
  CheckOptions(options);

  // Signals are taken by one thread with sigtimedwait; every thread made
  // from here on inherits the mask, so none of them is interrupted.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigset_t previous_mask;
  pthread_sigmask(SIG_BLOCK, &stop_signals, &previous_mask);
  // A client that hangs up must not kill the server through SIGPIPE.
  struct sigaction ignore_pipe {};
  struct sigaction previous_pipe {};
  ignore_pipe.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ignore_pipe, &previous_pipe);
  struct RestoreSignals {
    sigset_t mask;
    struct sigaction pipe;
    ~RestoreSignals() {
      sigaction(SIGPIPE, &pipe, nullptr);
      pthread_sigmask(SIG_SETMASK, &mask, nullptr);
    }
  } restore{previous_mask, previous_pipe};

  const int cores =
      std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  RouteLimits limits;
  limits.workers =
      options.workers > 0 ? options.workers : std::clamp(cores / 4, 1, 4);
  limits.queue = options.queue;
  limits.max_upload_bytes = options.max_upload_bytes;
  limits.max_audio_seconds = options.max_audio_seconds;
  limits.request_timeout_s = options.request_timeout_s;
  limits.auth_required = !options.api_key.empty();

  ExtractorOptions extractor_options = options.extractor;
  extractor_options.max_parallel_runs = limits.workers;
  extractor_options.audio_limits.max_duration_s = options.max_audio_seconds;
  // Workers share the cores instead of each spawning one thread per core.
  if (extractor_options.backend.num_threads == 0 && limits.workers > 1)
    extractor_options.backend.num_threads = std::max(1, cores / limits.workers);

  const HttpConfig config{options.max_upload_bytes, options.api_key};
  Routes routes(limits);
  HttpServer http;

  // Enough connection threads that /healthz and refusals stay responsive
  // while workers + queue requests wait for their jobs.
  const size_t http_threads =
      static_cast<size_t>(std::max(8, limits.workers + limits.queue + 4));
  http.new_task_queue = [http_threads] {
    return new httplib::ThreadPool(http_threads);
  };
  http.set_read_timeout(options.io_timeout_s, 0);
  http.set_write_timeout(options.io_timeout_s, 0);
  http.set_payload_max_length(options.max_upload_bytes);
  http.set_default_headers({{"X-Content-Type-Options", "nosniff"}});
  // httplib's default is SO_REUSEPORT, which lets a second server share a
  // busy port silently; SO_REUSEADDR alone still allows a quick restart.
  http.set_socket_options([](socket_t fd) {
    const int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });

  http.set_expect_100_continue_handler(
      [&config](const httplib::Request& request, httplib::Response& response) {
        MarkRequestStart();
        if (auto refusal = Gatekeep(request, config)) {
          Send(response, *refusal);
          return refusal->status;
        }
        return 100;
      });
  http.set_pre_routing_handler(
      [&config](const httplib::Request& request, httplib::Response& response) {
        MarkRequestStart();
        if (auto refusal = Gatekeep(request, config)) {
          Send(response, *refusal);
          return httplib::Server::HandlerResponse::Handled;
        }
        return httplib::Server::HandlerResponse::Unhandled;
      });
  // Statuses httplib sets by itself (400 unparsable request, 413, 414, ...)
  // get a JSON body like ours.
  http.set_error_handler(
      [](const httplib::Request&, httplib::Response& response) {
        if (!response.body.empty()) return;
        const char* code = response.status == 413   ? "payload_too_large"
                           : response.status == 404 ? "not_found"
                           : response.status < 500  ? "bad_request"
                                                    : "internal";
        Send(response, ErrorResponse(response.status, code,
                                     "HTTP " + std::to_string(response.status) +
                                         " " + StatusText(response.status)));
      });
  http.set_exception_handler([](const httplib::Request&,
                                httplib::Response& response,
                                std::exception_ptr) {
    Send(response, ErrorResponse(500, "internal", "unexpected failure"));
  });
  http.set_logger(LogRequest);

  http.Get("/healthz",
           [&routes](const httplib::Request&, httplib::Response& response) {
             Send(response, routes.Health());
           });
  http.Get("/api/model",
           [&routes](const httplib::Request&, httplib::Response& response) {
             Send(response, routes.Model());
           });
  http.Get("/api/openapi.json",
           [&routes](const httplib::Request&, httplib::Response& response) {
             Send(response, routes.OpenApi());
           });
  // Both upload endpoints read the body alike and differ only in the route.
  auto upload_route = [&](ApiResponse (Routes::*handle)(ApiRequest)) {
    return [&, handle](const httplib::Request& request,
                       httplib::Response& response,
                       const httplib::ContentReader& reader) {
      ApiRequest api;
      if (auto error = ReadRequest(request, reader, config, &api)) {
        Send(response, *error);
        return;
      }
      Send(response, (routes.*handle)(std::move(api)));
    };
  };
  http.Post("/api/embed", upload_route(&Routes::Embed));
  http.Post("/api/compare", upload_route(&Routes::Compare));
  http.Get(".*", ServeStatic);

  int port = options.port;
  errno = 0;
  if (port == 0) {
    port = http.bind_to_any_port(options.host);
  } else if (!http.bind_to_port(options.host, port)) {
    port = -1;
  }
  if (port < 0) {
    throw Error(ErrorCode::kIoError,
                "cannot listen on " + HostForUrl(options.host) + ":" +
                    std::to_string(options.port) +
                    (errno ? std::string(": ") + std::strerror(errno) : ""));
  }
  Log("listening on http://" + HostForUrl(options.host) + ":" +
      std::to_string(port) + "/ (workers " + std::to_string(limits.workers) +
      ", queue " + std::to_string(limits.queue) + ", max upload " +
      std::to_string(options.max_upload_bytes) + " bytes" +
      (limits.auth_required ? ", API key required" : "") + ")");
  if (!limits.auth_required && options.host != "127.0.0.1" &&
      options.host != "localhost" && options.host != "::1")
    Log("warning: listening beyond loopback without --api-key");

  std::atomic<bool> stop_requested{false};
  std::atomic<bool> listen_done{false};
  std::optional<Error> load_error;

  std::thread loader([&] {
    try {
      const Clock::time_point start = Clock::now();
      auto extractor = std::make_shared<const Extractor>(extractor_options);
      if (!extractor->DeviceChoice().empty()) Log(extractor->DeviceChoice());
      routes.SetExtractor(extractor);
      char seconds[32];
      std::snprintf(
          seconds, sizeof(seconds), "%.2f",
          std::chrono::duration<double>(Clock::now() - start).count());
      Log("model loaded in " + std::string(seconds) + " s from " +
          extractor->Model().path + " on " + extractor->Device().name);
    } catch (const Error& error) {
      load_error = error;
      stop_requested = true;
    } catch (const std::exception& error) {
      load_error = Error(ErrorCode::kInternal, error.what());
      stop_requested = true;
    }
  });

  std::thread controller([&] {
    bool stopped = false;
    int signals_seen = 0;
    while (!listen_done) {
      const timespec wait{0, 100'000'000};
      const int signal_number = sigtimedwait(&stop_signals, nullptr, &wait);
      if (signal_number > 0) {
        if (++signals_seen > 1) {
          Log("second signal: exiting without waiting");
          std::_Exit(128 + signal_number);
        }
        Log(std::string(strsignal(signal_number)) +
            ": finishing the requests in progress, then stopping");
        stop_requested = true;
      }
      // stop() is a no-op until listening has begun, so it waits for that.
      if (stop_requested && !stopped && http.is_running()) {
        http.stop();
        stopped = true;
      }
    }
  });

  const bool listened = http.listen_after_bind();
  listen_done = true;
  controller.join();
  loader.join();

  if (load_error) throw *load_error;
  if (!listened && !stop_requested)
    throw Error(ErrorCode::kIoError, "the server socket failed");
  Log("stopped");
  return 0;
}

}  // namespace voxprint::server
