// POST /api/diarize against a real `voxprint serve`: the same RTTM as
// `voxprint diarize`, speaker counts, no speech, speakers named from the
// server's store, and the errors and limits /api/embed has. Built-ins only.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  audioBytes,
  audioPath,
  binary,
  form,
  modelPath,
  requireKitAndBinary,
  requireVadModel,
  Server,
} from './harness.mjs';

requireKitAndBinary();
requireVadModel();

function cliDiarize(file, args = []) {
  return execFileSync(binary, ['diarize', '--quiet', '--model', modelPath(), ...args, audioPath(file)], {
    encoding: 'utf8',
    timeout: 300000,
  });
}

function assertJsonError(response, status, code) {
  assert.equal(response.status, status, `expected ${status}, got ${response.status}: ${response.text}`);
  assert.equal(response.json?.error, code, response.text);
  assert.ok(response.json.detail.length > 0);
}

describe('POST /api/diarize', () => {
  let server;
  before(async () => {
    // start's timeout is also how long node stays alive after the tests.
    server = await new Server().start(30000);
  });
  after(async () => {
    const exit = await server.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, server.stderr);
  });

  test('the same RTTM as voxprint diarize, and the JSON around it', async () => {
    const response = await server.request('/api/diarize?num_speakers=2', {
      method: 'POST',
      body: form([['file', 'dev00.wav', audioBytes('dev00.wav')]]),
    });
    assert.equal(response.status, 200, response.text);
    const [result] = response.json.results;
    assert.equal(result.rttm, cliDiarize('dev00.wav', ['--num-speakers', '2']));
    assert.equal(result.path, 'dev00.wav');
    assert.equal(result.speakers.length, 2);
    assert.equal(result.clustering, 'ahc');
    assert.equal(result.speakers[0].centroid.length, 256);
    assert.ok(result.segments.length > 0);
    for (const segment of result.segments) assert.ok(segment.end_s > segment.start_s);
    const openapi = await server.request('/api/openapi.json');
    assert.ok(openapi.json.paths['/api/diarize'].post);
  });

  test('no speech: an empty diarization, not an error', async () => {
    const response = await server.request('/api/diarize', {
      method: 'POST',
      headers: { 'Content-Type': 'audio/wav' },
      body: audioBytes('silence_2s.wav'),
    });
    assert.equal(response.status, 200, response.text);
    assert.deepEqual(response.json.results[0].segments, []);
    assert.equal(response.json.results[0].rttm, '');
  });

  test('errors: parameters, not audio, no file, wrong method', async () => {
    const sample = audioBytes('short_1s.wav');
    for (const query of ['clustering=kmeans', 'num_speakers=0', 'min_speakers=3&max_speakers=2', 'threshold=abc', 'step=5'])
      assertJsonError(
        await server.request(`/api/diarize?${query}`, { method: 'POST', body: form([['file', 'a.wav', sample]]) }),
        422,
        'invalid_argument',
      );
    assertJsonError(
      await server.request('/api/diarize', { method: 'POST', body: form([['file', 'x.wav', audioBytes('not_audio.wav')]]) }),
      400,
      'unsupported_input',
    );
    assertJsonError(
      await server.request('/api/diarize', { method: 'POST', body: form([['other', 'x.wav', sample]]) }),
      422,
      'invalid_argument',
    );
    const get = await server.request('/api/diarize');
    assert.equal(get.status, 405);
    assert.equal(get.headers.get('allow'), 'POST');
  });
});

describe('POST /api/diarize with --max-audio-seconds 10', () => {
  let server;
  before(async () => {
    server = await new Server(['--max-audio-seconds', '10']).start(30000);
  });
  after(async () => {
    const exit = await server.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, server.stderr);
  });

  test('audio over the limit is 413, as for /api/embed', async () => {
    assertJsonError(
      await server.request('/api/diarize', { method: 'POST', body: form([['file', 'long.wav', audioBytes('sample.wav')]]) }),
      413,
      'resource_limit',
    );
  });
});

describe('POST /api/diarize?name_speakers=true', () => {
  let server;
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'voxprint-diarize-names-'));
  before(async () => {
    server = await new Server(['--db', path.join(scratch, 'speakers.db')]).start(30000);
    const enrolled = await server.request('/api/speakers', {
      method: 'POST',
      body: form([['file', 'sample.wav', audioBytes('sample.wav')]], [['name', 'alice']]),
    });
    assert.equal(enrolled.status, 201, enrolled.text);
  });
  after(async () => {
    const exit = await server.stop();
    rmSync(scratch, { recursive: true, force: true });
    assert.deepEqual(exit, { code: 0, signal: null }, server.stderr);
  });

  const diarize = (query) =>
    server.request(`/api/diarize?num_speakers=1&${query}`, {
      method: 'POST',
      body: form([['file', 'sample.wav', audioBytes('sample.wav')]]),
    });

  test('the enrolled speaker names the cluster above the threshold, as voxprint diarize --speakers-db does', async () => {
    const named = await diarize('name_speakers=true&speaker_threshold=-1');
    assert.equal(named.status, 200, named.text);
    const [speaker] = named.json.results[0].speakers;
    assert.equal(speaker.name, 'alice');
    assert.equal(speaker.label, 'alice');
    assert.ok(speaker.similarity > -1 && speaker.similarity <= 1);
    assert.match(named.json.results[0].rttm, / alice <NA> <NA>\n/);

    // No cosine is above 1; and without name_speakers the store is not asked.
    for (const query of ['name_speakers=true&speaker_threshold=1', 'speaker_threshold=-1']) {
      const plain = await diarize(query);
      assert.equal(plain.status, 200, plain.text);
      assert.equal(plain.json.results[0].speakers[0].label, 'SPEAKER_00', query);
      assert.equal(plain.json.results[0].speakers[0].name, undefined, query);
    }
  });

  test('a bad speaker_threshold or name_speakers is 422', async () => {
    for (const query of ['name_speakers=true&speaker_threshold=1.5', 'name_speakers=maybe'])
      assertJsonError(await diarize(query), 422, 'invalid_argument');
  });
});
