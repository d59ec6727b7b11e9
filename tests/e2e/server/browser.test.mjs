// Browser tests of the page `voxprint serve` embeds: headless Chromium (the
// system's /usr/bin/chromium, driven by playwright-core; nothing downloads a
// browser) uploads reference audio in each tab, presses the buttons, and
// checks the numbers shown against the reference kit. Screenshots of the
// three tabs go to $VOXPRINT_SCREENSHOT_DIR (default <repo>/build/e2e-screenshots).
// Exit status 77 (CTest skip) when Chromium, playwright-core or the
// reference kit is absent.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import {
  audioPath,
  cosine,
  loadNpy,
  manifest,
  parseNpy,
  relativeL2,
  repoRoot,
  requireKitAndBinary,
  requireOrSkip,
  Server,
} from './harness.mjs';

requireKitAndBinary();
const chromiumPath = process.env.VOXPRINT_CHROMIUM || '/usr/bin/chromium';
requireOrSkip(existsSync(chromiumPath),
  `Chromium not found at ${chromiumPath} (apt-get install chromium, or set VOXPRINT_CHROMIUM)`);
let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch {
  requireOrSkip(false, 'playwright-core is not installed: run `npm ci` in tests/e2e/server');
}

const screenshotDir = process.env.VOXPRINT_SCREENSHOT_DIR || path.join(repoRoot, 'build/e2e-screenshots');
const TOLERANCE = 1e-4;

let server;
let context;
let page;
let profile;
const problems = [];  // console errors and page exceptions

before(async () => {
  mkdirSync(screenshotDir, { recursive: true });
  server = await new Server().start();
  profile = mkdtempSync(path.join(os.tmpdir(), 'voxprint-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1280, height: 900 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      // A synthetic microphone (a beep) for the recording test.
      '--use-fake-ui-for-media-stream',
      '--use-fake-device-for-media-stream',
    ],
  });
  await context.grantPermissions(['microphone'], { origin: server.url });
  page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(120000);
  page.on('console', (message) => {
    // Chromium logs every non-2xx XHR as an error; the tests provoke some.
    if (message.type() === 'error' && !/Failed to load resource/.test(message.text()))
      problems.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`exception: ${error.message}`));
  await page.goto(server.url);
  await page.waitForFunction(() => document.getElementById('health').textContent === 'ready');
});

after(async () => {
  await context?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  const exit = await server?.stop();
  if (exit) assert.deepEqual(exit, { code: 0, signal: null });
});

async function extract() {
  await page.click('#extract-btn');
  await page.waitForSelector('#extract-results:visible, #extract-error:visible');
  // Visible, not just the attribute: CSS could override [hidden].
  await page.waitForSelector('#extract-progress', { state: 'hidden' });
  const error = page.locator('#extract-error');
  if (await error.isVisible()) throw new Error(`page shows an error: ${await error.textContent()}`);
}

// The table's rows of full-precision values (data-value attributes).
async function tableRows() {
  return page.$$eval('#embedding-table tbody tr', (rows) =>
    rows.map((row) => [...row.querySelectorAll('td[data-dim]')].map((cell) => Number(cell.dataset.value))),
  );
}

async function downloaded(button) {
  const [download] = await Promise.all([page.waitForEvent('download'), page.click(button)]);
  return { name: download.suggestedFilename(), bytes: readFileSync(await download.path()) };
}

function assertClose(actual, expected, what) {
  assert.equal(actual.length, expected.length, `${what}: length`);
  actual.forEach((value, i) =>
    assert.ok(Math.abs(value - expected[i]) <= TOLERANCE, `${what}[${i}]: ${value} vs ${expected[i]}`),
  );
}

test('extract, whole file: the table, the .npy and the CSV hold the reference values', async () => {
  assert.ok(await page.isHidden('#key-panel'), 'the API key panel shows on a server without a key');
  await page.setInputFiles('#extract-file', audioPath('sample.wav'));
  await extract();
  const expected = loadNpy('sample_wav.whole.npy').values;
  const rows = await tableRows();
  assert.equal(rows.length, 1);
  assert.equal(rows[0].length, 16);
  assertClose(rows[0], expected.slice(0, 16), 'table');
  assert.equal(await page.textContent('#info-file'), 'sample.wav');
  assert.equal(await page.textContent('#info-rate'), '16000 Hz');
  assert.equal(await page.textContent('#info-channels'), '1');
  assert.equal(await page.textContent('#info-duration'), '30.000 s');
  assert.match(await page.textContent('#info-time'), /s on the server/);

  const npy = await downloaded('#download-npy');
  assert.equal(npy.name, 'sample.embedding.npy');
  const array = parseNpy(npy.bytes);
  assert.deepEqual(array.shape, [256]);
  assert.ok(relativeL2(array.values, expected) <= TOLERANCE);

  const csv = (await downloaded('#download-csv')).bytes.toString('utf8').trim().split('\n');
  assert.equal(csv.length, 2);
  assert.equal(csv[0].split(',')[255], 'dim_255');
  assert.ok(relativeL2(csv[1].split(',').map(Number), expected) <= TOLERANCE);

  const json = JSON.parse((await downloaded('#download-json')).bytes.toString('utf8'));
  assert.equal(json.path, 'sample.wav');
  assert.ok(relativeL2(json.embedding, expected) <= TOLERANCE);
});

test('extract, sliding 3.0/1.0: windows table, heat map, similarity line, .npy', async () => {
  await page.check('input[name="mode"][value="sliding"]');
  await page.fill('#duration', '3.0');
  await page.fill('#step', '1.0');
  await extract();
  const expected = loadNpy('sample_wav.sliding_3.0_1.0.npy');
  const [windows, dim] = expected.shape;
  const rows = await tableRows();
  assert.equal(rows.length, windows);
  for (const r of [0, 1, windows - 1])
    assertClose(rows[r], expected.values.slice(r * dim, r * dim + 16), `window ${r}`);
  assert.equal(await page.textContent('#info-windows'), String(windows));

  // The heat map has colour in it (not a blank canvas).
  const coloured = await page.$eval('#heatmap', (canvas) => {
    const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
    let count = 0;
    for (let i = 0; i < data.length; i += 4) if (data[i + 3] > 0 && (data[i] !== data[i + 2])) count++;
    return count;
  });
  assert.ok(coloured > 10000, `heat map has ${coloured} coloured pixels`);
  assert.ok(await page.isVisible('#similarity-chart'));

  await page.$eval('#window-index', (slider) => {
    slider.value = '5';
    slider.dispatchEvent(new Event('input'));
  });
  assert.match(await page.textContent('#window-label'), /^#6 of 28: 5\.00–8\.00 s$/);

  const npy = parseNpy((await downloaded('#download-npy')).bytes);
  assert.deepEqual(npy.shape, [windows, dim]);
  assert.ok(relativeL2(npy.values, expected.values) <= TOLERANCE);

  await page.screenshot({ path: path.join(screenshotDir, 'extract.png'), fullPage: true });
});

test('extract: a file that is not audio shows a readable error', async () => {
  await page.check('input[name="mode"][value="whole"]');
  await page.setInputFiles('#extract-file', audioPath('not_audio.wav'));
  await page.click('#extract-btn');
  await page.waitForSelector('#extract-error:not([hidden])');
  const message = await page.textContent('#extract-error');
  assert.match(message, /not_audio\.wav/);
  assert.doesNotMatch(message, /[{}]/, 'raw JSON shown instead of a message');
});

test('extract: a microphone recording is uploaded and embedded', async () => {
  await page.click('#record-btn');
  await page.waitForTimeout(1500);
  await page.click('#record-btn');
  await page.waitForFunction(() => /^recording-/.test(document.getElementById('extract-file-name').textContent));
  await extract();
  assert.match(await page.textContent('#info-file'), /^recording-.*\.(webm|ogg|m4a)$/);
  const seconds = parseFloat(await page.textContent('#info-duration'));
  assert.ok(seconds > 0.5 && seconds < 10, `recorded ${seconds} s`);
  const rows = await tableRows();
  assert.equal(rows[0].length, 16);
  assert.ok(rows[0].every(Number.isFinite));
});

test('compare: the similarity shown is the reference one; the verdict follows the threshold', async () => {
  await page.click('#tab-compare');
  await page.setInputFiles('#compare-a-file', audioPath('short_1s.wav'));
  await page.setInputFiles('#compare-b-file', audioPath('sample_8k.wav'));
  await page.click('#compare-btn');
  await page.waitForSelector('#compare-results:not([hidden])');
  const shown = Number(await page.getAttribute('#similarity-value', 'data-value'));
  const expected = cosine(loadNpy('short_1s_wav.whole.npy').values, loadNpy('sample_8k_wav.whole.npy').values);
  assert.ok(Math.abs(shown - expected) < TOLERANCE, `${shown} vs ${expected}`);
  assert.equal(await page.textContent('#similarity-value'), shown.toFixed(4));
  assert.equal(await page.textContent('#verdict'), shown > 0.7 ? 'Same speaker' : 'Different speakers');

  const setThreshold = (value) =>
    page.$eval(
      '#threshold',
      (slider, v) => {
        slider.value = String(v);
        slider.dispatchEvent(new Event('input'));
      },
      value,
    );
  await setThreshold(Math.max(-1, Math.floor((shown - 0.05) * 100) / 100));
  assert.equal(await page.textContent('#verdict'), 'Same speaker');
  await setThreshold(Math.min(1, Math.ceil((shown + 0.05) * 100) / 100));
  assert.equal(await page.textContent('#verdict'), 'Different speakers');
  await setThreshold(0.7);
  assert.equal(await page.textContent('#threshold-value'), '0.70');
  await page.screenshot({ path: path.join(screenshotDir, 'compare.png'), fullPage: true });
});

test('model info: sha256, license, citations, curl examples', async () => {
  await page.click('#tab-model');
  await page.waitForFunction(() => document.getElementById('model-sha256')?.textContent.length === 64);
  assert.equal(await page.textContent('#model-sha256'), manifest().models['pytorch_model.bin'].sha256);
  assert.equal(await page.textContent('#model-license'), 'CC-BY-4.0');
  assert.equal(await page.textContent('#model-dim'), '256');
  assert.match(await page.textContent('#model-architecture'), /^ResNet34/);
  const citations = await page.$$eval('#model-citations li', (items) => items.map((item) => item.textContent));
  assert.equal(citations.length, 3);
  assert.match(citations.join('\n'), /Wespeaker.*ICASSP 2023/s);
  assert.match(citations.join('\n'), /Powerset multi-class cross entropy loss.*INTERSPEECH 2023/s);
  assert.match(await page.textContent('#curl-examples'), new RegExp(`curl -F file=@speech.wav ${server.url}/api/embed`));
  await page.screenshot({ path: path.join(screenshotDir, 'model.png'), fullPage: true });
});

test('no script errors or blocked resources in the page', () => {
  assert.deepEqual(problems, []);
});
