// `voxprint serve`: the HTTP server (JSON API + web page) on top of
// voxprint::Extractor.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "voxprint/extractor.h"

namespace voxprint::server {

struct ServerOptions {
  std::string host = "127.0.0.1";  // loopback unless told otherwise
  int port = 7860;
  ExtractorOptions extractor;           // model path, device, threads
  size_t max_upload_bytes = 50u << 20;  // request body limit (413)
  double max_audio_seconds = 1800.0;    // longer audio: 413; 0: no limit
  // Inference workers; 0: auto (cores / 4, within 1..4). With several
  // workers and extractor.backend.num_threads 0, the cores are split.
  int workers = 0;
  int queue = 16;       // waiting requests beyond the workers (503)
  std::string api_key;  // empty: no authentication
  // The speakers store of /api/speakers, /api/identify and /api/verify
  // ("" = DefaultSpeakerStorePath()), opened at its first use.
  std::string speakers_db;
  double request_timeout_s = 600.0;  // longest wait for a job's result (504)
  int io_timeout_s = 30;             // socket read/write inactivity limit
  // Host header values accepted (names or addresses, no port; "*": any).
  // Empty: those of --host; for a loopback host also 127.0.0.1, localhost
  // and ::1; for 0.0.0.0 or :: any. Guards a local server against DNS
  // rebinding (a web page whose name is made to resolve to 127.0.0.1).
  std::vector<std::string> allowed_hosts;
  // Connections from one address still sending their headers; beyond it
  // the oldest of them is closed (a slowloris client evicts its own).
  int max_connections_per_ip = 32;
  // The request line and headers must arrive within this (408 beyond), and
  // the body at a mean rate of at least min_upload_bytes_per_s after a
  // grace of the same time (408 beyond).
  double header_timeout_s = 10.0;
  double min_upload_bytes_per_s = 64 * 1024;
  // After SIGINT/SIGTERM: how long requests and jobs (cancelled) get to
  // finish before the process exits regardless.
  double shutdown_timeout_s = 5.0;
};

// Binds host:port (port 0: any free port; the chosen one is logged as
// "voxprint: listening on http://HOST:PORT/ ..."), loads the model in the
// background (meanwhile /healthz and the API answer 503 "loading"), and
// serves until SIGINT/SIGTERM, then stops accepting, cancels the jobs in
// progress (their requests get 503) and returns the process exit code (0);
// if that takes over shutdown_timeout_s, or on a second signal, the process
// exits at once (_exit, status 1 and 128 + signal).
// Logs one line per request on stderr. Blocks SIGINT/SIGTERM and ignores
// SIGPIPE while it runs, restoring both before it returns.
// Throws voxprint::Error for start-up failures (bad options, port in use,
// model that cannot be loaded, ...).
int RunServer(const ServerOptions& options);

}  // namespace voxprint::server
