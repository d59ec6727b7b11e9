// Shared by the server's end-to-end tests: starting the real `voxprint serve`
// on a free loopback port, HTTP with a timeout on every request, the
// reference kit, and .npy reading. Node built-ins only.
import { spawn } from 'node:child_process';
import net from 'node:net';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const SKIP = 77;  // CTest SKIP_RETURN_CODE

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '../../..');

export const referenceDir =
  process.env.VOXPRINT_REFERENCE_DIR || path.resolve(repoRoot, '../shared/reference');
export const binary = process.env.VOXPRINT_BIN || path.join(repoRoot, 'build/apps/cli/voxprint');

// Exits with SKIP (and says why) when something the tests need is absent.
export function requireOrSkip(condition, why) {
  if (!condition) {
    console.log(`SKIP: ${why}`);
    process.exit(SKIP);
  }
}

export function requireKitAndBinary() {
  requireOrSkip(existsSync(path.join(referenceDir, 'manifest.json')),
    `reference kit not found at ${referenceDir} (set VOXPRINT_REFERENCE_DIR)`);
  if (!existsSync(binary)) {
    // A missing binary is a build problem, not a reason to skip.
    console.error(`voxprint binary not found at ${binary} (set VOXPRINT_BIN)`);
    process.exit(1);
  }
}

// Diarization needs the Silero VAD model: $VOXPRINT_VAD_MODEL or the npm
// package in models/vad.
export function requireVadModel() {
  requireOrSkip(
    process.env.VOXPRINT_VAD_MODEL ||
      existsSync(path.join(repoRoot, 'models/vad/node_modules/@ricky0123/vad-web/dist/silero_vad_v5.onnx')),
    'Silero VAD model absent: run `npm ci` in models/vad',
  );
}

export const manifest = () => JSON.parse(readFileSync(path.join(referenceDir, 'manifest.json'), 'utf8'));
export const modelPath = () => path.join(referenceDir, 'models/pytorch_model.bin');
export const audioPath = (name) => path.join(referenceDir, 'audio', name);
export const audioBytes = (name) => readFileSync(audioPath(name));

// A float32 .npy (C order) from a file path or bytes: {shape, values}.
export function parseNpy(input) {
  const bytes = Buffer.isBuffer(input) ? input : Buffer.from(input);
  if (bytes.readUInt8(0) !== 0x93 || bytes.toString('latin1', 1, 6) !== 'NUMPY')
    throw new Error('not a .npy file');
  const major = bytes.readUInt8(6);
  const headerLength = major === 1 ? bytes.readUInt16LE(8) : bytes.readUInt32LE(8);
  const headerStart = major === 1 ? 10 : 12;
  const header = bytes.toString('latin1', headerStart, headerStart + headerLength);
  if (!header.includes("'descr': '<f4'")) throw new Error(`not little-endian float32: ${header}`);
  if (header.includes("'fortran_order': True")) throw new Error('Fortran order');
  const shape = header
    .match(/'shape': \(([^)]*)\)/)[1]
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  const offset = headerStart + headerLength;
  const count = shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(count);
  for (let i = 0; i < count; i++) values[i] = bytes.readFloatLE(offset + 4 * i);
  return { shape, values: Array.from(values), header };
}

export const loadNpy = (name) => parseNpy(readFileSync(path.join(referenceDir, 'expected', name)));

// |actual - expected| / |expected| over flattened arrays.
export function relativeL2(actual, expected) {
  if (actual.length !== expected.length)
    throw new Error(`size mismatch: ${actual.length} vs ${expected.length}`);
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = (actual[i] ?? NaN) - expected[i];
    diff += d * d;
    norm += expected[i] * expected[i];
  }
  return Math.sqrt(diff) / Math.sqrt(norm);
}

export function cosine(a, b) {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / Math.sqrt(na * nb);
}

// Rows of an API/CLI result, flattened: whole -> 256 values, sliding ->
// windows * 256.
export function flatEmbedding(result) {
  return result.mode === 'sliding' ? result.windows.flatMap((w) => w.embedding) : result.embedding;
}

// A running `voxprint serve`. start() resolves once /healthz says ok.
export class Server {
  constructor(extraArgs = [], { env = {} } = {}) {
    this.args = ['serve', '--port', '0', '--model', modelPath(), ...extraArgs];
    this.env = { ...process.env, ...env };
    this.stderr = '';
    this.exited = null;  // {code, signal} once the process is gone
  }

  async start(timeoutMs = 60000) {
    this.process = spawn(binary, this.args, { env: this.env, stdio: ['ignore', 'ignore', 'pipe'] });
    this.process.stderr.setEncoding('utf8');
    this.exitPromise = new Promise((resolve) => {
      this.process.on('exit', (code, signal) => {
        this.exited = { code, signal };
        resolve(this.exited);
      });
    });
    const portPromise = new Promise((resolve) => {
      this.process.stderr.on('data', (chunk) => {
        this.stderr += chunk;
        const match = this.stderr.match(/listening on http:\/\/127\.0\.0\.1:(\d+)\//);
        if (match) resolve(Number(match[1]));
      });
    });
    const healthyBy = Date.now() + timeoutMs;
    const port = await Promise.race([
      portPromise,
      this.exitPromise.then((e) => {
        throw new Error(`voxprint serve exited (${JSON.stringify(e)}) before listening:\n${this.stderr}`);
      }),
      deadline(timeoutMs).then(() => {
        throw new Error(`voxprint serve did not listen within ${timeoutMs} ms:\n${this.stderr}`);
      }),
    ]);
    this.url = `http://127.0.0.1:${port}`;
    while (Date.now() < healthyBy) {
      this.assertAlive();
      try {
        const response = await fetch(`${this.url}/healthz`, { signal: AbortSignal.timeout(2000) });
        if (response.status === 200) return this;
        await response.arrayBuffer();
      } catch {
        // not accepting yet
      }
      await sleep(100);
    }
    throw new Error(`/healthz not ok within ${timeoutMs} ms:\n${this.stderr}`);
  }

  assertAlive() {
    if (this.exited)
      throw new Error(`voxprint serve died (${JSON.stringify(this.exited)}):\n${this.stderr.slice(-4000)}`);
  }

  // fetch with a timeout; returns {status, headers, json, text, ms}.
  async request(route, options = {}, timeoutMs = 120000) {
    this.assertAlive();
    const started = performance.now();
    const response = await fetch(`${this.url}${route}`, { ...options, signal: AbortSignal.timeout(timeoutMs) });
    const text = await response.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
    return { status: response.status, headers: response.headers, json, text, ms: performance.now() - started };
  }

  // SIGTERM, then waits; resolves with the exit status.
  async stop(timeoutMs = 30000) {
    if (!this.process || this.exited) return this.exited;
    this.process.kill('SIGTERM');
    const result = await Promise.race([this.exitPromise, deadline(timeoutMs).then(() => null)]);
    if (!result) {
      this.process.kill('SIGKILL');
      throw new Error(`voxprint serve ignored SIGTERM for ${timeoutMs} ms`);
    }
    return result;
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
// A deadline that does not keep node alive by itself (the server process
// does while it runs): a test file ends when its tests do, not when the
// longest start or stop bound has passed.
const deadline = (ms) => new Promise((resolve) => setTimeout(resolve, ms).unref());

// multipart/form-data with files given as [field, name, bytes] and text
// fields as [field, value].
export function form(files, fields = []) {
  const data = new FormData();
  for (const [field, name, bytes] of files) data.append(field, new Blob([bytes]), name);
  for (const [field, value] of fields) data.append(field, String(value));
  return data;
}

// Sends `text` (a string or bytes) on a fresh TCP connection to `url` and
// resolves with the reply {status, head, body, ms} once the server closes
// its side; with `keepOpen`, the socket is left open after sending (the
// caller gets it as `socket` in the reply, and must destroy it).
export function rawExchange(url, text, { timeoutMs = 10000, keepOpen = false } = {}) {
  const { hostname, port } = new URL(url);
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname);
    let reply = '';
    socket.setEncoding('latin1');
    socket.setTimeout(timeoutMs, () => {
      socket.destroy();
      reject(new Error(`no complete answer within ${timeoutMs} ms; got ${JSON.stringify(reply)}`));
    });
    socket.on('data', (chunk) => {
      reply += chunk;
    });
    socket.on('end', () => {
      if (!keepOpen) socket.destroy();
      const split = reply.indexOf('\r\n\r\n');
      const head = split < 0 ? reply : reply.slice(0, split);
      const match = head.match(/^HTTP\/1\.1 (\d{3})/);
      resolve({
        status: match ? Number(match[1]) : null,
        head,
        body: split < 0 ? '' : reply.slice(split + 4),
        ms: performance.now() - started,
        socket,
      });
    });
    socket.on('error', reject);
    socket.write(text);
  });
}

// A connection that sends `head` and then nothing: resolves with the
// socket once connected; `whenClosed` resolves with the ms until the server
// closed it and what it sent.
export function openSilent(url, head) {
  const { hostname, port } = new URL(url);
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => {
      if (head) socket.write(head);
      resolve(socket);
    });
    let reply = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk) => {
      reply += chunk;
    });
    socket.whenClosed = new Promise((done) => {
      socket.on('close', () => done({ ms: performance.now() - started, reply }));
    });
    socket.on('error', (error) => {
      if (!socket.connecting) return;  // reported through `whenClosed`
      reject(error);
    });
  });
}

// Peak resident memory of a process, in KiB (Linux; null elsewhere).
export function peakRssKiB(pid) {
  try {
    const match = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmHWM:\s+(\d+) kB/);
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}
