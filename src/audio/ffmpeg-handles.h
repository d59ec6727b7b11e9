// Owning handles for the FFmpeg objects the decoder uses (internal).
#pragma once

#include <memory>
#include <string>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/error.h>
#include <libavutil/mem.h>
}

namespace voxprint::audio {

struct AvioContextDeleter {
  void operator()(AVIOContext* io) const {
    // FFmpeg may have replaced the buffer we gave it; free whatever it holds.
    av_freep(&io->buffer);
    avio_context_free(&io);
  }
};
struct FormatContextDeleter {
  // A custom AVIOContext is not freed here (AVFMT_FLAG_CUSTOM_IO), so the
  // format context must be destroyed before the AvioPtr it reads from.
  void operator()(AVFormatContext* ctx) const { avformat_close_input(&ctx); }
};
struct CodecContextDeleter {
  void operator()(AVCodecContext* ctx) const { avcodec_free_context(&ctx); }
};
struct PacketDeleter {
  void operator()(AVPacket* packet) const { av_packet_free(&packet); }
};
struct FrameDeleter {
  void operator()(AVFrame* frame) const { av_frame_free(&frame); }
};

using AvioPtr = std::unique_ptr<AVIOContext, AvioContextDeleter>;
using FormatContextPtr = std::unique_ptr<AVFormatContext, FormatContextDeleter>;
using CodecContextPtr = std::unique_ptr<AVCodecContext, CodecContextDeleter>;
using PacketPtr = std::unique_ptr<AVPacket, PacketDeleter>;
using FramePtr = std::unique_ptr<AVFrame, FrameDeleter>;

inline std::string AvErrorString(int code) {
  char text[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(code, text, sizeof(text));
  return text;
}

}  // namespace voxprint::audio
