#include "openapi.h"

#include "diarize-routes.h"
#include "speakers-routes.h"

namespace voxprint::server {

namespace {

// JSON text rather than nested initializer lists: it reads like the document
// it is and can be checked with any OpenAPI tool.
constexpr const char* kDocument = R"json({
  "openapi": "3.0.3",
  "info": {
    "title": "voxprint",
    "version": "0.1.0",
    "description": "Speaker embeddings (pyannote.audio WeSpeaker ResNet34-LM, 256 dimensions) from audio files of any common format. Uploads are multipart/form-data or a raw audio body. Every error is JSON {\"error\": code, \"detail\": message}. When the server runs with --api-key, every /api/ route except /api/openapi.json needs 'Authorization: Bearer KEY' or 'X-API-Key: KEY'; /healthz and the web page stay open.",
    "license": {"name": "voxprint: see repository; model weights: CC-BY-4.0"}
  },
  "security": [{}, {"bearer": []}, {"apiKey": []}],
  "paths": {
    "/api/embed": {
      "post": {
        "summary": "Embed one or several audio files",
        "description": "Send files as multipart parts named 'file' (several parts make a batch; at most 64), or the audio itself as the body with Content-Type audio/* or application/octet-stream (its name from ?name=, else 'upload'). Parameters may be given in the query string or as multipart text fields (fields win). The response always holds a 'results' array, one entry per file in upload order, even for a single file. If any file fails the whole request fails, and the error names the file.",
        "parameters": [
          {"$ref": "#/components/parameters/window"},
          {"$ref": "#/components/parameters/duration"},
          {"$ref": "#/components/parameters/step"},
          {"$ref": "#/components/parameters/shared_trunk"},
          {"$ref": "#/components/parameters/drop_partial"},
          {"$ref": "#/components/parameters/start"},
          {"$ref": "#/components/parameters/end"},
          {"$ref": "#/components/parameters/name"}
        ],
        "requestBody": {
          "required": true,
          "content": {
            "multipart/form-data": {
              "schema": {
                "type": "object",
                "properties": {
                  "file": {"type": "array", "items": {"type": "string", "format": "binary"}},
                  "window": {"type": "string", "enum": ["whole", "sliding"]},
                  "duration": {"type": "number"},
                  "step": {"type": "number"},
                  "shared_trunk": {"type": "boolean"},
                  "drop_partial": {"type": "boolean"},
                  "start": {"type": "number"},
                  "end": {"type": "number"}
                },
                "required": ["file"]
              }
            },
            "audio/*": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
          }
        },
        "responses": {
          "200": {
            "description": "Embeddings, one result per file",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/EmbedResponse"}}}
          },
          "400": {"$ref": "#/components/responses/BadInput"},
          "401": {"$ref": "#/components/responses/Unauthorized"},
          "403": {"$ref": "#/components/responses/HostNotAllowed"},
          "408": {"$ref": "#/components/responses/TooSlow"},
          "413": {"$ref": "#/components/responses/TooLarge"},
          "415": {"$ref": "#/components/responses/UnsupportedMediaType"},
          "422": {"$ref": "#/components/responses/BadParameter"},
          "500": {"$ref": "#/components/responses/Internal"},
          "503": {"$ref": "#/components/responses/Busy"},
          "504": {"$ref": "#/components/responses/Timeout"}
        }
      }
    },
    "/api/compare": {
      "post": {
        "summary": "Cosine similarity of two recordings' whole-file embeddings",
        "parameters": [{"$ref": "#/components/parameters/threshold"}],
        "requestBody": {
          "required": true,
          "content": {
            "multipart/form-data": {
              "schema": {
                "type": "object",
                "properties": {
                  "a": {"type": "string", "format": "binary"},
                  "b": {"type": "string", "format": "binary"},
                  "threshold": {"type": "number", "default": 0.7}
                },
                "required": ["a", "b"]
              }
            }
          }
        },
        "responses": {
          "200": {
            "description": "Similarity and verdict at the threshold",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CompareResponse"}}}
          },
          "400": {"$ref": "#/components/responses/BadInput"},
          "401": {"$ref": "#/components/responses/Unauthorized"},
          "403": {"$ref": "#/components/responses/HostNotAllowed"},
          "408": {"$ref": "#/components/responses/TooSlow"},
          "413": {"$ref": "#/components/responses/TooLarge"},
          "415": {"$ref": "#/components/responses/UnsupportedMediaType"},
          "422": {"$ref": "#/components/responses/BadParameter"},
          "500": {"$ref": "#/components/responses/Internal"},
          "503": {"$ref": "#/components/responses/Busy"},
          "504": {"$ref": "#/components/responses/Timeout"}
        }
      }
    },
    "/api/model": {
      "get": {
        "summary": "The loaded model, its license and citations, and the server's limits",
        "responses": {
          "200": {
            "description": "Model information",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ModelInfo"}}}
          },
          "401": {"$ref": "#/components/responses/Unauthorized"},
          "503": {"$ref": "#/components/responses/Busy"}
        }
      }
    },
    "/api/openapi.json": {
      "get": {
        "summary": "This document",
        "security": [{}],
        "responses": {"200": {"description": "OpenAPI 3 document", "content": {"application/json": {}}}}
      }
    },
    "/healthz": {
      "get": {
        "summary": "Liveness: 200 once the model is loaded, 503 while it loads",
        "security": [{}],
        "responses": {
          "200": {"description": "Ready", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}},
          "503": {"description": "Loading (Retry-After: 1)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}}
        }
      }
    }
  },
  "components": {
    "securitySchemes": {
      "bearer": {"type": "http", "scheme": "bearer"},
      "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    },
    "parameters": {
      "window": {"name": "window", "in": "query", "schema": {"type": "string", "enum": ["whole", "sliding"], "default": "whole"}, "description": "One embedding for the whole (excerpt of the) file, or one per sliding window"},
      "duration": {"name": "duration", "in": "query", "schema": {"type": "number", "default": 3.0, "exclusiveMinimum": true, "minimum": 0}, "description": "Sliding window length in seconds; a last partial window is zero-padded"},
      "step": {"name": "step", "in": "query", "schema": {"type": "number", "default": 1.0, "exclusiveMinimum": true, "minimum": 0}, "description": "Sliding window hop in seconds"},
      "shared_trunk": {"name": "shared_trunk", "in": "query", "schema": {"type": "boolean", "default": false}, "description": "Sliding only, opt-in speed mode (CPU): one network run over the whole input, each window pooled from it; an approximation of the reference's per-window numbers (see bench/RESULTS.md)"},
      "drop_partial": {"name": "drop_partial", "in": "query", "schema": {"type": "boolean", "default": false}, "description": "Sliding only: leave out a last window that runs past the end of the audio (zero-padded; by default kept and marked padded). A file shorter than one window keeps its one padded window"},
      "start": {"name": "start", "in": "query", "schema": {"type": "number", "minimum": 0}, "description": "Excerpt start in seconds (applied before windowing)"},
      "end": {"name": "end", "in": "query", "schema": {"type": "number"}, "description": "Excerpt end in seconds; must be after start"},
      "name": {"name": "name", "in": "query", "schema": {"type": "string", "default": "upload"}, "description": "Name of a raw-body upload, echoed as 'path' and used in errors"},
      "threshold": {"name": "threshold", "in": "query", "schema": {"type": "number", "default": 0.7, "minimum": -1, "maximum": 1}, "description": "Same speaker when similarity > threshold"}
    },
    "schemas": {
      "Error": {
        "type": "object",
        "required": ["error", "detail"],
        "properties": {
          "error": {"type": "string", "description": "Short code: invalid_argument, unsupported_input, corrupt_input, resource_limit, payload_too_large, unsupported_media_type, missing_file, unauthorized, busy, loading, timeout, internal, ..."},
          "detail": {"type": "string", "description": "Human-readable message naming the input and the reason"}
        }
      },
      "Window": {
        "type": "object",
        "properties": {
          "start_s": {"type": "number"},
          "end_s": {"type": "number", "description": "start_s + duration, also for a padded window"},
          "padded": {"type": "boolean", "description": "Present (true) when the window runs past the end of the audio and was zero-padded, as pyannote does"},
          "covered_end_s": {"type": "number", "description": "Padded windows: where their audio ends"},
          "embedding": {"type": "array", "items": {"type": "number", "nullable": true}, "minItems": 256, "maxItems": 256}
        }
      },
      "EmbeddingResult": {
        "type": "object",
        "description": "Exactly what `voxprint embed` prints for the file, plus processing_s",
        "properties": {
          "path": {"type": "string", "description": "Upload name"},
          "duration_s": {"type": "number", "description": "Of the (excerpted) audio analysed"},
          "sample_rate_hz": {"type": "integer", "description": "Of the original stream"},
          "channels": {"type": "integer"},
          "codec": {"type": "string"},
          "container": {"type": "string"},
          "mode": {"type": "string", "enum": ["whole", "sliding"]},
          "embedding": {"type": "array", "items": {"type": "number", "nullable": true}, "description": "whole mode: 256 values"},
          "windows": {"type": "array", "items": {"$ref": "#/components/schemas/Window"}, "description": "sliding mode"},
          "shared_trunk": {"type": "boolean", "description": "Present (true) when the windows come from the opt-in shared-trunk mode"},
          "warnings": {"type": "array", "items": {"$ref": "#/components/schemas/Warning"}},
          "processing_s": {"type": "number"}
        }
      },
      "Warning": {"type": "object", "description": "Why an embedding deserves less trust (judged from the signal's energy)", "properties": {"code": {"type": "string", "enum": ["no_signal", "short_speech", "little_speech", "truncated", "clipping", "padded_window"]}, "message": {"type": "string"}}},
      "EmbedResponse": {
        "type": "object",
        "properties": {
          "results": {"type": "array", "items": {"$ref": "#/components/schemas/EmbeddingResult"}},
          "device": {"type": "string"},
          "processing_s": {"type": "number", "description": "Wall time of the whole request on its worker"}
        }
      },
      "CompareResponse": {
        "type": "object",
        "properties": {
          "similarity": {"type": "number", "minimum": -1, "maximum": 1},
          "threshold": {"type": "number"},
          "same_speaker": {"type": "boolean"},
          "a": {"type": "string"},
          "b": {"type": "string"},
          "duration_a_s": {"type": "number"},
          "duration_b_s": {"type": "number"},
          "warnings_a": {"type": "array", "items": {"$ref": "#/components/schemas/Warning"}},
          "warnings_b": {"type": "array", "items": {"$ref": "#/components/schemas/Warning"}},
          "device": {"type": "string"},
          "processing_s": {"type": "number"}
        }
      },
      "ModelInfo": {
        "type": "object",
        "description": "What `voxprint info` prints (file.path reduced to the file name), plus license, source, citations and the server's limits",
        "properties": {
          "architecture": {"type": "string"},
          "parameters": {"type": "integer"},
          "embedding_dim": {"type": "integer"},
          "sample_rate_hz": {"type": "integer"},
          "features": {"type": "object"},
          "file": {"type": "object", "properties": {"path": {"type": "string"}, "format": {"type": "string"}, "size_bytes": {"type": "integer"}, "sha256": {"type": "string"}}},
          "device": {"type": "object"},
          "license": {"type": "string"},
          "citations": {"type": "array", "items": {"type": "object", "properties": {"short": {"type": "string"}, "text": {"type": "string"}}}},
          "server": {"type": "object", "properties": {"workers": {"type": "integer"}, "queue": {"type": "integer"}, "max_upload_bytes": {"type": "integer"}, "max_audio_seconds": {"type": "number"}, "auth_required": {"type": "boolean"}}}
        }
      },
      "Health": {"type": "object", "properties": {"status": {"type": "string", "enum": ["ok", "loading"]}, "auth_required": {"type": "boolean"}, "max_upload_bytes": {"type": "integer"}, "max_audio_seconds": {"type": "number", "description": "0: no limit"}}}
    },
    "responses": {
      "BadInput": {"description": "Not audio, undecodable, too short to analyse, or no file sent (unsupported_input, corrupt_input, missing_file); or a malformed request: duplicate Content-Length, Content-Length with Transfer-Encoding, folded or bare-LF header lines (bad_request)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "HostNotAllowed": {"description": "The Host header names a host this server does not answer to (host_not_allowed; see --allowed-hosts): protection against DNS rebinding", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "TooSlow": {"description": "The request headers did not all arrive within 10 s, or the body arrived slower than 64 KiB/s on average after a 10 s grace (request_timeout)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "Unauthorized": {"description": "Missing or wrong API key (compared byte for byte as sent, no percent-decoding)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "TooLarge": {"description": "Body over the server's upload limit (refused from Content-Length before it is read: payload_too_large), or audio longer than the server's duration limit (resource_limit)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "UnsupportedMediaType": {"description": "Body neither multipart/form-data nor audio/* nor application/octet-stream", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "BadParameter": {"description": "A parameter is malformed or out of range (invalid_argument)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "Internal": {"description": "A failure of the server itself", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "Busy": {"description": "All workers busy and the queue full (busy; decided from the headers, before the body is read), the model still loading (loading), or the server shutting down (shutting_down); see Retry-After", "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait"}}, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "Timeout": {"description": "The request waited longer than the server's request timeout; its job is cancelled", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    }
  }
})json";

}  // namespace

const nlohmann::json& OpenApiDocument() {
  static const nlohmann::json document = [] {
    nlohmann::json parsed = nlohmann::json::parse(kDocument);
    AddSpeakersToOpenApi(parsed);
    parsed["paths"]["/api/diarize"] = DiarizeOpenApi();
    return parsed;
  }();
  return document;
}

}  // namespace voxprint::server
