// The speakers API of `voxprint serve` against the real binary: enroll,
// list, identify, verify, delete; the errors (401, 404, 409, 422, 405);
// identification answering while an enrollment is being computed and
// written; and two servers on one store seeing each other's enrollments.
// Node built-ins only: `node speakers.test.mjs`. Exit 77 without the kit.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { audioBytes, form, requireKitAndBinary, Server, sleep } from './harness.mjs';

requireKitAndBinary();

const KEY = 'speakers-test-key';
const auth = { Authorization: `Bearer ${KEY}` };
const scratch = mkdtempSync(path.join(os.tmpdir(), 'voxprint-speakers-'));
const db = path.join(scratch, 'speakers.db');
const short = audioBytes('short_1s.wav');
const long = audioBytes('dev00.wav');

function post(server, route, files, fields = [], headers = auth) {
  return server.request(route, { method: 'POST', headers, body: form(files, fields) });
}

function assertError(response, status, code) {
  assert.equal(response.status, status, response.text);
  assert.equal(response.json?.error, code, response.text);
  assert.ok(response.json.detail.length > 0);
}

describe('speakers API', () => {
  let server;
  let second;
  before(async () => {
    server = await new Server(['--db', db, '--workers', '2', '--queue', '8'], { env: { VOXPRINT_API_KEY: KEY } }).start();
  });
  after(async () => {
    for (const s of [server, second]) {
      if (!s) continue;
      const exit = await s.stop();
      assert.deepEqual(exit, { code: 0, signal: null }, s.stderr.slice(-2000));
    }
    rmSync(scratch, { recursive: true, force: true });
  });

  test('needs the API key, and is in the OpenAPI document', async () => {
    assertError(await server.request('/api/speakers'), 401, 'unauthorized');
    assertError(await post(server, '/api/speakers', [['file', 'a.wav', short]], [['name', 'x']], {}), 401, 'unauthorized');
    const doc = (await server.request('/api/openapi.json')).json;
    for (const route of ['/api/speakers', '/api/speakers/{name}', '/api/identify', '/api/verify'])
      assert.ok(doc.paths[route], route);
    assert.ok(doc.paths['/api/speakers/{name}'].delete.responses['404']);
    const put = await server.request('/api/speakers', { method: 'PUT', headers: auth });
    assert.equal(put.status, 405);
    assert.equal(put.headers.get('allow'), 'GET, HEAD, POST');
  });

  test('enroll, list, identify, verify, delete', async () => {
    let r = await post(server, '/api/speakers', [['file', 'alice.wav', short]], [['name', 'alice'], ['metadata', '{"room": 2}']]);
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.speaker.name, 'alice');
    assert.equal(r.json.speaker.enrollments, 1);
    assert.deepEqual(r.json.speaker.metadata, { room: 2 });
    assert.equal(r.json.recommended_speech_s, 20);
    assert.ok(r.json.progress >= 0 && r.json.progress < 0.1, r.text);
    assert.ok(r.json.added[0].warnings.length > 0, 'a 1 s recording is too short');
    assert.ok(r.json.warnings.includes('not_enough_speech'));

    assertError(await post(server, '/api/speakers', [['file', 'a.wav', short]], [['name', 'alice']]), 409, 'already_exists');
    assertError(await post(server, '/api/speakers', [['file', 'a.wav', short]], [['name', 'bad\u0007name']]), 422, 'invalid_argument');
    assertError(await post(server, '/api/speakers', [['file', 'a.wav', short]], [['name', 'x'.repeat(129)]]), 422, 'invalid_argument');
    assertError(await post(server, '/api/speakers', [], [['name', 'nofile']]), 400, 'unsupported_input');

    r = await server.request('/api/speakers', { headers: auth });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.speakers.map((s) => s.name), ['alice']);
    assert.equal(r.json.model_sha256.length, 64);

    // The enrolled recording against its own voiceprint: cosine 1.
    r = await post(server, '/api/identify', [['file', 'q.wav', short]], [['threshold', '0.99'], ['top_k', '3']]);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.results[0].speaker, 'alice');
    assert.ok(Math.abs(r.json.results[0].candidates[0].score - 1) < 1e-5, r.text);
    assert.match(r.json.score_scale, /raw cosine/);
    assertError(await post(server, '/api/identify', [['file', 'q.wav', short]], [['threshold', '2']]), 422, 'invalid_argument');

    r = await post(server, '/api/verify', [['file', 'q.wav', short]], [['name', 'alice'], ['threshold', '0.5']]);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.accepted, true);
    assertError(await post(server, '/api/verify', [['file', 'q.wav', short]], [['name', 'nobody']]), 404, 'not_found');

    assertError(await server.request('/api/speakers/nobody', { method: 'DELETE', headers: auth }), 404, 'not_found');
    r = await server.request(`/api/speakers/${encodeURIComponent('alice')}`, { method: 'DELETE', headers: auth });
    assert.equal(r.status, 200, r.text);
    r = await post(server, '/api/identify', [['file', 'q.wav', short]]);
    assert.equal(r.json.results[0].speaker, null);
    assert.equal(r.json.results[0].unknown, true);
    assert.equal(r.json.results[0].candidates.length, 0);
  });

  test('identification answers while an enrollment is computed and written', async () => {
    await post(server, '/api/speakers', [['file', 'seed.wav', short]], [['name', 'seed']]);
    let enrolled = false;
    const enrollment = post(server, '/api/speakers',
      [['file', 'l1.wav', long], ['file', 'l2.wav', long]], [['name', 'long talker']])
      .then((r) => {
        enrolled = true;
        return r;
      });
    let answeredDuring = 0;
    const seen = new Set();
    while (!enrolled) {
      const r = await post(server, '/api/identify', [['file', 'q.wav', short]], [['top_k', '5']]);
      assert.equal(r.status, 200, r.text);
      for (const c of r.json.results[0].candidates) seen.add(c.name);
      if (!enrolled) answeredDuring += 1;
      await sleep(20);
    }
    const r = await enrollment;
    assert.equal(r.status, 201, r.text);
    assert.ok(answeredDuring >= 2, `only ${answeredDuring} identifications during the enrollment`);
    assert.ok(seen.has('seed'));
    const after = await post(server, '/api/identify', [['file', 'q.wav', short]]);
    assert.deepEqual(after.json.results[0].candidates.map((c) => c.name).sort(), ['long talker', 'seed']);
  });

  test('two servers on one store see each other\'s enrollments', async () => {
    second = await new Server(['--db', db, '--workers', '1'], { env: { VOXPRINT_API_KEY: KEY } }).start();
    let r = await post(second, '/api/speakers', [['file', 'b.wav', short]], [['name', 'from second']]);
    assert.equal(r.status, 201, r.text);
    r = await server.request('/api/speakers', { headers: auth });
    assert.ok(r.json.speakers.some((s) => s.name === 'from second'), r.text);
    r = await post(server, '/api/verify', [['file', 'q.wav', short]], [['name', 'from second']]);
    assert.equal(r.status, 200, r.text);
    r = await server.request(`/api/speakers/${encodeURIComponent('from second')}`, { method: 'DELETE', headers: auth });
    assert.equal(r.status, 200);
    r = await post(second, '/api/verify', [['file', 'q.wav', short]], [['name', 'from second']]);
    assertError(r, 404, 'not_found');
  });
});

// A throwaway PostgreSQL cluster (Debian's postgresql), as the postgres user
// when we are root, on a unix socket in a temporary folder.
const pgBin = '/usr/lib/postgresql/15/bin';
function asPostgres(command) {
  const args = process.getuid() === 0 ? ['runuser', '-u', 'postgres', '--', 'sh', '-c', command] : ['sh', '-c', command];
  return spawnSync(args[0], args.slice(1), { encoding: 'utf8', timeout: 60000 });
}

// Why the PostgreSQL tests cannot run here, or false. A root whose folders
// other users cannot search (a chroot in a 0700 temporary folder) leaves the
// postgres user unable to run anything.
function postgresUnavailable() {
  if (!existsSync(`${pgBin}/pg_ctl`)) return `no ${pgBin}/pg_ctl (Debian's postgresql)`;
  if (asPostgres('true').status !== 0)
    return 'the postgres user cannot run programs here (are / and the temporary folder searchable by others?)';
  return false;
}

describe('two servers on one PostgreSQL store', { skip: postgresUnavailable() }, () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'voxprint-pg-'));
  const servers = [];
  let started = false;
  before(async () => {
    chmodSync(dir, 0o777);
    let r = asPostgres(`${pgBin}/initdb -D ${dir}/data -A trust -U voxprint --no-sync`);
    assert.equal(r.status, 0, r.stderr);
    r = asPostgres(`${pgBin}/pg_ctl -D ${dir}/data -l ${dir}/log -o "-k ${dir} -c listen_addresses=" -w start`);
    assert.equal(r.status, 0, r.stderr);
    started = true;
    const uri = `postgresql:///postgres?host=${dir}&user=voxprint`;
    for (let i = 0; i < 2; i++)
      servers.push(await new Server(['--db', uri, '--workers', '1'], { env: { VOXPRINT_API_KEY: KEY } }).start());
  });
  after(async () => {
    for (const s of servers) assert.deepEqual(await s.stop(), { code: 0, signal: null }, s.stderr.slice(-2000));
    if (started) asPostgres(`${pgBin}/pg_ctl -D ${dir}/data -m immediate stop`);
    rmSync(dir, { recursive: true, force: true });
  });

  test('an enrollment on one is identified and removed on the other', async () => {
    const [a, b] = servers;
    let r = await post(a, '/api/speakers', [['file', 'x.wav', short]], [['name', 'shared']]);
    assert.equal(r.status, 201, r.text);
    r = await post(b, '/api/identify', [['file', 'q.wav', short]], [['threshold', '0.99']]);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.results[0].speaker, 'shared');
    assertError(await post(b, '/api/speakers', [['file', 'x.wav', short]], [['name', 'shared']]), 409, 'already_exists');
    r = await b.request('/api/speakers/shared', { method: 'DELETE', headers: auth });
    assert.equal(r.status, 200, r.text);
    assertError(await post(a, '/api/verify', [['file', 'q.wav', short]], [['name', 'shared']]), 404, 'not_found');
  });
});

// fetch's pooled connections keep node alive for a minute after the servers
// are gone; every result is in by then.
after(() => setTimeout(() => process.exit(), 2000));
