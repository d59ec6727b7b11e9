// Browser tests of the page's Speakers tab against a real `voxprint serve`
// with a throwaway store: enrolling from files and the microphone (the
// speech collected against the server's numbers, its warnings, adding to an
// existing speaker, a 409 when the list was out of date), names checked as
// the server checks them, the list, deleting with a confirmation,
// identification matching POST /api/identify score for score and "unknown"
// above every score, stale results, and a server whose store cannot be
// opened; then roles, keyboard, layout at phone widths and AA contrast.
// Exit status 77 (CTest skip) when Chromium, playwright-core or the
// reference kit is absent.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { audioBytes, audioPath, form, repoRoot, requireKitAndBinary, Server } from './harness.mjs';

requireKitAndBinary();
const { contrastFailures, openPage, sidewaysOverflow } = await import('./browser-harness.mjs');

const screenshotDir = process.env.VOXPRINT_SCREENSHOT_DIR || path.join(repoRoot, 'build/e2e-screenshots');
const scratch = mkdtempSync(path.join(os.tmpdir(), 'voxprint-browser-speakers-'));

let server;
let page;
let context;
let problems;  // console errors and page exceptions
let closeBrowser;

before(async () => {
  mkdirSync(screenshotDir, { recursive: true });
  server = await new Server(['--db', path.join(scratch, 'speakers.db'), '--workers', '2', '--queue', '8']).start();
  ({ page, context, problems, close: closeBrowser } = await openPage(server));
  await page.click('#tab-speakers');
});

after(async () => {
  await closeBrowser?.();
  const exit = await server?.stop();
  rmSync(scratch, { recursive: true, force: true });
  if (exit) assert.deepEqual(exit, { code: 0, signal: null });
});

async function apiSpeakers() {
  const response = await server.request('/api/speakers');
  assert.equal(response.status, 200, response.text);
  return response.json;
}

async function listed() {
  return page.$$eval('#speakers-list li', (items) =>
    items.map((item) => ({
      name: item.dataset.name,
      enrollments: Number(item.dataset.enrollments),
      speech: Number(item.dataset.speech),
      text: item.textContent,
    })),
  );
}

async function warningCodes(selector) {
  if (await page.isHidden(selector)) return [];
  return page.$$eval(`${selector} p[data-code]`, (lines) => lines.map((line) => line.dataset.code));
}

// Presses Enroll (or "Add to") and returns what the server answered, once
// the page has shown it and refreshed its list (Cancel goes away last).
async function pressEnroll() {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/api/speakers') && r.request().method() === 'POST'),
    page.click('#enroll-btn'),
  ]);
  await page.waitForFunction(() => document.getElementById('enroll-cancel').hidden);
  return { status: response.status(), body: await response.json() };
}

async function enroll(name, files) {
  await page.fill('#enroll-name', name);
  await page.setInputFiles('#enroll-file', files.map(audioPath));
  const answer = await pressEnroll();
  assert.equal(answer.status, 201, JSON.stringify(answer.body));
  assert.ok(await page.isHidden('#enroll-error'), await page.textContent('#enroll-error'));
  return answer.body;
}

// The speech bar and the warnings shown for an enrollment report.
async function assertEnrollmentShown(report) {
  const bar = await page.$eval('#enroll-speech-bar', (element) => ({ value: element.value, max: element.max }));
  assert.equal(bar.max, report.recommended_speech_s);
  assert.ok(Math.abs(bar.value - Math.min(report.speech_s, report.recommended_speech_s)) < 1e-9, JSON.stringify(bar));
  const percent = Math.round(100 * report.progress);
  assert.match(await page.textContent('#enroll-speech-text'), new RegExp(`of the 20 s recommended \\(${percent} %\\)$`));
  const expected = [...report.added.flatMap((added) => added.warnings), ...report.warnings];
  assert.deepEqual(await warningCodes('#enroll-warnings'), expected);
}

test('an empty store says so; enrolling two speakers shows the speech collected as the server counts it', async () => {
  await page.waitForSelector('#speakers-empty:not([hidden])');
  assert.match(await page.textContent('#speakers-empty'), /No speakers enrolled yet/);
  assert.ok(await page.isDisabled('#enroll-btn'), 'Enroll without a name or files');

  const ada = await enroll('Ada', ['dev00.wav']);
  assert.match(await page.textContent('#enroll-summary'), /^Enrolled “Ada”: 1 recording now/);
  await assertEnrollmentShown(ada);
  assert.ok(ada.speech_s > 0);
  const grace = await enroll('Grace', ['sample.wav']);
  await assertEnrollmentShown(grace);

  const api = await apiSpeakers();
  assert.equal(api.recommended_speech_s, 20);
  const shown = await listed();
  assert.deepEqual(shown.map((s) => s.name), ['Ada', 'Grace']);
  for (const speaker of api.speakers) {
    const row = shown.find((s) => s.name === speaker.name);
    assert.equal(row.enrollments, 1);
    assert.equal(row.speech, speaker.speech_s);
    assert.ok(row.speech > 0, `${speaker.name}: no speech`);
    assert.match(row.text, /1 recording · [\d.]+ s of speech/);
  }
  assert.ok(await page.isHidden('#speakers-empty'));
  assert.match(await page.textContent('#speakers-count'), /^2 speakers/);
});

test('a known name adds recordings to that speaker; a short one is warned of', async () => {
  await page.fill('#enroll-name', 'Ada');
  assert.equal(await page.textContent('#enroll-btn'), 'Add to “Ada”');
  await page.setInputFiles('#enroll-file', audioPath('short_1s.wav'));
  const answer = await pressEnroll();
  assert.equal(answer.status, 201);
  assert.equal(answer.body.speaker.enrollments, 2);
  assert.match(await page.textContent('#enroll-summary'), /^Added “Ada”: 1 recording now, 2 recordings in all/);
  await assertEnrollmentShown(answer.body);
  assert.ok(answer.body.added[0].warnings.length > 0, 'a 1 s recording is short');
  assert.match(await page.textContent('#enroll-warnings'), /short_1s\.wav: /);
  const ada = (await listed()).find((s) => s.name === 'Ada');
  assert.equal(ada.enrollments, 2);
  assert.equal(ada.speech, (await apiSpeakers()).speakers.find((s) => s.name === 'Ada').speech_s);
});

test('a name enrolled elsewhere since the list loaded: the 409 is explained, then "Add to" adds', async () => {
  const direct = await server.request('/api/speakers', {
    method: 'POST',
    body: form([['file', 'short.wav', audioBytes('short_1s.wav')]], [['name', 'Lin']]),
  });
  assert.equal(direct.status, 201, direct.text);
  await page.fill('#enroll-name', 'Lin');
  assert.equal(await page.textContent('#enroll-btn'), 'Enroll', 'the page does not know Lin yet');
  await page.setInputFiles('#enroll-file', audioPath('short_1s.wav'));
  const refused = await pressEnroll();
  assert.equal(refused.status, 409);
  assert.match(await page.textContent('#enroll-error'), /“Lin” is enrolled already.*Add to/);
  assert.equal(await page.textContent('#enroll-btn'), 'Add to “Lin”');
  // The chosen recording is still there: one press adds it.
  const added = await pressEnroll();
  assert.equal(added.status, 201);
  assert.equal(added.body.speaker.enrollments, 2);
  assert.ok(await page.isHidden('#enroll-error'));
});

test('bad names are refused as the server refuses them, in its words', async () => {
  for (const name of ['bell\u0007name', 'x'.repeat(129)]) {
    const api = await server.request('/api/speakers', {
      method: 'POST',
      body: form([['file', 'short.wav', audioBytes('short_1s.wav')]], [['name', name]]),
    });
    assert.equal(api.status, 422, api.text);
    await page.fill('#enroll-name', name);
    assert.ok(await page.isVisible('#enroll-name-error'));
    assert.equal(await page.textContent('#enroll-name-error'), api.json.detail);
    assert.equal(await page.getAttribute('#enroll-name', 'aria-invalid'), 'true');
    await page.setInputFiles('#enroll-file', audioPath('short_1s.wav'));
    assert.ok(await page.isDisabled('#enroll-btn'));
  }
  await page.fill('#enroll-name', 'x'.repeat(128));
  assert.ok(await page.isHidden('#enroll-name-error'));
  assert.ok(await page.isEnabled('#enroll-btn'));
  await page.fill('#enroll-name', '');
  await page.click('button[aria-label="Remove short_1s.wav"]');
  assert.equal(await page.$$eval('#enroll-files li', (items) => items.length), 0);
  assert.ok(await page.isDisabled('#enroll-btn'));
});

test('identify: the ranking and scores are those of POST /api/identify; above every score the verdict is unknown', async () => {
  const threshold = 0.5;
  await page.fill('#identify-threshold-number', String(threshold));
  await page.setInputFiles('#identify-file', audioPath('dev00.wav'));
  const run = async () => {
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/api/identify')),
      page.click('#identify-btn'),
    ]);
    await page.waitForFunction(() => document.getElementById('identify-cancel').hidden);
    assert.ok(await page.isHidden('#identify-error'), await page.textContent('#identify-error'));
    return (await response.json()).results[0];
  };
  await run();
  const api = await server.request('/api/identify', {
    method: 'POST',
    body: form([['file', 'dev00.wav', audioBytes('dev00.wav')]], [['threshold', threshold], ['top_k', 5]]),
  });
  assert.equal(api.status, 200, api.text);
  const expected = api.json.results[0].candidates;
  const candidates = await page.$$eval('#identify-candidates li', (items) =>
    items.map((item) => ({ name: item.dataset.name, score: Number(item.dataset.score) })),
  );
  assert.deepEqual(candidates.map((c) => c.name), expected.map((c) => c.name));
  candidates.forEach((c, i) => assert.ok(Math.abs(c.score - expected[i].score) < 1e-6, `${c.name}: ${c.score} vs ${expected[i].score}`));
  assert.equal(candidates[0].name, 'Ada', 'the enrolled recording is its own best match');
  assert.equal(api.json.results[0].speaker, 'Ada');
  assert.equal(await page.textContent('#identify-verdict'), 'Ada');
  assert.equal(
    await page.textContent('#identify-rule'),
    `best ${expected[0].score.toFixed(2)} > ${threshold.toFixed(2)} → Ada`,
  );
  assert.match(await page.textContent('#identify-threshold-help'), /raw cosine similarities from −1 to 1.*score > threshold/s);
  assert.match(await page.textContent('#identify-details'), /dev00\.wav .* against 3 enrolled speakers/);

  // A threshold above every score: the verdict follows at once, and the
  // server says the same when asked again.
  const above = Math.min(1, Math.ceil(expected[0].score * 100) / 100 + 0.01);
  assert.ok(above > expected[0].score);
  await page.fill('#identify-threshold-number', above.toFixed(2));
  assert.equal(await page.textContent('#identify-verdict'), 'Unknown speaker');
  assert.equal(await page.getAttribute('#identify-verdict', 'data-unknown'), 'true');
  const again = await run();
  assert.equal(again.unknown, true);
  assert.equal(again.speaker, null);
  assert.equal(await page.textContent('#identify-verdict'), 'Unknown speaker');
  assert.match(await page.textContent('#identify-rule'), /≤ .* → unknown$/);
  await page.click('#identify-threshold-reset');
  assert.equal(await page.inputValue('#identify-threshold-number'), '0.70');
  await page.screenshot({ path: path.join(screenshotDir, 'speakers.png'), fullPage: true });

  // Another recording: the results on screen are set aside.
  assert.ok(await page.isHidden('#identify-stale'));
  await page.setInputFiles('#identify-file', audioPath('trn01.wav'));
  assert.ok(await page.isVisible('#identify-stale'));
  await run();
  assert.ok(await page.isHidden('#identify-stale'));
});

test('delete asks first; Keep keeps, Delete removes from the list and the store', async () => {
  await page.click('button[aria-label="Delete Grace"]');
  assert.ok(await page.isVisible('#speaker-delete-dialog'));
  assert.match(await page.textContent('#speaker-delete-dialog'), /Delete “Grace”\?.*1 recording.*cannot be undone/s);
  await page.click('#speaker-delete-keep');
  assert.ok(await page.isHidden('#speaker-delete-dialog'));
  assert.ok((await listed()).some((s) => s.name === 'Grace'));

  await page.click('button[aria-label="Delete Grace"]');
  await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/api/speakers') && r.request().method() === 'GET'),
    page.click('#speaker-delete-confirm'),
  ]);
  await page.waitForFunction(() => !document.querySelector('#speakers-list li[data-name="Grace"]'));
  assert.deepEqual((await apiSpeakers()).speakers.map((s) => s.name).sort(), ['Ada', 'Lin']);
  assert.ok(await page.isVisible('#identify-stale'), 'identification results outlive the speakers they rank');
});

// A long name, too: it must wrap in the list (the layout test below).
const MIC_NAME = `Microphone ${'W'.repeat(100)}`;

test('enrolling from the microphone', async () => {
  assert.equal(await page.$$eval('#enroll-files li', (items) => items.length), 0);
  await page.click('#enroll-record');
  await page.waitForTimeout(1500);
  await page.click('#enroll-record');
  await page.waitForFunction(() => /^recording-/.test(document.getElementById('enroll-files').textContent));
  await page.fill('#enroll-name', MIC_NAME);
  const answer = await pressEnroll();
  assert.equal(answer.status, 201, JSON.stringify(answer.body));
  assert.match(answer.body.added[0].source, /^recording-.*\.(webm|ogg|m4a)$/);
  assert.ok(answer.body.added[0].duration_s > 0.5 && answer.body.added[0].duration_s < 10);
  await assertEnrollmentShown(answer.body);
  const mic = (await listed()).find((s) => s.name === MIC_NAME);
  assert.equal(mic.enrollments, 1);
  assert.ok((await apiSpeakers()).speakers.some((s) => s.name === MIC_NAME));
});

test('access: the Speakers tab sits between Compare and Model, with roles, names and a roving tab stop', async () => {
  const tabs = await page.$$eval('[role="tab"]', (buttons) => buttons.map((button) => button.id));
  assert.equal(tabs.indexOf('tab-speakers'), tabs.indexOf('tab-compare') + 1);
  assert.equal(tabs.at(-1), 'tab-model');
  assert.equal(await page.getAttribute('#tab-speakers', 'aria-controls'), 'panel-speakers');
  await page.focus('#tab-compare');
  await page.keyboard.press('ArrowRight');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'tab-speakers');
  assert.equal(await page.getAttribute('#tab-speakers', 'aria-selected'), 'true');
  assert.equal(await page.getAttribute('#tab-speakers', 'tabindex'), '0');
  assert.equal(await page.getAttribute('#tab-compare', 'tabindex'), '-1');
  const snapshot = await page.locator('#panel-speakers').ariaSnapshot();
  for (const line of [
    /textbox "Name"/,
    /group "Drop recordings of this speaker"/,
    /button "Choose recordings to enroll"/,
    /list "Enrolled speakers"/,
    /button "Delete Ada"/,
    /group "Who is speaking\?"/,
    /button "Choose a recording to identify"/,
    /slider "Acceptance threshold"/,
    /progressbar "Ada: [\d.]+ s of speech of 20 s recommended"/,
  ])
    assert.match(snapshot, line);
  await page.keyboard.press('End');
  assert.equal(await page.getAttribute('#tab-model', 'aria-selected'), 'true');
  await page.click('#tab-speakers');
});

test('layout and colour: no sideways scrolling at 320 and 390 px; AA contrast in light and dark mode', async () => {
  // Long names must wrap, not widen the page.
  await page.fill('#enroll-name', 'W'.repeat(128));
  for (const scheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme: scheme });
    for (const width of [1280, 390, 320]) {
      await page.setViewportSize({ width, height: 844 });
      const { overflow, wide } = await sidewaysOverflow(page);
      assert.ok(overflow <= 0, `speakers at ${width} px scrolls sideways by ${overflow} px (${wide.join(', ')})`);
      assert.deepEqual(await contrastFailures(page), [], `speakers at ${width} px, ${scheme}`);
    }
    await page.click('button[aria-label="Delete Ada"]');
    assert.deepEqual(await contrastFailures(page), [], `delete dialog, ${scheme}`);
    await page.keyboard.press('Escape');
    assert.ok(await page.isHidden('#speaker-delete-dialog'));
  }
  assert.ok((await listed()).some((s) => s.name === 'Ada'), 'Escape deleted nobody');
  await page.fill('#enroll-name', '');
  await page.emulateMedia({ colorScheme: 'light' });
  await page.setViewportSize({ width: 1280, height: 900 });
});

test('a server whose speakers store cannot be opened: the tab says so and offers nothing that would fail', async () => {
  // No --db, and none of $VOXPRINT_DB, $XDG_DATA_HOME, $HOME to put the
  // default store in.
  const storeless = await new Server([], { env: { VOXPRINT_DB: undefined, XDG_DATA_HOME: undefined, HOME: undefined } }).start();
  const other = await context.newPage();
  const otherProblems = [];
  other.on('console', (m) => m.type() === 'error' && !/Failed to load resource/.test(m.text()) && otherProblems.push(m.text()));
  other.on('pageerror', (error) => otherProblems.push(error.message));
  try {
    const api = await storeless.request('/api/speakers');
    assert.ok(api.status >= 400, api.text);
    await other.goto(`${storeless.url}/#speakers`);
    await other.waitForSelector('#speakers-unavailable:not([hidden])');
    const notice = await other.textContent('#speakers-unavailable');
    assert.match(notice, /no usable speakers store/);
    assert.ok(notice.includes(api.json.detail), `${notice} does not say "${api.json.detail}"`);
    assert.match(notice, /--db/);
    await other.fill('#enroll-name', 'Nobody');
    await other.setInputFiles('#enroll-file', audioPath('short_1s.wav'));
    await other.setInputFiles('#identify-file', audioPath('short_1s.wav'));
    assert.ok(await other.isDisabled('#enroll-btn'));
    assert.ok(await other.isDisabled('#identify-btn'));
    assert.deepEqual(otherProblems, []);
  } finally {
    await other.close();
    await storeless.stop();
  }
});

test('no script errors in the page', () => {
  assert.deepEqual(problems, []);
});
