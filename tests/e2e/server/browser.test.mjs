// Browser tests of the page `voxprint serve` embeds: headless Chromium (the
// system's /usr/bin/chromium, driven by playwright-core; nothing downloads a
// browser) uploads reference audio in each tab, presses the buttons, and
// checks the numbers shown against the reference kit; then what a first-time
// user meets: padded windows marked, stale results set aside, warnings on
// degenerate audio, the threshold explained, no sideways scrolling at phone
// widths, roles and names for screen readers, AA contrast in light and dark
// mode, and a Cancel that frees the server's worker. Screenshots of the
// three tabs go to $VOXPRINT_SCREENSHOT_DIR (default <repo>/build/e2e-screenshots).
// Exit status 77 (CTest skip) when Chromium, playwright-core or the
// reference kit is absent.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
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
  Server,
  sleep,
} from './harness.mjs';

requireKitAndBinary();
const { contrastFailures, openPage, sidewaysOverflow } = await import('./browser-harness.mjs');

const screenshotDir = process.env.VOXPRINT_SCREENSHOT_DIR || path.join(repoRoot, 'build/e2e-screenshots');
const TOLERANCE = 1e-4;

let server;
let page;
let problems;  // console errors and page exceptions
let context;  // the browser's, for a second page
let closeBrowser;

before(async () => {
  mkdirSync(screenshotDir, { recursive: true });
  // One worker: a cancelled job that kept running would hold up the next.
  server = await new Server(['--workers', '1', '--queue', '4']).start();
  ({ page, context, problems, close: closeBrowser } = await openPage(server));
});

after(async () => {
  await closeBrowser?.();
  const exit = await server?.stop();
  if (exit) assert.deepEqual(exit, { code: 0, signal: null });
});

// Presses Extract and waits for this run to end (results of an earlier run
// may still be on screen, marked out of date, meanwhile).
async function runExtract() {
  await page.click('#extract-btn');
  await page.waitForFunction(
    () => document.getElementById('extract-progress').hidden && !document.getElementById('extract-btn').disabled,
  );
}

async function extract() {
  await runExtract();
  const error = page.locator('#extract-error');
  if (await error.isVisible()) throw new Error(`page shows an error: ${await error.textContent()}`);
  assert.ok(await page.isVisible('#extract-results'));
  assert.ok(await page.isHidden('#extract-stale'));
}

async function setMode(mode, duration, step) {
  await page.check(`input[name="mode"][value="${mode}"]`);
  if (duration !== undefined) await page.fill('#duration', String(duration));
  if (step !== undefined) await page.fill('#step', String(step));
}

async function warningCodes(selector) {
  if (await page.isHidden(selector)) return [];
  return page.$$eval(`${selector} p[data-code]`, (lines) => lines.map((line) => line.dataset.code));
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
  // The limits are stated before anything is uploaded, durations readable.
  assert.match(await page.textContent('#limits'), /up to 50\.0 MiB per request.*at most 30 min of audio per file/);
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
  assert.equal(await page.textContent('#info-duration'), '30 s');
  assert.equal(await page.textContent('#info-format'), 'WAV, 16-bit PCM');
  assert.match(await page.textContent('#info-time'), /s on the server/);
  assert.deepEqual(await warningCodes('#extract-warnings'), []);
  await page.waitForFunction(() => /^Done: sample\.wav/.test(document.getElementById('announcer').textContent));

  await page.click('#copy-embedding');
  const copied = JSON.parse(await page.evaluate(() => navigator.clipboard.readText()));
  assert.ok(relativeL2(copied, expected) <= TOLERANCE, 'the copied embedding');

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
  // Provenance: which model, which voxprint, which settings.
  assert.equal(json.provenance.model_sha256, manifest().models['pytorch_model.bin'].sha256);
  assert.match(json.provenance.voxprint_version, /^\d+\.\d+\.\d+$/);
  assert.equal(json.provenance.settings.window, 'whole');
  assert.equal(json.provenance.device, 'cpu');
});

test('extract: several files at once; silent, short and truncated ones get an amber warning', async () => {
  const cases = [
    ['silence_2s.wav', 'no_signal'],
    ['short_1s.wav', 'short_speech'],
    ['truncated.wav', 'truncated'],
  ];
  await page.setInputFiles('#extract-file', cases.map(([name]) => audioPath(name)));
  assert.match(await page.textContent('#extract-file-name'), /^3 files/);
  await extract();
  assert.ok(await page.isVisible('#result-picker'));
  for (const [index, [name, code]] of cases.entries()) {
    await page.selectOption('#result-picker', String(index));
    assert.equal(await page.textContent('#info-file'), name);
    assert.ok((await warningCodes('#extract-warnings')).includes(code), `${name}: ${code}`);
  }
  assert.match(await page.textContent('#extract-warnings'), /0\.50 s decoded where the file's header declares 30\.00 s/);
  await page.waitForFunction(() => /with \d warnings?/.test(document.getElementById('announcer').textContent));
});

test('extract: a file that is not audio shows a readable error and no stale results', async () => {
  await page.setInputFiles('#extract-file', audioPath('not_audio.wav'));
  // Choosing another file sets the shown results aside at once.
  assert.ok(await page.isVisible('#extract-stale'));
  assert.ok(await page.isDisabled('#download-json'));
  await runExtract();
  const message = await page.textContent('#extract-error');
  assert.match(message, /not_audio\.wav/);
  assert.doesNotMatch(message, /[{}]/, 'raw JSON shown instead of a message');
  assert.ok(await page.isHidden('#extract-results'), "the previous file's results stay under the error");
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

test('extract, sliding 3.0/1.0: windows table, heat map, similarity line, .npy', async () => {
  await page.setInputFiles('#extract-file', audioPath('sample.wav'));
  await setMode('sliding', '3.0', '1.0');
  // The count is known before the upload, from the browser's own decoding.
  await page.waitForFunction(() => /^28 windows over 30 s of audio/.test(document.getElementById('window-estimate').textContent));
  await extract();
  const expected = loadNpy('sample_wav.sliding_3.0_1.0.npy');
  const [windows, dim] = expected.shape;
  const rows = await tableRows();
  assert.equal(rows.length, windows);
  for (const r of [0, 1, windows - 1])
    assertClose(rows[r], expected.values.slice(r * dim, r * dim + 16), `window ${r}`);
  assert.equal(await page.textContent('#info-windows'), String(windows));
  assert.equal(await page.$$eval('#embedding-table tr[data-padded]', (padded) => padded.length), 0);

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

test('extract, sliding 3.0/2.0 over 5-12.5 s: the zero-padded last window is marked, kept apart by the colour scale, and can be dropped', async () => {
  await page.fill('#step', '2.0');
  assert.ok(await page.isVisible('#extract-stale'), 'new settings leave the old windows unmarked');
  await page.fill('#start', '5');
  await page.fill('#end', '12.5');
  await extract();
  // Windows 5-8, 7-10 and 9-12 s are the reference's (1 s step) windows 5,
  // 7 and 9; the fourth, 11-14 s, runs past the excerpt's end.
  const expected = loadNpy('sample_wav.sliding_3.0_1.0.npy');
  const dim = expected.shape[1];
  const windows = 4;
  const rows = await tableRows();
  assert.equal(rows.length, windows);
  for (const k of [0, 1, 2]) assertClose(rows[k], expected.values.slice((5 + 2 * k) * dim, (5 + 2 * k) * dim + 16), `window ${k}`);
  const labels = await page.$$eval('#embedding-table tr[data-padded] th', (cells) => cells.map((cell) => cell.textContent));
  assert.deepEqual(labels, ['11.00–12.50 s (zero-padded to 14.00 s)']);
  assert.match(await page.textContent('#info-windows'), /^4 \(the last zero-padded/);
  assert.deepEqual(await warningCodes('#extract-warnings'), ['padded_window']);
  // The colour scale follows the complete windows (about ±0.5), not the
  // padded one (about ±15), and the legend says where it saturates.
  const saturation = Number((await page.textContent('#legend-max')).replace(/[^\d.]/g, ''));
  assert.ok(saturation > 0.05 && saturation < 3, `legend ${saturation}`);
  // The padded column is hatched: its stripes alternate light and dark.
  const hatched = await page.$eval('#heatmap', (canvas) => {
    const context = canvas.getContext('2d');
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const plot = width - 44 - 12;
    const x = Math.round((44 + plot * (3.5 / 4)) * ratio);
    const { data } = context.getImageData(x, Math.round(20 * ratio), 1, Math.round(100 * ratio));
    const values = [];
    for (let i = 0; i < data.length; i += 4) values.push(data[i] + data[i + 1] + data[i + 2]);
    return Math.max(...values) - Math.min(...values);
  });
  assert.ok(hatched > 100, `padded column contrast ${hatched}`);
  assert.match(await page.getAttribute('#heatmap', 'aria-label'), /hatched, is a zero-padded window/);
  const json = JSON.parse((await downloaded('#download-json')).bytes.toString('utf8'));
  assert.equal(json.windows.at(-1).padded, true);
  assert.equal(json.windows.at(-1).covered_end_s, 12.5);
  assert.equal(json.windows.at(-2).padded, undefined);
  const csv = (await downloaded('#download-csv')).bytes.toString('utf8').trim().split('\n');
  assert.ok(csv[0].startsWith('start_s,end_s,covered_end_s,padded,dim_0,'));
  assert.ok(csv.at(-1).startsWith('11,14,12.5,1,'));

  await page.check('#drop-partial');
  assert.ok(await page.isVisible('#extract-stale'));
  await extract();
  assert.equal((await tableRows()).length, windows - 1);
  assert.equal(await page.$$eval('#embedding-table tr[data-padded]', (padded) => padded.length), 0);
  assert.deepEqual(await warningCodes('#extract-warnings'), []);
  await page.uncheck('#drop-partial');
  // Whole <-> sliding also sets the windows aside.
  await page.check('input[name="mode"][value="whole"]');
  assert.ok(await page.isVisible('#extract-stale'));
  await page.check('input[name="mode"][value="sliding"]');
  await page.fill('#start', '');
  await page.fill('#end', '');
});

test('compare: the similarity shown is the reference one; the verdict states its rule and follows the threshold', async () => {
  await page.click('#tab-compare');
  assert.match(await page.textContent('#compare-limits'), /both files together/);
  await page.setInputFiles('#compare-a-file', audioPath('short_1s.wav'));
  await page.setInputFiles('#compare-b-file', audioPath('sample_8k.wav'));
  await page.click('#compare-btn');
  await page.waitForSelector('#compare-results:not([hidden])');
  const shown = Number(await page.getAttribute('#similarity-value', 'data-value'));
  const expected = cosine(loadNpy('short_1s_wav.whole.npy').values, loadNpy('sample_8k_wav.whole.npy').values);
  assert.ok(Math.abs(shown - expected) < TOLERANCE, `${shown} vs ${expected}`);
  assert.equal(await page.textContent('#similarity-value'), shown.toFixed(4));
  assert.equal(await page.textContent('#verdict'), shown > 0.7 ? 'Same speaker' : 'Different speakers');
  assert.equal(
    await page.textContent('#verdict-rule'),
    `${shown.toFixed(2)} ${shown > 0.7 ? '>' : '≤'} 0.70 → ${shown > 0.7 ? 'same speaker' : 'different speakers'}`,
  );
  // A is 1 s long: the verdict comes with a caution naming the side.
  assert.deepEqual(await warningCodes('#compare-warnings'), ['short_speech']);
  assert.match(await page.textContent('#compare-warnings'), /Treat this verdict with caution.*A \(short_1s\.wav\)/s);
  assert.match(await page.textContent('#threshold-help'), /similarity > threshold.*−1 to 1/s);
  assert.equal(await page.textContent('.gauge-scale'), '−101');

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
  // A typed value moves the slider; Reset goes back to the default.
  await page.fill('#threshold-number', '-0.5');
  assert.equal(await page.inputValue('#threshold'), '-0.5');
  assert.equal(await page.textContent('#verdict'), 'Same speaker');
  assert.equal(await page.textContent('#gauge-threshold'), '-0.50');
  await page.click('#threshold-reset');
  assert.equal(await page.inputValue('#threshold'), '0.7');
  assert.equal(await page.inputValue('#threshold-number'), '0.70');
  assert.equal(await page.textContent('#threshold-value'), '0.70');
  await page.screenshot({ path: path.join(screenshotDir, 'compare.png'), fullPage: true });

  // A new file B: the old verdict does not describe it.
  await page.setInputFiles('#compare-b-file', audioPath('silence_2s.wav'));
  assert.ok(await page.isHidden('#compare-results'));
  await page.click('#compare-btn');
  await page.waitForSelector('#compare-results:not([hidden])');
  assert.deepEqual(await warningCodes('#compare-warnings'), ['short_speech', 'no_signal']);
});

test('model info: sha256, license, citations, limits, version, curl examples', async () => {
  await page.click('#tab-model');
  await page.waitForFunction(() => document.getElementById('model-sha256')?.textContent.length === 64);
  assert.equal(await page.textContent('#model-sha256'), manifest().models['pytorch_model.bin'].sha256);
  assert.equal(await page.textContent('#model-license'), 'CC-BY-4.0');
  assert.equal(await page.textContent('#model-dim'), '256');
  assert.match(await page.textContent('#model-architecture'), /^ResNet34/);
  const citations = await page.$$eval('#model-citations li', (items) => items.map((item) => item.textContent));
  assert.equal(citations.length, 2);
  assert.match(citations.join('\n'), /Wespeaker.*ICASSP 2023/s);
  assert.match(citations.join('\n'), /pyannote\.audio 2\.1.*INTERSPEECH 2023/s);
  assert.doesNotMatch(citations.join('\n'), /Powerset/, 'the segmentation paper is not about this model');
  assert.match(await page.textContent('#server-version'), /^version \d+\.\d+\.\d+$/);
  assert.equal(await page.textContent('#server-audio-limit'), '30 min per file');
  assert.equal(await page.textContent('#server-upload-limit'), '50.0 MiB per request');
  assert.match(await page.textContent('#server-device-choice'), /cpu/);
  assert.match(await page.textContent('#curl-examples'), new RegExp(`curl -F file=@speech.wav ${server.url}/api/embed`));
  assert.match(await page.textContent('.api-table'), /POST \/api\/compare/);
  for (const route of [/POST \/api\/diarize/, /DELETE \/api\/speakers\/\{name\}/, /POST \/api\/identify/])
    assert.match(await page.textContent('.api-table'), route);
  assert.match(await page.textContent('#curl-examples'), new RegExp(`-F num_speakers=2 ${server.url}/api/diarize`));
  await page.click('#copy-curl');
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), await page.textContent('#curl-examples'));
  await page.screenshot({ path: path.join(screenshotDir, 'model.png'), fullPage: true });
});

test('access: tabs, drop zones, file inputs and charts have roles and names; arrow keys and Back move between tabs', async () => {
  await page.click('#tab-extract');
  const snapshot = await page.locator('body').ariaSnapshot();
  for (const line of [
    /tablist "voxprint tools"/,
    /tab "Extract embedding" \[selected\]/,
    /tab "Compare speakers"/,
    /group "Drop audio files here"/,
    /button "Choose audio files to embed"/,
    /img "Heat map of \d+ windows × 256 dimensions/,
    /img "Line chart of the cosine similarity/,
    /img "Bar chart of window 1/,
    /status/,
  ])
    assert.match(snapshot, line);
  for (const tab of ['extract', 'compare', 'model'])
    assert.equal(await page.getAttribute(`#tab-${tab}`, 'aria-controls'), `panel-${tab}`);
  await page.getByRole('button', { name: 'Choose audio files to embed' }).focus();
  assert.equal(await page.evaluate(() => document.activeElement.id), 'extract-file');

  await page.focus('#tab-extract');
  await page.keyboard.press('ArrowRight');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'tab-compare');
  assert.equal(await page.getAttribute('#tab-compare', 'aria-selected'), 'true');
  assert.ok(await page.isVisible('#panel-compare'));
  const compare = await page.locator('#panel-compare').ariaSnapshot();
  assert.match(compare, /group "Recording A"[\s\S]*button "Choose recording A"/);
  assert.match(compare, /slider "Same-speaker threshold"/);
  assert.match(compare, /img "Gauge from −1 to 1: similarity/);
  await page.keyboard.press('ArrowLeft');
  assert.equal(await page.getAttribute('#tab-extract', 'aria-selected'), 'true');
  await page.keyboard.press('End');
  assert.equal(await page.getAttribute('#tab-model', 'aria-selected'), 'true');
  await page.goBack();
  assert.equal(await page.getAttribute('#tab-extract', 'aria-selected'), 'true');
  await page.goBack();
  assert.equal(await page.getAttribute('#tab-compare', 'aria-selected'), 'true');
});

test('layout and colour: no sideways scrolling at 320 and 390 px; AA contrast in light and dark mode', async () => {
  const tabs = ['extract', 'compare', 'model'];
  for (const scheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme: scheme });
    for (const width of [1280, 390, 320]) {
      await page.setViewportSize({ width, height: 844 });
      for (const tab of tabs) {
        await page.click(`#tab-${tab}`);
        const { overflow, wide } = await sidewaysOverflow(page);
        assert.ok(overflow <= 0, `${tab} at ${width} px scrolls sideways by ${overflow} px (${wide.join(', ')})`);
        assert.deepEqual(await contrastFailures(page), [], `${tab} at ${width} px, ${scheme}`);
      }
    }
    const ground = await page.evaluate(() => getComputedStyle(document.body.parentElement).backgroundColor);
    if (scheme === 'dark') assert.equal(ground, 'rgb(15, 23, 42)', 'dark mode follows prefers-color-scheme');
    else assert.equal(ground, 'rgb(241, 245, 249)');
  }
  await page.emulateMedia({ colorScheme: 'light' });
  await page.setViewportSize({ width: 1280, height: 900 });
});

test('long jobs: dense windowing is warned of, and Cancel stops the work on the server', async () => {
  await page.click('#tab-extract');
  await page.setInputFiles('#extract-file', audioPath('sample.wav'));
  await setMode('sliding', '3', '0.05');
  assert.match(await page.textContent('#dense-warning'), /dense/);
  await page.waitForFunction(() => /^541 windows/.test(document.getElementById('window-estimate').textContent));
  // 541 windows of 3 s take this server tens of seconds; cancel after one.
  await page.click('#extract-btn');
  await page.waitForFunction(() => /Computing/.test(document.getElementById('extract-progress-text').textContent));
  assert.match(await page.textContent('#extract-progress-text'), /of about/);
  await page.waitForTimeout(1000);
  await page.click('#extract-cancel');
  await page.waitForSelector('#extract-error:not([hidden])');
  assert.match(await page.textContent('#extract-error'), /Cancelled/);
  assert.ok(await page.isHidden('#extract-results'));
  // The only worker is free again at once: a short job does not wait behind
  // the abandoned one.
  await setMode('whole');
  await page.setInputFiles('#extract-file', audioPath('short_1s.wav'));
  const started = Date.now();
  await extract();
  const seconds = (Date.now() - started) / 1000;
  assert.ok(seconds < 6, `the next job took ${seconds} s`);
  assert.match(server.stderr, / 499 /, 'the server saw the client go');
});

test('API key: a server that wants one says so before a run, and a wrong key is told apart from none', async () => {
  const guarded = await new Server(['--api-key', 'right-key']).start();
  let keyed;
  try {
    keyed = await context.newPage();
    const healthChecks = [];
    keyed.on('request', (request) => request.url().endsWith('/healthz') && healthChecks.push(Date.now()));
    await keyed.goto(guarded.url);
    await keyed.waitForFunction(() => document.getElementById('health').textContent === 'ready · API key needed');
    await keyed.setInputFiles('#extract-file', audioPath('short_1s.wav'));
    const failedRun = async () => {
      await keyed.click('#extract-btn');
      await keyed.waitForSelector('#extract-error:not([hidden])');
      return keyed.textContent('#extract-error');
    };
    const before = healthChecks.length;
    assert.match(await failedRun(), /needs an API key/);
    assert.ok(await keyed.isVisible('#key-panel'));
    // A failed request has the badge look again at once, not at its next poll.
    for (let i = 0; i < 50 && healthChecks.length === before; i++) await sleep(100);
    assert.ok(healthChecks.length > before, 'the badge was not checked after the failure');
    await keyed.fill('#api-key', 'wrong-key');
    await keyed.click('#key-save');
    assert.match(await failedRun(), /refused this API key/);
    await keyed.fill('#api-key', 'right-key');
    await keyed.click('#key-save');
    await keyed.waitForFunction(() => document.getElementById('health').textContent === 'ready');
    await keyed.click('#extract-btn');
    await keyed.waitForSelector('#extract-results:not([hidden])');
  } finally {
    await keyed?.close();
    await guarded.stop();
  }
});

test('no script errors or blocked resources in the page', () => {
  assert.deepEqual(problems, []);
});
