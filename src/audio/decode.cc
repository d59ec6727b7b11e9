// DecodeAudioFile / DecodeAudioBytes on FFmpeg's libavformat + libavcodec.
//
// Both read through a custom AVIOContext, so the demuxer is chosen from the
// bytes alone (a file's name never reaches FFmpeg). Only the audio demuxers
// of kAcceptedDemuxers are used, with no protocol allowed and every nested
// open refused, so an input can never make FFmpeg open another file, a URL
// or a network socket (SDP, RTSP, playlists, references).

#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <span>
#include <string>
#include <vector>

#include "audio/ffmpeg-handles.h"
#include "audio/sample-convert.h"
#include "audio/stream-decoder.h"
#include "audio/streaming-resampler.h"
#include "voxprint/audio.h"
#include "voxprint/error.h"

extern "C" {
#include <libavutil/log.h>
#include <libavutil/mem.h>
#include <libavutil/samplefmt.h>
}

namespace voxprint {
namespace {

using audio::AvErrorString;

constexpr int kIoBufferBytes = 64 * 1024;
// Sample rates outside this range are refused: they are not audio anyone
// records, and a tiny header claiming 1 Hz would make the 16 kHz output
// thousands of times larger than the file.
constexpr int kMinSampleRateHz = 1000;
constexpr int kMaxSampleRateHz = 1536000;
// Damaged packets are skipped, as the ffmpeg tool does; after this many in a
// row the rest of the stream is taken to be garbage and decoding stops.
constexpr int kMaxConsecutiveDecodeErrors = 32;
// The only demuxers ever used (AVInputFormat::name, exactly): audio files
// and the common containers that carry audio, each reading one stream from
// the bytes it is given. Anything else FFmpeg recognises is refused, above
// all the demuxers that reach out on their own: sdp, rtp and rtsp open
// network sockets, hls, dash and concat open the files or URLs they list,
// image2 opens files by pattern. An allow-list, so that a demuxer added to
// FFmpeg later is refused until someone decides otherwise.
constexpr const char* kAcceptedDemuxers[] = {
    "wav",                      // WAV, RF64, BW64
    "w64",                      // Sony Wave64
    "aiff",                     // AIFF, AIFF-C
    "caf",                      // Apple Core Audio Format
    "au",                       // Sun/NeXT .au, .snd
    "nistsphere",               // NIST SPHERE (speech corpora)
    "voc",                      // Creative Voice
    "flac",                     // raw FLAC
    "mp3",                      // MPEG audio layers 1-3
    "ogg",                      // Vorbis, Opus, FLAC, Speex in Ogg
    "mov,mp4,m4a,3gp,3g2,mj2",  // AAC, ALAC, ... in MP4/M4A/MOV/3GP
    "matroska,webm",            // Opus, Vorbis, ... in WebM/Matroska
    "asf",                      // WMA
    "aac",                      // raw ADTS AAC
    "ac3",
    "eac3",
    "dts",
    "amr",  // AMR in its .amr file format
    "amrnb",
    "amrwb",
    "wv",    // WavPack
    "ape",   // Monkey's Audio
    "tta",   // True Audio
    "mpc",   // Musepack
    "mpc8",  // Musepack SV8
};

bool IsAcceptedDemuxer(const char* name) {
  for (const char* accepted : kAcceptedDemuxers) {
    if (std::strcmp(name, accepted) == 0) return true;
  }
  return false;
}

// kAcceptedDemuxers as one comma-separated list, for
// AVFormatContext::format_whitelist (FFmpeg matches its names one by one).
const std::string& AcceptedDemuxerList() {
  static const std::string list = [] {
    std::string joined;
    for (const char* accepted : kAcceptedDemuxers) {
      if (!joined.empty()) joined += ',';
      joined += accepted;
    }
    return joined;
  }();
  return list;
}

// A number of seconds as people write it: 1800, 30.5, 0.25.
std::string NumberText(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.10g", value);
  return text;
}

void SilenceFfmpegLogging() {
  static std::once_flag once;
  std::call_once(once, [] { av_log_set_level(AV_LOG_QUIET); });
}

// Where the bytes come from. Callbacks run on the decoding thread only.
class Source {
 public:
  virtual ~Source() = default;
  virtual int Read(uint8_t* buffer, int size) = 0;
  virtual int64_t Seek(int64_t offset, int whence) = 0;
  // The errno of a failed read, 0 when none failed.
  int read_errno() const { return read_errno_; }

  static int ReadCallback(void* opaque, uint8_t* buffer, int size) {
    return static_cast<Source*>(opaque)->Read(buffer, size);
  }
  static int64_t SeekCallback(void* opaque, int64_t offset, int whence) {
    return static_cast<Source*>(opaque)->Seek(offset, whence);
  }

 protected:
  // Resolves a seek request against the current position and total size;
  // -1 when it falls outside [0, size].
  static int64_t Target(int64_t offset, int whence, int64_t position,
                        int64_t size) {
    int64_t base = 0;
    switch (whence & ~AVSEEK_FORCE) {
      case SEEK_SET:
        base = 0;
        break;
      case SEEK_CUR:
        base = position;
        break;
      case SEEK_END:
        base = size;
        break;
      default:
        return -1;
    }
    if ((offset > 0 && base > std::numeric_limits<int64_t>::max() - offset) ||
        (offset < 0 && base + offset < 0)) {
      return -1;
    }
    const int64_t target = base + offset;
    return target <= size ? target : -1;
  }

  int read_errno_ = 0;
};

class MemorySource final : public Source {
 public:
  explicit MemorySource(std::span<const uint8_t> bytes) : bytes_(bytes) {}

  int Read(uint8_t* buffer, int size) override {
    const int64_t left = static_cast<int64_t>(bytes_.size()) - position_;
    if (left <= 0 || size <= 0) return AVERROR_EOF;
    const int64_t count = std::min<int64_t>(left, size);
    std::memcpy(buffer, bytes_.data() + position_, static_cast<size_t>(count));
    position_ += count;
    return static_cast<int>(count);
  }

  int64_t Seek(int64_t offset, int whence) override {
    const int64_t size = static_cast<int64_t>(bytes_.size());
    if (whence & AVSEEK_SIZE) return size;
    const int64_t target = Target(offset, whence, position_, size);
    if (target < 0) return AVERROR(EINVAL);
    position_ = target;
    return position_;
  }

 private:
  std::span<const uint8_t> bytes_;
  int64_t position_ = 0;
};

class FileSource final : public Source {
 public:
  // Throws kIoError when the file cannot be opened.
  explicit FileSource(const std::string& path) {
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0) {
      throw Error(ErrorCode::kIoError,
                  path + ": cannot open (" + std::strerror(errno) + ")");
    }
    if (S_ISDIR(info.st_mode)) {
      throw Error(ErrorCode::kIoError, path + ": cannot open (is a directory)");
    }
    file_ = std::fopen(path.c_str(), "rb");
    if (file_ == nullptr) {
      throw Error(ErrorCode::kIoError,
                  path + ": cannot open (" + std::strerror(errno) + ")");
    }
    size_ = S_ISREG(info.st_mode) ? static_cast<int64_t>(info.st_size) : -1;
  }
  ~FileSource() override { std::fclose(file_); }
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;

  int64_t size() const { return size_; }

  int Read(uint8_t* buffer, int size) override {
    if (size <= 0) return AVERROR_EOF;
    const size_t count =
        std::fread(buffer, 1, static_cast<size_t>(size), file_);
    if (count == 0) {
      if (std::ferror(file_)) {
        read_errno_ = errno != 0 ? errno : EIO;
        return AVERROR(EIO);
      }
      return AVERROR_EOF;
    }
    return static_cast<int>(count);
  }

  int64_t Seek(int64_t offset, int whence) override {
    if (size_ < 0) return AVERROR(ENOSYS);  // a pipe: not seekable
    if (whence & AVSEEK_SIZE) return size_;
    const int64_t position = ::ftello(file_);
    if (position < 0) return AVERROR(EIO);
    const int64_t target = Target(offset, whence, position, size_);
    if (target < 0) return AVERROR(EINVAL);
    if (::fseeko(file_, static_cast<off_t>(target), SEEK_SET) != 0) {
      return AVERROR(EIO);
    }
    return target;
  }

 private:
  std::FILE* file_ = nullptr;
  int64_t size_ = -1;
};

// Keeps demuxers from opening anything besides the input we hand them;
// AVFormatContext::opaque points to a flag that records the attempt.
int RefuseNestedOpen(AVFormatContext* format, AVIOContext**, const char*, int,
                     AVDictionary**) {
  if (format != nullptr && format->opaque != nullptr) {
    *static_cast<bool*>(format->opaque) = true;
  }
  return AVERROR(EPERM);
}

// A run of decoded audio at one sample rate (a stream may change rate).
struct Segment {
  int sample_rate_hz = 0;
  std::vector<float> samples;
};

class Decoder {
 public:
  Decoder(Source& source, bool seekable, std::string name,
          const AudioLimits& limits)
      : source_(source),
        seekable_(seekable),
        name_(std::move(name)),
        limits_(limits) {}

  DecodedAudio Run() {
    Open();
    DecodeAll();
    return Finish();
  }

  // Pull mode (StreamDecoder): Open(), then Step() and TakeSegments() until
  // Step() returns false, then CheckDecodedSomething().
  void OpenForStreaming() { Open(); }
  // After OpenForStreaming() and before any Step: what Run() returns.
  DecodedAudio DecodeRest() {
    DecodeAll();
    return Finish();
  }
  bool StepForStreaming() { return Step(); }
  // Moves out the samples decoded since the last call, per run of one rate;
  // the last run's rate is kept so that a change is still noticed.
  std::vector<Segment> TakeSegments() {
    std::vector<Segment> taken;
    for (Segment& segment : segments_) {
      if (!segment.samples.empty()) taken.push_back(std::move(segment));
    }
    if (!segments_.empty()) {
      const int rate = segments_.back().sample_rate_hz;
      segments_.clear();
      segments_.push_back(Segment{rate, {}});
    }
    return taken;
  }
  void CheckDecodedSomething() const {
    if (segments_.empty()) {
      std::string reason = "no audio samples could be decoded";
      if (last_error_ != 0) reason += " (" + AvErrorString(last_error_) + ")";
      Fail(ErrorCode::kCorruptInput, reason);
    }
  }
  const AudioInfo& info() const { return info_; }
  // From the container header; <= 0 when it does not say.
  double HeaderDurationSeconds() const {
    const AVStream* stream = format_->streams[stream_index_];
    if (stream->duration != AV_NOPTS_VALUE && stream->duration > 0 &&
        stream->time_base.den > 0) {
      return static_cast<double>(stream->duration) * stream->time_base.num /
             stream->time_base.den;
    }
    if (format_->duration != AV_NOPTS_VALUE && format_->duration > 0)
      return static_cast<double>(format_->duration) / AV_TIME_BASE;
    return 0.0;
  }
  const std::string& name() const { return name_; }

 private:
  [[noreturn]] void Fail(ErrorCode code, const std::string& reason) const {
    throw Error(code, name_ + ": " + reason);
  }
  void FailOnReadError() const {
    if (source_.read_errno() != 0) {
      Fail(ErrorCode::kIoError, std::string("read failed (") +
                                    std::strerror(source_.read_errno()) + ")");
    }
  }
  void FailOnNestedOpen() const {
    if (refused_nested_open_) {
      Fail(ErrorCode::kUnsupportedInput,
           "a playlist or reference to other files or URLs, which are never "
           "opened");
    }
  }
  void FailOnOutOfMemory(int code) const {
    if (code == AVERROR(ENOMEM))
      Fail(ErrorCode::kResourceLimit, "out of memory");
  }

  void Open() {
    auto* buffer = static_cast<uint8_t*>(av_malloc(kIoBufferBytes));
    if (buffer == nullptr) Fail(ErrorCode::kResourceLimit, "out of memory");
    AVIOContext* io = avio_alloc_context(
        buffer, kIoBufferBytes, 0, &source_, &Source::ReadCallback, nullptr,
        seekable_ ? &Source::SeekCallback : nullptr);
    if (io == nullptr) {
      av_free(buffer);
      Fail(ErrorCode::kResourceLimit, "out of memory");
    }
    io_.reset(io);

    // Probe first, from the content alone, to name the format in errors.
    const AVInputFormat* input_format = nullptr;
    const int probed =
        av_probe_input_buffer2(io_.get(), &input_format, "", nullptr, 0, 0);
    FailOnReadError();
    if (probed < 0 || input_format == nullptr) {
      if (avio_size(io_.get()) == 0) {
        Fail(ErrorCode::kCorruptInput, "empty input (0 bytes)");
      }
      Fail(ErrorCode::kUnsupportedInput,
           "not a recognised audio format (" + AvErrorString(probed) + ")");
    }
    if (!IsAcceptedDemuxer(input_format->name)) {
      const std::string long_name =
          input_format->long_name != nullptr
              ? std::string(" (") + input_format->long_name + ")"
              : "";
      Fail(ErrorCode::kUnsupportedInput,
           std::string("not an audio file (format '") + input_format->name +
               "'" + long_name + " is not accepted)");
    }

    AVFormatContext* format = avformat_alloc_context();
    if (format == nullptr) Fail(ErrorCode::kResourceLimit, "out of memory");
    format->pb = io_.get();
    format->io_open = &RefuseNestedOpen;
    format->opaque = &refused_nested_open_;
    // Defence in depth behind the check above: FFmpeg itself refuses any
    // other demuxer (nested ones included), and every protocol: the custom
    // AVIOContext needs none, so not even "file" is allowed.
    format->format_whitelist = av_strdup(AcceptedDemuxerList().c_str());
    format->protocol_whitelist = av_strdup("");
    if (format->format_whitelist == nullptr ||
        format->protocol_whitelist == nullptr) {
      avformat_free_context(format);
      Fail(ErrorCode::kResourceLimit, "out of memory");
    }
    // On failure avformat_open_input frees the context and nulls the pointer.
    const int opened = avformat_open_input(&format, "", input_format, nullptr);
    if (opened < 0) {
      FailOnReadError();
      FailOnNestedOpen();
      Fail(ErrorCode::kCorruptInput, std::string("cannot read the ") +
                                         input_format->name + " header (" +
                                         AvErrorString(opened) + ")");
    }
    format_.reset(format);

    // Failure here leaves some parameters unknown; decoding may still work,
    // and if it does not, the errors below say so.
    const int info = avformat_find_stream_info(format_.get(), nullptr);
    FailOnReadError();
    if (info < 0) FailOnNestedOpen();
    FailOnOutOfMemory(info);

    const AVCodec* codec = nullptr;
    const int index = av_find_best_stream(format_.get(), AVMEDIA_TYPE_AUDIO, -1,
                                          -1, &codec, 0);
    if (index == AVERROR_STREAM_NOT_FOUND) {
      Fail(ErrorCode::kUnsupportedInput, "no audio stream in " +
                                             std::string(ContainerName()) +
                                             " input" + OtherStreams());
    }
    if (index == AVERROR_DECODER_NOT_FOUND || codec == nullptr) {
      Fail(ErrorCode::kUnsupportedInput,
           "no decoder for the audio codec" + AudioCodecNameForError());
    }
    if (index < 0) {
      Fail(ErrorCode::kUnsupportedInput,
           "cannot select an audio stream (" + AvErrorString(index) + ")");
    }
    stream_index_ = index;
    for (unsigned i = 0; i < format_->nb_streams; ++i) {
      if (static_cast<int>(i) != stream_index_) {
        format_->streams[i]->discard = AVDISCARD_ALL;
      }
    }
    const AVStream* stream = format_->streams[stream_index_];
    CheckChannels(stream->codecpar->ch_layout.nb_channels);

    codec_.reset(avcodec_alloc_context3(codec));
    if (!codec_) Fail(ErrorCode::kResourceLimit, "out of memory");
    int ret = avcodec_parameters_to_context(codec_.get(), stream->codecpar);
    if (ret < 0) {
      FailOnOutOfMemory(ret);
      Fail(ErrorCode::kCorruptInput,
           "bad codec parameters (" + AvErrorString(ret) + ")");
    }
    // The timebase lets the decoder trim priming and padding samples that
    // the demuxer signals (MP3 gapless, AAC priming, Opus pre-skip).
    codec_->pkt_timebase = stream->time_base;
    codec_->thread_count = 1;
    ret = avcodec_open2(codec_.get(), codec, nullptr);
    if (ret < 0) {
      FailOnOutOfMemory(ret);
      Fail(ErrorCode::kCorruptInput, std::string("cannot open the ") +
                                         codec->name + " decoder (" +
                                         AvErrorString(ret) + ")");
    }
    packet_.reset(av_packet_alloc());
    frame_.reset(av_frame_alloc());
    if (!packet_ || !frame_) Fail(ErrorCode::kResourceLimit, "out of memory");

    info_.container = ContainerName();
    info_.codec = codec->name;
    info_.channels = stream->codecpar->ch_layout.nb_channels;
    info_.sample_rate_hz = stream->codecpar->sample_rate;
  }

  const char* ContainerName() const {
    return format_ && format_->iformat ? format_->iformat->name : "unknown";
  }

  std::string OtherStreams() const {
    int video = 0, other = 0;
    for (unsigned i = 0; i < format_->nb_streams; ++i) {
      if (format_->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_VIDEO) {
        ++video;
      } else {
        ++other;
      }
    }
    if (video + other == 0) return " (it has no streams)";
    return " (it has " + std::to_string(video) + " video and " +
           std::to_string(other) + " other streams)";
  }

  std::string AudioCodecNameForError() const {
    for (unsigned i = 0; i < format_->nb_streams; ++i) {
      const AVCodecParameters* par = format_->streams[i]->codecpar;
      if (par->codec_type == AVMEDIA_TYPE_AUDIO) {
        return std::string(" ") + avcodec_get_name(par->codec_id);
      }
    }
    return "";
  }

  void CheckChannels(int channels) const {
    if (limits_.max_channels > 0 && channels > limits_.max_channels) {
      Fail(ErrorCode::kResourceLimit, std::to_string(channels) +
                                          " channels exceed the limit of " +
                                          std::to_string(limits_.max_channels));
    }
  }

  void DecodeAll() {
    while (Step()) {
    }
  }

  // Decodes one packet (or, at the end, drains the decoder); false once the
  // input is exhausted. Decoded samples go to segments_.
  bool Step() {
    if (done_) return false;
    if (!stop_) {
      const int read = av_read_frame(format_.get(), packet_.get());
      if (read >= 0) {
        if (packet_->stream_index != stream_index_) {
          av_packet_unref(packet_.get());
          return true;
        }
        const int sent = avcodec_send_packet(codec_.get(), packet_.get());
        av_packet_unref(packet_.get());
        if (sent < 0 && sent != AVERROR(EAGAIN)) {
          OnDecodeError(sent);
          return true;
        }
        ReceiveFrames();
        return true;
      }
      // End of data, or a demuxer that cannot make sense of the rest:
      // either way what was decoded so far is kept.
      FailOnOutOfMemory(read);
      if (read != AVERROR_EOF) last_error_ = read;
    }
    FailOnReadError();
    // Drain the frames the decoder still holds (delay, end padding).
    if (avcodec_send_packet(codec_.get(), nullptr) >= 0) {
      stop_ = false;
      ReceiveFrames();
    }
    done_ = true;
    return false;
  }

  void ReceiveFrames() {
    while (!stop_) {
      const int ret = avcodec_receive_frame(codec_.get(), frame_.get());
      if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF) return;
      if (ret < 0) {
        OnDecodeError(ret);
        if (stop_) return;
        continue;
      }
      consecutive_errors_ = 0;
      AppendFrame(*frame_);
      av_frame_unref(frame_.get());
    }
  }

  void OnDecodeError(int code) {
    FailOnOutOfMemory(code);
    last_error_ = code;
    if (code != AVERROR_INVALIDDATA ||
        ++consecutive_errors_ > kMaxConsecutiveDecodeErrors) {
      stop_ = true;
    }
  }

  void AppendFrame(const AVFrame& frame) {
    const int channels = frame.ch_layout.nb_channels;
    if (channels <= 0)
      Fail(ErrorCode::kCorruptInput, "decoded frame has no channels");
    CheckChannels(channels);
    // The decoder context holds the rate of the frame just decoded: the MPEG
    // audio decoders stamp each frame with the rate of the frame before it
    // (they allocate it before parsing its header), which is wrong for one
    // frame after every rate change and for the first one when the stream
    // parameters came from a later frame.
    const int rate =
        codec_->sample_rate > 0 ? codec_->sample_rate : frame.sample_rate;
    if (rate < kMinSampleRateHz || rate > kMaxSampleRateHz) {
      Fail(ErrorCode::kUnsupportedInput,
           "unsupported sample rate " + std::to_string(rate) +
               " Hz (accepted: " + std::to_string(kMinSampleRateHz) + " to " +
               std::to_string(kMaxSampleRateHz) + ")");
    }
    if (frame.nb_samples <= 0) return;
    const double frame_start_s = decoded_s_;
    CountDecoded(frame.nb_samples, channels, rate);
    if (segments_.empty()) {
      info_.channels = channels;
      info_.sample_rate_hz = rate;
    }
    if (segments_.empty() || segments_.back().sample_rate_hz != rate) {
      segments_.push_back(Segment{rate, {}});
    }
    std::vector<float>& samples = segments_.back().samples;
    const size_t before = samples.size();
    if (!audio::AppendAsMono(frame.format, frame.extended_data, channels,
                             frame.nb_samples, &samples)) {
      const char* format_name =
          av_get_sample_fmt_name(static_cast<AVSampleFormat>(frame.format));
      Fail(ErrorCode::kUnsupportedInput,
           std::string("unsupported sample format ") +
               (format_name ? format_name : "unknown"));
    }
    for (size_t i = before; i < samples.size(); ++i) {
      if (!std::isfinite(samples[i])) {
        Fail(ErrorCode::kCorruptInput,
             "non-finite sample value at " +
                 std::to_string(frame_start_s +
                                static_cast<double>(i - before) / rate) +
                 " s");
      }
    }
  }

  // Adds a decoded frame to the totals and enforces the limits on them,
  // before the frame is kept: what counts is what the data decodes to, never
  // what a header claims (a header may say nothing, or lie).
  void CountDecoded(int frames, int channels, int rate) {
    decoded_s_ += static_cast<double>(frames) / rate;
    decoded_samples_ += static_cast<int64_t>(frames) * channels;
    if (limits_.max_duration_s > 0 && decoded_s_ > limits_.max_duration_s) {
      Fail(ErrorCode::kResourceLimit, "audio longer than the limit of " +
                                          NumberText(limits_.max_duration_s) +
                                          " s");
    }
    if (limits_.max_decoded_samples > 0) {
      // Each second also counts as 16000 samples, which it becomes at the
      // model's rate, so that a low rate cannot multiply the output either.
      const double as_16k = decoded_s_ * kModelSampleRateHz;
      if (decoded_samples_ > limits_.max_decoded_samples ||
          as_16k > static_cast<double>(limits_.max_decoded_samples)) {
        Fail(ErrorCode::kResourceLimit,
             "decodes to more than the limit of " +
                 std::to_string(limits_.max_decoded_samples) + " samples (" +
                 std::to_string(channels) + " channels at " +
                 std::to_string(rate) + " Hz, " + NumberText(decoded_s_) +
                 " s so far)");
      }
    }
  }

  DecodedAudio Finish() {
    DecodedAudio result;
    if (segments_.empty()) {
      std::string reason = "no audio samples could be decoded";
      if (last_error_ != 0) reason += " (" + AvErrorString(last_error_) + ")";
      Fail(ErrorCode::kCorruptInput, reason);
    }
    const int rate = segments_.front().sample_rate_hz;
    result.mono.sample_rate_hz = rate;
    if (segments_.size() == 1) {
      result.mono.samples = std::move(segments_.front().samples);
    } else {
      // A stream that changes rate midway is brought to its first rate piece
      // by piece, so every sample keeps its place in time.
      for (Segment& segment : segments_) {
        std::vector<float> piece =
            segment.sample_rate_hz == rate
                ? std::move(segment.samples)
                : Resample(segment.samples, segment.sample_rate_hz, rate);
        result.mono.samples.insert(result.mono.samples.end(), piece.begin(),
                                   piece.end());
      }
    }
    result.info = info_;
    result.info.frames = static_cast<int64_t>(result.mono.samples.size());
    return result;
  }

  Source& source_;
  bool seekable_;
  std::string name_;
  AudioLimits limits_;
  // Declared in this order so the format context, which reads through io_,
  // is closed first.
  audio::AvioPtr io_;
  audio::FormatContextPtr format_;
  audio::CodecContextPtr codec_;
  audio::PacketPtr packet_;
  audio::FramePtr frame_;
  bool refused_nested_open_ = false;
  int stream_index_ = -1;
  AudioInfo info_;
  std::vector<Segment> segments_;
  double decoded_s_ = 0.0;
  int64_t decoded_samples_ = 0;  // over all channels, at the original rates
  int consecutive_errors_ = 0;
  int last_error_ = 0;
  bool stop_ = false;
  bool done_ = false;
};

DecodedAudio DecodeFrom(Source& source, bool seekable, const std::string& name,
                        const AudioLimits& limits) {
  SilenceFfmpegLogging();
  try {
    return Decoder(source, seekable, name, limits).Run();
  } catch (const std::bad_alloc&) {
    throw Error(ErrorCode::kResourceLimit, name + ": out of memory");
  } catch (const std::length_error&) {
    throw Error(ErrorCode::kResourceLimit, name + ": out of memory");
  }
}

}  // namespace

DecodedAudio DecodeAudioFile(const std::string& path,
                             const AudioLimits& limits) {
  FileSource source(path);
  return DecodeFrom(source, source.size() >= 0, path, limits);
}

DecodedAudio DecodeAudioBytes(std::span<const uint8_t> bytes,
                              const std::string& name,
                              const AudioLimits& limits) {
  MemorySource source(bytes);
  return DecodeFrom(source, true, name, limits);
}

}  // namespace voxprint

// ----------------------------------------------------------------------------
// StreamDecoder: the Decoder above in pull mode.

namespace voxprint::audio {

struct StreamDecoder::Impl {
  std::unique_ptr<Source> source;
  std::unique_ptr<Decoder> decoder;
  int rate_hz = 0;      // of the output: the first decoded rate
  int run_rate_hz = 0;  // of the run of samples being decoded now
  // Runs at another rate are brought to rate_hz each on its own, as
  // Decoder::Finish does with whole segments.
  std::unique_ptr<StreamingResampler> resampler;
  int64_t frames = 0;
  bool ended = false;
  CancelToken cancel;

  template <typename Function>
  auto Guarded(Function&& function) {
    try {
      return function();
    } catch (const std::bad_alloc&) {
      throw Error(ErrorCode::kResourceLimit,
                  decoder->name() + ": out of memory");
    } catch (const std::length_error&) {
      throw Error(ErrorCode::kResourceLimit,
                  decoder->name() + ": out of memory");
    }
  }

  void Append(const Segment& segment, std::vector<float>* out) {
    if (rate_hz == 0) rate_hz = segment.sample_rate_hz;
    if (segment.sample_rate_hz != run_rate_hz) {
      if (resampler) resampler->Finish(out);
      resampler.reset();
      run_rate_hz = segment.sample_rate_hz;
      if (run_rate_hz != rate_hz)
        resampler = std::make_unique<StreamingResampler>(run_rate_hz, rate_hz);
    }
    if (resampler) {
      resampler->Push(segment.samples, out);
    } else {
      out->insert(out->end(), segment.samples.begin(), segment.samples.end());
    }
  }

  bool Next(std::vector<float>* out) {
    out->clear();
    while (out->empty() && !ended) {
      const bool more = decoder->StepForStreaming();
      for (const Segment& segment : decoder->TakeSegments())
        Append(segment, out);
      if (!more) {
        ended = true;
        decoder->CheckDecodedSomething();
        if (resampler) resampler->Finish(out);
        resampler.reset();
      }
    }
    frames += static_cast<int64_t>(out->size());
    return !out->empty();
  }
};

StreamDecoder::StreamDecoder(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}
StreamDecoder::~StreamDecoder() = default;

std::unique_ptr<StreamDecoder> StreamDecoder::OpenFile(
    const std::string& path, const AudioLimits& limits) {
  SilenceFfmpegLogging();
  auto impl = std::make_unique<Impl>();
  auto source = std::make_unique<FileSource>(path);
  const bool seekable = source->size() >= 0;
  impl->decoder = std::make_unique<Decoder>(*source, seekable, path, limits);
  impl->source = std::move(source);
  impl->Guarded([&] { impl->decoder->OpenForStreaming(); });
  return std::unique_ptr<StreamDecoder>(new StreamDecoder(std::move(impl)));
}

std::unique_ptr<StreamDecoder> StreamDecoder::OpenBytes(
    std::span<const uint8_t> bytes, const std::string& name,
    const AudioLimits& limits) {
  SilenceFfmpegLogging();
  auto impl = std::make_unique<Impl>();
  impl->source = std::make_unique<MemorySource>(bytes);
  impl->decoder = std::make_unique<Decoder>(*impl->source, true, name, limits);
  impl->Guarded([&] { impl->decoder->OpenForStreaming(); });
  return std::unique_ptr<StreamDecoder>(new StreamDecoder(std::move(impl)));
}

double StreamDecoder::HeaderDurationSeconds() const {
  return impl_->decoder->HeaderDurationSeconds();
}

DecodedAudio StreamDecoder::DecodeAll() {
  VOXPRINT_CHECK(impl_->frames == 0 && !impl_->ended,
                 "DecodeAll after Next on " + impl_->decoder->name());
  return impl_->Guarded([&] { return impl_->decoder->DecodeRest(); });
}

bool StreamDecoder::Next(std::vector<float>* out) {
  impl_->cancel.ThrowIfCancelled(impl_->decoder->name());
  return impl_->Guarded([&] { return impl_->Next(out); });
}

void StreamDecoder::SetCancel(CancelToken cancel) {
  impl_->cancel = std::move(cancel);
}

Audio16k StreamDecoder::DecodeAll16k() { return *DecodeAll16kUnlessLonger(0); }

std::optional<Audio16k> StreamDecoder::DecodeAll16kUnlessLonger(
    int64_t max_samples_16k) {
  VOXPRINT_CHECK(impl_->frames == 0 && !impl_->ended,
                 "DecodeAll16k after Next on " + impl_->decoder->name());
  return impl_->Guarded([&]() -> std::optional<Audio16k> {
    Audio16k result;
    std::vector<float> block;
    std::unique_ptr<StreamingResampler> resampler;
    while (impl_->Next(&block)) {
      impl_->cancel.ThrowIfCancelled(impl_->decoder->name());
      if (!resampler) {
        resampler = std::make_unique<StreamingResampler>(impl_->rate_hz,
                                                         kModelSampleRateHz);
      }
      resampler->Push(block, &result.samples);
      if (max_samples_16k > 0 &&
          static_cast<int64_t>(result.samples.size()) > max_samples_16k) {
        return std::nullopt;
      }
    }
    if (resampler) resampler->Finish(&result.samples);
    if (max_samples_16k > 0 &&
        static_cast<int64_t>(result.samples.size()) > max_samples_16k) {
      return std::nullopt;
    }
    result.info = Info();
    return result;
  });
}

int StreamDecoder::SampleRateHz() const { return impl_->rate_hz; }

AudioInfo StreamDecoder::Info() const {
  AudioInfo info = impl_->decoder->info();
  info.frames = impl_->frames;
  return info;
}

}  // namespace voxprint::audio
