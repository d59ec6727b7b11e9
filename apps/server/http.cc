// The HTTP side of `voxprint serve`, and the only file that knows httplib:
// sockets, limits, timeouts, authentication, the embedded web page, request
// logging and signals. Everything about the API itself is in routes.cc.
//
// Connections are not httplib's: httplib's accept loop hands each socket to
// a ConnectionHub, whose one event thread reads the request heads of all
// connections at once under a total deadline, so a client that trickles its
// headers (slowloris) costs a file descriptor, never a thread. Only a
// complete head reaches a request thread, where httplib parses it and runs
// the route; the checks made from the head (Gatekeep) read the raw header
// bytes, not httplib's percent-decoded copies.
#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/result-json.h"
#include "routes.h"
#include "server.h"
#include "speakers-routes.h"
#include "static-assets.h"
#include "voxprint/error.h"

namespace voxprint::server {

namespace {

using Clock = std::chrono::steady_clock;

// Parts of one multipart request, files and text fields together.
constexpr size_t kMaxParts = 256;
constexpr size_t kMaxFieldBytes = 4096;
// Request line and headers together.
constexpr size_t kMaxHeadBytes = 64 * 1024;
// After the response, how long a connection may stay half-closed for the
// client to read it (see LingeringClose below).
constexpr auto kLinger = std::chrono::milliseconds(1000);

void Log(const std::string& line) {
  // One fprintf per line: stdio locks the stream, so lines never interleave.
  std::fprintf(stderr, "voxprint: %s\n", line.c_str());
}

// For events a hostile client can repeat at will: at most one line per
// second per kind, with the count of those not logged.
class ThrottledLog {
 public:
  explicit ThrottledLog(std::string what) : what_(std::move(what)) {}
  void Note(const std::string& detail) {
    std::lock_guard<std::mutex> lock(mutex_);
    const Clock::time_point now = Clock::now();
    if (now - last_ < std::chrono::seconds(1)) {
      ++suppressed_;
      return;
    }
    Log(what_ + ": " + detail +
        (suppressed_ ? " (and " + std::to_string(suppressed_) +
                           " more in the last second)"
                     : ""));
    suppressed_ = 0;
    last_ = now;
  }

 private:
  const std::string what_;
  std::mutex mutex_;
  Clock::time_point last_{};
  size_t suppressed_ = 0;
};

// The decoded path may hold anything (%0A...): one log line must stay one.
std::string Printable(const std::string& text) {
  std::string out = text.substr(0, 300);
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return out;
}

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

std::string_view TrimSpaces(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t'))
    text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t'))
    text.remove_suffix(1);
  return text;
}

// ---- The request head as it came over the wire ----

// Header fields exactly as sent: httplib percent-decodes header values (and
// its getters stop at a decoded %00), which must not decide authentication
// or framing.
struct RequestHead {
  // Lower-case name, value without surrounding spaces; in arrival order.
  std::vector<std::pair<std::string, std::string>> fields;

  std::vector<std::string_view> Values(std::string_view name) const {
    std::vector<std::string_view> values;
    for (const auto& [field, value] : fields)
      if (field == name) values.push_back(value);
    return values;
  }
};

// Where the head (request line and headers) ends in `data`, or 0 if it has
// not all arrived. Reads it as httplib does: the request line up to '\n',
// then header lines up to one that is exactly "\r\n". `*scanned` remembers
// the progress between calls.
size_t FindHeadEnd(const std::string& data, size_t* scanned) {
  const size_t request_line_end = data.find('\n');
  if (request_line_end == std::string::npos) return 0;
  size_t line = std::max(request_line_end + 1, *scanned);
  for (;;) {
    const size_t newline = data.find('\n', line);
    if (newline == std::string::npos) {
      *scanned = line;
      return 0;
    }
    if (newline == line + 1 && data[line] == '\r') return newline + 1;
    line = newline + 1;
  }
}

bool IsTokenChar(unsigned char c) {
  return std::isalnum(c) || std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

// Splits a complete head into fields; returns what is wrong with it, or
// nothing. Strict where httplib is lenient, so that no header can mean one
// thing to us and another to httplib: a line without CR (httplib skips it),
// a folded line, a name with spaces, a control character in a value.
std::optional<std::string> ParseHead(std::string_view head,
                                     RequestHead* parsed) {
  size_t line = head.find('\n') + 1;  // after the request line
  while (line < head.size()) {
    const size_t newline = head.find('\n', line);
    if (newline == line + 1) break;  // the final "\r\n"
    if (newline == line || head[newline - 1] != '\r')
      return "a header line does not end with CRLF";
    const std::string_view text = head.substr(line, newline - 1 - line);
    line = newline + 1;
    if (text.front() == ' ' || text.front() == '\t')
      return "folded header lines are not accepted";
    const size_t colon = text.find(':');
    if (colon == std::string_view::npos || colon == 0)
      return "a header line has no name";
    std::string name(text.substr(0, colon));
    for (char& c : name) {
      if (!IsTokenChar(static_cast<unsigned char>(c)))
        return "invalid character in a header name";
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    const std::string_view value = TrimSpaces(text.substr(colon + 1));
    for (unsigned char c : value)
      if ((c < 0x20 && c != '\t') || c == 0x7f)
        return "control character in header '" + name + "'";
    parsed->fields.emplace_back(std::move(name), std::string(value));
  }
  return std::nullopt;
}

// Equal secrets, in a time that depends on neither where they differ nor
// their lengths: the SHA-256 digests of both are compared in constant time.
bool SameSecret(std::string_view given, const std::string& expected) {
  unsigned char given_digest[EVP_MAX_MD_SIZE];
  unsigned char expected_digest[EVP_MAX_MD_SIZE];
  unsigned int given_size = 0;
  unsigned int expected_size = 0;
  if (EVP_Digest(given.data(), given.size(), given_digest, &given_size,
                 EVP_sha256(), nullptr) != 1 ||
      EVP_Digest(expected.data(), expected.size(), expected_digest,
                 &expected_size, EVP_sha256(), nullptr) != 1)
    return false;
  return given_size == expected_size &&
         CRYPTO_memcmp(given_digest, expected_digest, given_size) == 0;
}

// The host name of a Host header value, lower case, without port, brackets
// or trailing dot; nullopt if malformed.
std::optional<std::string> HostName(std::string_view value) {
  std::string_view name;
  std::string_view rest;
  if (!value.empty() && value.front() == '[') {
    const size_t close = value.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    name = value.substr(1, close - 1);
    rest = value.substr(close + 1);
  } else {
    const size_t colon = value.find(':');
    name = value.substr(0, colon);
    rest = colon == std::string_view::npos ? "" : value.substr(colon);
  }
  if (!rest.empty()) {
    if (rest.front() != ':' || rest.size() > 6) return std::nullopt;
    for (char c : rest.substr(1))
      if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
  }
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty()) return std::nullopt;
  return Lower(std::string(name));
}

bool IsLoopbackHost(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

// ---- Connections ----

// One client connection, from accept to close.
struct Connection {
  int fd = -1;
  std::string peer;  // client address
  Clock::time_point accepted;
  // The head and whatever of the body came with it.
  std::string received;
  size_t scanned = 0;     // FindHeadEnd's progress in `received`
  size_t head_bytes = 0;  // once the head is complete
  std::string head_text;  // its bytes
  Clock::time_point head_done;

  // Set by Gatekeep for the request thread:
  RequestHead head;
  std::optional<ApiResponse> refusal;  // the answer from the head alone
  std::shared_ptr<WorkPool::Slot> slot;
  bool body_too_slow = false;
};

// The connection being served on this request thread (httplib runs the
// handlers of a request on the thread that called process_request).
thread_local Connection* t_connection = nullptr;

// A connection's socket for httplib: first the bytes the hub has read,
// then the socket, with a per-call inactivity timeout and, for the body and
// the response, a minimum mean rate: by `grace_s` + bytes / `min_rate`
// after the head (after the first write), that many bytes must have gone.
class SocketStream final : public httplib::Stream {
 public:
  SocketStream(Connection& connection, int io_timeout_ms, double grace_s,
               double min_bytes_per_s)
      : connection_(connection),
        io_timeout_ms_(io_timeout_ms),
        grace_s_(grace_s),
        min_bytes_per_s_(min_bytes_per_s),
        buffer_(std::move(connection.received)) {}

  bool is_readable() const override {
    return position_ < buffer_.size() || Wait(POLLIN, io_timeout_ms_);
  }
  bool is_writable() const override { return Wait(POLLOUT, io_timeout_ms_); }

  ssize_t read(char* data, size_t size) override {
    if (position_ == buffer_.size()) {
      int timeout_ms = io_timeout_ms_;
      const bool in_body = delivered_ >= connection_.head_bytes;
      if (in_body) {
        const double left_s = BodySecondsLeft();
        if (left_s <= 0) {
          connection_.body_too_slow = true;
          return -1;
        }
        timeout_ms = std::min(timeout_ms, static_cast<int>(left_s * 1000) + 1);
      }
      if (!Wait(POLLIN, timeout_ms)) {
        if (in_body && BodySecondsLeft() <= 0) connection_.body_too_slow = true;
        return -1;
      }
      buffer_.resize(16384);
      ssize_t received;
      do {
        received = ::recv(connection_.fd, buffer_.data(), buffer_.size(), 0);
      } while (received < 0 && errno == EINTR);
      buffer_.resize(std::max<ssize_t>(received, 0));
      position_ = 0;
      if (received <= 0) return received;
    }
    const size_t count = std::min(size, buffer_.size() - position_);
    std::memcpy(data, buffer_.data() + position_, count);
    position_ += count;
    delivered_ += count;
    return static_cast<ssize_t>(count);
  }

  // The response is held to the same minimum rate as the body, so that a
  // client that reads it a byte at a time cannot keep a request thread.
  ssize_t write(const char* data, size_t size) override {
    if (sent_ == 0) first_write_ = Clock::now();
    const double left_s =
        grace_s_ + static_cast<double>(sent_) / min_bytes_per_s_ -
        std::chrono::duration<double>(Clock::now() - first_write_).count();
    if (left_s <= 0 ||
        !Wait(POLLOUT,
              std::min(io_timeout_ms_, static_cast<int>(left_s * 1000) + 1)))
      return -1;
    ssize_t sent;
    do {
      sent = ::send(connection_.fd, data, size, MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    if (sent > 0) sent_ += static_cast<size_t>(sent);
    return sent;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    Address(&getpeername, connection_.fd, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    Address(&getsockname, connection_.fd, ip, port);
  }
  socket_t socket() const override { return connection_.fd; }

  static void Address(int (*query)(int, sockaddr*, socklen_t*), int fd,
                      std::string& ip, int& port) {
    sockaddr_storage address{};
    socklen_t length = sizeof(address);
    ip.clear();
    port = 0;
    if (query(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) return;
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

 private:
  // By grace + bytes / rate after the head, that many body bytes must have
  // come: what is left of that time.
  double BodySecondsLeft() const {
    const double allowed_s =
        grace_s_ + static_cast<double>(delivered_ - connection_.head_bytes) /
                       min_bytes_per_s_;
    return allowed_s -
           std::chrono::duration<double>(Clock::now() - connection_.head_done)
               .count();
  }

  bool Wait(short events, int timeout_ms) const {
    pollfd entry{connection_.fd, events, 0};
    int ready;
    do {
      ready = ::poll(&entry, 1, timeout_ms);
    } while (ready < 0 && errno == EINTR);
    return ready > 0 && (entry.revents & (events | POLLHUP | POLLERR)) != 0;
  }

  Connection& connection_;
  const int io_timeout_ms_;
  const double grace_s_;
  const double min_bytes_per_s_;
  std::string buffer_;
  size_t position_ = 0;   // next unread byte of buffer_
  size_t delivered_ = 0;  // bytes handed to httplib so far
  size_t sent_ = 0;       // response bytes written
  Clock::time_point first_write_;
};

// An answer written by the hub itself (no request thread involved): one
// non-blocking send, best effort.
void SendDirectly(int fd, int status, const char* reason,
                  const std::string& code, const std::string& detail) {
  const std::string body =
      apps::DumpJson(nlohmann::json{{"error", code}, {"detail", detail}}, -1);
  const std::string response =
      "HTTP/1.1 " + std::to_string(status) + " " + reason +
      "\r\nContent-Type: application/json\r\nContent-Length: " +
      std::to_string(body.size()) +
      "\r\nConnection: close\r\nX-Content-Type-Options: nosniff\r\n" +
      (status == 503 ? "Retry-After: 1\r\n" : "") + "\r\n" + body;
  [[maybe_unused]] const ssize_t sent =
      ::send(fd, response.data(), response.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

// Owns every connection: reads their heads on one event thread under a
// deadline, hands complete ones to a fixed set of request threads, and
// closes them after the response with a lingering close, also on the event
// thread. Caps: a total (file descriptors; beyond it, new connections are
// refused with 503), and per client address the connections still waiting
// for their heads (beyond it, the oldest of them is closed: a client that
// trickles headers from many connections loses its own oldest ones, and a
// prompt request from the same address still gets through).
//
// The lingering close: a request refused from its headers (401, 413, 503)
// leaves its body unread, and close() on a socket with unread data sends a
// reset; a client still uploading then fails its write, and fetch() reports
// "EPIPE" instead of our answer if that error wins the race with reading
// the response. So the response is followed by a half-close (FIN), and the
// socket stays open, still unread, until the client hangs up or kLinger
// passes (Go's net/http waits likewise). One request per connection also
// means an unread body is never parsed as a next request.
class ConnectionHub {
 public:
  struct Limits {
    size_t max_connections = 1024;
    int max_per_address = 32;
    double head_timeout_s = 10.0;
    int request_threads = 16;
  };
  using Serve = std::function<void(Connection&)>;

  ConnectionHub(const Limits& limits, Serve serve)
      : limits_(limits), serve_(std::move(serve)) {
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0)
      throw Error(ErrorCode::kIoError,
                  std::string("eventfd: ") + std::strerror(errno));
    event_thread_ = std::thread([this] { EventLoop(); });
    for (int i = 0; i < limits_.request_threads; ++i)
      request_threads_.emplace_back([this] { RequestLoop(); });
  }
  ~ConnectionHub() {
    Stop();
    ::close(wake_fd_);
  }
  ConnectionHub(const ConnectionHub&) = delete;
  ConnectionHub& operator=(const ConnectionHub&) = delete;

  // A newly accepted socket (httplib's accept thread). Never blocks.
  void Add(int fd) {
    auto connection = std::make_unique<Connection>();
    connection->fd = fd;
    connection->accepted = Clock::now();
    int port = 0;
    SocketStream::Address(&getpeername, fd, connection->peer, port);
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    std::string refusal;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) {
        refusal = "the server is shutting down";
      } else if (open_ >= limits_.max_connections) {
        refusal = "the server has " + std::to_string(open_) +
                  " connections open, its limit";
      } else {
        ++open_;
        incoming_.push_back(std::move(connection));
      }
    }
    if (refusal.empty()) {
      Wake();
      return;
    }
    SendDirectly(fd, 503, "Service Unavailable", "too_many_connections",
                 refusal);
    ::close(fd);
    refused_log_.Note(connection->peer + ": " + refusal);
  }

  // Closes the connections whose head has not all arrived, ends the reading
  // of bodies in progress (their requests fail), lets the requests being
  // served answer, and joins the threads. Call after Routes::CancelAll, so
  // that no request waits for its job.
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_ && request_threads_.empty()) return;
      stopping_ = true;
      for (int fd : serving_) ::shutdown(fd, SHUT_RD);
    }
    ready_cv_.notify_all();
    Wake();
    if (event_thread_.joinable()) event_thread_.join();
    for (std::thread& thread : request_threads_) thread.join();
    request_threads_.clear();
    for (auto& connection : incoming_) Close(*connection);
    for (auto& connection : ready_) Close(*connection);
    for (auto& connection : finished_) Close(*connection);
    incoming_.clear();
    ready_.clear();
    finished_.clear();
  }

 private:
  struct Lingering {
    std::unique_ptr<Connection> connection;
    Clock::time_point until;
  };

  void Wake() {
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t written =
        ::write(wake_fd_, &one, sizeof(one));
  }

  void Close(Connection& connection) {
    ::close(connection.fd);
    std::lock_guard<std::mutex> lock(mutex_);
    --open_;
  }

  // Keeps at most max_per_address connections of one address waiting for
  // their heads, closing the oldest (`reading` is in accept order).
  void EvictBeyondAddressCap(
      std::vector<std::unique_ptr<Connection>>& reading) {
    std::map<std::string, int> waiting;
    for (const auto& connection : reading)
      if (connection) ++waiting[connection->peer];
    for (auto& connection : reading) {
      if (!connection) continue;
      int& count = waiting[connection->peer];
      if (count <= limits_.max_per_address) continue;
      --count;
      SendDirectly(connection->fd, 408, "Request Timeout", "request_timeout",
                   "closed to make room: too many connections from this "
                   "address are waiting for their headers "
                   "(--max-connections-per-ip)");
      evicted_log_.Note(connection->peer);
      Close(*connection);
      connection.reset();
    }
  }

  enum class ReadOutcome { kMore, kComplete, kClosed, kTooLarge };

  static ReadOutcome ReadHead(Connection& connection) {
    char chunk[16384];
    for (;;) {
      const ssize_t received = ::recv(connection.fd, chunk, sizeof(chunk), 0);
      if (received == 0) return ReadOutcome::kClosed;
      if (received < 0) {
        if (errno == EINTR) continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? ReadOutcome::kMore
                                                       : ReadOutcome::kClosed;
      }
      connection.received.append(chunk, static_cast<size_t>(received));
      const size_t end = FindHeadEnd(connection.received, &connection.scanned);
      if (end > kMaxHeadBytes ||
          (end == 0 && connection.received.size() > kMaxHeadBytes))
        return ReadOutcome::kTooLarge;
      if (end > 0) {
        connection.head_bytes = end;
        connection.head_text = connection.received.substr(0, end);
        connection.head_done = Clock::now();
        return ReadOutcome::kComplete;
      }
    }
  }

  void EventLoop() {
    std::vector<std::unique_ptr<Connection>> reading;
    std::vector<Lingering> lingering;
    std::vector<pollfd> fds;
    const auto head_timeout = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(limits_.head_timeout_s));
    auto linger = [&](std::unique_ptr<Connection> connection) {
      ::shutdown(connection->fd, SHUT_WR);
      lingering.push_back({std::move(connection), Clock::now() + kLinger});
    };
    for (;;) {
      bool arrivals = false;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stopping_) break;
        arrivals = !incoming_.empty();
        for (auto& connection : incoming_)
          reading.push_back(std::move(connection));
        incoming_.clear();
      }
      if (arrivals) EvictBeyondAddressCap(reading);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        for (auto& connection : finished_)
          lingering.push_back({std::move(connection), Clock::now() + kLinger});
        finished_.clear();
      }
      Clock::time_point now = Clock::now();
      Clock::time_point next = now + std::chrono::seconds(1);
      for (auto& connection : reading) {
        if (!connection) continue;
        if (now >= connection->accepted + head_timeout) {
          SendDirectly(connection->fd, 408, "Request Timeout",
                       "request_timeout",
                       "the request headers did not all arrive within the "
                       "time limit");
          slow_log_.Note(connection->peer);
          linger(std::move(connection));
        } else {
          next = std::min(next, connection->accepted + head_timeout);
        }
      }
      for (Lingering& entry : lingering) {
        if (entry.connection && now >= entry.until) {
          Close(*entry.connection);
          entry.connection.reset();
        } else if (entry.connection) {
          next = std::min(next, entry.until);
        }
      }
      std::erase_if(reading, [](const auto& c) { return c == nullptr; });
      std::erase_if(lingering,
                    [](const Lingering& e) { return e.connection == nullptr; });

      fds.clear();
      fds.push_back({wake_fd_, POLLIN, 0});
      for (const auto& connection : reading)
        fds.push_back({connection->fd, POLLIN | POLLRDHUP, 0});
      // POLLRDHUP alone: the client's FIN, seen without reading the unread
      // body that may precede it.
      for (const Lingering& entry : lingering)
        fds.push_back({entry.connection->fd, POLLRDHUP, 0});
      const auto wait_ms =
          std::chrono::ceil<std::chrono::milliseconds>(next - now).count();
      if (::poll(fds.data(), fds.size(), static_cast<int>(wait_ms)) < 0 &&
          errno != EINTR)
        Log(std::string("poll: ") + std::strerror(errno));
      if (fds[0].revents) {
        uint64_t count;
        [[maybe_unused]] const ssize_t got =
            ::read(wake_fd_, &count, sizeof(count));
      }
      for (size_t i = 0; i < reading.size(); ++i) {
        if (fds[1 + i].revents == 0) continue;
        switch (ReadHead(*reading[i])) {
          case ReadOutcome::kMore:
            break;
          case ReadOutcome::kComplete: {
            std::lock_guard<std::mutex> lock(mutex_);
            ready_.push_back(std::move(reading[i]));
            ready_cv_.notify_one();
            break;
          }
          case ReadOutcome::kClosed:
            Close(*reading[i]);
            reading[i].reset();
            break;
          case ReadOutcome::kTooLarge:
            SendDirectly(reading[i]->fd, 431, "Request Header Fields Too Large",
                         "bad_request",
                         "the request line and headers are over " +
                             std::to_string(kMaxHeadBytes) + " bytes");
            linger(std::move(reading[i]));
            break;
        }
      }
      const size_t lingering_base = 1 + reading.size();
      for (size_t i = 0;
           i < lingering.size() && lingering_base + i < fds.size(); ++i) {
        if (fds[lingering_base + i].revents == 0) continue;
        Close(*lingering[i].connection);
        lingering[i].connection.reset();
      }
    }
    for (auto& connection : reading)
      if (connection) Close(*connection);
    for (Lingering& entry : lingering)
      if (entry.connection) Close(*entry.connection);
  }

  void RequestLoop() {
    for (;;) {
      std::unique_ptr<Connection> connection;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_cv_.wait(lock, [this] { return stopping_ || !ready_.empty(); });
        if (stopping_) return;
        connection = std::move(ready_.front());
        ready_.pop_front();
        serving_.insert(connection->fd);
      }
      ::fcntl(connection->fd, F_SETFL,
              ::fcntl(connection->fd, F_GETFL) & ~O_NONBLOCK);
      try {
        serve_(*connection);
      } catch (...) {
        // Out of memory while parsing: drop the connection, keep the server.
      }
      connection->slot.reset();
      {
        std::lock_guard<std::mutex> lock(mutex_);
        serving_.erase(connection->fd);
        if (!stopping_) {
          ::shutdown(connection->fd, SHUT_WR);
          finished_.push_back(std::move(connection));
        }
      }
      if (connection) {
        Close(*connection);
      } else {
        Wake();
      }
    }
  }

  const Limits limits_;
  const Serve serve_;
  int wake_fd_ = -1;
  ThrottledLog refused_log_{"connection refused"};
  ThrottledLog slow_log_{"request headers too slow, connection closed"};
  ThrottledLog evicted_log_{
      "too many connections waiting for headers from one address, oldest "
      "closed"};

  std::mutex mutex_;
  bool stopping_ = false;
  size_t open_ = 0;
  std::vector<std::unique_ptr<Connection>> incoming_;  // to the event thread
  std::deque<std::unique_ptr<Connection>> ready_;      // to request threads
  std::condition_variable ready_cv_;
  std::set<int> serving_;                              // fds being served
  std::vector<std::unique_ptr<Connection>> finished_;  // to be lingered on

  std::thread event_thread_;
  std::vector<std::thread> request_threads_;
};

// httplib's task queue, made to run each task on the calling thread: the
// accept loop's task is only handing the socket to the hub.
class InlineTaskQueue final : public httplib::TaskQueue {
 public:
  void enqueue(std::function<void()> task) override { task(); }
  void shutdown() override {}
};

// httplib's server, used for its accept loop, request parsing, routing and
// response writing; connections are the hub's.
class HttpServer final : public httplib::Server {
 public:
  HttpServer() {
    new_task_queue = [] { return new InlineTaskQueue; };
  }
  // Where accepted sockets go; set before listening.
  std::function<void(int)> on_accept;

  // Parses, routes and answers the one request of `stream`; `setup` sees
  // the parsed request before any handler does.
  void ServeOne(httplib::Stream& stream,
                const std::function<void(httplib::Request&)>& setup) {
    bool closed = false;
    process_request(stream, /*close_connection=*/true, closed, setup);
  }

 private:
  bool process_and_close_socket(socket_t fd) override {
    on_accept(fd);
    return true;
  }
};

// ---- Checks from the head ----

struct HttpConfig {
  size_t max_upload_bytes = 0;
  std::string api_key;
  double min_upload_bytes_per_s = 0;
  bool any_host = false;
  std::set<std::string> allowed_hosts;  // lower case, no brackets
};

bool NeedsKey(const std::string& path) {
  return path.rfind("/api/", 0) == 0 && path != "/api/openapi.json";
}

bool HasKey(const RequestHead& head, const std::string& key) {
  bool found = false;
  // Every candidate is compared, so the time does not tell which matched.
  for (std::string_view value : head.Values("authorization"))
    if (value.size() > 7 && Lower(std::string(value.substr(0, 7))) == "bearer ")
      found |= SameSecret(TrimSpaces(value.substr(7)), key);
  for (std::string_view value : head.Values("x-api-key"))
    found |= SameSecret(value, key);
  return found;
}

// The methods a path answers, for 405's Allow; empty: no such resource.
std::string AllowedMethods(const std::string& path) {
  if (path == "/api/embed" || path == "/api/compare" || path == "/api/diarize")
    return "POST";
  if (path == "/api/identify" || path == "/api/verify") return "POST";
  if (path == "/api/speakers") return "GET, HEAD, POST";
  if (path.rfind("/api/speakers/", 0) == 0 && path.size() > 14) return "DELETE";
  if (path == "/healthz" || path == "/api/model" || path == "/api/openapi.json")
    return "GET, HEAD";
  if (path.rfind("/api/", 0) != 0 && FindStaticAsset(path) != nullptr)
    return "GET, HEAD";
  return "";
}

// Checks made from the head alone, before any of the body is read, in this
// order: framing (400), Host (403), method and path (404, 405),
// authentication (401), declared body size (413), and for an upload a free
// place among the workers and the queue (503), which the request then
// holds in connection->slot.
std::optional<ApiResponse> Gatekeep(const httplib::Request& request,
                                    Connection& connection,
                                    const HttpConfig& config, Routes& routes) {
  RequestHead& head = connection.head;
  if (auto problem = ParseHead(connection.head_text, &head))
    return ErrorResponse(400, "bad_request", *problem);

  const auto lengths = head.Values("content-length");
  const auto encodings = head.Values("transfer-encoding");
  if (lengths.size() > 1)
    return ErrorResponse(400, "bad_request",
                         "more than one Content-Length header");
  if (!encodings.empty() &&
      (encodings.size() > 1 || Lower(std::string(encodings[0])) != "chunked"))
    return ErrorResponse(400, "bad_request",
                         "unsupported Transfer-Encoding (only 'chunked')");
  if (!encodings.empty() && !lengths.empty())
    return ErrorResponse(400, "bad_request",
                         "both Content-Length and Transfer-Encoding");
  uint64_t length = 0;
  if (!lengths.empty()) {
    const std::string_view text = lengths[0];
    const auto [end, ec] =
        std::from_chars(text.data(), text.data() + text.size(), length);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size())
      return ErrorResponse(400, "bad_request", "invalid Content-Length");
  }
  const bool has_body = length > 0 || !encodings.empty();

  const auto hosts = head.Values("host");
  if (hosts.size() > 1)
    return ErrorResponse(400, "bad_request", "more than one Host header");
  if (!hosts.empty() && !config.any_host) {
    const std::optional<std::string> name = HostName(hosts[0]);
    if (!name || !config.allowed_hosts.contains(*name))
      return ErrorResponse(403, "host_not_allowed",
                           "this server does not answer to the host name '" +
                               Printable(std::string(hosts[0].substr(0, 100))) +
                               "' (--allowed-hosts)");
  }

  const std::string allowed = AllowedMethods(request.path);
  if (allowed.empty())
    return ErrorResponse(404, "not_found",
                         "no such page: " + Printable(request.path));
  const bool upload = request.method == "POST";
  bool method_ok = false;
  for (size_t at = 0; at < allowed.size();) {
    const size_t end = std::min(allowed.find(", ", at), allowed.size());
    method_ok |= allowed.compare(at, end - at, request.method) == 0;
    at = end + 2;
  }
  if (!method_ok) {
    ApiResponse response = ErrorResponse(
        405, "method_not_allowed",
        request.path + " takes " +
            (allowed == "GET, HEAD" ? std::string("GET") : allowed) +
            " requests");
    response.headers.emplace_back("Allow", allowed);
    return response;
  }

  if (!config.api_key.empty() && NeedsKey(request.path) &&
      !HasKey(head, config.api_key)) {
    ApiResponse response = ErrorResponse(
        401, "unauthorized",
        "this server needs an API key: send 'Authorization: Bearer KEY' or "
        "'X-API-Key: KEY'");
    response.headers.emplace_back("WWW-Authenticate", "Bearer");
    return response;
  }

  if (!upload && has_body)
    return ErrorResponse(400, "bad_request",
                         request.path + " takes no request body");
  if (length > config.max_upload_bytes)
    return ErrorResponse(413, "payload_too_large",
                         "request body of " + std::to_string(length) +
                             " bytes is over the server's limit of " +
                             std::to_string(config.max_upload_bytes) +
                             " bytes");
  if (upload) {
    ApiResponse refusal;
    connection.slot = routes.Admit(&refusal);
    if (!connection.slot) return refusal;
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
                             " bytes");
  if (!ok && t_connection != nullptr && t_connection->body_too_slow) {
    char rate[32];
    std::snprintf(rate, sizeof(rate), "%g",
                  config.min_upload_bytes_per_s / 1024);
    return ErrorResponse(408, "request_timeout",
                         "the request body arrived too slowly (the server "
                         "needs at least " +
                             std::string(rate) + " KiB/s)");
  }
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
    case 403:
      return "Forbidden";
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
  if (options.max_connections_per_ip < 1)
    fail("--max-connections-per-ip must be >= 1");
  if (!(options.header_timeout_s > 0))
    fail("the header timeout must be > 0 seconds");
  if (!(options.min_upload_bytes_per_s > 0))
    fail("the minimum upload rate must be > 0");
  if (!(options.shutdown_timeout_s > 0))
    fail("the shutdown timeout must be > 0 seconds");
  for (const std::string& host : options.allowed_hosts)
    if (host.empty() || host.find_first_of(" /\t") != std::string::npos)
      fail("--allowed-hosts: '" + host +
           "' is not a host name (a comma-separated list of names, or *)");
}

// Raises the open-file limit as far as allowed; returns how many
// connections the server may hold, leaving room for its other files.
size_t ConnectionCapacity() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 256;
  const rlim_t wanted = std::min<rlim_t>(limit.rlim_max, 65536);
  if (limit.rlim_cur < wanted) {
    limit.rlim_cur = wanted;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) getrlimit(RLIMIT_NOFILE, &limit);
  }
  return static_cast<size_t>(
      std::clamp<rlim_t>(limit.rlim_cur, 192, 16384 + 128) - 128);
}

HttpConfig MakeConfig(const ServerOptions& options) {
  HttpConfig config;
  config.max_upload_bytes = options.max_upload_bytes;
  config.api_key = options.api_key;
  config.min_upload_bytes_per_s = options.min_upload_bytes_per_s;
  std::vector<std::string> hosts = options.allowed_hosts;
  if (hosts.empty()) {
    const std::string bound = Lower(options.host);
    if (bound.empty() || bound == "0.0.0.0" || bound == "::") {
      hosts = {"*"};
    } else {
      hosts = {bound};
      if (IsLoopbackHost(bound))
        hosts.insert(hosts.end(), {"127.0.0.1", "localhost", "::1"});
    }
  }
  for (const std::string& host : hosts) {
    if (host == "*") {
      config.any_host = true;
      continue;
    }
    if (auto name =
            HostName(host.front() != '[' && host.find(':') != std::string::npos
                         ? "[" + host + "]"
                         : host))
      config.allowed_hosts.insert(*name);
  }
  return config;
}

}  // namespace

int RunServer(const ServerOptions& options) {
  CheckOptions(options);

  // Signals are taken by one thread with sigtimedwait, from now until this
  // function returns; every thread made from here on inherits the mask, so
  // none of them is interrupted.
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

  const HttpConfig config = MakeConfig(options);
  auto routes = std::make_unique<Routes>(limits);
  HttpServer http;
  const int io_timeout_ms = options.io_timeout_s * 1000;

  http.set_payload_max_length(options.max_upload_bytes);
  http.set_default_headers({{"X-Content-Type-Options", "nosniff"}});
  // httplib's default is SO_REUSEPORT, which lets a second server share a
  // busy port silently; SO_REUSEADDR alone still allows a quick restart.
  http.set_socket_options([](socket_t fd) {
    const int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });

  // The answer from the head, if any, is Gatekeep's (run in setup below).
  http.set_expect_100_continue_handler(
      [](const httplib::Request&, httplib::Response& response) {
        if (t_connection == nullptr || !t_connection->refusal) return 100;
        Send(response, *t_connection->refusal);
        return t_connection->refusal->status;
      });
  http.set_pre_routing_handler(
      [](const httplib::Request&, httplib::Response& response) {
        if (t_connection == nullptr || !t_connection->refusal)
          return httplib::Server::HandlerResponse::Unhandled;
        Send(response, *t_connection->refusal);
        return httplib::Server::HandlerResponse::Handled;
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
             Send(response, routes->Health());
           });
  http.Get("/api/model",
           [&routes](const httplib::Request&, httplib::Response& response) {
             Send(response, routes->Model());
           });
  http.Get("/api/openapi.json",
           [&routes](const httplib::Request&, httplib::Response& response) {
             Send(response, routes->OpenApi());
           });
  // Both upload endpoints read the body alike and differ only in the route.
  auto upload_route = [&](std::function<ApiResponse(ApiRequest)> handle) {
    return [&, handle](const httplib::Request& request,
                       httplib::Response& response,
                       const httplib::ContentReader& reader) {
      ApiRequest api;
      if (t_connection != nullptr) {
        api.slot = std::move(t_connection->slot);
        const int fd = t_connection->fd;
        // A client that closed its side has given up on the answer.
        api.client_gone = [fd] {
          pollfd entry{fd, POLLRDHUP, 0};
          return ::poll(&entry, 1, 0) > 0 &&
                 (entry.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
        };
      }
      if (auto error = ReadRequest(request, reader, config, &api)) {
        Send(response, *error);
        return;
      }
      Send(response, handle(std::move(api)));
    };
  };
  http.Post("/api/embed", upload_route([&routes](ApiRequest api) {
              return routes->Embed(std::move(api));
            }));
  http.Post("/api/compare", upload_route([&routes](ApiRequest api) {
              return routes->Compare(std::move(api));
            }));
  SpeakerRoutes speakers(*routes, options.speakers_db);
  http.Get("/api/speakers",
           [&speakers](const httplib::Request&, httplib::Response& response) {
             Send(response, speakers.List());
           });
  http.Delete(R"(/api/speakers/(.+))",
              [&speakers](const httplib::Request& request,
                          httplib::Response& response) {
                Send(response, speakers.Remove(request.matches[1]));
              });
  http.Post("/api/speakers", upload_route([&speakers](ApiRequest api) {
              return speakers.Enroll(std::move(api));
            }));
  http.Post("/api/identify", upload_route([&speakers](ApiRequest api) {
              return speakers.Identify(std::move(api));
            }));
  http.Post("/api/verify", upload_route([&speakers](ApiRequest api) {
              return speakers.Verify(std::move(api));
            }));
  http.Post("/api/diarize", upload_route([&routes, &speakers](ApiRequest api) {
              return routes->Diarize(std::move(api), [&speakers](double t) {
                return speakers.Namer(t);
              });
            }));
  http.Get(".*", ServeStatic);

  ConnectionHub::Limits hub_limits;
  hub_limits.max_connections = ConnectionCapacity();
  hub_limits.max_per_address = options.max_connections_per_ip;
  hub_limits.head_timeout_s = options.header_timeout_s;
  // Uploads and their jobs hold at most workers + queue request threads
  // (Gatekeep's slot); the rest keep /healthz and the page answering.
  hub_limits.request_threads = limits.workers + limits.queue + 16;
  ConnectionHub hub(hub_limits, [&](Connection& connection) {
    t_connection = &connection;
    SocketStream stream(connection, io_timeout_ms, options.header_timeout_s,
                        options.min_upload_bytes_per_s);
    http.ServeOne(stream, [&](httplib::Request& request) {
      MarkRequestStart();
      connection.refusal = Gatekeep(request, connection, config, *routes);
    });
    t_connection = nullptr;
  });
  http.on_accept = [&hub](int fd) { hub.Add(fd); };

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
  if (!limits.auth_required && !IsLoopbackHost(Lower(options.host)))
    Log("warning: listening beyond loopback without --api-key");

  std::atomic<bool> stop_requested{false};
  std::atomic<bool> finished{false};
  std::mutex teardown_mutex;  // routes may be cancelled, or destroyed
  bool routes_gone = false;
  std::optional<Error> load_error;

  std::thread loader([&] {
    try {
      const Clock::time_point start = Clock::now();
      auto extractor = std::make_shared<const Extractor>(extractor_options);
      if (!extractor->DeviceChoice().empty()) Log(extractor->DeviceChoice());
      routes->SetExtractor(extractor);
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

  // Takes the signals until the very end, so that a second one always
  // works, and bounds the shutdown: jobs that do not stop when cancelled
  // cannot keep the process alive.
  std::thread controller([&] {
    bool stopped = false;
    int signals_seen = 0;
    std::optional<Clock::time_point> exit_by;
    while (!finished) {
      const timespec wait{0, 50'000'000};
      const int signal_number = sigtimedwait(&stop_signals, nullptr, &wait);
      if (signal_number > 0) {
        if (++signals_seen > 1) {
          Log("second signal: exiting without waiting");
          std::_Exit(128 + signal_number);
        }
        char bound[32];
        std::snprintf(bound, sizeof(bound), "%g", options.shutdown_timeout_s);
        Log(std::string(strsignal(signal_number)) +
            ": cancelling the requests in progress, then stopping (within " +
            bound + " s)");
        stop_requested = true;
        exit_by =
            Clock::now() +
            std::chrono::duration_cast<Clock::duration>(
                std::chrono::duration<double>(options.shutdown_timeout_s));
      }
      // stop() is a no-op until listening has begun, so it waits for that.
      if (stop_requested && !stopped && http.is_running()) {
        std::lock_guard<std::mutex> lock(teardown_mutex);
        if (!routes_gone) routes->CancelAll();
        http.stop();
        stopped = true;
      }
      if (exit_by && Clock::now() > *exit_by) {
        Log("requests still running after the shutdown timeout: exiting "
            "without waiting for them");
        std::_Exit(1);
      }
    }
  });

  const bool listened = http.listen_after_bind();
  {
    std::lock_guard<std::mutex> lock(teardown_mutex);
    routes->CancelAll();
  }
  hub.Stop();
  loader.join();
  {
    // Waits for the jobs, cancelled: the pipeline stops at its next check.
    std::lock_guard<std::mutex> lock(teardown_mutex);
    routes.reset();
    routes_gone = true;
  }
  finished = true;
  controller.join();

  if (load_error) throw *load_error;
  if (!listened && !stop_requested)
    throw Error(ErrorCode::kIoError, "the server socket failed");
  Log("stopped");
  return 0;
}

}  // namespace voxprint::server
