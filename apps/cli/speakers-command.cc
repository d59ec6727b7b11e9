#include "speakers-command.h"

#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "cli-common.h"
#include "common/result-json.h"
#include "common/speakers-json.h"
#include "voxprint/speakers.h"

namespace voxprint::cli {

namespace {

using nlohmann::json;

// --db PATH (else $VOXPRINT_DB, else the XDG data folder).
struct StoreFlags {
  std::string db;
  void AddTo(CLI::App& command) {
    command.add_option("--db", db,
                       "Speakers store (SQLite file; default $VOXPRINT_DB, "
                       "else $XDG_DATA_HOME/voxprint/speakers.db)");
  }
  // With the model: the store it may create and compare against.
  std::unique_ptr<SpeakerStore> Open(const Extractor& extractor) const {
    SpeakerStoreOptions options;
    options.location = db;
    options.model_sha256 = extractor.Model().sha256;
    options.embedding_dim = extractor.EmbeddingDim();
    return SpeakerStore::Open(options);
  }
  // Without a model: an existing store, for what compares no embeddings.
  std::unique_ptr<SpeakerStore> OpenExisting() const {
    SpeakerStoreOptions options;
    options.location = db;
    options.create = false;
    return SpeakerStore::Open(options);
  }
};

std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw Error(ErrorCode::kIoError,
                path + ": cannot open: " + std::strerror(errno));
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  if (in.bad()) throw Error(ErrorCode::kIoError, path + ": cannot read");
  return bytes;
}

std::string ReadText(const std::string& path) {
  const std::vector<uint8_t> bytes = ReadFile(path);
  return {bytes.begin(), bytes.end()};
}

void WriteText(const std::string& path, const std::string& text) {
  if (path == "-") {
    std::cout << text << std::endl;
    return;
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out.flush())
    throw Error(ErrorCode::kIoError,
                path + ": cannot write: " + std::strerror(errno));
}

void Print(const json& document) {
  std::cout << apps::DumpJson(document) << std::endl;
}

std::string CsvField(const std::string& text) {
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string quoted = "\"";
  for (const char c : text)
    quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

// --cohort FILE and the threshold it needs.
struct ScoringFlags {
  std::optional<double> threshold;
  std::string cohort;
  void AddTo(CLI::App& command) {
    command.add_option("--threshold", threshold,
                       "Accept a score above this (raw cosine: default "
                       "0.7; with --cohort required, on AS-Norm's scale). "
                       "Choose it for your data with `voxprint eval`");
    command.add_option("--cohort", cohort,
                       "AS-Norm cohort (.npy [N, 256], e.g. from `voxprint "
                       "speakers cohort build`): scores become AS-Norm's");
  }
  std::unique_ptr<AsNorm> LoadCohort(int dim) const {
    if (cohort.empty()) return nullptr;
    const NpyMatrix matrix = ReadNpyMatrix(cohort);
    if (matrix.cols != dim)
      throw Error(ErrorCode::kInvalidArgument,
                  cohort + ": cohort rows have " + std::to_string(matrix.cols) +
                      " values, the model's embeddings " + std::to_string(dim));
    return std::make_unique<AsNorm>(matrix.values, dim);
  }
  double Threshold() const {
    if (threshold) return *threshold;
    if (!cohort.empty())
      throw Error(ErrorCode::kInvalidArgument,
                  "--cohort scores are on AS-Norm's scale, which has no "
                  "default threshold: pass --threshold (choose it with "
                  "`voxprint eval --cohort`)");
    return kDefaultSameSpeakerThreshold;
  }
};

// ---- speakers enroll ----
struct EnrollFlags {
  ModelFlags model;
  StoreFlags store;
  std::string name, metadata, vad_model;
  bool append = false;
  std::vector<std::string> files;
};

int RunEnroll(const EnrollFlags& flags) {
  ValidateSpeakerName(flags.name);
  const auto extractor = flags.model.MakeExtractor(false, 1, true);
  auto store = flags.store.Open(*extractor);
  if (!flags.append) {
    // Fail before the embeddings are computed.
    try {
      store->Get(flags.name);
      throw Error(ErrorCode::kAlreadyExists,
                  "speaker \"" + flags.name +
                      "\" exists already (--append adds recordings to it)");
    } catch (const Error& error) {
      if (error.code() != ErrorCode::kNotFound) throw;
    }
  }
  const SpeechMeter meter(flags.vad_model);
  const CancelToken cancel = CancelOnInterrupt();
  std::vector<Enrollment> enrollments;
  json added = json::array();
  for (const std::string& path : flags.files) {
    SpeechMeasure measure;
    enrollments.push_back(PrepareEnrollment(*extractor, meter, ReadFile(path),
                                            path, &measure, cancel));
    added.push_back(apps::EnrollmentToJson(enrollments.back(), measure));
  }
  if (cancel.Cancelled()) throw Error(ErrorCode::kCancelled, "cancelled");
  const SpeakerInfo info =
      store->Enroll(flags.name, enrollments, flags.metadata, flags.append);
  json report = apps::EnrollmentReportToJson(info, added);
  report["store"] = store->location();
  Print(report);
  return kExitOk;
}

// ---- speakers list / remove / rename / export / import ----
struct ListFlags {
  StoreFlags store;
  std::string format = "json";
};

int RunList(const ListFlags& flags) {
  auto store = flags.store.OpenExisting();
  const std::vector<SpeakerInfo> speakers = store->List();
  if (flags.format == "csv") {
    std::cout << "name,enrollments,duration_s,speech_s,created_at,updated_at\n";
    for (const SpeakerInfo& s : speakers)
      std::cout << CsvField(s.name) << ',' << s.enrollments << ','
                << s.duration_s << ',' << s.speech_s << ',' << s.created_at
                << ',' << s.updated_at << '\n';
    return kExitOk;
  }
  json list = json::array();
  for (const SpeakerInfo& s : speakers)
    list.push_back(apps::SpeakerInfoToJson(s));
  Print({{"store", store->location()},
         {"model_sha256", store->model_sha256()},
         {"speakers", list}});
  return kExitOk;
}

// ---- identify / verify ----
struct IdentifyFlags {
  ModelFlags model;
  StoreFlags store;
  ScoringFlags scoring;
  int top_k = 5;
  std::string format = "json";
  std::vector<std::string> files;
};

int RunIdentify(const IdentifyFlags& flags) {
  const double threshold = flags.scoring.Threshold();
  const auto extractor = flags.model.MakeExtractor(false, 1, true);
  auto store = flags.store.Open(*extractor);
  const auto cohort = flags.scoring.LoadCohort(extractor->EmbeddingDim());
  EmbedRequest request;
  request.cancel = CancelOnInterrupt();
  json results = json::array();
  std::optional<Error> first_error;
  extractor->EmbedFiles(
      flags.files, request, [&](size_t index, BatchOutcome&& outcome) {
        json result;
        if (outcome.error) {
          if (!first_error) first_error = *outcome.error;
          result = {{"error", ErrorCodeName(outcome.error->code())},
                    {"detail", outcome.error->what()}};
        } else {
          result = apps::IdentificationToJson(store->Identify(
              outcome.result->embedding, flags.top_k, threshold, cohort.get()));
          result["duration_s"] = outcome.result->duration_s;
        }
        result["path"] = flags.files[index];
        results.push_back(std::move(result));
      });
  if (flags.format == "csv") {
    std::cout << "path,rank,name,score,accepted\n";
    for (const json& r : results) {
      if (!r.contains("candidates")) continue;
      int rank = 1;
      for (const json& c : r["candidates"])
        std::cout << CsvField(r["path"]) << ',' << rank++ << ','
                  << CsvField(c["name"]) << ',' << c["score"].get<double>()
                  << ',' << (c["score"].get<double>() >= threshold ? 1 : 0)
                  << '\n';
    }
  } else {
    Print({{"results", results},
           {"threshold", threshold},
           {"score_scale", apps::ScoreScale(cohort != nullptr)},
           {"speakers", store->Size()}});
  }
  return first_error ? ExitCodeFor(first_error->code()) : kExitOk;
}

struct VerifyFlags {
  ModelFlags model;
  StoreFlags store;
  ScoringFlags scoring;
  std::string name, file;
};

int RunVerify(const VerifyFlags& flags) {
  const double threshold = flags.scoring.Threshold();
  const auto extractor = flags.model.MakeExtractor(false, 1, true);
  auto store = flags.store.Open(*extractor);
  store->Get(flags.name);  // an unknown name fails before the embedding
  const auto cohort = flags.scoring.LoadCohort(extractor->EmbeddingDim());
  EmbedRequest request;
  request.cancel = CancelOnInterrupt();
  const EmbeddingResult result = extractor->EmbedFile(flags.file, request);
  json out = apps::VerificationToJson(
      store->Verify(flags.name, result.embedding, threshold, cohort.get()));
  out["path"] = flags.file;
  out["duration_s"] = result.duration_s;
  Print(out);
  return kExitOk;
}

// ---- speakers cohort build ----
struct CohortFlags {
  ModelFlags model;
  std::vector<std::string> files;
  std::string output;
};

int RunCohortBuild(const CohortFlags& flags) {
  const auto extractor = flags.model.MakeExtractor(false);
  EmbedRequest request;
  request.cancel = CancelOnInterrupt();
  std::vector<float> rows;
  extractor->EmbedFiles(
      flags.files, request, [&](size_t, BatchOutcome&& outcome) {
        if (outcome.error) throw *outcome.error;
        rows.insert(rows.end(), outcome.result->embedding.begin(),
                    outcome.result->embedding.end());
      });
  const int dim = extractor->EmbeddingDim();
  WriteNpyMatrix(flags.output, rows, static_cast<int64_t>(rows.size() / dim),
                 dim);
  Print({{"cohort", flags.output}, {"rows", rows.size() / dim}, {"dim", dim}});
  return kExitOk;
}

}  // namespace

void AddSpeakersCommands(CLI::App& root, std::function<int()>& run) {
  CLI::App* speakers = root.add_subcommand(
      "speakers",
      "The speakers store: enroll voices once, then `voxprint identify` and "
      "`voxprint verify` them. A SQLite file (--db, $VOXPRINT_DB, default "
      "$XDG_DATA_HOME/voxprint/speakers.db) tied to one model file by its "
      "SHA-256.");
  speakers->require_subcommand(1);

  {
    auto flags = std::make_shared<EnrollFlags>();
    CLI::App* c = speakers->add_subcommand(
        "enroll",
        "Enroll a speaker from recordings of their voice. Prints JSON: the "
        "speaker, each recording's seconds of speech and warnings "
        "(too_short, silence, clipping), and progress toward the recommended "
        "20 s of speech.");
    flags->model.AddTo(*c);
    flags->store.AddTo(*c);
    c->add_flag("--append", flags->append,
                "Add the recordings to an existing speaker (else a name "
                "that exists is an error)");
    c->add_option("--metadata", flags->metadata,
                  "A JSON object kept with the speaker");
    c->add_option("--vad-model", flags->vad_model,
                  "Silero VAD v5 file for measuring speech (default: found "
                  "as `voxprint vad` finds it, else an energy measure; "
                  "\"energy\" forces it)");
    c->add_option("name", flags->name, "The speaker's name (1-128 characters)")
        ->required();
    c->add_option("files", flags->files, "Audio files of the speaker")
        ->required();
    c->callback([flags, &run] { run = [flags] { return RunEnroll(*flags); }; });
  }
  {
    auto flags = std::make_shared<ListFlags>();
    CLI::App* c = speakers->add_subcommand(
        "list", "List the enrolled speakers (JSON, or --format csv)");
    flags->store.AddTo(*c);
    c->add_option("--format", flags->format, "json or csv")
        ->check(CLI::IsMember({"json", "csv"}));
    c->callback([flags, &run] { run = [flags] { return RunList(*flags); }; });
  }
  {
    auto flags = std::make_shared<std::pair<StoreFlags, std::string>>();
    CLI::App* c = speakers->add_subcommand("remove", "Remove a speaker");
    flags->first.AddTo(*c);
    c->add_option("name", flags->second, "The speaker's name")->required();
    c->callback([flags, &run] {
      run = [flags] {
        flags->first.OpenExisting()->Remove(flags->second);
        Print({{"removed", flags->second}});
        return kExitOk;
      };
    });
  }
  {
    struct RenameFlags {
      StoreFlags store;
      std::string old_name, new_name;
    };
    auto flags = std::make_shared<RenameFlags>();
    CLI::App* c = speakers->add_subcommand("rename", "Rename a speaker");
    flags->store.AddTo(*c);
    c->add_option("old", flags->old_name, "Current name")->required();
    c->add_option("new", flags->new_name, "New name")->required();
    c->callback([flags, &run] {
      run = [flags] {
        flags->store.OpenExisting()->Rename(flags->old_name, flags->new_name);
        Print({{"renamed", flags->old_name}, {"to", flags->new_name}});
        return kExitOk;
      };
    });
  }
  {
    auto flags = std::make_shared<std::pair<StoreFlags, std::string>>();
    CLI::App* c = speakers->add_subcommand(
        "export",
        "Write every speaker's enrollments and metadata as portable JSON "
        "(with the model's SHA-256) to FILE (- for stdout)");
    flags->first.AddTo(*c);
    c->add_option("file", flags->second, "Output file")->required();
    c->callback([flags, &run] {
      run = [flags] {
        WriteText(flags->second, flags->first.OpenExisting()->Export());
        return kExitOk;
      };
    });
  }
  {
    struct ImportFlags {
      ModelFlags model;
      StoreFlags store;
      std::string file;
    };
    auto flags = std::make_shared<ImportFlags>();
    CLI::App* c = speakers->add_subcommand(
        "import",
        "Add the speakers of a `speakers export` file, checked against the "
        "model; all or nothing");
    flags->model.AddTo(*c);
    flags->store.AddTo(*c);
    c->add_option("file", flags->file, "An export file")->required();
    c->callback([flags, &run] {
      run = [flags] {
        const auto extractor = flags->model.MakeExtractor(false, 1, true);
        const size_t count =
            flags->store.Open(*extractor)->Import(ReadText(flags->file));
        Print({{"imported", count}});
        return kExitOk;
      };
    });
  }
  {
    CLI::App* cohort = speakers->add_subcommand(
        "cohort",
        "AS-Norm cohorts: `speakers cohort build FILE... -o cohort.npy`");
    cohort->require_subcommand(1);
    auto flags = std::make_shared<CohortFlags>();
    CLI::App* c = cohort->add_subcommand(
        "build",
        "Embed recordings of many speakers (none of them enrolled) into a "
        "cohort .npy [N, 256] for --cohort");
    flags->model.AddTo(*c);
    c->add_option("-o,--output", flags->output, "The .npy to write")
        ->required();
    c->add_option("files", flags->files, "Audio files")->required();
    c->callback(
        [flags, &run] { run = [flags] { return RunCohortBuild(*flags); }; });
  }
  {
    auto flags = std::make_shared<IdentifyFlags>();
    CLI::App* c = root.add_subcommand(
        "identify",
        "Who is speaking? Ranks the enrolled speakers for each file (open "
        "set: below the threshold the answer is unknown, \"speaker\": null). "
        "Scores are raw cosine, or AS-Norm's with --cohort.");
    flags->model.AddTo(*c);
    flags->store.AddTo(*c);
    flags->scoring.AddTo(*c);
    c->add_option("--top-k", flags->top_k, "Candidates per file")
        ->check(CLI::Range(1, 1000000))
        ->capture_default_str();
    c->add_option("--format", flags->format, "json or csv")
        ->check(CLI::IsMember({"json", "csv"}));
    c->add_option("files", flags->files, "Audio files")->required();
    c->callback(
        [flags, &run] { run = [flags] { return RunIdentify(*flags); }; });
  }
  {
    auto flags = std::make_shared<VerifyFlags>();
    CLI::App* c = root.add_subcommand(
        "verify",
        "Is this NAME? Scores a file against one enrolled speaker: JSON "
        "{score, threshold, accepted}. Unknown name: exit 8.");
    flags->model.AddTo(*c);
    flags->store.AddTo(*c);
    flags->scoring.AddTo(*c);
    c->add_option("name", flags->name, "An enrolled speaker")->required();
    c->add_option("file", flags->file, "Audio file")->required();
    c->callback([flags, &run] { run = [flags] { return RunVerify(*flags); }; });
  }
}

}  // namespace voxprint::cli
