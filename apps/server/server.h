// `voxprint serve`: the HTTP server (JSON API + web page) on top of
// voxprint::Extractor.
#pragma once

#include <cstddef>
#include <string>

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
  double request_timeout_s = 600.0;  // longest wait for a job's result (504)
  int io_timeout_s = 30;             // socket read/write inactivity limit
};

// Binds host:port (port 0: any free port; the chosen one is logged as
// "voxprint: listening on http://HOST:PORT/ ..."), loads the model in the
// background (meanwhile /healthz and the API answer 503 "loading"), and
// serves until SIGINT/SIGTERM, then finishes the requests in progress and
// returns the process exit code (0). A second signal exits at once.
// Logs one line per request on stderr. Blocks SIGINT/SIGTERM and ignores
// SIGPIPE while it runs, restoring both before it returns.
// Throws voxprint::Error for start-up failures (bad options, port in use,
// model that cannot be loaded, ...).
int RunServer(const ServerOptions& options);

}  // namespace voxprint::server
