// Fuzz target: one HTTP request, as bytes on a connection, to the real
// `voxprint serve` (voxprint::server::RunServer with the stub model of
// tests/data) running in this process on a loopback port. Each input is sent
// on a new connection, half-closed, and the answer read to the end, so it
// goes through httplib's request parsing (request line, headers, chunked
// bodies, multipart), the server's gatekeeping and body reading, the routes'
// parameter parsing, and the decoding and embedding of what it uploads.
//
// Findings: a crash or sanitizer report in any server thread, a connection
// left without an answer for 60 s (a hung worker), and a 500 answer (an
// unexpected failure inside the server).
//
// The server runs until the process exits: RunServer stops only on
// SIGINT/SIGTERM, which libFuzzer handles itself.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <thread>

#include "server.h"

namespace {

using Clock = std::chrono::steady_clock;

// Longest wait for a whole answer. Far beyond any honest request to the stub
// model (uploads are bounded by -max_len, audio by max_audio_seconds).
constexpr int kAnswerTimeoutMs = 60'000;

[[noreturn]] void Fail(const std::string& message) {
  std::fprintf(stderr, "http-fuzz: %s\n", message.c_str());
  std::abort();
}

// A port nobody listens on now (the kernel's choice for port 0).
int FreeLoopbackPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (fd < 0 ||
      ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0)
    Fail(std::string("no free loopback port: ") + std::strerror(errno));
  ::close(fd);
  return ntohs(address.sin_port);
}

// Sends `request` on a new connection, half-closes it and returns all the
// server sent back (empty when it closed without answering).
std::string Exchange(int port, const uint8_t* request, size_t size) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) Fail(std::string("socket: ") + std::strerror(errno));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) !=
      0) {
    const int error = errno;
    ::close(fd);
    if (error == ECONNREFUSED) return "";  // still starting (health polls)
    Fail(std::string("connect: ") + std::strerror(error));
  }
  // The server may answer and stop reading before the end (401, 413):
  // a failed send is then expected, and the answer is still there to read.
  size_t sent = 0;
  while (sent < size) {
    const ssize_t n = ::send(fd, request + sent, size - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);

  std::string answer;
  const Clock::time_point deadline =
      Clock::now() + std::chrono::milliseconds(kAnswerTimeoutMs);
  char buffer[65536];
  for (;;) {
    const auto left_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             deadline - Clock::now())
                             .count();
    pollfd entry{fd, POLLIN, 0};
    const int ready =
        left_ms > 0 ? ::poll(&entry, 1, static_cast<int>(left_ms)) : 0;
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0)
      Fail("no complete answer within " +
           std::to_string(kAnswerTimeoutMs / 1000) + " s (got " +
           std::to_string(answer.size()) + " bytes): a hung connection");
    const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // end of the answer (or a reset: nothing more)
    answer.append(buffer, static_cast<size_t>(n));
  }
  // A reset instead of a FIN: no TIME_WAIT left behind by each of the
  // thousands of connections a run makes.
  const linger reset{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
  ::close(fd);
  return answer;
}

// The final status code of an answer (after any "100 Continue"), 0 when it
// has no status line.
int StatusOf(const std::string& answer) {
  size_t start = 0;
  while (answer.compare(start, 12, "HTTP/1.1 100") == 0) {
    const size_t end = answer.find("\r\n\r\n", start);
    if (end == std::string::npos) return 100;
    start = end + 4;
  }
  if (answer.compare(start, 9, "HTTP/1.1 ") != 0 || answer.size() < start + 12)
    return 0;
  return std::atoi(answer.substr(start + 9, 3).c_str());
}

// Starts the server on first use, waits until its model is loaded, and
// returns its port.
int ServerPort() {
  static const int port = [] {
    voxprint::server::ServerOptions options;
    options.host = "127.0.0.1";
    options.port = FreeLoopbackPort();
    options.extractor.model_path =
        VOXPRINT_SOURCE_DIR "/tests/data/stub-basic.onnx";
    options.extractor.device = "cpu";
    options.extractor.backend.num_threads = 1;
    options.extractor.model_checksum = false;
    options.max_upload_bytes = 1u << 20;
    options.max_audio_seconds = 60.0;
    options.workers = 1;
    options.queue = 2;
    options.request_timeout_s = 30.0;
    options.io_timeout_s = 5;
    // Detached: it serves until the process exits.
    std::thread([options] {
      try {
        voxprint::server::RunServer(options);
      } catch (const std::exception& error) {
        Fail(std::string("the server did not start: ") + error.what());
      }
      Fail("the server stopped");
    }).detach();

    const char health[] = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
    const Clock::time_point deadline = Clock::now() + std::chrono::seconds(60);
    while (StatusOf(Exchange(options.port,
                             reinterpret_cast<const uint8_t*>(health),
                             sizeof(health) - 1)) != 200) {
      if (Clock::now() > deadline) Fail("the server never became ready");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return options.port;
  }();
  return port;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string answer = Exchange(ServerPort(), data, size);
  if (StatusOf(answer) == 500)
    Fail("500 answer (an unexpected failure in the server):\n" +
         answer.substr(0, 2000));
  return 0;
}
