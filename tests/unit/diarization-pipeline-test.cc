// Diarization's windows, turns, RTTM, DER (cross-checked against a NumPy /
// SciPy computation, tests/support/der_reference.py) and the Diarizer on
// the kit's audio (VAD -> windows -> embeddings -> RTTM plumbing; the kit's
// embedding weights are random, so who is who is not checked here).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "support/error-of.h"
#include "support/reference-kit.h"
#include "support/vad-model.h"
#include "support/wav-builder.h"
#include "voxprint/der.h"
#include "voxprint/diarizer.h"

namespace voxprint {
namespace {

namespace fs = std::filesystem;
using testing::ErrorOf;

constexpr int64_t kRate = 16000;

TEST(DiarizationWindows, WindowsFollowTheSpeechSegments) {
  // 1 s segment (one centred window), 3.3 s segment (windows every 0.75 s,
  // one more ending at its end), a segment at the audio's end.
  const std::vector<SpeechSegment> segments = {
      {2 * kRate, 3 * kRate},
      {5 * kRate, 5 * kRate + 52800},
      {int64_t(9.5 * kRate), 10 * kRate}};
  const std::vector<DiarizationWindow> windows =
      PlanDiarizationWindows(segments, 10 * kRate);
  ASSERT_EQ(windows.size(), 1u + 4u + 1u);
  EXPECT_EQ(windows[0], (DiarizationWindow{2 * kRate - 4000, 3 * kRate + 4000,
                                           2 * kRate, 3 * kRate, 0}));
  for (int k = 0; k < 3; ++k)
    EXPECT_EQ(windows[1 + k].start_sample, 5 * kRate + k * 12000);
  EXPECT_EQ(windows[4].end_sample, 5 * kRate + 52800);
  EXPECT_EQ(windows[4].end_sample - windows[4].start_sample, 24000);
  // Moved back inside the audio; speaks for its segment only.
  EXPECT_EQ(windows[5],
            (DiarizationWindow{10 * kRate - 24000, 10 * kRate,
                               int64_t(9.5 * kRate), 10 * kRate, 2}));
  // Audio shorter than a window: one window, all of it.
  const std::vector<SpeechSegment> short_speech = {{1000, 9000}};
  EXPECT_EQ(PlanDiarizationWindows(short_speech, 12000),
            (std::vector<DiarizationWindow>{{0, 12000, 1000, 9000, 0}}));
  EXPECT_TRUE(PlanDiarizationWindows({}, 10 * kRate).empty());
  DiarizationWindowOptions bad;
  bad.step_s = 2.0;
  EXPECT_EQ(ErrorOf([&] { PlanDiarizationWindows(segments, 100, bad); }).code(),
            ErrorCode::kInvalidArgument);
}

TEST(DiarizationWindows, TurnsChangeAtTheMiddleOfOverlaps) {
  const std::vector<SpeechSegment> segments = {{0, 72000}, {100000, 110000}};
  const std::vector<DiarizationWindow> windows =
      PlanDiarizationWindows(segments, 200000);
  // Windows start at 0, 12000, ..., 48000 (5 windows) in segment 0.
  ASSERT_EQ(windows.size(), 6u);
  const std::vector<int> labels = {0, 0, 1, 1, 0, 0};
  const std::vector<SpeakerTurn> turns = TurnsFromWindowLabels(windows, labels);
  // 0|1 between windows 1 (12000-36000) and 2 (24000-48000): at 30000;
  // 1|0 between windows 3 (36000-60000) and 4 (48000-72000): at 54000.
  EXPECT_EQ(turns, (std::vector<SpeakerTurn>{{0, 30000, 0},
                                             {30000, 54000, 1},
                                             {54000, 72000, 0},
                                             {100000, 110000, 0}}));
  EXPECT_EQ(ErrorOf([&] { TurnsFromWindowLabels(windows, {}); }).code(),
            ErrorCode::kInvalidArgument);
}

TEST(DiarizationRttm, WritesPyannotesLines) {
  Diarization diarization;
  diarization.speakers = {{"SPEAKER_00"}, {"SPEAKER_01"}};
  diarization.turns = {{8000, 40000, 0}, {40000, 41000, 1}};
  EXPECT_EQ(DiarizationRttm(diarization, "my talk"),
            "SPEAKER my_talk 1 0.500 2.000 <NA> <NA> SPEAKER_00 <NA> <NA>\n"
            "SPEAKER my_talk 1 2.500 0.062 <NA> <NA> SPEAKER_01 <NA> <NA>\n");
}

TEST(Rttm, ParsesSpeakerLinesAndRefusesBadOnes) {
  const std::vector<RttmTurn> turns = ParseRttm(
      ";; comment\n\nSPKR-INFO a 1 <NA> <NA> <NA> unknown x <NA>\n"
      "SPEAKER a 1 1.5 2.25 <NA> <NA> alice <NA> <NA>\r\n"
      "SPEAKER\tb 1  0 0 <NA> <NA> bob\n",
      "t.rttm");
  EXPECT_EQ(turns, (std::vector<RttmTurn>{{"a", 1.5, 2.25, "alice"},
                                          {"b", 0.0, 0.0, "bob"}}));
  for (const std::string& bad : std::vector<std::string>{
           "SPEAKER a 1 1.5 2.25 <NA> <NA>\n", "SPEAKER a 1 x 1 <NA> <NA> s\n",
           "SPEAKER a 1 -1 1 <NA> <NA> s\n", "SPEAKER a 1 1 nan <NA> <NA> s\n",
           "SPEAKER a 1 1 1e300 <NA> <NA> s\n",
           std::string("SPEAKER a 1 1\0", 13)}) {
    const Error error = ErrorOf([&] { ParseRttm("\n" + bad, "t.rttm"); });
    EXPECT_EQ(error.code(), ErrorCode::kCorruptInput) << bad;
    EXPECT_NE(std::string(error.what()).find("t.rttm: line 2"),
              std::string::npos)
        << error.what();
  }
  RttmLimits limits;
  limits.max_turns = 1;
  EXPECT_EQ(ErrorOf([&] {
              ParseRttm("SPEAKER a 1 0 1 x x s\nSPEAKER a 1 0 1 x x s\n", "t",
                        limits);
            }).code(),
            ErrorCode::kResourceLimit);
  EXPECT_EQ(ErrorOf([] { ReadRttmFile("/nonexistent.rttm"); }).code(),
            ErrorCode::kIoError);
}

TEST(Der, HungarianIsOptimal) {
  // Brute force over permutations of a 4 x 3 matrix.
  const std::vector<std::vector<double>> w = {
      {1, 7, 3}, {8, 2, 6}, {5, 9, 4}, {2, 2, 2}};
  const std::vector<int> assigned = MaximumWeightAssignment(w);
  double got = 0;
  for (size_t r = 0; r < w.size(); ++r)
    if (assigned[r] >= 0) got += w[r][assigned[r]];
  std::vector<int> rows = {0, 1, 2, 3};
  double best = 0;
  do {
    best = std::max(best, w[rows[0]][0] + w[rows[1]][1] + w[rows[2]][2]);
  } while (std::next_permutation(rows.begin(), rows.end()));
  EXPECT_EQ(got, best);
}

TEST(Der, PartsOnAHandMadeCase) {
  // Reference: A 0-10, B 8-15 (overlap 8-10). Hypothesis: x 0-9, y 9-16.
  const std::vector<RttmTurn> ref = {{"f", 0, 10, "A"}, {"f", 8, 7, "B"}};
  const std::vector<RttmTurn> hyp = {{"f", 0, 9, "x"}, {"f", 9, 7, "y"}};
  const DerResult result = ComputeDer(ref, hyp);
  // Total 17; missed 2 (8-10 has 2 refs, 1 hyp); false alarm 1 (15-16);
  // A->x, B->y: no confusion.
  EXPECT_DOUBLE_EQ(result.total_s, 17.0);
  EXPECT_DOUBLE_EQ(result.missed_s, 2.0);
  EXPECT_DOUBLE_EQ(result.false_alarm_s, 1.0);
  EXPECT_DOUBLE_EQ(result.confusion_s, 0.0);
  EXPECT_DOUBLE_EQ(result.der, 3.0 / 17.0);
  // Without the overlap, 9-10 is A's speech given to y: confusion.
  const std::vector<RttmTurn> turn_taking = {{"f", 0, 10, "A"},
                                             {"f", 10, 5, "B"}};
  const DerResult confused = ComputeDer(turn_taking, hyp);
  EXPECT_DOUBLE_EQ(confused.confusion_s, 1.0);
  EXPECT_DOUBLE_EQ(confused.missed_s, 0.0);
  ASSERT_EQ(confused.mapping.size(), 2u);
  EXPECT_EQ(confused.mapping[0].hypothesis, "x");
  // The same collar in both conventions removes the same time.
  DerOptions pyannote{1.0, CollarConvention::kPyannote};
  DerOptions md_eval{0.5, CollarConvention::kMdEval};
  EXPECT_DOUBLE_EQ(ComputeDer(ref, hyp, pyannote).der,
                   ComputeDer(ref, hyp, md_eval).der);
  EXPECT_NE(pyannote.Describe().find("total width"), std::string::npos);
  EXPECT_NE(md_eval.Describe().find("md-eval -c 0.5"), std::string::npos);
  EXPECT_EQ(ComputeDer({}, {}).der, 0.0);
}

std::string RunPython(const std::string& arguments, bool& skipped) {
  const std::string command = "/usr/bin/python3 '" VOXPRINT_SOURCE_DIR
                              "/tests/support/der_reference.py' " +
                              arguments + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  std::string output;
  char buffer[4096];
  size_t got;
  while (pipe && (got = fread(buffer, 1, sizeof buffer, pipe)) > 0)
    output.append(buffer, got);
  const int status = pipe ? pclose(pipe) : -1;
  skipped = WIFEXITED(status) && WEXITSTATUS(status) == 3;
  if (!skipped && (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
    ADD_FAILURE() << command << "\n" << output;
  return output;
}

TEST(Der, MatchesAFrameComputationOnTheKitsRttms) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  const fs::path dir = fs::temp_directory_path() /
                       ("voxprint-der-test-" + std::to_string(getpid()));
  fs::create_directories(dir);
  for (const char* name : {"debug.test.rttm", "sample.rttm"}) {
    const fs::path ref_path = testing::ReferenceDir() / "audio" / name;
    const std::vector<RttmTurn> ref = ReadRttmFile(ref_path.string());
    // A hypothesis: turns shifted, cut, relabelled onto fewer speakers.
    std::vector<RttmTurn> hyp;
    for (size_t i = 0; i < ref.size(); ++i) {
      RttmTurn turn = ref[i];
      turn.start_s = std::max(0.0, turn.start_s + (i % 3 == 0 ? 0.137 : -0.21));
      turn.duration_s = std::max(0.0, turn.duration_s - (i % 2 ? 0.3 : 0.0));
      turn.speaker =
          "h" + std::to_string(std::hash<std::string>()(turn.speaker) % 3);
      if (i % 7 != 3) hyp.push_back(turn);
    }
    const fs::path hyp_path = dir / "hyp.rttm";
    {
      std::ofstream out(hyp_path);
      char line[256];
      for (const RttmTurn& turn : hyp) {
        std::snprintf(line, sizeof line,
                      "SPEAKER %s 1 %.3f %.3f <NA> <NA> %s <NA> <NA>\n",
                      turn.uri.c_str(), turn.start_s, turn.duration_s,
                      turn.speaker.c_str());
        out << line;
      }
    }
    const std::vector<RttmTurn> hyp_read = ReadRttmFile(hyp_path.string());
    for (const auto& [collar, convention] :
         std::vector<std::pair<double, CollarConvention>>{
             {0.0, CollarConvention::kPyannote},
             {0.5, CollarConvention::kPyannote},
             {0.25, CollarConvention::kMdEval}}) {
      SCOPED_TRACE(std::string(name) + " collar " + std::to_string(collar));
      const double each_side =
          convention == CollarConvention::kPyannote ? collar / 2 : collar;
      bool skipped = false;
      const std::string output =
          RunPython("'" + ref_path.string() + "' '" + hyp_path.string() + "' " +
                        std::to_string(each_side),
                    skipped);
      if (skipped) GTEST_SKIP() << "NumPy/SciPy missing: " << output;
      ASSERT_FALSE(HasFailure());
      const nlohmann::json expected = nlohmann::json::parse(output);
      const DerResult ours =
          ComputeDer(ref, hyp_read, DerOptions{collar, convention});
      EXPECT_NEAR(ours.total_s, expected["total_s"].get<double>(), 1e-6);
      EXPECT_NEAR(ours.missed_s, expected["missed_s"].get<double>(), 1e-6);
      EXPECT_NEAR(ours.false_alarm_s, expected["false_alarm_s"].get<double>(),
                  1e-6);
      EXPECT_NEAR(ours.confusion_s, expected["confusion_s"].get<double>(),
                  1e-6);
      EXPECT_GT(ours.confusion_s + ours.missed_s, 0.0);
    }
  }
  std::error_code ignored;
  fs::remove_all(dir, ignored);
}

// ------------------------------------------------------ the whole pipeline

class DiarizerOnKit : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!testing::HasReferenceKit()) return;
    try {
      vad_path_ = FindVadModel();
    } catch (const Error&) {
      return;
    }
    ExtractorOptions options;
    options.model_path =
        (testing::ReferenceDir() / "models" / "pytorch_model.bin").string();
    options.backend.num_threads = 2;
    options.model_checksum = false;
    options.device = "cpu";
    extractor_ = new Extractor(options);
    vad_ = new VoiceActivityDetector(vad_path_);
  }
  static void TearDownTestSuite() {
    delete vad_;
    delete extractor_;
    vad_ = nullptr;
    extractor_ = nullptr;
  }
  void SetUp() override {
    VOXPRINT_REQUIRE_REFERENCE_KIT();
    if (vad_ == nullptr) GTEST_SKIP() << testing::kVadModelAbsent;
  }
  static std::string Audio(const std::string& name) {
    return (testing::ReferenceDir() / "audio" / name).string();
  }
  static inline std::string vad_path_;
  static inline Extractor* extractor_ = nullptr;
  static inline VoiceActivityDetector* vad_ = nullptr;
};

TEST_F(DiarizerOnKit, SpeechBecomesTurnsInsideIt) {
  const Diarizer diarizer(*extractor_, *vad_);
  DiarizeRequest request;
  int64_t last_done = 0, calls = 0;
  request.progress = [&](int64_t done, int64_t total) {
    EXPECT_GT(done, last_done);
    EXPECT_LE(done, total);
    last_done = done;
    ++calls;
  };
  request.batch_windows = 8;
  const Diarization result = diarizer.DiarizeFile(Audio("sample.wav"), request);
  EXPECT_EQ(result.duration_s, 30.0);
  ASSERT_FALSE(result.speech.empty());
  ASSERT_FALSE(result.turns.empty());
  EXPECT_EQ(last_done, result.num_windows);
  EXPECT_EQ(calls, (result.num_windows + 7) / 8);
  // The same speech as `voxprint vad` finds, and turns cover exactly it.
  const Audio16k audio = LoadAudio16k(Audio("sample.wav"));
  EXPECT_EQ(result.speech, vad_->SpeechSegments(audio.samples));
  int64_t speech = 0, turned = 0;
  for (const SpeechSegment& s : result.speech)
    speech += s.end_sample - s.start_sample;
  for (size_t i = 0; i < result.turns.size(); ++i) {
    const SpeakerTurn& turn = result.turns[i];
    turned += turn.end_sample - turn.start_sample;
    EXPECT_TRUE(std::any_of(result.speech.begin(), result.speech.end(),
                            [&](const SpeechSegment& s) {
                              return s.start_sample <= turn.start_sample &&
                                     turn.end_sample <= s.end_sample;
                            }));
    if (i > 0) {
      EXPECT_GE(turn.start_sample, result.turns[i - 1].end_sample);
    }
  }
  EXPECT_EQ(turned, speech);
  double per_speaker = 0;
  for (const DiarizedSpeaker& speaker : result.speakers) {
    EXPECT_EQ(speaker.centroid.size(), 256u);
    per_speaker += speaker.speech_s;
  }
  EXPECT_NEAR(per_speaker, static_cast<double>(speech) / kRate, 1e-6);
  // RTTM lines as pyannote writes them.
  const std::regex line(
      "SPEAKER sample 1 [0-9]+\\.[0-9]{3} [0-9]+\\.[0-9]{3} <NA> <NA> "
      "SPEAKER_[0-9]{2} <NA> <NA>");
  const std::string rttm = DiarizationRttm(result, "sample");
  size_t lines = 0;
  for (size_t at = 0; at < rttm.size(); ++lines) {
    const size_t end = rttm.find('\n', at);
    EXPECT_TRUE(std::regex_match(rttm.substr(at, end - at), line))
        << rttm.substr(at, end - at);
    at = end + 1;
  }
  EXPECT_EQ(lines, result.turns.size());
  // Deterministic, and a forced count is met (on an excerpt, for time).
  request.progress = nullptr;
  const std::span<const float> excerpt =
      std::span<const float>(audio.samples).subspan(6 * kRate, 10 * kRate);
  const Diarization first =
      diarizer.DiarizeSamples(excerpt, "excerpt", request);
  EXPECT_EQ(diarizer.DiarizeSamples(excerpt, "excerpt", request).turns,
            first.turns);
  request.clustering.num_speakers = 2;
  EXPECT_EQ(
      diarizer.DiarizeSamples(excerpt, "excerpt", request).speakers.size(), 2u);
  request.clustering.method = ClusteringMethod::kSpectral;
  EXPECT_EQ(
      diarizer.DiarizeSamples(excerpt, "excerpt", request).speakers.size(), 2u);
}

TEST_F(DiarizerOnKit, TwoReadingsGiveTheHeldResult) {
  // The VAD fed in pieces of odd sizes gives Probabilities' values.
  const Audio16k audio = LoadAudio16k(Audio("stereo_44k.wav"));
  VoiceActivityDetector::ProbabilityStream stream(*vad_);
  std::vector<float> pieces;
  const std::span<const float> all(audio.samples);
  for (size_t at = 0, size = 1; at < all.size();
       at += size, size = size * 7 % 5000 + 1)
    stream.Push(all.subspan(at, std::min(size, all.size() - at)), &pieces);
  stream.Finish(&pieces);
  EXPECT_EQ(pieces, vad_->Probabilities(audio.samples));

  // A long input's path (two readings, block by block) on a short file: the
  // same speech, windows, embeddings and turns as holding it.
  const Diarizer diarizer(*extractor_, *vad_);
  DiarizeRequest held;
  DiarizeRequest streamed;
  streamed.hold_audio_up_to_s = 0.0;
  const Diarization a = diarizer.DiarizeFile(Audio("stereo_44k.wav"), held);
  const Diarization b = diarizer.DiarizeFile(Audio("stereo_44k.wav"), streamed);
  EXPECT_EQ(a.speech, b.speech);
  EXPECT_EQ(a.turns, b.turns);
  EXPECT_EQ(a.num_windows, b.num_windows);
  ASSERT_EQ(a.speakers.size(), b.speakers.size());
  for (size_t s = 0; s < a.speakers.size(); ++s)
    EXPECT_EQ(a.speakers[s].centroid, b.speakers[s].centroid);
  EXPECT_EQ(a.audio.sample_rate_hz, 44100);
  EXPECT_EQ(b.audio.sample_rate_hz, 44100);
  EXPECT_EQ(b.audio.frames, a.audio.frames);
  const std::vector<uint8_t> bytes =
      testing::ReadFileBytes(Audio("stereo_44k.wav"));
  EXPECT_EQ(diarizer.DiarizeBytes(bytes, "upload.wav", streamed).turns,
            a.turns);
}

TEST_F(DiarizerOnKit, TwoReadingsSkipAPauseLongerThanWhatWasRead) {
  // Speech, 70 s of silence (more than the 2^20 samples the second reading
  // drops at once), speech: the window after the pause starts past what the
  // second reading had read; dropping what comes before it once read past
  // the end of the buffer (undefined behaviour, a crash on long files).
  const Audio16k audio = LoadAudio16k(Audio("sample.wav"));
  std::vector<float> samples(audio.samples.begin(),
                             audio.samples.begin() + 8 * kRate);
  samples.resize(samples.size() + 70 * kRate, 0.0f);
  samples.insert(samples.end(), audio.samples.end() - 8 * kRate,
                 audio.samples.end());
  std::vector<uint8_t> wav = testing::WavHeader(
      3, 1, static_cast<uint32_t>(kRate), 32, samples.size() * sizeof(float));
  const auto* bytes = reinterpret_cast<const uint8_t*>(samples.data());
  wav.insert(wav.end(), bytes, bytes + samples.size() * sizeof(float));

  const Diarizer diarizer(*extractor_, *vad_);
  DiarizeRequest streamed;
  streamed.hold_audio_up_to_s = 0.0;
  const Diarization held = diarizer.DiarizeSamples(samples, "pause", {});
  const Diarization read_twice =
      diarizer.DiarizeBytes(wav, "pause.wav", streamed);
  ASSERT_FALSE(held.speech.empty());
  EXPECT_GT(held.speech.back().start_sample, 70 * kRate);
  EXPECT_EQ(read_twice.speech, held.speech);
  EXPECT_EQ(read_twice.num_windows, held.num_windows);
  EXPECT_EQ(read_twice.turns, held.turns);
}

TEST_F(DiarizerOnKit, NamerHookLabelsSpeakers) {
  const Diarizer diarizer(*extractor_, *vad_);
  DiarizeRequest request;
  request.clustering.num_speakers = 2;
  int asked = 0;
  request.namer =
      [&](std::span<const float> centroid) -> std::optional<SpeakerMatch> {
    EXPECT_EQ(centroid.size(), 256u);
    if (asked++ == 0) return SpeakerMatch{"alice", 0.9};
    return std::nullopt;
  };
  const Audio16k audio = LoadAudio16k(Audio("sample.wav"));
  const Diarization result = diarizer.DiarizeSamples(
      std::span<const float>(audio.samples).subspan(6 * kRate, 10 * kRate),
      "excerpt", request);
  ASSERT_EQ(result.speakers.size(), 2u);
  EXPECT_EQ(result.speakers[0].label, "alice");
  EXPECT_EQ(result.speakers[0].name_similarity, 0.9);
  EXPECT_EQ(result.speakers[1].label, "SPEAKER_01");
  EXPECT_NE(DiarizationRttm(result, "s").find(" alice "), std::string::npos);
}

TEST_F(DiarizerOnKit, SilenceShortAudioAndBadInput) {
  const Diarizer diarizer(*extractor_, *vad_);
  // No speech: an empty diarization, not an error.
  const Diarization silence = diarizer.DiarizeFile(Audio("silence_2s.wav"));
  EXPECT_TRUE(silence.turns.empty());
  EXPECT_TRUE(silence.speakers.empty());
  EXPECT_EQ(DiarizationRttm(silence, "silence_2s"), "");
  // Shorter than one window: one window, the whole file, one speaker.
  const Diarization short_one = diarizer.DiarizeFile(Audio("short_1s.wav"));
  EXPECT_EQ(short_one.num_windows, 1);
  EXPECT_EQ(short_one.speakers.size(), 1u);
  // Too short for the network at all, with speech forced.
  DiarizeRequest request;
  request.vad.threshold = 0.0;
  request.vad.neg_threshold = 0.0;
  request.vad.min_speech_ms = 0;
  const std::vector<float> blip(600, 0.1f);
  const Error too_short =
      ErrorOf([&] { diarizer.DiarizeSamples(blip, "blip", request); });
  EXPECT_EQ(too_short.code(), ErrorCode::kCorruptInput);
  EXPECT_NE(std::string(too_short.what()).find("blip: too short"),
            std::string::npos)
      << too_short.what();
  // Not audio, and a bad request, named.
  EXPECT_EQ(
      ErrorOf([&] { diarizer.DiarizeFile(Audio("not_audio.wav")); }).code(),
      ErrorCode::kUnsupportedInput);
  request = {};
  request.windows.window_s = 0.0;
  const Error bad =
      ErrorOf([&] { diarizer.DiarizeFile(Audio("sample.wav"), request); });
  EXPECT_EQ(bad.code(), ErrorCode::kInvalidArgument);
  // Cancelled.
  request = {};
  request.cancel = CancelToken::Create();
  request.cancel.Cancel();
  EXPECT_EQ(ErrorOf([&] {
              diarizer.DiarizeFile(Audio("sample.wav"), request);
            }).code(),
            ErrorCode::kCancelled);
  // A VAD file that is not Silero's: the speaker model.
  const Error not_silero = ErrorOf([] {
    VoiceActivityDetector(
        (testing::ReferenceDir() / "models" / "voxceleb_resnet34_LM.onnx")
            .string());
  });
  EXPECT_EQ(not_silero.code(), ErrorCode::kModelError);
}

}  // namespace
}  // namespace voxprint
