// API tests of `voxprint serve` over loopback, against the real binary and
// the reference kit. Node built-ins only: `node api.test.mjs`.
// Exit status 77 (CTest skip) when the reference kit is absent.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  audioBytes,
  audioPath,
  binary,
  cosine,
  flatEmbedding,
  form,
  loadNpy,
  manifest,
  modelPath,
  openSilent,
  rawExchange,
  relativeL2,
  requireKitAndBinary,
  Server,
  sleep,
} from './harness.mjs';

requireKitAndBinary();

const TOLERANCE = 1e-4;

// What `voxprint embed` prints for the same input and options.
function cliEmbed(file, args = []) {
  const output = execFileSync(binary, ['embed', '--quiet', '--model', modelPath(), ...args, audioPath(file)], {
    encoding: 'utf8',
    timeout: 300000,
    maxBuffer: 64 << 20,
  });
  return JSON.parse(output).results[0];
}

function assertJsonError(response, status, code) {
  assert.equal(response.status, status, `expected ${status}, got ${response.status}: ${response.text}`);
  assert.match(response.headers.get('content-type') || '', /application\/json/);
  assert.ok(response.json, `body is not JSON: ${response.text}`);
  assert.equal(typeof response.json.error, 'string');
  assert.equal(typeof response.json.detail, 'string');
  assert.ok(response.json.detail.length > 0);
  if (code) assert.equal(response.json.error, code, response.text);
}

// Same metadata as the CLI; the path is the upload name there.
function assertSameAsCli(result, cli, file) {
  assert.equal(result.path, file);
  assert.equal(path.basename(cli.path), file);
  for (const key of ['duration_s', 'sample_rate_hz', 'channels', 'codec', 'container', 'mode'])
    assert.deepEqual(result[key], cli[key], key);
  const error = relativeL2(flatEmbedding(result), flatEmbedding(cli));
  assert.ok(error <= TOLERANCE, `API vs CLI relative L2 ${error}`);
  assert.equal(typeof result.processing_s, 'number');
}

describe('main server', () => {
  let server;
  before(async () => {
    server = await new Server().start();
  });
  after(async () => {
    const exit = await server.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, `exit after SIGTERM:\n${server.stderr}`);
    assert.match(server.stderr, /stopped/);
  });

  test('healthz and OpenAPI document', async () => {
    const health = await server.request('/healthz');
    assert.equal(health.status, 200);
    // The limits a client should know before it uploads, open like /healthz.
    assert.deepEqual(health.json, { status: 'ok', auth_required: false, max_upload_bytes: 50 * 1024 * 1024, max_audio_seconds: 1800 });
    const openapi = await server.request('/api/openapi.json');
    assert.equal(openapi.status, 200);
    assert.match(openapi.json.openapi, /^3\./);
    for (const route of ['/api/embed', '/api/compare', '/api/model', '/healthz'])
      assert.ok(openapi.json.paths[route], `OpenAPI lacks ${route}`);
    // Every $ref resolves inside the document.
    const refs = openapi.text.match(/"\$ref":"#\/[^"]+"/g) || [];
    assert.ok(refs.length > 10);
    for (const ref of refs) {
      let node = openapi.json;
      for (const part of ref.slice(10, -1).split('/')) node = node?.[part];
      assert.ok(node, `unresolved ${ref}`);
    }
  });

  test('model info: sha256 from the manifest, license, citations, limits', async () => {
    const model = await server.request('/api/model');
    assert.equal(model.status, 200);
    assert.equal(model.json.file.sha256, manifest().models['pytorch_model.bin'].sha256);
    assert.equal(model.json.file.path, 'pytorch_model.bin');
    assert.equal(model.json.embedding_dim, 256);
    assert.equal(model.json.architecture, 'ResNet34');
    assert.equal(model.json.license, 'CC-BY-4.0');
    const citations = model.json.citations.map((c) => c.text).join('\n');
    assert.match(citations, /Wespeaker: A research and production oriented speaker embedding learning toolkit/);
    // The segmentation model's paper is not about this embedding model.
    assert.doesNotMatch(citations, /Powerset multi-class cross entropy loss/);
    assert.match(citations, /pyannote\.audio 2\.1 speaker diarization pipeline/);
    assert.equal(model.json.server.max_upload_bytes, 50 * 1024 * 1024);
    assert.equal(model.json.server.auth_required, false);
    assert.match(model.json.version, /^\d+\.\d+\.\d+$/);
  });

  test('embed whole file: reference and CLI', async () => {
    const response = await server.request('/api/embed', {
      method: 'POST',
      body: form([['file', 'sample.wav', audioBytes('sample.wav')]]),
    });
    assert.equal(response.status, 200, response.text);
    assert.equal(response.json.results.length, 1);
    assert.equal(typeof response.json.device, 'string');
    assert.equal(typeof response.json.processing_s, 'number');
    const result = response.json.results[0];
    assert.equal(result.mode, 'whole');
    assert.equal(result.embedding.length, 256);
    const error = relativeL2(result.embedding, loadNpy('sample_wav.whole.npy').values);
    assert.ok(error <= TOLERANCE, `relative L2 vs reference ${error}`);
    assertSameAsCli(result, cliEmbed('sample.wav'), 'sample.wav');
  });

  test('padded windows are marked, drop_partial leaves them out; warnings on both sides of a compare', async () => {
    const sliding = (extra) =>
      server.request('/api/embed', {
        method: 'POST',
        body: form([['file', 'short_1s.wav', audioBytes('short_1s.wav')]], [
          ['window', 'sliding'],
          ['duration', '0.5'],
          ['step', '0.3'],
          ...extra,
        ]),
      });
    const kept = await sliding([]);
    assert.equal(kept.status, 200, kept.text);
    const windows = kept.json.results[0].windows;
    assert.deepEqual(windows.map((w) => w.padded ?? false), [false, false, true]);
    assert.equal(windows[2].covered_end_s, 1);
    assert.deepEqual(kept.json.results[0].warnings.map((w) => w.code), ['short_speech', 'padded_window']);
    const dropped = await sliding([['drop_partial', 'true']]);
    assert.equal(dropped.json.results[0].windows.length, 2);
    const bad = await sliding([['drop_partial', 'maybe']]);
    assert.equal(bad.status, 422);
    assert.match(bad.json.detail, /drop_partial/);

    const compare = await server.request('/api/compare', {
      method: 'POST',
      body: form([
        ['a', 'silence_2s.wav', audioBytes('silence_2s.wav')],
        ['b', 'truncated.wav', audioBytes('truncated.wav')],
      ]),
    });
    assert.equal(compare.status, 200, compare.text);
    assert.deepEqual(compare.json.warnings_a.map((w) => w.code), ['no_signal']);
    assert.equal(compare.json.warnings_b[0].code, 'truncated');
  });

  test('embed sliding 3.0/1.0: reference and CLI', async () => {
    const response = await server.request('/api/embed', {
      method: 'POST',
      body: form([['file', 'sample.wav', audioBytes('sample.wav')]], [
        ['window', 'sliding'],
        ['duration', '3.0'],
        ['step', '1.0'],
      ]),
    });
    assert.equal(response.status, 200, response.text);
    const result = response.json.results[0];
    const expected = loadNpy('sample_wav.sliding_3.0_1.0.npy');
    assert.equal(result.windows.length, expected.shape[0]);
    assert.equal(result.windows[1].start_s, 1.0);
    assert.equal(result.windows[1].end_s, 4.0);
    const error = relativeL2(flatEmbedding(result), expected.values);
    assert.ok(error <= TOLERANCE, `relative L2 vs reference ${error}`);
    assertSameAsCli(result, cliEmbed('sample.wav', ['--window', 'sliding', '--duration', '3.0', '--step', '1.0']), 'sample.wav');
  });

  test('embed sliding with shared_trunk: same windows as the CLI opt-in', async () => {
    const response = await server.request('/api/embed?window=sliding&shared_trunk=true', {
      method: 'POST',
      body: form([['file', 'sample.wav', audioBytes('sample.wav')]]),
    });
    assert.equal(response.status, 200, response.text);
    const result = response.json.results[0];
    assert.equal(result.windows.length, 28);
    assert.equal(result.shared_trunk, true);
    assertSameAsCli(result, cliEmbed('sample.wav', ['--window', 'sliding', '--shared-trunk']), 'sample.wav');
  });

  test('embed crop 5.0-12.5 (query-string parameters): reference and CLI', async () => {
    const response = await server.request('/api/embed?start=5.0&end=12.5', {
      method: 'POST',
      body: form([['file', 'sample.wav', audioBytes('sample.wav')]]),
    });
    assert.equal(response.status, 200, response.text);
    const result = response.json.results[0];
    assert.equal(result.duration_s, 7.5);
    const error = relativeL2(result.embedding, loadNpy('sample_wav.crop_5.0_12.5.npy').values);
    assert.ok(error <= TOLERANCE, `relative L2 vs reference ${error}`);
    assertSameAsCli(result, cliEmbed('sample.wav', ['--start', '5.0', '--end', '12.5']), 'sample.wav');
  });

  test('raw audio body equals the multipart upload', async () => {
    const bytes = audioBytes('short_1s.wav');
    const raw = await server.request('/api/embed?name=short_1s.wav', {
      method: 'POST',
      headers: { 'Content-Type': 'audio/wav' },
      body: bytes,
    });
    assert.equal(raw.status, 200, raw.text);
    const multipart = await server.request('/api/embed', {
      method: 'POST',
      body: form([['file', 'short_1s.wav', bytes]]),
    });
    assert.equal(multipart.status, 200, multipart.text);
    assert.equal(raw.json.results[0].path, 'short_1s.wav');
    assert.deepEqual(raw.json.results[0].embedding, multipart.json.results[0].embedding);
    const error = relativeL2(raw.json.results[0].embedding, loadNpy('short_1s_wav.whole.npy').values);
    assert.ok(error <= TOLERANCE, `relative L2 vs reference ${error}`);
    const unnamed = await server.request('/api/embed', {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream' },
      body: bytes,
    });
    assert.equal(unnamed.status, 200, unnamed.text);
    assert.equal(unnamed.json.results[0].path, 'upload');
  });

  test('batch: several file parts, results in upload order', async () => {
    const response = await server.request('/api/embed', {
      method: 'POST',
      body: form([
        ['file', 'short_1s.wav', audioBytes('short_1s.wav')],
        ['file', 'silence_2s.wav', audioBytes('silence_2s.wav')],
        ['file', 'sample.webm', audioBytes('sample.webm')],
      ]),
    });
    assert.equal(response.status, 200, response.text);
    const results = response.json.results;
    assert.deepEqual(results.map((r) => r.path), ['short_1s.wav', 'silence_2s.wav', 'sample.webm']);
    for (const [result, npy] of [
      [results[0], 'short_1s_wav.whole.npy'],
      [results[1], 'silence_2s_wav.whole.npy'],
      [results[2], 'sample_webm.whole.npy'],
    ]) {
      const error = relativeL2(result.embedding, loadNpy(npy).values);
      assert.ok(error <= TOLERANCE, `${result.path}: relative L2 vs reference ${error}`);
    }
  });

  test('batch: a refused file among good ones fails the request, naming it', async () => {
    const response = await server.request('/api/embed', {
      method: 'POST',
      body: form([
        ['file', 'short_1s.wav', audioBytes('short_1s.wav')],
        ['file', 'not_audio.wav', audioBytes('not_audio.wav')],
        ['file', 'sample.webm', audioBytes('sample.webm')],
      ]),
    });
    assertJsonError(response, 400);
    assert.ok(response.json.detail.includes('not_audio.wav'), response.json.detail);
    server.assertAlive();
  });

  test('compare: similarity of the reference embeddings, verdict at the threshold', async () => {
    const a = audioBytes('short_1s.wav');
    const b = audioBytes('sample_8k.wav');
    const response = await server.request('/api/compare', {
      method: 'POST',
      body: form([['a', 'short_1s.wav', a], ['b', 'sample_8k.wav', b]], [['threshold', '0.25']]),
    });
    assert.equal(response.status, 200, response.text);
    const expected = cosine(loadNpy('short_1s_wav.whole.npy').values, loadNpy('sample_8k_wav.whole.npy').values);
    assert.ok(Math.abs(response.json.similarity - expected) < 1e-4, `${response.json.similarity} vs ${expected}`);
    assert.equal(response.json.threshold, 0.25);
    assert.equal(response.json.same_speaker, response.json.similarity > 0.25);
    assert.equal(response.json.duration_a_s, 1.0);
    assert.equal(response.json.duration_b_s, 30.0);
    assert.equal(response.json.a, 'short_1s.wav');

    const same = await server.request('/api/compare', {
      method: 'POST',
      body: form([['a', 'x.wav', a], ['b', 'y.wav', a]]),
    });
    assert.equal(same.status, 200, same.text);
    assert.ok(same.json.similarity > 0.9999);
    assert.equal(same.json.threshold, 0.7);
    assert.equal(same.json.same_speaker, true);
  });

  test('every refused input of the manifest gets a 4xx JSON error', async () => {
    for (const entry of manifest().errors) {
      const name = path.basename(entry.audio);
      const response = await server.request('/api/embed', {
        method: 'POST',
        body: form([['file', name, audioBytes(name)]]),
      });
      if (entry.note && response.status === 200) {
        // A decoder may return the samples that are there (truncated.wav).
        assert.equal(response.json.results[0].embedding.length, 256);
        continue;
      }
      assertJsonError(response, 400);
      assert.match(response.json.error, /^(unsupported_input|corrupt_input)$/);
      assert.ok(response.json.detail.includes(name), `detail should name the upload: ${response.json.detail}`);
    }
    server.assertAlive();
  });

  test('bad parameters get 422', async () => {
    const bytes = audioBytes('short_1s.wav');
    const cases = [
      [['window', 'bogus']],
      [['window', 'sliding'], ['duration', 'abc']],
      [['window', 'sliding'], ['duration', '3s']],
      [['window', 'sliding'], ['step', '0']],
      [['window', 'sliding'], ['step', '-1']],
      [['window', 'sliding'], ['duration', '0']],
      [['start', '5'], ['end', '2']],
      [['start', '2'], ['end', '2']],
      [['start', '-1']],
      [['end', 'nan']],
      [['start', '']],
      [['window', 'sliding'], ['shared_trunk', 'yes']],
      [['shared_trunk', 'true']],
    ];
    for (const fields of cases) {
      const response = await server.request('/api/embed', { method: 'POST', body: form([['file', 'a.wav', bytes]], fields) });
      assertJsonError(response, 422, 'invalid_argument');
    }
    for (const threshold of ['2', '-1.5', 'high']) {
      const response = await server.request('/api/compare', {
        method: 'POST',
        body: form([['a', 'a.wav', bytes], ['b', 'b.wav', bytes]], [['threshold', threshold]]),
      });
      assertJsonError(response, 422, 'invalid_argument');
    }
    const wrongField = await server.request('/api/embed', { method: 'POST', body: form([['audio', 'a.wav', bytes]]) });
    assertJsonError(wrongField, 422, 'invalid_argument');
  });

  test('protocol errors are JSON: 400, 404, 405, 415', async () => {
    assertJsonError(await server.request('/api/embed', { method: 'POST' }), 400, 'missing_file');
    assertJsonError(
      await server.request('/api/embed', { method: 'POST', body: form([], [['window', 'whole']]) }),
      400,
      'missing_file',
    );
    assertJsonError(
      await server.request('/api/compare', { method: 'POST', body: form([['a', 'a.wav', audioBytes('short_1s.wav')]]) }),
      400,
      'missing_file',
    );
    assertJsonError(
      await server.request('/api/embed', {
        method: 'POST',
        headers: { 'Content-Type': 'multipart/form-data; boundary=xyz' },
        body: '--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\nRIFF',
      }),
      400,
      'bad_request',
    );
    assertJsonError(
      await server.request('/api/embed', { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'hello' }),
      415,
      'unsupported_media_type',
    );
    assertJsonError(await server.request('/api/embed'), 405, 'method_not_allowed');
    assertJsonError(await server.request('/api/nothing'), 404, 'not_found');
    assertJsonError(await server.request('/nothing.html'), 404, 'not_found');
  });

  test('methods: 405 with Allow on known paths, 404 elsewhere, before any body', async () => {
    for (const method of ['PUT', 'DELETE', 'PATCH']) {
      const response = await server.request('/api/embed', { method, body: method === 'DELETE' ? undefined : 'x' });
      assertJsonError(response, 405, 'method_not_allowed');
      assert.equal(response.headers.get('allow'), 'POST');
    }
    for (const route of ['/healthz', '/api/model', '/']) {
      const response = await server.request(route, { method: 'POST', body: 'x' });
      assertJsonError(response, 405, 'method_not_allowed');
      assert.equal(response.headers.get('allow'), 'GET, HEAD');
    }
    assertJsonError(await server.request('/nothing', { method: 'PUT', body: 'x' }), 404, 'not_found');
    assertJsonError(await server.request('/api/nothing', { method: 'POST', body: 'x' }), 404, 'not_found');
    // A body where none is taken is refused, not read.
    const withBody = await rawExchange(
      server.url,
      'GET /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000000\r\n\r\n',
    );
    assert.equal(withBody.status, 400, withBody.head);
  });

  test('framing: duplicate Content-Length, Content-Length with Transfer-Encoding, bad header lines get 400', async () => {
    const upload = (headers) =>
      rawExchange(
        server.url,
        `POST /api/embed HTTP/1.1\r\nHost: localhost\r\nContent-Type: audio/wav\r\n${headers}\r\nhello`,
      );
    for (const headers of [
      'Content-Length: 5\r\nContent-Length: 5\r\n',
      'Content-Length: 5\r\nContent-Length: 50\r\n',
      'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n',
      'Transfer-Encoding: gzip, chunked\r\n',
      'Content-Length: 5\r\nX-Folded: a\r\n b\r\n',
      'Content-Length: 5\r\nX-Bare-LF: a\nX-Next: b\r\n',
    ]) {
      const reply = await upload(headers);
      assert.equal(reply.status, 400, `${JSON.stringify(headers)} -> ${reply.head}`);
      assert.match(reply.body, /"error":"bad_request"/);
    }
  });

  test('Host check: loopback names with any port pass, others get 403 (DNS rebinding)', async () => {
    const get = (host) =>
      rawExchange(server.url, `GET /api/model HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    for (const host of ['127.0.0.1', '127.0.0.1:7860', 'localhost', 'LOCALHOST:1', 'localhost.', '[::1]', '[::1]:80']) {
      const reply = await get(host);
      assert.equal(reply.status, 200, `${host}: ${reply.head}`);
    }
    for (const host of ['evil.example', 'evil.example:7860', 'localhost.evil.example', '127.0.0.1.nip.io', '[::2]', '']) {
      const reply = await get(host);
      assert.equal(reply.status, 403, `${host}: ${reply.head}`);
    }
    const twice = await rawExchange(server.url, 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nHost: evil\r\n\r\n');
    assert.equal(twice.status, 400);
    const refused = await get('evil.example');
    assert.match(refused.body, /"error":"host_not_allowed"/);
    assert.match(refused.body, /--allowed-hosts/);
  });

  test('names that are not UTF-8 still give valid JSON', async () => {
    const response = await server.request('/api/embed?name=%FF%FEvoice.wav', {
      method: 'POST',
      headers: { 'Content-Type': 'audio/wav' },
      body: audioBytes('short_1s.wav'),
    });
    assert.equal(response.status, 200, response.text);
    assert.match(response.json.results[0].path, /voice\.wav$/);
  });

  test('start-up failures are one error line and a non-zero exit: busy port, bad model', () => {
    const { port } = new URL(server.url);
    const busy = spawnSync(binary, ['serve', '--port', port, '--model', modelPath()], {
      encoding: 'utf8',
      timeout: 60000,
    });
    assert.equal(busy.status, 7, busy.stderr);
    assert.match(busy.stderr, /voxprint: error: cannot listen on 127\.0\.0\.1:\d+: Address already in use/);
    const badModel = spawnSync(binary, ['serve', '--port', '0', '--model', audioPath('sample.wav')], {
      encoding: 'utf8',
      timeout: 60000,
    });
    assert.equal(badModel.status, 4, badModel.stderr);
    assert.match(badModel.stderr, /voxprint: error: .*sample\.wav/);
    server.assertAlive();
  });

  test('the page and its assets are served from the binary', async () => {
    const page = await server.request('/');
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type'), /text\/html/);
    assert.match(page.headers.get('content-security-policy'), /default-src 'self'/);
    assert.match(page.text, /Extract embedding/);
    const assets = [...page.text.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]);
    assert.ok(assets.some((a) => a.endsWith('.js')), 'no script asset in the page');
    for (const asset of assets) {
      const response = await server.request(asset);
      assert.equal(response.status, 200, asset);
      assert.ok(response.text.length > 100, asset);
    }
  });
});

describe('server with small limits (--max-upload-mb 1 --max-audio-seconds 10)', () => {
  let server;
  before(async () => {
    server = await new Server(['--max-upload-mb', '1', '--max-audio-seconds', '10']).start();
  });
  after(async () => {
    const exit = await server.stop();
    assert.deepEqual(exit, { code: 0, signal: null });
  });

  test('an oversized upload is refused with 413 from its Content-Length, fast', async () => {
    const big = new Uint8Array(8 << 20);
    const response = await server.request('/api/embed', { method: 'POST', body: form([['file', 'big.wav', big]]) });
    assertJsonError(response, 413, 'payload_too_large');
    assert.ok(response.ms < 5000, `took ${response.ms} ms`);
  });

  test('413 is the answer to the headers alone: no body needs to be sent', async () => {
    const { hostname, port } = new URL(server.url);
    const reply = await new Promise((resolve, reject) => {
      const socket = net.connect(Number(port), hostname);
      let text = '';
      socket.setEncoding('latin1');
      socket.setTimeout(5000, () => {
        socket.destroy();
        reject(new Error(`no answer within 5 s; got ${JSON.stringify(text)}`));
      });
      socket.on('data', (chunk) => {
        text += chunk;
      });
      socket.on('end', () => {
        socket.destroy();
        resolve(text);
      });
      socket.on('error', reject);
      // Announces 100 MiB and sends none of it.
      socket.write(
        'POST /api/embed HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\n' +
          `Content-Length: ${100 << 20}\r\n\r\n`,
      );
    });
    assert.match(reply, /^HTTP\/1\.1 413 /);
    assert.match(reply, /"error":"payload_too_large"/);
  });

  test('an oversized chunked upload (no Content-Length) is cut off with 413', async () => {
    let sent = 0;
    const chunk = new Uint8Array(64 << 10);
    const body = new ReadableStream({
      pull(controller) {
        // Endless unless the server stops reading: the cap must act.
        if (sent > (64 << 20)) controller.close();
        else controller.enqueue(chunk);
        sent += chunk.length;
      },
    });
    const response = await server.request('/api/embed', {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream' },
      body,
      duplex: 'half',
    });
    assertJsonError(response, 413, 'payload_too_large');
    assert.ok(sent < (8 << 20), `the server read ${sent} bytes before refusing`);
  });

  test('audio longer than --max-audio-seconds gets 413', async () => {
    const response = await server.request('/api/embed', {
      method: 'POST',
      body: form([['file', 'sample.wav', audioBytes('sample.wav')]]),
    });
    assertJsonError(response, 413, 'resource_limit');
  });

  test('a request within the limits still works', async () => {
    const response = await server.request('/api/embed', {
      method: 'POST',
      body: form([['file', 'short_1s.wav', audioBytes('short_1s.wav')]]),
    });
    assert.equal(response.status, 200, response.text);
    const model = await server.request('/api/model');
    assert.equal(model.json.server.max_upload_bytes, 1 << 20);
    assert.equal(model.json.server.max_audio_seconds, 10);
  });
});

describe('server with --api-key, one worker and a queue of one', () => {
  // Percent signs are just bytes of the key: compared as sent, never decoded.
  const KEY = 'test-key-%41-0123';
  let server;
  before(async () => {
    server = await new Server(['--workers', '1', '--queue', '1'], { env: { VOXPRINT_API_KEY: KEY } }).start();
  });
  after(async () => {
    const exit = await server.stop();
    assert.deepEqual(exit, { code: 0, signal: null });
  });

  test('401 without the key, 200 with it; healthz, page and OpenAPI stay open', async () => {
    const short = () => form([['file', 'short_1s.wav', audioBytes('short_1s.wav')]]);
    assertJsonError(await server.request('/api/embed', { method: 'POST', body: short() }), 401, 'unauthorized');
    assertJsonError(await server.request('/api/model'), 401, 'unauthorized');
    assertJsonError(
      await server.request('/api/model', { headers: { Authorization: `Bearer ${KEY}x` } }),
      401,
      'unauthorized',
    );
    assertJsonError(await server.request('/api/model', { headers: { 'X-API-Key': KEY.slice(1) } }), 401);
    const bearer = await server.request('/api/embed', {
      method: 'POST',
      headers: { Authorization: `Bearer ${KEY}` },
      body: short(),
    });
    assert.equal(bearer.status, 200, bearer.text);
    const header = await server.request('/api/model', { headers: { 'X-API-Key': KEY } });
    assert.equal(header.status, 200, header.text);
    assert.equal(header.json.server.auth_required, true);
    assert.equal((await server.request('/healthz')).status, 200);
    assert.equal((await server.request('/')).status, 200);
    assert.equal((await server.request('/api/openapi.json')).status, 200);
  });

  test('the key is compared as sent: a key with %41 works, its decoded form does not', async () => {
    const model = (headers) => server.request('/api/model', { headers });
    assert.equal((await model({ 'X-API-Key': KEY })).status, 200);
    assert.equal((await model({ Authorization: `Bearer ${KEY}` })).status, 200);
    assert.equal((await model({ Authorization: `bearer   ${KEY}` })).status, 200);
    for (const wrong of ['test-key-A-0123', 'test%2Dkey-%41-0123', `${KEY}%00`, `${KEY}%00anything`, `${KEY} x`])
      assertJsonError(await model({ 'X-API-Key': wrong }), 401, 'unauthorized');
  });

  test('a burst beyond workers + queue gets 503 + Retry-After; the server stays up', async () => {
    const bytes = audioBytes('sample.wav');
    const burst = Array.from({ length: 12 }, () =>
      server.request(
        '/api/embed',
        {
          method: 'POST',
          headers: { 'X-API-Key': KEY },
          body: form([['file', 'sample.wav', bytes]], [['window', 'sliding'], ['duration', '3'], ['step', '1']]),
        },
        300000,
      ),
    );
    await sleep(300);
    const health = await server.request('/healthz', {}, 5000);
    assert.equal(health.status, 200);
    assert.ok(health.ms < 2000, `healthz took ${health.ms} ms during the burst`);
    const responses = await Promise.all(burst);
    const statuses = responses.map((r) => r.status);
    const busy = responses.filter((r) => r.status === 503);
    assert.ok(busy.length >= 1, `no 503 in ${statuses}`);
    assert.ok(statuses.includes(200), `no 200 in ${statuses}`);
    assert.ok(statuses.every((s) => s === 200 || s === 503), `${statuses}`);
    for (const response of busy) {
      assertJsonError(response, 503, 'busy');
      assert.match(response.headers.get('retry-after') || '', /^[1-9]\d*$/);
    }
    for (const response of responses.filter((r) => r.status === 200))
      assert.equal(response.json.results[0].windows.length, 28);
    server.assertAlive();
    const after = await server.request('/api/embed', {
      method: 'POST',
      headers: { 'X-API-Key': KEY },
      body: form([['file', 'short_1s.wav', audioBytes('short_1s.wav')]]),
    });
    assert.equal(after.status, 200, after.text);
  });
});

describe('server with --api-key, two workers and a queue of one', () => {
  const KEY = 'plain-key-0123';
  const auth = { 'X-API-Key': KEY };
  let server;
  before(async () => {
    server = await new Server(['--workers', '2', '--queue', '1'], { env: { VOXPRINT_API_KEY: KEY } }).start();
  });
  after(async () => {
    const exit = await server.stop();
    assert.deepEqual(exit, { code: 0, signal: null });
  });

  test('no percent-decoding of the key: %00 does not cut it, %2D is not "-"', async () => {
    const model = (headers) => server.request('/api/model', { headers });
    assert.equal((await model(auth)).status, 200);
    for (const wrong of [`${KEY}%00`, `${KEY}%00anything`, 'plain%2Dkey-0123', 'plain-key-0123%20'])
      assertJsonError(await model({ 'X-API-Key': wrong }), 401, 'unauthorized');
    assertJsonError(await model({ Authorization: `Bearer ${KEY}%00x` }), 401, 'unauthorized');
  });

  test('exactly workers + queue clients, each sending its next request on the reply: no 503', async () => {
    const bytes = audioBytes('short_1s.wav');
    const statuses = [];
    await Promise.all(
      Array.from({ length: 3 }, async () => {
        for (let i = 0; i < 5; i++) {
          const response = await server.request('/api/embed', {
            method: 'POST',
            headers: auth,
            body: form([['file', 'short_1s.wav', bytes]]),
          });
          statuses.push(response.status);
        }
      }),
    );
    assert.deepEqual(statuses, Array(15).fill(200));
  });

  test('a full server answers 503 from the headers, before the body is sent', async () => {
    // Three uploads that send their headers and hold their places.
    const head =
      'POST /api/embed HTTP/1.1\r\nHost: localhost\r\nX-API-Key: plain-key-0123\r\n' +
      'Content-Type: audio/wav\r\nContent-Length: 1000000\r\n\r\n';
    const holders = [];
    for (let i = 0; i < 3; i++) holders.push(await openSilent(server.url, head));
    try {
      await sleep(300);
      const reply = await rawExchange(server.url, head, { timeoutMs: 5000 });
      assert.equal(reply.status, 503, reply.head);
      assert.match(reply.body, /"error":"busy"/);
      assert.match(reply.head, /\r\nRetry-After: [1-9]\d*/i);
      assert.ok(reply.ms < 1000, `took ${reply.ms} ms`);
      assert.equal((await server.request('/healthz', {}, 5000)).status, 200);
    } finally {
      for (const socket of holders) socket.destroy();
    }
    // The places come back as soon as the holders hang up.
    const deadline = Date.now() + 5000;
    let response;
    do {
      response = await server.request('/api/embed', {
        method: 'POST',
        headers: auth,
        body: form([['file', 'short_1s.wav', audioBytes('short_1s.wav')]]),
      });
    } while (response.status === 503 && Date.now() < deadline);
    assert.equal(response.status, 200, response.text);
  });
});

describe('server with --allowed-hosts', () => {
  let server;
  before(async () => {
    // 127.0.0.1 too, for the harness's own /healthz checks.
    server = await new Server(['--allowed-hosts', 'voxprint.test,10.0.0.7,127.0.0.1']).start();
  });
  after(async () => {
    const exit = await server.stop();
    assert.deepEqual(exit, { code: 0, signal: null });
  });

  test('only the listed names pass', async () => {
    const get = (host) => rawExchange(server.url, `GET /healthz HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
    for (const host of ['voxprint.test', 'VOXPRINT.TEST:8080', '10.0.0.7:1', '127.0.0.1'])
      assert.equal((await get(host)).status, 200, host);
    for (const host of ['localhost', '[::1]', 'other.test']) assert.equal((await get(host)).status, 403, host);
  });
});
