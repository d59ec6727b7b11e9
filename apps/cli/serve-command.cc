#include "serve-command.h"

#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>

#include "cli-common.h"
#include "common/model-lookup.h"
#include "server.h"

namespace voxprint::cli {

namespace {

struct ServeFlags {
  ModelFlags model;
  server::ServerOptions server;
  double max_upload_mb = 50.0;
};

}  // namespace

CLI::App* AddServeCommand(CLI::App& root, std::function<int()>& run) {
  auto flags = std::make_shared<ServeFlags>();
  server::ServerOptions& options = flags->server;
  CLI::App* command = root.add_subcommand(
      "serve",
      "HTTP server: JSON API (POST /api/embed, POST /api/compare, GET "
      "/api/model, GET /api/openapi.json, GET /healthz) and a web page at /.");
  command
      ->add_option("--host", options.host,
                   "Address to listen on (default: loopback only)")
      ->capture_default_str();
  command->add_option("--port", options.port, "TCP port (0: any free port)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  flags->model.AddTo(*command);
  command
      ->add_option("--max-upload-mb", flags->max_upload_mb,
                   "Largest request body, in MiB (413 beyond)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  command
      ->add_option("--max-audio-seconds", options.max_audio_seconds,
                   "Longest audio accepted, in seconds (413 beyond; 0: no "
                   "limit)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  command
      ->add_option("--workers", options.workers,
                   "Inference workers (0: auto, cores / 4 within 1..4)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  command
      ->add_option("--queue", options.queue,
                   "Requests that may wait for a worker; more get 503")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  command
      ->add_option("--request-timeout", options.request_timeout_s,
                   "Longest wait for a result, in seconds (504 beyond)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  command
      ->add_option("--allowed-hosts", options.allowed_hosts,
                   "Host header names the server answers to, comma-separated "
                   "(*: any). Default: those of --host (127.0.0.1, localhost "
                   "and ::1 for loopback; any for 0.0.0.0 or ::); others get "
                   "403, which stops DNS-rebinding pages")
      ->delimiter(',');
  command
      ->add_option("--max-connections-per-ip", options.max_connections_per_ip,
                   "Connections from one client address that may wait for "
                   "their request headers; beyond it the oldest is closed")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  command->add_option(
      "--api-key", options.api_key,
      "Require 'Authorization: Bearer KEY' or 'X-API-Key: KEY' on /api/ "
      "(default: $VOXPRINT_API_KEY; the page and /healthz stay open)");
  command->add_option("--db", options.speakers_db,
                      "Speakers store for /api/speakers, /api/identify and "
                      "/api/verify (default $VOXPRINT_DB, else "
                      "$XDG_DATA_HOME/voxprint/speakers.db; opened at first "
                      "use)");
  command->callback([flags, &run] {
    run = [flags] {
      server::ServerOptions options = flags->server;
      if (options.api_key.empty()) {
        if (const char* key = std::getenv("VOXPRINT_API_KEY"))
          options.api_key = key;
      }
      options.max_upload_bytes =
          static_cast<size_t>(flags->max_upload_mb * 1024.0 * 1024.0);
      options.extractor.model_path = apps::ResolveModelPath(
          flags->model.model_path, +[](const std::string& line) {
            std::cerr << "voxprint: " << line << std::endl;
          });
      options.extractor.device = flags->model.device;
      options.extractor.backend.num_threads = flags->model.threads;
      return server::RunServer(options);
    };
  });
  return command;
}

}  // namespace voxprint::cli
