// ONNX Runtime peer: the WeSpeaker runtime model (voxceleb_resnet34_LM.onnx)
// run by npm's onnxruntime-node on the CPU. Network only: its input is the
// kit's fbank (already mean-subtracted), so decode + fbank are not timed.
//
//   node peers/onnxruntime_peer.mjs check [--kit DIR]
//   node peers/onnxruntime_peer.mjs bench [--kit DIR] [--threads 1,2] [--quick]
//                                         [--many-frames N,N,...]
//   node peers/onnxruntime_peer.mjs embed [--kit DIR] [--frames N]
//
// `bench` checks first against the kit (aborting on a mismatch), then times
// whole 30 s [1, 2998, 80], whole 10 min (the 30 s fbank tiled to 59998
// frames), sliding 3 s / 1 s [28, 298, 80], session creation and, with
// --many-frames, one [1, N, 80] run per listed length, one after another
// (the frame counts of a many-short-files job). `embed`
// creates a session and runs one [1, N, 80] input (default 298 frames = 3 s;
// beyond 2998 frames the 30 s fbank is tiled) so that process start to first
// embedding and peak RSS can be measured from outside. Every
// command prints one JSON object on stdout.
import fs from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

import ort from 'onnxruntime-node';

const kHere = path.dirname(fileURLToPath(import.meta.url));
const kDefaultKit = path.resolve(kHere, '..', '..', '..', 'shared', 'reference');
const kBins = 80;
// The audio the other systems read: sample.wav (30 s, 2998 frames) and
// bench/make_audio.py's 10min.wav (9600015 samples, 59998 frames).
const kShortAudioS = 30.0;
const kLongAudioS = 9600015 / 16000;
const kLongFrames = 59998;
const kWindowFrames = 298;          // 3 s chunk
const kWindowStepFrames = 100;      // 1 s hop
// The ONNX pooling uses sqrt(var + 1e-7) where pyannote uses the plain std.
const kCheckTolerance = 1e-4;

function ParseArgs(argv) {
  const args = { command: argv[0], kit: kDefaultKit, threads: [1, 2],
                 quick: false, frames: kWindowFrames };
  for (let i = 1; i < argv.length; ++i) {
    const a = argv[i];
    if (a === '--kit') args.kit = path.resolve(argv[++i]);
    else if (a === '--model') args.model = path.resolve(argv[++i]);
    else if (a === '--threads') args.threads = argv[++i].split(',').map(Number);
    else if (a === '--frames') args.frames = Number(argv[++i]);
    else if (a === '--many-frames') args.manyFrames = argv[++i].split(',').map(Number);
    else if (a === '--quick') args.quick = true;
    else throw new Error(`unknown argument ${a}`);
  }
  if (!['check', 'bench', 'embed'].includes(args.command)) {
    throw new Error('usage: onnxruntime_peer.mjs check|bench|embed [options]');
  }
  args.model ??= path.join(args.kit, 'models', 'voxceleb_resnet34_LM.onnx');
  return args;
}

// A little-endian float32 C-order .npy file -> { shape, data }.
function LoadNpy(file) {
  const bytes = fs.readFileSync(file);
  if (bytes.toString('latin1', 1, 6) !== 'NUMPY') {
    throw new Error(`${file}: not a .npy file`);
  }
  const major = bytes[6];
  const headerLen = major === 1 ? bytes.readUInt16LE(8) : bytes.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = bytes.toString('latin1', start, start + headerLen);
  if (!header.includes("'descr': '<f4'") ||
      header.includes("'fortran_order': True")) {
    throw new Error(`${file}: expected little-endian float32 in C order`);
  }
  const shape = header.match(/'shape': \(([^)]*)\)/)[1]
      .split(',').map((s) => s.trim()).filter((s) => s).map(Number);
  const offset = start + headerLen;
  const count = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(count);
  for (let i = 0; i < count; ++i) data[i] = bytes.readFloatLE(offset + 4 * i);
  return { shape, data };
}

function RelL2(actual, expected) {
  let num = 0, den = 0;
  for (let i = 0; i < expected.length; ++i) {
    num += (actual[i] - expected[i]) ** 2;
    den += expected[i] ** 2;
  }
  return Math.sqrt(num / den);
}

// Rows [first, first + frames) of a [T, bins] fbank, minus their own mean
// (each pyannote chunk is normalised on its own; the frames themselves are the
// whole file's frames because the 1 s hop is a whole number of 10 ms frames).
function Window(fbank, first, frames) {
  const out = fbank.data.slice(first * kBins, (first + frames) * kBins);
  for (let b = 0; b < kBins; ++b) {
    let sum = 0;
    for (let t = 0; t < frames; ++t) sum += out[t * kBins + b];
    const mean = sum / frames;
    for (let t = 0; t < frames; ++t) out[t * kBins + b] -= mean;
  }
  return out;
}

function Tile(fbank, frames) {
  const out = new Float32Array(frames * kBins);
  for (let filled = 0; filled < out.length; filled += fbank.data.length) {
    out.set(fbank.data.subarray(0, Math.min(fbank.data.length,
                                            out.length - filled)), filled);
  }
  return Window({ data: out }, 0, frames);
}

function SlidingBatch(fbank) {
  const frames = fbank.shape[0];
  const count = Math.floor((frames - kWindowFrames) / kWindowStepFrames) + 1;
  const batch = new Float32Array(count * kWindowFrames * kBins);
  for (let w = 0; w < count; ++w) {
    batch.set(Window(fbank, w * kWindowStepFrames, kWindowFrames),
              w * kWindowFrames * kBins);
  }
  return { data: batch, count };
}

async function Run(session, data, batch, frames) {
  const feats = new ort.Tensor('float32', data, [batch, frames, kBins]);
  const out = await session.run({ feats });
  return out.embs.data;
}

async function CreateSession(model, threads) {
  return ort.InferenceSession.create(model, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
}

function Now() { return Number(process.hrtime.bigint()) / 1e9; }

async function TimeRuns(fn, minReps, minTotalS) {
  const times = [];
  const start = Now();
  while (times.length < minReps || Now() - start < minTotalS) {
    const t0 = Now();
    await fn();
    times.push(Now() - t0);
  }
  const sorted = [...times].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid]
                                   : (sorted[mid - 1] + sorted[mid]) / 2;
  return { median_s: median, min_s: sorted[0], reps: times.length };
}

function PeakRssMib() { return process.resourceUsage().maxRSS / 1024; }

async function Check(session, kit) {
  const expected = path.join(kit, 'expected');
  const fbank = LoadNpy(path.join(expected, 'sample_wav.fbank.npy'));
  const whole = await Run(session, fbank.data, 1, fbank.shape[0]);
  const sliding = SlidingBatch(fbank);
  const windows = await Run(session, sliding.data, sliding.count, kWindowFrames);
  return {
    whole_rel_l2: RelL2(whole,
        LoadNpy(path.join(expected, 'sample_wav.whole.npy')).data),
    sliding_3_1_rel_l2: RelL2(windows,
        LoadNpy(path.join(expected, 'sample_wav.sliding_3.0_1.0.npy')).data),
  };
}

async function Bench(args) {
  const fbank = LoadNpy(path.join(args.kit, 'expected', 'sample_wav.fbank.npy'));
  const long = Tile(fbank, kLongFrames);
  const sliding = SlidingBatch(fbank);
  const result = {
    system: 'onnxruntime',
    version: `onnxruntime-node ${ort.env.versions.node}`,
    scope: 'network only (input: the kit fbank)',
    threads: {},
  };
  const [reps, budgetS] = args.quick ? [1, 0] : [3, 5];
  for (const threads of args.threads) {
    const t0 = Now();
    const session = await CreateSession(args.model, threads);
    const loadS = Now() - t0;
    if (result.model_load_s === undefined) {
      result.model_load_s = loadS;
      result.accuracy = await Check(session, args.kit);
      if (!(result.accuracy.whole_rel_l2 <= kCheckTolerance)) {
        throw new Error(`whole embedding of sample.wav is off the kit: rel L2 ` +
                        `${result.accuracy.whole_rel_l2} > ${kCheckTolerance}`);
      }
    }
    await Run(session, fbank.data, 1, fbank.shape[0]);  // warm-up
    const entry = {
      whole_30s: await TimeRuns(
          () => Run(session, fbank.data, 1, fbank.shape[0]), reps, budgetS),
      sliding_3s_1s: await TimeRuns(
          () => Run(session, sliding.data, sliding.count, kWindowFrames),
          reps, budgetS),
      whole_10min: await TimeRuns(
          () => Run(session, long, 1, kLongFrames), args.quick ? 1 : 2, 0),
    };
    entry.whole_30s.audio_s = kShortAudioS;
    entry.whole_10min.audio_s = kLongAudioS;
    entry.sliding_3s_1s.windows = sliding.count;
    entry.model_load_s = loadS;
    if (args.manyFrames) {
      const inputs = args.manyFrames.map((frames) => Window(fbank, 0, frames));
      const oneByOne = async () => {
        for (let i = 0; i < inputs.length; ++i) {
          await Run(session, inputs[i], 1, args.manyFrames[i]);
        }
      };
      await oneByOne();  // warm-up
      entry.many_files = {
        one_by_one: await TimeRuns(oneByOne, reps, budgetS),
        files: inputs.length,
      };
    }
    result.threads[String(threads)] = entry;
    await session.release();
  }
  result.peak_rss_mib = PeakRssMib();
  return result;
}

async function Embed(args) {
  const t0 = Now();
  const session = await CreateSession(args.model, args.threads[0]);
  const t1 = Now();
  const fbank = LoadNpy(path.join(args.kit, 'expected', 'sample_wav.fbank.npy'));
  const frames = args.frames;
  const feats = frames <= fbank.shape[0] ? Window(fbank, 0, frames)
                                         : Tile(fbank, frames);
  const embedding = await Run(session, feats, 1, frames);
  const t2 = Now();
  let norm = 0;
  for (const v of embedding) norm += v * v;
  return { system: 'onnxruntime', model_load_s: t1 - t0, embed_s: t2 - t1,
           norm: Math.sqrt(norm), peak_rss_mib: PeakRssMib() };
}

async function Main() {
  const args = ParseArgs(process.argv.slice(2));
  let out;
  if (args.command === 'check') {
    out = await Check(await CreateSession(args.model, args.threads[0]), args.kit);
  } else if (args.command === 'bench') {
    out = await Bench(args);
  } else {
    out = await Embed(args);
  }
  process.stdout.write(JSON.stringify(out, null, 1) + '\n');
}

Main().catch((error) => {
  process.stderr.write(`onnxruntime_peer: ${error.message}\n`);
  process.exitCode = 1;
});
