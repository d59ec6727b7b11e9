#include "embed-command.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>

#include "cli-common.h"
#include "common/result-json.h"
#include "output-writers.h"

namespace voxprint::cli {

namespace fs = std::filesystem;

namespace {

struct EmbedFlags {
  ModelFlags model;
  std::string window = "whole";
  double duration_s = 3.0;
  double step_s = 1.0;
  bool shared_trunk = false;
  bool drop_partial = false;
  std::optional<double> start_s;
  std::optional<double> end_s;
  std::string format = "json";
  std::string output;
  bool quiet = false;
  int jobs = 1;
  std::vector<std::string> files;
  std::string files_from;  // a list of paths, one per line ("-": stdin)
  std::string shard;       // "K/N": the K-th of N contiguous slices
};

// --shard's N at most: (K - 1) * files / N stays far from overflowing.
constexpr long kMaxShards = 1000000;

// The inputs: FILE arguments, then --files-from's lines (empty lines
// skipped), then --shard's slice of them: files [(K-1)n/N, Kn/N), so that
// shards 1..N of one list cover it exactly once (as `split -n l/K/N` does).
std::vector<std::string> InputFiles(const EmbedFlags& flags) {
  std::vector<std::string> files = flags.files;
  if (!flags.files_from.empty()) {
    std::ifstream file;
    if (flags.files_from != "-") {
      file.open(flags.files_from);
      if (!file)
        throw Error(ErrorCode::kIoError,
                    flags.files_from + ": cannot open the --files-from list");
    }
    std::istream& list = flags.files_from == "-" ? std::cin : file;
    for (std::string line; std::getline(list, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty()) files.push_back(line);
    }
    if (list.bad())
      throw Error(ErrorCode::kIoError,
                  flags.files_from + ": cannot read the --files-from list");
  }
  if (!flags.shard.empty()) {
    long k = 0, n = 0;
    char slash = 0, rest = 0;
    std::istringstream text(flags.shard);
    if (!(text >> k >> slash >> n) || slash != '/' || text >> rest || n < 1 ||
        k < 1 || k > n || n > kMaxShards)
      throw Error(ErrorCode::kInvalidArgument,
                  "--shard " + flags.shard +
                      " is not K/N with 1 <= K <= N <= " +
                      std::to_string(kMaxShards) + " (e.g. 3/8)");
    const auto bound = [&](long i) {
      return static_cast<size_t>(static_cast<unsigned long long>(i) *
                                 files.size() / static_cast<unsigned long>(n));
    };
    files = std::vector<std::string>(files.begin() + bound(k - 1),
                                     files.begin() + bound(k));
  } else if (files.empty()) {
    throw Error(ErrorCode::kInvalidArgument,
                "no input: name audio files or give --files-from LIST");
  }
  return files;
}

// With several inputs, binary and CSV outputs go to a directory, one file per
// input named after it: talk.mp3 -> DIR/talk.npy; a repeated name gets a
// suffix (talk-2.npy) so no output overwrites another.
std::vector<std::string> OutputPaths(const EmbedFlags& flags) {
  std::vector<std::string> paths;
  if (flags.files.size() == 1) {
    paths.push_back(flags.output);
    return paths;
  }
  std::error_code error;
  fs::create_directories(flags.output, error);
  if (!fs::is_directory(flags.output))
    throw Error(ErrorCode::kIoError,
                flags.output + ": cannot create the output directory");
  std::map<std::string, int> seen;
  for (const std::string& file : flags.files) {
    const std::string stem = fs::path(file).stem().string();
    const int count = ++seen[stem];
    const std::string name =
        (count == 1 ? stem : stem + "-" + std::to_string(count)) + "." +
        flags.format;
    paths.push_back((fs::path(flags.output) / name).string());
  }
  return paths;
}

// Embeds the inputs with `jobs` worker threads (none for one job: the
// caller's thread embeds on demand) and hands the results out in input
// order; an input's failure is rethrown when its turn comes.
class InOrderEmbedder {
 public:
  InOrderEmbedder(const Extractor& extractor,
                  const std::vector<std::string>& files,
                  const EmbedRequest& request, int jobs)
      : extractor_(extractor),
        files_(files),
        request_(request),
        outcomes_(files.size()) {
    futures_.reserve(files.size());
    for (auto& outcome : outcomes_) futures_.push_back(outcome.get_future());
    if (jobs > 1)
      for (int j = 0; j < jobs; ++j) workers_.emplace_back([this] { Work(); });
  }
  ~InOrderEmbedder() {
    stop_ = true;
    for (auto& worker : workers_) worker.join();
  }

  EmbeddingResult Next() {
    const size_t index = returned_++;
    if (workers_.empty()) EmbedInto(index);
    return futures_.at(index).get();
  }

 private:
  void EmbedInto(size_t index) {
    try {
      outcomes_[index].set_value(extractor_.EmbedFile(files_[index], request_));
    } catch (...) {
      outcomes_[index].set_exception(std::current_exception());
    }
  }
  void Work() {
    for (size_t index = next_++; index < files_.size() && !stop_;
         index = next_++)
      EmbedInto(index);
  }

  const Extractor& extractor_;
  const std::vector<std::string>& files_;
  const EmbedRequest& request_;
  std::vector<std::promise<EmbeddingResult>> outcomes_;
  std::vector<std::future<EmbeddingResult>> futures_;
  std::atomic<size_t> next_{0};
  std::atomic<bool> stop_{false};
  size_t returned_ = 0;
  std::vector<std::thread> workers_;
};

// --jobs at most: each job holds a network session's scratch memory, and
// jobs beyond the cores gain nothing.
constexpr int kMaxJobs = 64;

int RunEmbed(const EmbedFlags& flags) {
  if (flags.jobs < 1 || flags.jobs > kMaxJobs)
    throw Error(ErrorCode::kInvalidArgument,
                "--jobs " + std::to_string(flags.jobs) +
                    " is out of range: it must be 1 to " +
                    std::to_string(kMaxJobs));
  EmbedRequest request;
  request.mode =
      flags.window == "sliding" ? WindowMode::kSliding : WindowMode::kWhole;
  request.window_duration_s = flags.duration_s;
  request.window_step_s = flags.step_s;
  request.shared_trunk = flags.shared_trunk;
  request.drop_partial = flags.drop_partial;
  request.start_s = flags.start_s;
  request.end_s = flags.end_s;
  request.Validate();
  request.cancel = CancelOnInterrupt();
  if (flags.format != "json" && flags.output.empty() &&
      (flags.format == "npy" || flags.files.size() > 1))
    throw Error(ErrorCode::kInvalidArgument,
                "--format " + flags.format +
                    " needs --output (a file, or a directory for several "
                    "inputs)");
  const std::vector<std::string> outputs =
      flags.format == "json" ? std::vector<std::string>() : OutputPaths(flags);

  const int jobs = static_cast<int>(
      std::min<size_t>(std::max(flags.jobs, 1), flags.files.size()));
  // Whole-file embeddings of several files batch the network across files
  // of similar length (Extractor::EmbedFiles); --jobs then has nothing to
  // add. Sliding windows already batch within a file: --jobs runs files
  // side by side.
  const bool batched =
      request.mode == WindowMode::kWhole && flags.files.size() > 1;
  const std::unique_ptr<Extractor> extractor =
      flags.model.MakeExtractor(flags.quiet, batched ? 1 : jobs);
  const bool show_progress = flags.files.size() > 1 && !flags.quiet;
  nlohmann::json results = nlohmann::json::array();
  int exit_code = kExitOk;
  const auto report = [&](size_t i, BatchOutcome&& outcome) {
    const std::string& file = flags.files[i];
    std::optional<Error> failure = std::move(outcome.error);
    // Interrupted: the whole command stops with that one error.
    if (failure && failure->code() == ErrorCode::kCancelled) throw *failure;
    if (!failure) {
      try {
        const EmbeddingResult& result = outcome.result.value();
        if (!flags.quiet) PrintWarnings(file, result.warnings);
        if (flags.format == "json") {
          results.push_back(apps::EmbeddingResultToJson(result));
        } else if (flags.format == "npy") {
          WriteFile(outputs[i], EncodeNpy(ToMatrix(result)));
        } else if (outputs[i].empty()) {
          std::cout << EncodeCsv(result);
        } else {
          WriteFile(outputs[i], EncodeCsv(result));
        }
        if (show_progress)
          std::cerr << "[" << i + 1 << "/" << flags.files.size() << "] "
                    << Printable(file) << ": " << result.duration_s
                    << " s of audio in " << result.processing_s << " s"
                    << std::endl;
      } catch (const Error& error) {
        failure = error;
      }
    }
    if (failure) {
      // One bad file does not stop a batch; it is reported and the run
      // exits non-zero at the end.
      PrintError(failure->what());
      if (exit_code == kExitOk) exit_code = ExitCodeFor(failure->code());
      results.push_back({{"path", file},
                         {"error", ErrorCodeName(failure->code())},
                         {"detail", failure->what()}});
    }
  };
  if (batched) {
    extractor->EmbedFiles(flags.files, request, report);
  } else {
    InOrderEmbedder embedder(*extractor, flags.files, request, jobs);
    for (size_t i = 0; i < flags.files.size(); ++i) {
      BatchOutcome outcome;
      try {
        outcome.result = embedder.Next();
      } catch (const Error& error) {
        outcome.error = error;
      }
      report(i, std::move(outcome));
    }
  }
  if (flags.format == "json") {
    const std::string document =
        apps::DumpJson(nlohmann::json{{"results", results}});
    WriteOutput(flags.output, document + "\n");
  }
  return exit_code;
}

}  // namespace

CLI::App* AddEmbedCommand(CLI::App& root, std::function<int()>& run) {
  auto flags = std::make_shared<EmbedFlags>();
  CLI::App* command = root.add_subcommand(
      "embed",
      "Speaker embeddings of audio files (whole file or sliding windows).\n"
      "JSON on stdout by default: {\"results\": [{path, duration_s, "
      "sample_rate_hz, channels, embedding | windows}]}.\n"
      "With several inputs and --format npy|csv, --output is a directory "
      "receiving <input stem>.<format> per input (-2, -3... added to repeated "
      "names).");
  flags->model.AddTo(*command);
  command->add_option("--window", flags->window, "whole or sliding")
      ->check(CLI::IsMember({"whole", "sliding"}))
      ->capture_default_str();
  command
      ->add_option("--duration", flags->duration_s,
                   "Sliding window length in seconds")
      ->capture_default_str();
  command->add_option("--step", flags->step_s, "Sliding window step in seconds")
      ->capture_default_str();
  command->add_flag(
      "--shared-trunk", flags->shared_trunk,
      "Sliding only, opt-in speed mode (CPU): run the network once over the "
      "file and pool every window from it (~duration/step times less work); "
      "approximates the per-window embeddings, see bench/RESULTS.md");
  command->add_flag("--drop-partial", flags->drop_partial,
                    "Sliding only: leave out the last window when it runs "
                    "past the end of the audio (zero-padded, as pyannote "
                    "does; kept and marked \"padded\" by default)");
  command->add_option("--start", flags->start_s,
                      "Start of the excerpt to embed, in seconds");
  command->add_option("--end", flags->end_s,
                      "End of the excerpt to embed, in seconds");
  command
      ->add_option("--format", flags->format,
                   "json, npy (float32 [256] or [windows, 256]) or csv")
      ->check(CLI::IsMember({"json", "npy", "csv"}))
      ->capture_default_str();
  command->add_option("--output,-o", flags->output,
                      "Output file (a directory for several inputs with "
                      "npy/csv); default stdout");
  command->add_flag("--quiet,-q", flags->quiet,
                    "No progress or warnings on stderr (warnings stay in "
                    "the JSON)");
  command
      ->add_option("--jobs,-j", flags->jobs,
                   "Sliding windows: inputs embedded at once (decode, "
                   "features and network in parallel), sharing --threads. "
                   "Whole files are batched across inputs instead. Output "
                   "order is the input order either way (1 to " +
                       std::to_string(kMaxJobs) + ")")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  command->add_option("files", flags->files, "Audio files (any common format)");
  command->add_option("--files-from", flags->files_from,
                      "More inputs: a file listing one path per line (- for "
                      "stdin)");
  command->add_option("--shard", flags->shard,
                      "Embed only the K-th of N equal contiguous slices of the "
                      "inputs (1 <= K <= N), for array jobs");
  command->callback([flags, &run] {
    run = [flags] {
      EmbedFlags inputs = *flags;
      inputs.files = InputFiles(*flags);
      return RunEmbed(inputs);
    };
  });
  return command;
}

}  // namespace voxprint::cli
