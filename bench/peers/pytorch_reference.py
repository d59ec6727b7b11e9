#!/usr/bin/python3
"""PyTorch peer: pyannote.audio's WeSpeakerResNet34 pipeline in plain torch.

Run with /usr/bin/python3 (Debian's torch 1.13 + torchaudio 0.13). It does what
pyannote.audio does for `Inference(model, window="whole" | "sliding")`:
read the file with torchaudio -> kaldi fbank on waveform*32768 -> minus the
mean over time -> ResNet34 -> mean + unbiased std pooling -> seg_1 linear, with
the weights of the kit's pytorch_model.bin. pyannote itself is not needed.

  pytorch_reference.py check  [--kit DIR]
  pytorch_reference.py bench  [--kit DIR] --long FILE [--many DIR]
                              [--threads 1,2] [--quick]
  pytorch_reference.py embed  [--kit DIR] FILE
  pytorch_reference.py gpu    [--kit DIR] --samples FILE.f32
                              [--batches 1,8,32,128] [--files 1,4,16]

`check` compares with the kit; `bench` checks first (aborting on a mismatch)
and then times (with --many, the .wav files of DIR one after another, as
pyannote's Inference embeds files); `embed` loads the model and embeds one file once (for timing
process start to first embedding and for peak RSS from outside); `gpu` is
the counterpart of voxprint-gpu-bench on a CUDA device (any torch 2): the same
decoded samples, fbank and network on the GPU as pyannote.audio runs them
there, TF32 off as pyannote's fix_reproducibility sets it (and once on, for
the TF32 rows). Every command prints one JSON object on stdout.
"""
import argparse
import collections
import functools
import io
import json
import os
import pickle
import resource
import statistics
import sys
import time
import zipfile

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio

SAMPLE_RATE_HZ = 16000
SLIDING_BATCH = 32  # pyannote.audio's default embedding batch size
CHECK_TOLERANCE = 1e-4
DEFAULT_KIT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           "..", "..", "..", "shared", "reference")


# ---------------------------------------------------------------- loading --
class _Inert:
    """Stands in for any class or function the checkpoint names that is not a
    tensor rebuild: it accepts every call and state and does nothing."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _Inert()

    def __setstate__(self, state):
        pass


_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16, "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8,
    "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}


def _rebuild_tensor(storage, offset, size, stride, *unused):
    return torch.as_strided(storage, size, stride, offset)


class _RestrictedUnpickler(pickle.Unpickler):
    """Reads a torch.save zip's data.pkl without executing anything from it.

    (torch 1.13's torch.load ignores its pickle_module argument unless
    weights_only, and weights_only refuses pyannote's classes, hence this.)
    Tensors and OrderedDict resolve to our own code; pyannote's classes,
    `getattr` and anything else become inert objects."""

    def __init__(self, data, archive, prefix):
        super().__init__(data)
        self._archive = archive
        self._prefix = prefix
        self._storages = {}

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        return _Inert

    def persistent_load(self, pid):
        kind, dtype, key, _location, numel = pid
        if kind != "storage" or not isinstance(dtype, torch.dtype):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        if key not in self._storages:
            raw = self._archive.read(f"{self._prefix}/data/{key}")
            storage = torch.frombuffer(bytearray(raw), dtype=dtype)
            if storage.numel() != numel:
                raise pickle.UnpicklingError(f"storage {key}: size mismatch")
            self._storages[key] = storage
        return self._storages[key]


def load_state_dict(path):
    with zipfile.ZipFile(path) as archive:
        pickle_name = next(n for n in archive.namelist()
                           if n.endswith("/data.pkl"))
        prefix = pickle_name[: -len("/data.pkl")]
        checkpoint = _RestrictedUnpickler(
            io.BytesIO(archive.read(pickle_name)), archive, prefix).load()
    state = checkpoint["state_dict"]
    prefix = "resnet."
    return {k[len(prefix):]: v.float().contiguous() for k, v in state.items()
            if k.startswith(prefix) and v.is_floating_point()}


# ---------------------------------------------------------------- network --
class ResNet34:
    """WeSpeaker ResNet34 (basic blocks 3-4-6-3, 32 base channels) in eval
    mode, written with torch.nn.functional over the loaded state dict."""

    STAGES = [(1, 3, 1), (2, 4, 2), (3, 6, 2), (4, 3, 2)]  # layer, blocks, stride

    def __init__(self, weights):
        self.w = weights

    def _bn(self, x, name):
        w = self.w
        return F.batch_norm(x, w[name + ".running_mean"],
                            w[name + ".running_var"], w[name + ".weight"],
                            w[name + ".bias"], training=False, eps=1e-5)

    def _block(self, x, name, stride):
        w = self.w
        out = F.relu(self._bn(F.conv2d(x, w[name + ".conv1.weight"],
                                       stride=stride, padding=1),
                              name + ".bn1"))
        out = self._bn(F.conv2d(out, w[name + ".conv2.weight"], padding=1),
                       name + ".bn2")
        if name + ".shortcut.0.weight" in w:
            shortcut = self._bn(F.conv2d(x, w[name + ".shortcut.0.weight"],
                                         stride=stride), name + ".shortcut.1")
        else:
            shortcut = x
        return F.relu(out + shortcut)

    @torch.no_grad()
    def __call__(self, feats):
        """feats [B, T, 80] -> embeddings [B, 256]."""
        x = feats.permute(0, 2, 1).unsqueeze(1)  # [B, 1, F, T]
        x = F.relu(self._bn(F.conv2d(x, self.w["conv1.weight"], padding=1),
                            "bn1"))
        for layer, blocks, stride in self.STAGES:
            for b in range(blocks):
                x = self._block(x, f"layer{layer}.{b}", stride if b == 0 else 1)
        x = x.reshape(x.shape[0], -1, x.shape[-1])  # b (c f) t
        stats = torch.cat([x.mean(dim=-1), x.std(dim=-1, unbiased=True)], 1)
        return F.linear(stats, self.w["seg_1.weight"], self.w["seg_1.bias"])


# --------------------------------------------------------------- pipeline --
def fbank(waveforms):
    """waveforms [B, 1, S] in [-1, 1] -> mean-subtracted fbank [B, T, 80]."""
    feats = torch.stack([
        torchaudio.compliance.kaldi.fbank(
            w * 32768.0, num_mel_bins=80, frame_length=25, frame_shift=10,
            dither=0.0, sample_frequency=SAMPLE_RATE_HZ, window_type="hamming",
            use_energy=False, snip_edges=True, round_to_power_of_two=True)
        for w in waveforms])
    return feats - feats.mean(dim=1, keepdim=True)


def fbank_vmap(waveforms):
    """fbank() as pyannote.audio 3.1 computes it on a GPU: torch.vmap over
    the batch instead of a Python loop (torch 2; the loop on torch 1)."""
    if not hasattr(torch, "vmap"):
        return fbank(waveforms)
    one = functools.partial(
        torchaudio.compliance.kaldi.fbank, num_mel_bins=80, frame_length=25,
        frame_shift=10, dither=0.0, sample_frequency=SAMPLE_RATE_HZ,
        window_type="hamming", use_energy=False, snip_edges=True,
        round_to_power_of_two=True)
    feats = torch.vmap(one)(waveforms * 32768.0)
    return feats - feats.mean(dim=1, keepdim=True)


def load_audio(path):
    waveform, rate_hz = torchaudio.load(path)
    waveform = waveform.mean(dim=0, keepdim=True)
    if rate_hz != SAMPLE_RATE_HZ:
        waveform = torchaudio.functional.resample(waveform, rate_hz,
                                                  SAMPLE_RATE_HZ)
    return waveform  # [1, S]


def embed_whole(net, path):
    return net(fbank(load_audio(path)[None]))[0]


def embed_sliding(net, path):
    return embed_sliding_waveform(net, load_audio(path), SLIDING_BATCH)


def embed_sliding_waveform(net, waveform, batch, features=fbank,
                           duration_s=3.0, step_s=1.0):
    """pyannote.audio Inference.slide: full chunks, a zero-padded last chunk
    when the hop does not land on the end, batches of `batch`."""
    window = round(duration_s * SAMPLE_RATE_HZ)
    step = round(step_s * SAMPLE_RATE_HZ)
    n = waveform.shape[1]
    chunks = []
    if n >= window:
        chunks = list(waveform.unfold(1, window, step).permute(1, 0, 2))
        num_full = len(chunks)
    else:
        num_full = 0
    if n < window or (n - window) % step > 0:
        last = waveform[:, num_full * step:]
        chunks.append(F.pad(last, (0, window - last.shape[1])))
    outputs = []
    for i in range(0, len(chunks), batch):
        outputs.append(net(features(torch.stack(chunks[i:i + batch]))))
    return torch.cat(outputs)


# ----------------------------------------------------------------- checks --
def rel_l2(actual, expected):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    return float(np.linalg.norm(actual - expected) / np.linalg.norm(expected))


def check(net, kit):
    audio = os.path.join(kit, "audio", "sample.wav")
    expected = os.path.join(kit, "expected")
    feats = fbank(load_audio(audio)[None])[0]
    return {
        "fbank_rel_l2": rel_l2(feats.numpy(), np.load(
            os.path.join(expected, "sample_wav.fbank.npy"))),
        "whole_rel_l2": rel_l2(embed_whole(net, audio).numpy(), np.load(
            os.path.join(expected, "sample_wav.whole.npy"))),
        "sliding_3_1_rel_l2": rel_l2(embed_sliding(net, audio).numpy(), np.load(
            os.path.join(expected, "sample_wav.sliding_3.0_1.0.npy"))),
    }


# ----------------------------------------------------------------- timing --
def time_runs(fn, min_reps, min_total_s):
    """Runs fn until it ran min_reps times and for min_total_s; seconds each."""
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < min_total_s:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times),
            "reps": len(times)}


def audio_seconds(path):
    info = torchaudio.info(path)
    return info.num_frames / info.sample_rate


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench(args):
    t0 = time.perf_counter()
    net = ResNet34(load_state_dict(args.model))
    load_s = time.perf_counter() - t0
    accuracy = check(net, args.kit)
    if accuracy["whole_rel_l2"] > CHECK_TOLERANCE:
        sys.exit(f"pytorch_reference: whole embedding of sample.wav is off "
                 f"the kit: rel L2 {accuracy['whole_rel_l2']:.3g} > "
                 f"{CHECK_TOLERANCE}")
    short = os.path.join(args.kit, "audio", "sample.wav")
    reps, budget_s = (1, 0.0) if args.quick else (3, 5.0)
    result = {
        "system": "pytorch",
        "version": f"torch {torch.__version__}, torchaudio "
                   f"{torchaudio.__version__}",
        "model_load_s": load_s,
        "accuracy": accuracy,
        "threads": {},
    }
    num_windows = embed_sliding(net, short).shape[0]
    for threads in args.threads:
        torch.set_num_threads(threads)
        embed_whole(net, short)  # warm-up (oneDNN primitive creation)
        entry = {
            "whole_30s": time_runs(lambda: embed_whole(net, short), reps,
                                   budget_s),
            "sliding_3s_1s": time_runs(lambda: embed_sliding(net, short),
                                       reps, budget_s),
            "whole_10min": time_runs(lambda: embed_whole(net, args.long),
                                     1 if args.quick else 2, 0.0),
        }
        entry["whole_30s"]["audio_s"] = audio_seconds(short)
        entry["whole_10min"]["audio_s"] = audio_seconds(args.long)
        entry["sliding_3s_1s"]["windows"] = num_windows
        if args.many:
            files = sorted(os.path.join(args.many, name)
                           for name in os.listdir(args.many)
                           if name.endswith(".wav"))

            def one_by_one():
                for path in files:
                    embed_whole(net, path)
            one_by_one()  # warm-up
            entry["many_files"] = {
                "one_by_one": time_runs(one_by_one, reps, budget_s),
                "files": len(files),
                "audio_s": sum(audio_seconds(path) for path in files)}
        result["threads"][str(threads)] = entry
    result["peak_rss_mib"] = peak_rss_mib()
    return result


def embed_once(args):
    t0 = time.perf_counter()
    net = ResNet34(load_state_dict(args.model))
    t1 = time.perf_counter()
    embedding = embed_whole(net, args.file)
    t2 = time.perf_counter()
    return {"system": "pytorch", "model_load_s": t1 - t0,
            "embed_s": t2 - t1, "norm": float(embedding.norm()),
            "peak_rss_mib": peak_rss_mib()}


# -------------------------------------------------------------------- gpu --
def gpu_bench(args):
    """voxprint-gpu-bench's measurements, on torch's CUDA device."""
    device = torch.device(args.device)
    torch.backends.cudnn.allow_tf32 = False  # pyannote's fix_reproducibility
    torch.backends.cuda.matmul.allow_tf32 = False
    t0 = time.perf_counter()
    net = ResNet34({k: v.to(device)
                    for k, v in load_state_dict(args.model).items()})
    if device.type == "cuda":
        torch.cuda.synchronize()
    load_s = time.perf_counter() - t0
    samples = torch.from_numpy(np.fromfile(args.samples, dtype="<f4"))
    waveform = samples[None].to(device)  # [1, S]
    expected = os.path.join(args.kit, "expected")

    def whole(w=waveform):
        return net(fbank_vmap(w[None])).cpu()

    def sliding(w, batch):
        return embed_sliding_waveform(net, w, batch, fbank_vmap).cpu()

    def check():
        return {
            "fbank_rel_l2": rel_l2(fbank_vmap(waveform[None])[0].cpu().numpy(),
                                   np.load(os.path.join(
                                       expected, "sample_wav.fbank.npy"))),
            "whole_rel_l2": rel_l2(whole().numpy(), np.load(os.path.join(
                expected, "sample_wav.whole.npy"))),
            "sliding_3_1_rel_l2": rel_l2(sliding(waveform, 32).numpy(), np.load(
                os.path.join(expected, "sample_wav.sliding_3.0_1.0.npy"))),
        }

    accuracy = check()
    if accuracy["whole_rel_l2"] > CHECK_TOLERANCE:
        sys.exit(f"pytorch_reference: whole embedding of the samples is off "
                 f"the kit on the GPU: rel L2 {accuracy['whole_rel_l2']:.3g}")
    reps, budget_s = 5, 1.0
    audio_s = samples.numel() / SAMPLE_RATE_HZ
    result = {"system": "pytorch",
              "version": f"torch {torch.__version__}, torchaudio "
                         f"{torchaudio.__version__}",
              "device": (torch.cuda.get_device_name(device)
                         if device.type == "cuda" else str(device)),
              "model_load_s": load_s, "accuracy": accuracy}
    feats = fbank_vmap(waveform[None])
    whole()  # warm-up
    result["whole_30s"] = {
        "end_to_end": time_runs(whole, reps, budget_s),
        "network": time_runs(lambda: net(feats).cpu(), reps, budget_s),
        "audio_s": audio_s}
    result["whole_batched"] = {}
    for batch in args.files:
        copies = feats.expand(batch, -1, -1).contiguous()
        net(copies).cpu()  # warm-up
        result["whole_batched"][str(batch)] = {
            "network": time_runs(lambda: net(copies).cpu(), reps, budget_s),
            "audio_s": audio_s * batch}
    long_waveform = waveform.repeat(1, args.repeat)
    result["sliding_3s_1s"] = {}
    for batch in args.batches:
        sliding(long_waveform, batch)  # warm-up
        entry = {"end_to_end": time_runs(
            lambda: sliding(long_waveform, batch), 3, budget_s)}
        entry["windows"] = sliding(long_waveform, batch).shape[0]
        result["sliding_3s_1s"][str(batch)] = entry
    # voxprint-gpu-bench's 32 clips of 2-4 s, one after another (pyannote
    # embeds files one by one).
    clips = []
    for i in range(32):
        start = int((i * 7) % 26 * SAMPLE_RATE_HZ)
        clips.append(waveform[:, start:start + int(
            (2.0 + (i * 13 % 21) / 10.0) * SAMPLE_RATE_HZ)])

    def many():
        for clip in clips:
            whole(clip)
    many()
    result["many_files"] = {
        "one_by_one": time_runs(many, reps, budget_s), "files": len(clips),
        "audio_s": sum(c.shape[1] for c in clips) / SAMPLE_RATE_HZ}
    # PyTorch's own default (TF32 convolutions), for the tf32 rows.
    torch.backends.cudnn.allow_tf32 = True
    whole()
    result["tf32"] = {
        "whole_rel_l2": rel_l2(whole().numpy(), np.load(os.path.join(
            expected, "sample_wav.whole.npy"))),
        "whole_30s": {"network": time_runs(lambda: net(feats).cpu(), reps,
                                           budget_s), "audio_s": audio_s},
        "sliding_3s_1s": {str(args.batches[-1]): {"end_to_end": time_runs(
            lambda: sliding(long_waveform, args.batches[-1]), 3, budget_s)}},
    }
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["check", "bench", "embed", "gpu"])
    parser.add_argument("file", nargs="?")
    parser.add_argument("--kit", default=DEFAULT_KIT)
    parser.add_argument("--model")
    parser.add_argument("--long", help="the 10 min WAV (bench)")
    parser.add_argument("--many", help="a directory of short WAVs (bench)")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--quick", action="store_true",
                        help="one repetition of each timing")
    parser.add_argument("--samples", help="raw float32 16 kHz samples (gpu)")
    parser.add_argument("--batches", default="1,8,32,128",
                        help="sliding-window batch sizes (gpu)")
    parser.add_argument("--files", default="1,4,16",
                        help="whole-file batch sizes (gpu)")
    parser.add_argument("--device", default="cuda",
                        help="torch device (gpu; cpu to try it here)")
    parser.add_argument("--repeat", type=int, default=20,
                        help="copies of the samples for sliding (gpu)")
    args = parser.parse_args()
    args.kit = os.path.abspath(args.kit)
    args.model = args.model or os.path.join(args.kit, "models",
                                            "pytorch_model.bin")
    args.threads = [int(t) for t in args.threads.split(",")]
    args.batches = [int(b) for b in args.batches.split(",")]
    args.files = [int(b) for b in args.files.split(",")]
    torch.set_num_interop_threads(1)
    torch.set_num_threads(args.threads[0])

    if args.command == "check":
        out = check(ResNet34(load_state_dict(args.model)), args.kit)
    elif args.command == "bench":
        if not args.long:
            parser.error("bench needs --long FILE")
        out = bench(args)
    elif args.command == "gpu":
        if not args.samples:
            parser.error("gpu needs --samples FILE")
        out = gpu_bench(args)
    else:
        if not args.file:
            parser.error("embed needs FILE")
        out = embed_once(args)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
