"""The Python module against the CLI: same numbers bit for bit, arrays in the
shapes and dtypes people pass, errors, threads sharing one Extractor."""

import os
import pathlib
import pydoc
import threading
import time

import numpy as np
import pytest
import scipy.io.wavfile

import voxprint
from conftest import write_wav


def cli_error_line(done) -> str:
    """The message of the CLI's `voxprint: error: ...` line."""
    lines = [line for line in done.stderr.splitlines() if line.startswith("voxprint: error: ")]
    assert lines, done.stderr
    return lines[0][len("voxprint: error: "):]


# --- parity with the CLI ---------------------------------------------------


def test_whole_file_equals_cli(extractor, cli, audio, tmp_path):
    ours = extractor.embed(audio / "sample.wav")
    assert ours.dtype == np.float32 and ours.shape == (256,)
    np.testing.assert_array_equal(ours, cli.embed_npy(tmp_path, audio / "sample.wav"))


# Excerpts keep the network's share of the test time small.
@pytest.mark.parametrize("name", ["stereo_44k.wav", "sample.mp3", "sample.m4a"])
def test_excerpt_equals_cli(extractor, cli, audio, tmp_path, name):
    ours = extractor.embed(audio / name, start=12.25, end=15.5)
    theirs = cli.embed_npy(tmp_path, audio / name, extra=["--start", "12.25", "--end", "15.5"])
    np.testing.assert_array_equal(ours, theirs)


def test_sliding_excerpt_equals_cli(extractor, cli, audio, tmp_path):
    args = dict(window="sliding", duration=2.0, step=0.75, start=3.5, end=9.0)
    embeddings, times = extractor.embed(str(audio / "sample_8k.wav"), **args)
    flags = ["--window", "sliding", "--duration", "2", "--step", "0.75", "--start", "3.5", "--end", "9"]
    _, document = cli.embed_json(audio / "sample_8k.wav", *flags)
    windows = document["results"][0]["windows"]
    # JSON numbers hold each float32 exactly (17 digits of its double).
    np.testing.assert_array_equal(embeddings, np.array([w["embedding"] for w in windows], np.float32))
    assert times.dtype == np.float64 and times.shape == (len(windows), 2)
    np.testing.assert_allclose(times, [[w["start_s"], w["end_s"]] for w in windows], rtol=0, atol=1e-9)
    assert times[0, 0] == 3.5


def test_bytes_equal_path(extractor, audio):
    path = audio / "sample.ogg"
    expected = extractor.embed(path, start=3, end=6)
    np.testing.assert_array_equal(extractor.embed(path.read_bytes(), start=3, end=6), expected)
    np.testing.assert_array_equal(extractor.embed(memoryview(path.read_bytes()), start=3, end=6), expected)


def test_embed_files_equals_cli_batch(extractor, cli, audio, speech, tmp_path):
    write_wav(tmp_path / "clip_8k.wav", speech[0][::2][:24000], 8000)
    files = [audio / n for n in ("short_1s.wav", "not_audio.wav", "silence_2s.wav")]
    files += [tmp_path / "clip_8k.wav", audio / "tiny_20ms.wav"]
    items = list(extractor.embed_files(files, details=True))
    assert len(items) == len(files)
    out = tmp_path / "batch"
    done = cli.run("embed", "--model", cli.model, "-q", "--format", "npy", "-o", out, *files, check=False)
    assert done.returncode == 3  # not audio: the first failure's code
    errors = [line[len("voxprint: error: "):] for line in done.stderr.splitlines()]
    for path, item in zip(files, items):
        cli_output = out / (path.stem + ".npy")
        if isinstance(item, voxprint.Error):
            assert not cli_output.exists()
            assert str(item) in errors
        else:
            assert item.path == str(path)
            np.testing.assert_array_equal(item.embedding, np.load(cli_output))
    assert isinstance(items[1], voxprint.UnsupportedInputError) and items[1].code == "unsupported_input"
    assert isinstance(items[4], voxprint.CorruptInputError)  # 20 ms: too short
    assert items[3].sample_rate == 8000 and items[3].duration == pytest.approx(3.0)


def test_embed_files_sliding_and_early_exit(extractor, audio):
    files = [audio / "short_1s.wav", audio / "silence_2s.wav"]
    items = list(extractor.embed_files(files, window="sliding", duration=1.0, step=0.5))
    for path, (embeddings, times) in zip(files, items):
        alone, alone_times = extractor.embed(path, window="sliding", duration=1.0, step=0.5)
        np.testing.assert_array_equal(embeddings, alone)
        np.testing.assert_array_equal(times, alone_times)
    # Leaving the loop early stops the job; the extractor goes on working.
    started = time.monotonic()
    for item in extractor.embed_files([audio / "short_1s.wav"] * 1000, window="sliding"):
        break
    assert time.monotonic() - started < 10  # not 1000 files' work
    assert extractor.embed(audio / "short_1s.wav").shape == (256,)


def test_cosine_similarity_equals_cli_compare(extractor, cli, audio, speech, tmp_path):
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    write_wav(a, speech[0][:32000], 16000)
    write_wav(b, speech[0][32000:], 16000)
    done = cli.run("compare", "--model", cli.model, a, b)
    import json

    expected = json.loads(done.stdout)["similarity"]
    ours = voxprint.cosine_similarity(extractor.embed(a), extractor.embed(b))
    assert ours == pytest.approx(expected, abs=1e-12)
    assert voxprint.cosine_similarity(np.zeros(4), np.ones(4)) == 0.0


# --- arrays ------------------------------------------------------------------


@pytest.fixture(scope="module")
def speech(audio):
    """4 s of the kit's speech, int16 at 16 kHz, and 3 s of its 44.1 kHz stereo."""
    _, mono = scipy.io.wavfile.read(audio / "sample.wav")
    _, stereo = scipy.io.wavfile.read(audio / "stereo_44k.wav")  # [samples, 2]
    return mono[16000 * 10 : 16000 * 14], stereo[44100 * 5 : 44100 * 8]


def test_int16_mono_equals_wav(extractor, cli, speech, tmp_path):
    mono, _ = speech
    write_wav(tmp_path / "a.wav", mono, 16000)
    np.testing.assert_array_equal(extractor.embed(mono, sample_rate=16000), cli.embed_npy(tmp_path, tmp_path / "a.wav"))


def test_float64_equals_float64_wav(extractor, cli, speech, tmp_path):
    mono, _ = speech
    samples = mono.astype(np.float64) / 32768.0 * 0.7 + 1e-9  # not float32-exact
    write_wav(tmp_path / "a.wav", samples, 22050)
    np.testing.assert_array_equal(extractor.embed(samples, sample_rate=22050), cli.embed_npy(tmp_path, tmp_path / "a.wav"))


def test_stereo_channels_first_non_contiguous_equals_wav(extractor, cli, audio, speech, tmp_path):
    _, stereo = speech
    channels_first = stereo.T  # [2, samples], a transposed view
    assert not channels_first.flags.c_contiguous
    write_wav(tmp_path / "s.wav", channels_first, 44100)
    expected = cli.embed_npy(tmp_path, tmp_path / "s.wav")
    np.testing.assert_array_equal(extractor.embed(channels_first, sample_rate=44100), expected)
    np.testing.assert_array_equal(
        extractor.embed(np.asfortranarray(channels_first), sample_rate=44100), expected)
    result = extractor.embed(channels_first, sample_rate=44100, details=True)
    assert (result.channels, result.sample_rate, result.codec) == (2, 44100, "int16")
    # The kit file as an array equals the file itself (resampled whole).
    _, whole = scipy.io.wavfile.read(audio / "stereo_44k.wav")
    np.testing.assert_array_equal(extractor.embed(whole.T, sample_rate=44100, start=20, end=22),
                                  extractor.embed(audio / "stereo_44k.wav", start=20, end=22))


def test_int32_and_float32_strided_slices_equal_wav(extractor, cli, speech, tmp_path):
    mono, stereo = speech
    every_other = (mono.astype(np.int32) << 16)[::2]  # 8 kHz, stride 8 bytes
    assert not every_other.flags.c_contiguous
    write_wav(tmp_path / "i.wav", np.ascontiguousarray(every_other), 8000)
    np.testing.assert_array_equal(extractor.embed(every_other, sample_rate=8000), cli.embed_npy(tmp_path, tmp_path / "i.wav"))
    reversed_right = (stereo[::-1, 1].astype(np.float32) / 32768)[None, :]  # [1, N], negative stride
    write_wav(tmp_path / "f.wav", np.ascontiguousarray(reversed_right[0]), 44100)
    np.testing.assert_array_equal(
        extractor.embed(reversed_right, sample_rate=44100), cli.embed_npy(tmp_path, tmp_path / "f.wav"))


def test_array_sliding_and_excerpt(extractor, speech):
    mono, _ = speech
    embeddings, times = extractor.embed(mono, sample_rate=16000, window="sliding", duration=1.5, step=1.0, start=0.5)
    assert embeddings.shape == (3, 256) and times[0].tolist() == [0.5, 2.0]


# --- errors ------------------------------------------------------------------


def test_errors_carry_code_and_the_cli_message(extractor, cli, audio):
    with pytest.raises(voxprint.UnsupportedInputError) as caught:
        extractor.embed(audio / "not_audio.wav")
    done, _ = cli.embed_json(audio / "not_audio.wav", check=False)
    assert done.returncode == caught.value.exit_status == 3
    assert str(caught.value) == cli_error_line(done)
    assert caught.value.code == "unsupported_input" and isinstance(caught.value, voxprint.AudioError)

    with pytest.raises(voxprint.FileError) as caught:
        extractor.embed("/nonexistent/talk.wav")
    assert isinstance(caught.value, OSError) and "/nonexistent/talk.wav" in str(caught.value)

    with pytest.raises(voxprint.InvalidArgumentError) as caught:
        extractor.embed(audio / "short_1s.wav", window="sliding", step=0)
    done, _ = cli.embed_json(audio / "short_1s.wav", "--window", "sliding", "--step", "0", check=False)
    assert done.returncode == 2 and str(caught.value) == cli_error_line(done)
    assert isinstance(caught.value, ValueError)

    with pytest.raises(voxprint.InvalidArgumentError, match="past the end"):
        extractor.embed(audio / "short_1s.wav", start=0.2, end=5)
    with pytest.raises(voxprint.InvalidArgumentError, match="whole, sliding"):
        extractor.embed(audio / "short_1s.wav", window="sideways")
    with pytest.raises(voxprint.CorruptInputError):
        extractor.embed(audio / "tiny_20ms.wav")


def test_array_errors(extractor, speech):
    mono, stereo = speech
    with pytest.raises(voxprint.InvalidArgumentError, match="sample_rate"):
        extractor.embed(mono)
    with pytest.raises(voxprint.InvalidArgumentError, match="sample_rate 100 is out of range"):
        extractor.embed(mono, sample_rate=100)
    with pytest.raises(voxprint.InvalidArgumentError, match=r"array.T"):
        extractor.embed(stereo, sample_rate=44100)  # [samples, channels]
    with pytest.raises(voxprint.InvalidArgumentError, match="dtype int64"):
        extractor.embed(mono.astype(np.int64), sample_rate=16000)
    with pytest.raises(voxprint.InvalidArgumentError, match="dtype complex64"):
        extractor.embed(mono.astype(np.complex64), sample_rate=16000)
    with pytest.raises(voxprint.InvalidArgumentError, match="native byte order"):
        extractor.embed(mono.astype(">i2"), sample_rate=16000)
    with pytest.raises(voxprint.InvalidArgumentError, match="sample_rate applies to arrays"):
        extractor.embed("x.wav", sample_rate=16000)
    with pytest.raises(voxprint.InvalidArgumentError, match="source must be"):
        extractor.embed([0.0] * 16000, sample_rate=16000)
    bad = mono.astype(np.float32) / 32768
    bad[1234] = np.nan
    with pytest.raises(voxprint.CorruptInputError, match="sample 1234 is NaN"):
        extractor.embed(bad, sample_rate=16000)
    with pytest.raises(voxprint.CorruptInputError):
        extractor.embed(np.zeros(0, np.float32), sample_rate=16000)


def test_model_and_device_errors(tmp_path, audio, model):
    with pytest.raises(voxprint.FileError, match="missing.bin: cannot open"):
        voxprint.Extractor(tmp_path / "missing.bin")
    with pytest.raises(voxprint.ModelError) as caught:
        voxprint.Extractor(audio / "sample.wav")
    assert caught.value.exit_status == 4 and "sample.wav" in str(caught.value)
    with pytest.raises(voxprint.DeviceError) as caught:
        voxprint.Extractor(model, device="cuda:99")
    assert caught.value.code == "backend_unavailable"
    with pytest.raises(voxprint.InvalidArgumentError, match="threads"):
        voxprint.Extractor(tmp_path / "missing.bin", threads=100000)


def test_model_lookup_follows_the_cli(model, monkeypatch, tmp_path):
    monkeypatch.setenv("VOXPRINT_MODEL", model)
    assert voxprint.Extractor(threads=1).model_path == model
    monkeypatch.delenv("VOXPRINT_MODEL")
    monkeypatch.setenv("VOXPRINT_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("VOXPRINT_OFFLINE", "1")
    with pytest.raises(voxprint.ModelError, match=str(tmp_path / "pytorch_model.bin")):
        voxprint.Extractor()


# --- threads, info, help ----------------------------------------------------


def test_threads_share_one_extractor(extractor, speech):
    mono, stereo = speech
    inputs = [(mono[:32000], 16000), (stereo.T[:, :88200], 44100), (mono[::2], 8000), (mono[:20000], 16000)]
    expected = [extractor.embed(x, sample_rate=r) for x, r in inputs]
    got = {}

    def work(k):
        for round in range(3):
            x, r = inputs[(k + round) % len(inputs)]
            got[(k, round)] = extractor.embed(x, sample_rate=r)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (k, round), value in got.items():
        np.testing.assert_array_equal(value, expected[(k + round) % len(inputs)])
    assert len(got) == 12


def test_gil_is_released_while_embedding(extractor, audio):
    span = {}

    def work():
        span["start"] = time.monotonic()
        extractor.embed(audio / "sample.wav")
        span["end"] = time.monotonic()

    worker = threading.Thread(target=work)
    ticks = []
    worker.start()
    while worker.is_alive():
        ticks.append(time.monotonic())
    worker.join()
    during = [t for t in ticks if span["start"] + 0.05 < t < span["end"] - 0.05]
    # With the GIL held for the call, this thread would not run at all.
    assert span["end"] - span["start"] > 0.15 and len(during) > 1000


def test_model_info(extractor, model):
    assert extractor.embedding_dim == 256 and extractor.sample_rate == 16000
    assert extractor.model_path == model and extractor.device == "cpu"
    assert extractor.architecture == "ResNet34" and extractor.parameter_count == 6634336
    import hashlib

    assert extractor.model_sha256 == hashlib.sha256(pathlib.Path(model).read_bytes()).hexdigest()
    assert "voxprint.Extractor(model=" in repr(extractor)


def test_mixed_precision_is_an_opt_in_near_fp32(extractor, model, audio):
    """`precision="mixed"` (stages 3-4 in bf16) stays within its documented
    distance of fp32, or is refused with the reason on CPUs without bf16."""
    try:
        mixed = voxprint.Extractor(model, device="cpu", threads=2, precision="mixed")
    except voxprint.InvalidArgumentError as error:
        assert "mixed needs a CPU with native bf16" in str(error)
        return
    assert mixed.precision == "mixed"
    exact = extractor.embed(audio / "sample.wav")
    ours = mixed.embed(audio / "sample.wav")
    distance = np.linalg.norm(ours - exact) / np.linalg.norm(exact)
    assert 1e-4 < distance < 2e-2


def test_help_reads_well():
    text = pydoc.render_doc(voxprint.Extractor, renderer=pydoc.plaintext)
    for words in ("embed(self, source", "sample_rate", "embed_files", "in input order", "model_sha256"):
        assert words in text
    assert "_core" not in text


def test_ctrl_c_interrupts_a_long_call(model, audio):
    """SIGINT during a long embed raises KeyboardInterrupt at once (the call
    is cancelled), not after the whole job."""
    import signal
    import subprocess
    import sys

    script = (
        "import sys, time, voxprint\n"
        f"e = voxprint.Extractor({model!r}, threads=1)\n"
        "print('ready', flush=True)\n"
        "started = time.monotonic()\n"
        "try:\n"
        f"    e.embed({str(audio / 'sample.wav')!r}, window='sliding', step=0.05)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', time.monotonic() - started, flush=True)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, _ = child.communicate(timeout=60)
        assert out.startswith("interrupted"), out
        # 600 windows on one thread take half a minute or more; the cancel a moment.
        assert time.monotonic() - sent < 5
    finally:
        child.kill()
