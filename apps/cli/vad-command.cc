#include "vad-command.h"

#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <utility>

#include "cli-common.h"
#include "common/result-json.h"
#include "output-writers.h"
#include "voxprint/audio.h"
#include "voxprint/vad.h"

namespace voxprint::cli {
namespace {

namespace fs = std::filesystem;

struct VadFlags {
  std::string model_path;
  VadOptions options;
  std::optional<double> neg_threshold;
  int threads = 0;
  std::string format = "json";
  std::string output;
  bool quiet = false;
  std::vector<std::string> files;
};

// Seconds of a sample index at 16 kHz, exactly: 1/16000 s = 0.0000625 s
// needs seven decimals; trailing zeros past the third are dropped.
std::string Seconds(int64_t samples) {
  char text[32];
  std::snprintf(text, sizeof text, "%.7f",
                static_cast<double>(samples) / kVadSampleRateHz);
  std::string seconds = text;
  const size_t point = seconds.find('.');
  while (seconds.size() > point + 4 && seconds.back() == '0')
    seconds.pop_back();
  return seconds;
}

struct FileSegments {
  std::string path;
  int64_t samples = 0;
  std::vector<SpeechSegment> segments;
};

nlohmann::json ToJson(const FileSegments& file) {
  nlohmann::json segments = nlohmann::json::array();
  int64_t speech_samples = 0;
  for (const SpeechSegment& segment : file.segments) {
    segments.push_back({{"start_sample", segment.start_sample},
                        {"end_sample", segment.end_sample},
                        {"start_s", segment.StartSeconds()},
                        {"end_s", segment.EndSeconds()}});
    speech_samples += segment.end_sample - segment.start_sample;
  }
  return {{"path", file.path},
          {"sample_rate_hz", kVadSampleRateHz},
          {"samples", file.samples},
          {"duration_s", static_cast<double>(file.samples) / kVadSampleRateHz},
          {"speech_s", static_cast<double>(speech_samples) / kVadSampleRateHz},
          {"segments", segments}};
}

// CSV rows "path,start_sample,end_sample,start_s,end_s" (path quoted when
// it needs to be).
std::string CsvRows(const FileSegments& file) {
  std::string path = file.path;
  if (path.find_first_of(",\"\n\r") != std::string::npos) {
    std::string quoted = "\"";
    for (char c : path)
      quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
    path = quoted + "\"";
  }
  std::string rows;
  for (const SpeechSegment& segment : file.segments)
    rows += path + "," + std::to_string(segment.start_sample) + "," +
            std::to_string(segment.end_sample) + "," +
            Seconds(segment.start_sample) + "," + Seconds(segment.end_sample) +
            "\n";
  return rows;
}

// Label-file lines "start_s end_s speech" (Audacity, pyannote .lab).
std::string LabLines(const FileSegments& file) {
  std::string lines;
  for (const SpeechSegment& segment : file.segments)
    lines += Seconds(segment.start_sample) + " " + Seconds(segment.end_sample) +
             " speech\n";
  return lines;
}

// RTTM lines "SPEAKER <file stem> 1 <start> <duration> <NA> <NA> speech
// <NA> <NA>", the form of the kit's reference annotations.
std::string RttmLines(const FileSegments& file) {
  std::string uri = fs::path(file.path).stem().string();
  for (char& c : uri)
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') c = '_';
  std::string lines;
  for (const SpeechSegment& segment : file.segments)
    lines += "SPEAKER " + uri + " 1 " + Seconds(segment.start_sample) + " " +
             Seconds(segment.end_sample - segment.start_sample) +
             " <NA> <NA> speech <NA> <NA>\n";
  return lines;
}

// With several inputs, lab output goes to a directory: talk.wav ->
// DIR/talk.lab (talk-2.lab for a repeated name).
std::vector<std::string> LabPaths(const VadFlags& flags) {
  std::error_code error;
  fs::create_directories(flags.output, error);
  if (!fs::is_directory(flags.output))
    throw Error(ErrorCode::kIoError,
                flags.output + ": cannot create the output directory");
  std::vector<std::string> paths;
  std::map<std::string, int> seen;
  for (const std::string& file : flags.files) {
    const std::string stem = fs::path(file).stem().string();
    const int count = ++seen[stem];
    paths.push_back(
        (fs::path(flags.output) /
         ((count == 1 ? stem : stem + "-" + std::to_string(count)) + ".lab"))
            .string());
  }
  return paths;
}

int RunVad(VadFlags flags) {
  flags.options.neg_threshold = flags.neg_threshold;
  flags.options.Validate();
  const bool lab_per_file = flags.format == "lab" && flags.files.size() > 1;
  if (lab_per_file && flags.output.empty())
    throw Error(ErrorCode::kInvalidArgument,
                "--format lab with several inputs needs --output DIR (one "
                ".lab per input)");
  const std::vector<std::string> lab_paths =
      lab_per_file ? LabPaths(flags) : std::vector<std::string>();

  const std::string model_path = FindVadModel(flags.model_path);
  const VoiceActivityDetector detector(model_path, flags.threads);
  if (!flags.quiet)
    std::cerr << "voxprint: VAD model " << model_path << " ("
              << flags.options.ToString() << ")" << std::endl;

  nlohmann::json results = nlohmann::json::array();
  std::string text = flags.format == "csv"
                         ? "path,start_sample,end_sample,start_s,end_s\n"
                         : "";
  int exit_code = kExitOk;
  for (size_t i = 0; i < flags.files.size(); ++i) {
    const std::string& path = flags.files[i];
    try {
      // Block by block: a recording of hours is never held whole.
      FileSpeech speech = detector.SpeechOfFile(path, flags.options);
      FileSegments file{path, speech.samples_16k, std::move(speech.segments)};
      if (flags.format == "json")
        results.push_back(ToJson(file));
      else if (flags.format == "csv")
        text += CsvRows(file);
      else if (flags.format == "rttm")
        text += RttmLines(file);
      else if (lab_per_file)
        WriteFile(lab_paths[i], LabLines(file));
      else
        text += LabLines(file);
      if (!flags.quiet && flags.files.size() > 1)
        std::cerr << "[" << i + 1 << "/" << flags.files.size() << "] " << path
                  << ": " << file.segments.size() << " segments" << std::endl;
    } catch (const Error& error) {
      // One bad file does not stop the others; the run exits non-zero.
      PrintError(error.what());
      if (exit_code == kExitOk) exit_code = ExitCodeFor(error.code());
      results.push_back({{"path", path},
                         {"error", ErrorCodeName(error.code())},
                         {"detail", error.what()}});
    }
  }
  if (flags.format == "json")
    text = apps::DumpJson(nlohmann::json{{"results", results}}) + "\n";
  if (lab_per_file) return exit_code;
  WriteOutput(flags.output, text);
  return exit_code;
}

}  // namespace

CLI::App* AddVadCommand(CLI::App& root, std::function<int()>& run) {
  auto flags = std::make_shared<VadFlags>();
  CLI::App* command = root.add_subcommand(
      "vad",
      "Speech segments of audio files (Silero VAD v5, run by voxprint). "
      "Boundaries are 16 kHz sample indices [start, end).\n"
      "JSON on stdout by default: {\"results\": [{path, sample_rate_hz, "
      "samples, duration_s, speech_s, segments: [{start_sample, end_sample, "
      "start_s, end_s}]}]}; csv: path,start_sample,end_sample,start_s,end_s; "
      "lab: \"start_s end_s speech\" lines; rttm: SPEAKER lines with the "
      "label 'speech'.");
  command->add_option(
      "--vad-model", flags->model_path,
      "silero_vad_v5.onnx (default: $VOXPRINT_VAD_MODEL, then the npm "
      "install in models/vad, then <prefix>/share/voxprint)");
  command
      ->add_option("--threshold", flags->options.threshold,
                   "Speech starts at probabilities >= this")
      ->capture_default_str();
  command->add_option("--neg-threshold", flags->neg_threshold,
                      "Speech ends below this (default: threshold - 0.15, "
                      "at least 0.01)");
  command
      ->add_option("--min-speech-ms", flags->options.min_speech_ms,
                   "Drop speech not longer than this")
      ->capture_default_str();
  command
      ->add_option("--min-silence-ms", flags->options.min_silence_ms,
                   "Silence that ends a segment")
      ->capture_default_str();
  command
      ->add_option("--speech-pad-ms", flags->options.speech_pad_ms,
                   "Padding on each side of a segment (a narrower gap is "
                   "split in half)")
      ->capture_default_str();
  command
      ->add_option("--threads", flags->threads,
                   "Threads, 0 (all cores) to " + std::to_string(kMaxThreads) +
                       " (more than 4 gain nothing)")
      ->check(CLI::Range(0, kMaxThreads))
      ->capture_default_str();
  command->add_option("--format", flags->format, "json, csv, lab or rttm")
      ->check(CLI::IsMember({"json", "csv", "lab", "rttm"}))
      ->capture_default_str();
  command->add_option("--output,-o", flags->output,
                      "Output file (a directory for lab with several "
                      "inputs); default stdout");
  command->add_flag("--quiet,-q", flags->quiet, "Nothing on stderr but errors");
  command->add_option("files", flags->files, "Audio files (any common format)")
      ->required();
  command->callback(
      [flags, &run] { run = [flags] { return RunVad(*flags); }; });
  return command;
}

}  // namespace voxprint::cli
