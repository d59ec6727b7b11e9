// Browser tests of the page's "Who spoke when" tab: headless Chromium
// uploads kit audio, and what the page shows (lanes, speaking time, the
// turns table, the RTTM and JSON downloads) must be what POST /api/diarize
// answers for the same file and options; a click on the timeline moves the
// player; no speech is an empty result, not an error; a non-audio file a
// readable error; and the tab meets the others' bar (WAI-ARIA tab, names,
// no sideways scrolling at 320 and 390 px, AA contrast in light and dark
// mode, speaker colours 3:1 against their lane); speakers enrolled on the
// server name the lanes when asked. Exit status 77 (CTest skip)
// when Chromium, playwright-core, the reference kit or the VAD model is
// absent.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import {
  audioBytes,
  audioPath,
  form,
  manifest,
  repoRoot,
  requireKitAndBinary,
  requireVadModel,
  Server,
} from './harness.mjs';

requireKitAndBinary();
requireVadModel();
const { contrastFailures, openPage, sidewaysOverflow } = await import('./browser-harness.mjs');

const screenshotDir = process.env.VOXPRINT_SCREENSHOT_DIR || path.join(repoRoot, 'build/e2e-screenshots');

let server;
let page;
let problems;  // console errors and page exceptions
let closeBrowser;

// The server's own speakers store, thrown away afterwards.
const scratch = mkdtempSync(path.join(os.tmpdir(), 'voxprint-browser-diarize-'));

before(async () => {
  mkdirSync(screenshotDir, { recursive: true });
  server = await new Server(['--workers', '1', '--queue', '4', '--db', path.join(scratch, 'speakers.db')]).start();
  ({ page, problems, close: closeBrowser } = await openPage(server));
  await page.click('#tab-diarize');
});

after(async () => {
  await closeBrowser?.();
  const exit = await server?.stop();
  rmSync(scratch, { recursive: true, force: true });
  if (exit) assert.deepEqual(exit, { code: 0, signal: null });
});

// What the API answers for `file` with `fields`: the reference for the page.
async function apiDiarize(file, fields = []) {
  const response = await server.request('/api/diarize', {
    method: 'POST',
    body: form([['file', file, audioBytes(file)]], fields),
  });
  assert.equal(response.status, 200, response.text);
  return response.json.results[0];
}

// Presses the button and waits for this run to end.
async function run() {
  await page.click('#diarize-btn');
  await page.waitForFunction(
    () => document.getElementById('diarize-progress').hidden && !document.getElementById('diarize-btn').disabled,
  );
}

async function downloaded(button) {
  const [download] = await Promise.all([page.waitForEvent('download'), page.click(button)]);
  return { name: download.suggestedFilename(), text: readFileSync(await download.path(), 'utf8') };
}

const shownSegments = () =>
  page.$$eval('#diarize-timeline rect.segment', (rects) =>
    rects
      .sort((a, b) => Number(a.dataset.index) - Number(b.dataset.index))
      .map((rect) => ({ start_s: Number(rect.dataset.start), end_s: Number(rect.dataset.end), speaker: rect.dataset.speaker })),
  );

// Each speaker's fill against its lane's track (WCAG 2 contrast ratio), and
// the fills themselves.
const segmentColours = () =>
  page.evaluate(() => {
    const parse = (text) => text.match(/[\d.]+/g).slice(0, 3).map(Number);
    const luminance = (rgb) =>
      rgb
        .map((v) => v / 255)
        .map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4))
        .reduce((sum, c, i) => sum + c * [0.2126, 0.7152, 0.0722][i], 0);
    const ratio = (a, b) => {
      const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
      return (x + 0.05) / (y + 0.05);
    };
    return [...document.querySelectorAll('#diarize-timeline g.lane')].map((lane) => {
      const fill = parse(getComputedStyle(lane.querySelector('rect.segment')).fill);
      const track = parse(getComputedStyle(lane.querySelector('rect.lane-track')).fill);
      return { speaker: lane.dataset.speaker, fill: fill.join(','), ratio: ratio(fill, track) };
    });
  });

test('no speech: silence_2s.wav gives an empty diarization with a plain message, not an error', async () => {
  assert.match(await page.textContent('#diarize-limits'), /up to 50\.0 MiB per request.*at most 30 min of audio per file/);
  assert.ok(await page.isDisabled('#diarize-btn'), 'Run is enabled without a file');
  await page.setInputFiles('#diarize-file', audioPath('silence_2s.wav'));
  assert.match(await page.textContent('#diarize-file-name'), /^silence_2s\.wav · /);
  await run();
  assert.ok(await page.isHidden('#diarize-error'), await page.textContent('#diarize-error'));
  assert.ok(await page.isVisible('#diarize-results'));
  assert.match(await page.textContent('#diarize-empty'), /^No speech found in silence_2s\.wav \(2(\.00)? s of audio\)/);
  assert.ok(await page.isHidden('#diarize-timeline-box'));
  assert.ok(await page.isHidden('#diarize-segments-card'));
  const rttm = await downloaded('#diarize-download-rttm');
  assert.equal(rttm.name, 'silence_2s.rttm');
  assert.equal(rttm.text, '');
  const json = JSON.parse((await downloaded('#diarize-download-json')).text);
  assert.deepEqual(json.segments, []);
});

test('a file that is not audio: a readable error naming it, and no results left', async () => {
  await page.setInputFiles('#diarize-file', audioPath('not_audio.wav'));
  // Another file sets the shown result aside at once.
  assert.ok(await page.isVisible('#diarize-stale'));
  assert.ok(await page.isDisabled('#diarize-download-rttm'));
  await run();
  const message = await page.textContent('#diarize-error');
  assert.match(message, /not_audio\.wav/);
  assert.doesNotMatch(message, /[{}]/, 'raw JSON shown instead of a message');
  assert.ok(await page.isHidden('#diarize-results'));
});

test('sample.wav, 2 speakers: lanes, turns, speaking time and downloads are what /api/diarize answers', async () => {
  const expected = await apiDiarize('sample.wav', [['num_speakers', 2]]);
  assert.ok(expected.segments.length > 1);
  await page.setInputFiles('#diarize-file', audioPath('sample.wav'));
  assert.ok(await page.isHidden('#diarize-error'), 'choosing a file clears the last error');
  await page.check('input[name="diarize-count"][value="exact"]');
  await page.fill('#diarize-num', '2');
  // The browser decodes the file for a duration before the upload.
  await page.waitForFunction(() => /^30 s of audio/.test(document.getElementById('diarize-estimate').textContent));
  await run();
  assert.ok(await page.isHidden('#diarize-error'), await page.textContent('#diarize-error'));
  assert.ok(await page.isHidden('#diarize-empty'));
  assert.ok(await page.isHidden('#diarize-stale'));

  // Timeline: one lane per speaker, in the server's order; every turn drawn
  // in its speaker's lane.
  assert.deepEqual(await shownSegments(), expected.segments);
  const labels = expected.speakers.map((speaker) => speaker.label);
  assert.deepEqual(await page.$$eval('#diarize-timeline g.lane', (lanes) => lanes.map((lane) => lane.dataset.speaker)), labels);
  assert.ok(
    await page.$$eval('#diarize-timeline g.lane', (lanes) =>
      lanes.every((lane) => [...lane.querySelectorAll('rect.segment')].every((rect) => rect.dataset.speaker === lane.dataset.speaker)),
    ),
  );
  const colours = await segmentColours();
  assert.equal(new Set(colours.map((colour) => colour.fill)).size, labels.length, 'speakers share a colour');
  for (const { speaker, ratio } of colours) assert.ok(ratio >= 3, `${speaker}: ${ratio.toFixed(2)}:1 against its lane`);
  const description = await page.getAttribute('#diarize-timeline', 'aria-label');
  assert.match(description, /^Timeline of 2 speakers over 30 s: SPEAKER_00 .* in \d+ turns?, SPEAKER_01 /);
  assert.match(await page.locator('#panel-diarize').ariaSnapshot(), /img "Timeline of 2 speakers/);

  // The turns table says the same.
  const rows = await page.$$eval('#diarize-segments tbody tr', (trs) =>
    trs.map((tr) => ({ start_s: Number(tr.dataset.start), end_s: Number(tr.dataset.end), speaker: tr.dataset.speaker })),
  );
  assert.deepEqual(rows, expected.segments);

  // Speaking time per speaker: the sum of its turns; together all speech;
  // shares add up to 100 %.
  const times = await page.$$eval('#diarize-speakers tbody tr', (trs) =>
    trs.map((tr) => ({
      label: tr.dataset.speaker,
      seconds: Number(tr.cells[1].dataset.seconds),
      share: Number(tr.cells[2].dataset.share),
      shareText: tr.cells[2].textContent,
      turns: Number(tr.cells[3].textContent),
    })),
  );
  assert.deepEqual(times.map((time) => time.label), labels);
  const total = expected.segments.reduce((sum, segment) => sum + segment.end_s - segment.start_s, 0);
  for (const time of times) {
    const own = expected.segments.filter((segment) => segment.speaker === time.label);
    const seconds = own.reduce((sum, segment) => sum + segment.end_s - segment.start_s, 0);
    assert.ok(Math.abs(time.seconds - seconds) < 1e-9, `${time.label}: ${time.seconds} vs ${seconds}`);
    assert.ok(Math.abs(time.share - seconds / total) < 1e-9);
    assert.equal(time.shareText, `${((100 * seconds) / total).toFixed(1)} %`);
    assert.equal(time.turns, own.length);
    const fromServer = expected.speakers.find((speaker) => speaker.label === time.label);
    assert.ok(Math.abs(fromServer.speech_s - seconds) < 1e-6, `the server's speech_s for ${time.label}`);
  }
  assert.ok(Math.abs(times.reduce((sum, time) => sum + time.seconds, 0) - total) < 1e-9);
  assert.ok(Math.abs(times.reduce((sum, time) => sum + time.share, 0) - 1) < 1e-9);

  // RTTM: the CLI's 10 fields, the file's name as file id, one line a turn.
  const rttm = await downloaded('#diarize-download-rttm');
  assert.equal(rttm.name, 'sample.rttm');
  assert.equal(rttm.text, expected.rttm);
  const lines = rttm.text.trim().split('\n');
  assert.equal(lines.length, expected.segments.length);
  lines.forEach((line, i) => {
    const fields = line.split(' ');
    assert.equal(fields.length, 10, line);
    const [type, uri, channel, onset, duration, ortho, subtype, speaker, confidence, lookahead] = fields;
    assert.deepEqual([type, uri, channel, ortho, subtype, confidence, lookahead], ['SPEAKER', 'sample', '1', '<NA>', '<NA>', '<NA>', '<NA>']);
    const segment = expected.segments[i];
    assert.equal(speaker, segment.speaker);
    assert.ok(Math.abs(Number(onset) - segment.start_s) <= 0.0005, line);
    assert.ok(Math.abs(Number(duration) - (segment.end_s - segment.start_s)) <= 0.001, line);
  });

  // JSON: the API's result with its provenance, without the RTTM text.
  const json = await downloaded('#diarize-download-json');
  assert.equal(json.name, 'sample.diarization.json');
  const parsed = JSON.parse(json.text);
  assert.deepEqual(parsed.segments, expected.segments);
  assert.deepEqual(parsed.speakers.map((speaker) => speaker.label), labels);
  assert.equal(parsed.rttm, undefined);
  assert.deepEqual(parsed.provenance.settings, { clustering: 'ahc', num_speakers: '2' });
  assert.equal(parsed.provenance.model_sha256, manifest().models['pytorch_model.bin'].sha256);
  assert.equal(parsed.provenance.device, 'cpu');

  // A click on a turn moves the player (and its cursor) there.
  await page.locator('#diarize-timeline').scrollIntoViewIfNeeded();
  const longest = expected.segments.reduce((a, b) => (b.end_s - b.start_s > a.end_s - a.start_s ? b : a));
  const index = expected.segments.indexOf(longest);
  const box = await page.locator(`#diarize-timeline rect.segment[data-index="${index}"]`).boundingBox();
  await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
  const middle = (longest.start_s + longest.end_s) / 2;
  const secondsPerPx = 30 / box.width;
  const at = await page.$eval('#diarize-audio', (audio) => audio.currentTime);
  assert.ok(Math.abs(at - middle) < 0.1, `clicked the middle of ${longest.start_s}-${longest.end_s} s, player at ${at} s`);
  const cursor = await page.locator('#diarize-timeline .cursor').boundingBox();
  assert.ok(Math.abs(cursor.x + cursor.width / 2 - (box.x + box.width / 2)) <= 1.5, 'the cursor is where the click was');
  assert.equal(await page.getAttribute(`#diarize-segments tbody tr:nth-child(${index + 1})`, 'class'), 'current');
  // Anywhere on the timeline, lanes or axis: a quarter of the way is 7.5 s.
  const svg = await page.locator('#diarize-timeline').boundingBox();
  const plot = await page.$eval('#diarize-timeline .lane-track', (track) => track.getBoundingClientRect().toJSON());
  await page.mouse.click(plot.x + plot.width / 4, svg.y + svg.height - 4);
  const quarter = await page.$eval('#diarize-audio', (audio) => audio.currentTime);
  assert.ok(Math.abs(quarter - 7.5) < 0.1 + secondsPerPx, `a quarter of the way: ${quarter} s`);

  // A turn's play button starts the player at the turn, and the cursor moves
  // along while it plays.
  const second = expected.segments[1];
  await page.click('#diarize-segments tbody tr:nth-child(2) button.play');
  await page.waitForFunction(
    (start) => {
      const audio = document.getElementById('diarize-audio');
      return !audio.paused && audio.currentTime > start + 0.3;
    },
    second.start_s,
    { timeout: 10000 },
  );
  const played = await page.$eval('#diarize-audio', (audio) => {
    audio.pause();
    return audio.currentTime;
  });
  const cursorX = (await page.locator('#diarize-timeline .cursor').boundingBox()).x;
  const expectedX = plot.x + (played / 30) * plot.width;
  assert.ok(Math.abs(cursorX - expectedX) <= 2, `cursor at ${cursorX}, player at ${played} s (x ${expectedX})`);
  await page.screenshot({ path: path.join(screenshotDir, 'diarize.png'), fullPage: true });

  // Other settings set the result aside until the next run.
  await page.fill('#diarize-threshold', '0.5');
  assert.ok(await page.isVisible('#diarize-stale'));
  assert.ok(await page.isDisabled('#diarize-download-json'));
  await page.fill('#diarize-threshold', '');
  await page.selectOption('#diarize-clustering', 'spectral');
  assert.ok(await page.isDisabled('#diarize-threshold'), 'the threshold is for agglomerative clustering only');
  await page.selectOption('#diarize-clustering', 'ahc');
  await run();
  assert.ok(await page.isHidden('#diarize-stale'));
});

test('Cancel: a run in flight is abandoned with a plain message, and the page is ready for the next', async () => {
  // The request is held in the browser, so that Cancel is pressed while it
  // is surely in flight (the server side of a cancel is /api/embed's, tested
  // in browser.test.mjs).
  let held = null;
  await page.route('**/api/diarize', (route) => {
    held = route;
  });
  try {
    await page.click('#diarize-btn');
    await page.waitForFunction(() => !document.getElementById('diarize-cancel').hidden);
    assert.ok(await page.isVisible('#diarize-progress'));
    assert.ok(await page.isDisabled('#diarize-btn'));
    while (!held) await page.waitForTimeout(20);
    await page.click('#diarize-cancel');
    await page.waitForSelector('#diarize-error:not([hidden])');
    assert.match(await page.textContent('#diarize-error'), /^Cancelled/);
    assert.ok(await page.isHidden('#diarize-progress'));
    assert.ok(await page.isHidden('#diarize-cancel'));
    assert.ok(await page.isHidden('#diarize-results'));
    assert.ok(await page.isEnabled('#diarize-btn'));
  } finally {
    await page.unroute('**/api/diarize');
  }
  await run();
  assert.ok(await page.isHidden('#diarize-error'));
  assert.equal(await page.$$eval('#diarize-timeline rect.segment', (rects) => rects.length), (await shownSegments()).length);
  assert.ok((await shownSegments()).length > 1);
});

test('a microphone recording is uploaded and diarized', async () => {
  await page.click('#diarize-record-btn');
  await page.waitForTimeout(1500);
  await page.click('#diarize-record-btn');
  await page.waitForFunction(() => /^recording-/.test(document.getElementById('diarize-file-name').textContent));
  await run();
  assert.ok(await page.isHidden('#diarize-error'), await page.textContent('#diarize-error'));
  assert.match(await page.textContent('#diarize-title'), /^Who spoke when in recording-.*\.(webm|ogg|m4a)$/);
  // The fake microphone beeps: no speech, or a turn of a beep; either way a
  // result, not an error. sample.wav again for the tests that follow.
  await page.setInputFiles('#diarize-file', audioPath('sample.wav'));
  await run();
  assert.ok(await page.isVisible('#diarize-timeline-box'));
});

test('access: a WAI-ARIA tab between Compare and Model; named drop zone, file input and tables', async () => {
  assert.equal(await page.getAttribute('#tab-diarize', 'role'), 'tab');
  assert.equal(await page.getAttribute('#tab-diarize', 'aria-controls'), 'panel-diarize');
  assert.equal(await page.getAttribute('#panel-diarize', 'aria-labelledby'), 'tab-diarize');
  // Roving tabindex: only the selected tab is a tab stop.
  const stops = await page.$$eval('[role="tab"]', (tabs) => tabs.map((tab) => [tab.id, tab.tabIndex]));
  assert.deepEqual(stops.filter(([, index]) => index === 0), [['tab-diarize', 0]]);
  const order = stops.map(([id]) => id);
  assert.ok(order.indexOf('tab-compare') < order.indexOf('tab-diarize'));
  assert.equal(order.at(-1), 'tab-model', 'Model stays last');
  assert.equal(order.at(-2), 'tab-diarize');
  const snapshot = await page.locator('#panel-diarize').ariaSnapshot();
  for (const line of [
    /group "Drop a recording here"/,
    /button "Choose a recording to diarize"/,
    /radiogroup "Speakers"|group "Speakers"/,
    /combobox "Clustering"/,
    /spinbutton "Threshold"/,
    /region "Speaking time per speaker"/,
    /region "Speaker turns"/,
    /button "Play SPEAKER_0\d from /,
  ])
    assert.match(snapshot, line);
  await page.focus('#tab-diarize');
  await page.keyboard.press('ArrowRight');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'tab-model');
  await page.keyboard.press('ArrowLeft');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'tab-diarize');
  assert.ok(await page.isVisible('#panel-diarize'));
});

test('layout and colour: no sideways scrolling at 320 and 390 px, the timeline at the width; AA contrast light and dark', async () => {
  for (const scheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme: scheme });
    for (const width of [1280, 390, 320]) {
      await page.setViewportSize({ width, height: 844 });
      const { overflow, wide } = await sidewaysOverflow(page);
      assert.ok(overflow <= 0, `diarize at ${width} px scrolls sideways by ${overflow} px (${wide.join(', ')})`);
      assert.deepEqual(await contrastFailures(page), [], `diarize at ${width} px, ${scheme}`);
      // Redrawn at the new width: lanes span the box, text keeps its size.
      await page.waitForFunction(() => {
        const box = document.getElementById('diarize-timeline-box').clientWidth;
        return Number(document.getElementById('diarize-timeline').getAttribute('viewBox').split(' ')[2]) === box;
      });
      for (const { speaker, ratio } of await segmentColours())
        assert.ok(ratio >= 3, `${speaker} at ${width} px, ${scheme}: ${ratio.toFixed(2)}:1 against its lane`);
      const after = await sidewaysOverflow(page);
      assert.ok(after.overflow <= 0, `redrawn at ${width} px it scrolls by ${after.overflow} px (${after.wide.join(', ')})`);
    }
    if (scheme === 'dark') await page.screenshot({ path: path.join(screenshotDir, 'diarize-dark-320.png'), fullPage: true });
  }
  await page.emulateMedia({ colorScheme: 'light' });
  await page.setViewportSize({ width: 1280, height: 900 });
});

test('enrolled speakers name the lanes when asked, as name_speakers does on the API', async () => {
  const enrolled = await server.request('/api/speakers', {
    method: 'POST',
    body: form([['file', 'sample.wav', audioBytes('sample.wav')]], [['name', 'Ada']]),
  });
  assert.equal(enrolled.status, 201, enrolled.text);
  // The kit's weights are random: any voice is above -1, few above 0.7.
  const expected = await apiDiarize('sample.wav', [['num_speakers', 1], ['name_speakers', 'true'], ['speaker_threshold', -1]]);
  assert.equal(expected.speakers[0].label, 'Ada');
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.setInputFiles('#diarize-file', audioPath('sample.wav'));
  await page.check('input[name="diarize-count"][value="exact"]');
  await page.fill('#diarize-num', '1');
  assert.ok(await page.isDisabled('#diarize-name-threshold'));
  await page.check('#diarize-name-speakers');
  await page.fill('#diarize-name-threshold', '-1');
  await run();
  assert.ok(await page.isHidden('#diarize-error'), await page.textContent('#diarize-error'));
  assert.deepEqual(await shownSegments(), expected.segments);
  assert.match(await page.textContent('#diarize-timeline'), /Ada/);
  // Unticked, the result no longer matches: marked out of date.
  await page.uncheck('#diarize-name-speakers');
  assert.ok(await page.isVisible('#diarize-stale'));
});

test('no script errors in the page', () => {
  assert.deepEqual(problems, []);
});
