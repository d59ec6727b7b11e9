// Silero VAD v5 speech probabilities from ONNX Runtime (onnxruntime-node, the
// bench's peer), for voxprint's parity test. Fed as Silero's own wrapper
// feeds the model: chunks of 512 samples at 16 kHz (the last zero-padded),
// each with the 64 samples before it as context (zeros at first), the state
// [2, 1, 128] carried from chunk to chunk.
//
// Usage (after `cd bench && npm ci --ignore-scripts` and `cd models/vad &&
// npm ci`):
//   node tests/support/silero_vad_reference.mjs MODEL.onnx AUDIO.wav OUT.json
// AUDIO must be a mono 16 kHz WAV of 16-bit PCM or 32-bit float samples (the
// kit's sample.wav, dev00.wav, ...), read as libsndfile reads it.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(join(repo, 'bench', 'package.json'));
const ort = require('onnxruntime-node');

const CHUNK = 512;
const CONTEXT = 64;

function readWav16k(path) {
  const bytes = readFileSync(path);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.toString('ascii', 0, 4) !== 'RIFF' ||
      bytes.toString('ascii', 8, 12) !== 'WAVE')
    throw new Error(`${path}: not a RIFF/WAVE file`);
  let format = null;
  for (let at = 12; at + 8 <= bytes.length;) {
    const id = bytes.toString('ascii', at, at + 4);
    const size = view.getUint32(at + 4, true);
    const body = at + 8;
    if (id === 'fmt ') {
      format = {
        tag: view.getUint16(body, true),
        channels: view.getUint16(body + 2, true),
        rate: view.getUint32(body + 4, true),
        bits: view.getUint16(body + 14, true),
      };
    } else if (id === 'data') {
      if (!format) throw new Error(`${path}: data before fmt`);
      if (format.channels !== 1 || format.rate !== 16000)
        throw new Error(`${path}: need mono 16 kHz`);
      const end = Math.min(body + size, bytes.length);
      if (format.tag === 1 && format.bits === 16) {
        const samples = new Float32Array((end - body) >> 1);
        for (let i = 0; i < samples.length; ++i)
          samples[i] = view.getInt16(body + 2 * i, true) / 32768;
        return samples;
      }
      if (format.tag === 3 && format.bits === 32) {
        const samples = new Float32Array((end - body) >> 2);
        for (let i = 0; i < samples.length; ++i)
          samples[i] = view.getFloat32(body + 4 * i, true);
        return samples;
      }
      throw new Error(`${path}: need 16-bit PCM or 32-bit float`);
    }
    at = body + size + (size & 1);
  }
  throw new Error(`${path}: no data chunk`);
}

const [modelPath, audioPath, outPath] = process.argv.slice(2);
if (!outPath) {
  console.error('usage: silero_vad_reference.mjs MODEL.onnx AUDIO.wav OUT.json');
  process.exit(2);
}
const audio = readWav16k(audioPath);
const session = await ort.InferenceSession.create(modelPath, {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
});
const sr = new ort.Tensor('int64', BigInt64Array.from([16000n]), []);
let state = new ort.Tensor('float32', new Float32Array(2 * 128), [2, 1, 128]);
const window = new Float32Array(CONTEXT + CHUNK);
const probabilities = [];
for (let start = 0; start < audio.length; start += CHUNK) {
  window.fill(0, CONTEXT);
  window.set(audio.subarray(start, Math.min(start + CHUNK, audio.length)), CONTEXT);
  const input = new ort.Tensor('float32', window.slice(), [1, CONTEXT + CHUNK]);
  const out = await session.run({ input, state, sr });
  probabilities.push(out.output.data[0]);
  state = out.stateN;
  window.copyWithin(0, CONTEXT + CHUNK - CONTEXT);
}
const sha256 = createHash('sha256').update(readFileSync(modelPath)).digest('hex');
writeFileSync(outPath, JSON.stringify({
  model: basename(modelPath),
  model_sha256: sha256,
  onnxruntime: ort.env.versions?.common ?? 'unknown',
  audio: basename(audioPath),
  samples: audio.length,
  chunk_samples: CHUNK,
  context_samples: CONTEXT,
  probabilities,
}, null, 0) + '\n');
console.log(`${basename(audioPath)}: ${probabilities.length} probabilities -> ${outPath}`);
