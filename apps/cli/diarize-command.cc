#include "diarize-command.h"

#include <iostream>
#include <memory>
#include <optional>

#include "cli-common.h"
#include "common/diarization-json.h"
#include "common/result-json.h"
#include "common/speaker-naming.h"
#include "output-writers.h"
#include "voxprint/diarizer.h"
#include "voxprint/speakers.h"

namespace voxprint::cli {
namespace {

struct DiarizeFlags {
  ModelFlags model;
  std::string vad_model;
  std::optional<int> num_speakers, min_speakers, max_speakers;
  std::string clustering = "ahc";
  double threshold = kDefaultAhcThreshold;
  double window_s = 1.5;
  double step_s = 0.75;
  std::string format = "rttm";
  std::string output;
  bool quiet = false;
  std::vector<std::string> files;
  std::string speakers_db;
  double speaker_threshold = 0.7;
};

// The store's enrolled speakers name the clusters (see NamerFromStore).
SpeakerNamer NamerFromStoreFile(const std::string& location,
                                const Extractor& extractor, double threshold) {
  // Without the checksum the store would take any model's embeddings.
  if (extractor.Model().sha256.empty())
    throw Error(ErrorCode::kInternal,
                "naming speakers needs the model file's SHA-256");
  SpeakerStoreOptions options;
  options.location = location;
  options.model_sha256 = extractor.Model().sha256;
  options.embedding_dim = extractor.EmbeddingDim();
  options.create = false;
  return apps::NamerFromStore(SpeakerStore::Open(options), threshold);
}

// Progress on stderr every 10 % of a file's windows, for inputs long
// enough to wait for.
DiarizationProgress ProgressPrinter(const std::string& path) {
  auto last = std::make_shared<int>(0);
  return [path, last](int64_t done, int64_t total) {
    if (total < 400) return;  // about 5 minutes of speech
    const int tenth = static_cast<int>(done * 10 / total);
    if (tenth <= *last) return;
    *last = tenth;
    std::cerr << Printable(path) << ": " << tenth * 10 << " % (" << done << "/"
              << total << " windows)" << std::endl;
  };
}

int RunDiarize(const DiarizeFlags& flags) {
  DiarizeRequest request;
  request.clustering.method = ParseClusteringMethod(flags.clustering);
  request.clustering.threshold = flags.threshold;
  request.clustering.num_speakers = flags.num_speakers;
  request.clustering.min_speakers = flags.min_speakers;
  request.clustering.max_speakers = flags.max_speakers;
  request.windows.window_s = flags.window_s;
  request.windows.step_s = flags.step_s;
  request.cancel = CancelOnInterrupt();
  request.Validate();  // before loading anything

  const std::string vad_path = FindVadModel(flags.vad_model);
  const VoiceActivityDetector vad(vad_path, flags.model.threads);
  const std::unique_ptr<Extractor> extractor =
      flags.model.MakeExtractor(flags.quiet, 1,
                                /*model_checksum=*/!flags.speakers_db.empty());
  const Diarizer diarizer(*extractor, vad);
  if (!flags.speakers_db.empty())
    request.namer =
        NamerFromStoreFile(flags.speakers_db, *extractor,
                           flags.speaker_threshold);

  nlohmann::json results = nlohmann::json::array();
  std::string text;
  int exit_code = kExitOk;
  for (size_t i = 0; i < flags.files.size(); ++i) {
    const std::string& path = flags.files[i];
    DiarizeRequest file_request = request;
    if (!flags.quiet) file_request.progress = ProgressPrinter(path);
    try {
      const Diarization diarization = diarizer.DiarizeFile(path, file_request);
      if (flags.format == "json")
        results.push_back(apps::DiarizationToJson(diarization));
      else if (flags.format == "csv")
        text += apps::DiarizationCsv(diarization, i == 0);
      else
        text += DiarizationRttm(diarization, apps::RttmUri(path));
      if (!flags.quiet)
        std::cerr << "[" << i + 1 << "/" << flags.files.size() << "] "
                  << Printable(path) << ": " << diarization.speakers.size()
                  << " speakers, " << diarization.turns.size() << " turns, "
                  << diarization.duration_s << " s of audio in "
                  << diarization.processing_s << " s" << std::endl;
    } catch (const Error& error) {
      if (error.code() == ErrorCode::kCancelled) throw;
      PrintError(error.what());
      if (exit_code == kExitOk) exit_code = ExitCodeFor(error.code());
      results.push_back({{"path", path},
                         {"error", ErrorCodeName(error.code())},
                         {"detail", error.what()}});
      if (flags.format == "csv" && i == 0)
        text += "path,start_s,end_s,speaker\n";
    }
  }
  if (flags.format == "json")
    text = apps::DumpJson(nlohmann::json{{"results", results}}) + "\n";
  WriteOutput(flags.output, text);
  return exit_code;
}

}  // namespace

CLI::App* AddDiarizeCommand(CLI::App& root, std::function<int()>& run) {
  auto flags = std::make_shared<DiarizeFlags>();
  CLI::App* command = root.add_subcommand(
      "diarize",
      "Who spoke when: speech found by Silero VAD v5, windows of 1.5 s every "
      "0.75 s inside it embedded, clustered (agglomerative as pyannote 3.1, "
      "or spectral as WeSpeaker), turns cut where labels change. Audio "
      "without speech gives no turns (not an error).\n"
      "rttm (default): SPEAKER lines as pyannote writes them, the file name "
      "without extension as uri; json: {\"results\": [{path, duration_s, "
      "speech_s, num_windows, clustering, processing_s, segments: [{start_s, "
      "end_s, speaker}], speakers: [{label, speech_s, windows, centroid}]}]}; "
      "csv: path,start_s,end_s,speaker.");
  flags->model.AddTo(*command);
  command->add_option(
      "--vad-model", flags->vad_model,
      "silero_vad_v5.onnx (default: $VOXPRINT_VAD_MODEL, then the npm "
      "install in models/vad, then <prefix>/share/voxprint)");
  command->add_option("--num-speakers", flags->num_speakers,
                      "Exactly this many speakers");
  command->add_option("--min-speakers", flags->min_speakers,
                      "At least this many speakers");
  command->add_option("--max-speakers", flags->max_speakers,
                      "At most this many speakers");
  command->add_option("--clustering", flags->clustering, "ahc or spectral")
      ->check(CLI::IsMember({"ahc", "spectral"}))
      ->capture_default_str();
  command
      ->add_option("--threshold", flags->threshold,
                   "ahc: centroid distance between unit embeddings at which "
                   "merging stops (pyannote 3.1's)")
      ->capture_default_str();
  command->add_option("--window", flags->window_s, "Window length, seconds")
      ->capture_default_str();
  command->add_option("--step", flags->step_s, "Window step, seconds")
      ->capture_default_str();
  command->add_option("--format", flags->format, "rttm, json or csv")
      ->check(CLI::IsMember({"rttm", "json", "csv"}))
      ->capture_default_str();
  command->add_option("--output,-o", flags->output,
                      "Output file; default stdout");
  command->add_option("--speakers-db", flags->speakers_db,
                      "Name the speakers enrolled in this store (SQLite file "
                      "or postgresql://, see `voxprint speakers`); clusters "
                      "that match no one keep SPEAKER_nn");
  command
      ->add_option("--speaker-threshold", flags->speaker_threshold,
                   "A cluster takes an enrolled name when the cosine of its "
                   "centroid to that voiceprint is above this")
      ->check(CLI::Range(-1.0, 1.0))
      ->capture_default_str();
  command->add_flag("--quiet,-q", flags->quiet, "Nothing on stderr but errors");
  command->add_option("files", flags->files, "Audio files (any common format)")
      ->required();
  command->callback(
      [flags, &run] { run = [flags] { return RunDiarize(*flags); }; });
  return command;
}

}  // namespace voxprint::cli
