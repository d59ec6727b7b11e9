// Tab "Who spoke when": one recording through POST /api/diarize, shown as a
// timeline with one lane per speaker under a player, speaking time per
// speaker, the turns as a table, and RTTM/JSON downloads.
import { checkUploadSize, formatBytes, formatDuration, limitsText, postForm } from './api.js';
import { $, announce, Progress, show, showError, showRunFailure, wireDropZone } from './dom.js';
import { baseName, download, withProvenance } from './formats.js';
import { modelProvenance } from './model.js';
import { wireRecorder } from './recorder.js';

const SVG = 'http://www.w3.org/2000/svg';
// Colours (--speaker-0 ... in style.css) before they repeat; lanes, labels
// and the tables tell speakers apart too, so a repeat is never ambiguous.
const PALETTE_SIZE = 8;
// Timeline geometry, CSS pixels.
const SIDE_PX = 10;
const LABEL_PX = 18;
const BAR_PX = 18;
const LANE_GAP_PX = 8;
const AXIS_PX = 26;
// At most one tick label per this many pixels.
const TICK_SPACING_PX = 70;

let selectedFile = null;
let selectedDurationS = null;  // from the browser's own decoding, for the estimate
let running = null;  // AbortController of the request in flight
let last = null;  // {result, device, file, settings, roundTripS, speakers}
let audioUrl = null;  // the player's source: the file of the shown result
let secondsPerAudioSecond = null;  // server time per second of audio, last run
let playing = false;
// The geometry of the drawn timeline, for the cursor and for clicks.
let geometry = null;

function countMode() {
  return document.querySelector('input[name="diarize-count"]:checked').value;
}

// The options as the server's parameter names, text as typed.
function settingsFromInputs() {
  const settings = { clustering: $('diarize-clustering').value };
  const mode = countMode();
  if (mode === 'exact') settings.num_speakers = $('diarize-num').value.trim();
  if (mode === 'range') {
    settings.min_speakers = $('diarize-min').value.trim();
    settings.max_speakers = $('diarize-max').value.trim();
  }
  const threshold = $('diarize-threshold').value.trim();
  if (settings.clustering === 'ahc' && threshold !== '') settings.threshold = threshold;
  if ($('diarize-name-speakers').checked) {
    settings.name_speakers = 'true';
    const above = $('diarize-name-threshold').value.trim();
    if (above !== '') settings.speaker_threshold = above;
  }
  return settings;
}

// Results on screen no longer match the inputs: say so, and keep the
// downloads from exporting them as if they did.
function markStale() {
  if (!last) return;
  $('diarize-results').classList.add('is-stale');
  show($('diarize-stale'));
  $('diarize-download-rttm').disabled = true;
  $('diarize-download-json').disabled = true;
}

function clearResults() {
  last = null;
  geometry = null;
  const audio = $('diarize-audio');
  audio.pause();
  audio.removeAttribute('src');
  audio.load();
  if (audioUrl) URL.revokeObjectURL(audioUrl);
  audioUrl = null;
  show($('diarize-results'), false);
}

function updateOptions() {
  const mode = countMode();
  show($('diarize-exact'), mode === 'exact');
  show($('diarize-range'), mode === 'range');
  $('diarize-threshold').disabled = $('diarize-clustering').value !== 'ahc';
}

function updateEstimate() {
  const estimate = $('diarize-estimate');
  if (!selectedFile || !selectedDurationS) {
    show(estimate, false);
    return null;
  }
  const estimateS = secondsPerAudioSecond ? selectedDurationS * secondsPerAudioSecond : null;
  estimate.textContent =
    `${formatDuration(selectedDurationS)} of audio` +
    (estimateS ? ` (about ${formatDuration(estimateS)} on this server, judging by the last run).` : '.');
  show(estimate);
  return estimateS;
}

function selectFile(file) {
  selectedFile = file;
  selectedDurationS = null;
  // Forgotten by the input, so that choosing the same file again (after a
  // recording, say) is a change the page hears.
  $('diarize-file').value = '';
  $('diarize-file-name').textContent = `${file.name} · ${formatBytes(file.size)}`;
  $('diarize-btn').disabled = Boolean(running);
  showError($('diarize-error'), null);
  markStale();
  updateEstimate();
  // The browser's own idea of the duration, for the time estimate.
  const url = URL.createObjectURL(file);
  const probe = new Audio();
  probe.preload = 'metadata';
  const done = () => URL.revokeObjectURL(url);
  probe.addEventListener('error', done, { once: true });
  probe.addEventListener(
    'loadedmetadata',
    () => {
      if (selectedFile === file && Number.isFinite(probe.duration)) {
        selectedDurationS = probe.duration;
        updateEstimate();
      }
      done();
    },
    { once: true },
  );
  probe.src = url;
}

// Speaking time and turns per label, in the server's speaker order (first
// speech first), from the segments shown.
export function speakingTimes(result) {
  const byLabel = new Map();
  for (const speaker of result.speakers || []) byLabel.set(speaker.label, { label: speaker.label, seconds: 0, turns: 0 });
  for (const segment of result.segments) {
    if (!byLabel.has(segment.speaker)) byLabel.set(segment.speaker, { label: segment.speaker, seconds: 0, turns: 0 });
    const entry = byLabel.get(segment.speaker);
    entry.seconds += segment.end_s - segment.start_s;
    entry.turns += 1;
  }
  const speakers = [...byLabel.values()];
  const total = speakers.reduce((sum, speaker) => sum + speaker.seconds, 0);
  speakers.forEach((speaker, index) => {
    speaker.share = total > 0 ? speaker.seconds / total : 0;
    speaker.colour = index % PALETTE_SIZE;
  });
  return { speakers, total };
}

// 0:05, 1:30, 1:02:03 for axes and tables of long files; "12.5 s" style
// below a minute.
function clock(seconds, decimals = 1) {
  // Rounded first, so that 59.996 s reads 1:00.00, not 0:60.00.
  const rounded = Number(seconds.toFixed(decimals));
  if (rounded < 60) return `${rounded.toFixed(decimals)} s`;
  const whole = Math.floor(rounded);
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = rounded - h * 3600 - m * 60;
  const sText = s.toFixed(decimals).padStart(decimals ? 3 + decimals : 2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${sText}` : `${m}:${sText}`;
}

// A tick step of 1, 2 or 5 times a power of ten (or whole minutes) that
// keeps labels TICK_SPACING_PX apart.
function tickStep(durationS, plotPx) {
  const wanted = (durationS * TICK_SPACING_PX) / Math.max(plotPx, 1);
  const steps = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200];
  return steps.find((step) => step >= wanted) ?? Math.ceil(wanted / 3600) * 3600;
}

function svgElement(name, attributes = {}, parent = null) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (parent) parent.append(element);
  return element;
}

function drawTimeline() {
  const svg = $('diarize-timeline');
  const box = $('diarize-timeline-box');
  if (!last || !last.result.segments.length || box.hidden) return;
  const width = Math.round(box.clientWidth);
  if (width <= 0) return;  // hidden tab: drawn when shown
  const { result, speakers } = last;
  const duration = Math.max(result.duration_s, ...result.segments.map((segment) => segment.end_s), 1e-3);
  const plotPx = width - 2 * SIDE_PX;
  const laneTop = (index) => index * (LABEL_PX + BAR_PX + LANE_GAP_PX);
  const lanesPx = laneTop(speakers.length);
  const height = lanesPx + AXIS_PX;
  const x = (seconds) => SIDE_PX + (Math.min(Math.max(seconds, 0), duration) / duration) * plotPx;
  geometry = { left: SIDE_PX, plotPx, duration, width, result };

  svg.replaceChildren();
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.dataset.duration = String(duration);
  const laneOf = new Map();
  speakers.forEach((speaker, index) => {
    const top = laneTop(index);
    const lane = svgElement('g', { class: 'lane', 'data-speaker': speaker.label }, svg);
    const label = svgElement('text', { x: SIDE_PX, y: top + LABEL_PX - 5, class: 'lane-label' }, lane);
    label.textContent = `${speaker.label} · ${formatDuration(speaker.seconds)} (${(speaker.share * 100).toFixed(0)} %)`;
    svgElement('rect', { x: SIDE_PX, y: top + LABEL_PX, width: plotPx, height: BAR_PX, class: 'lane-track' }, lane);
    laneOf.set(speaker.label, { lane, top, colour: speaker.colour });
  });
  result.segments.forEach((segment, index) => {
    const { lane, top, colour } = laneOf.get(segment.speaker);
    const left = x(segment.start_s);
    const rect = svgElement(
      'rect',
      {
        x: left,
        y: top + LABEL_PX,
        width: Math.max(1, x(segment.end_s) - left),
        height: BAR_PX,
        class: `segment speaker-${colour}`,
        'data-index': index,
        'data-start': segment.start_s,
        'data-end': segment.end_s,
        'data-speaker': segment.speaker,
      },
      lane,
    );
    const title = svgElement('title', {}, rect);
    title.textContent = `${segment.speaker}: ${clock(segment.start_s, 2)} – ${clock(segment.end_s, 2)}`;
  });

  const axis = svgElement('g', { class: 'axis', 'aria-hidden': 'true' }, svg);
  svgElement('line', { x1: SIDE_PX, x2: SIDE_PX + plotPx, y1: lanesPx, y2: lanesPx }, axis);
  const step = tickStep(duration, plotPx);
  for (let t = 0; t <= duration + 1e-9; t += step) {
    const at = x(t);
    svgElement('line', { x1: at, x2: at, y1: lanesPx, y2: lanesPx + 5 }, axis);
    const label = svgElement('text', { x: at, y: lanesPx + 18, 'text-anchor': t === 0 ? 'start' : 'middle' }, axis);
    // Whole steps need no decimals; 0.1 to 0.5 s steps need one.
    label.textContent = clock(t, step < 1 ? 1 : 0);
    // The last label must not run past the right edge.
    if (at + 30 > width) label.setAttribute('text-anchor', 'end');
  }

  svgElement('line', { class: 'cursor', y1: 0, y2: lanesPx, x1: SIDE_PX, x2: SIDE_PX }, svg);
  moveCursor();
}

// The cursor follows the player; the turn being heard is marked in the
// table.
function moveCursor() {
  const audio = $('diarize-audio');
  const seconds = audio.currentTime || 0;
  const cursor = $('diarize-timeline').querySelector('.cursor');
  if (cursor && geometry) {
    const at = geometry.left + (Math.min(seconds, geometry.duration) / geometry.duration) * geometry.plotPx;
    cursor.setAttribute('x1', at);
    cursor.setAttribute('x2', at);
  }
  if (!last) return;
  const rows = $('diarize-segments').tBodies[0].rows;
  last.result.segments.forEach((segment, index) => {
    const current = seconds >= segment.start_s && seconds < segment.end_s;
    rows[index]?.classList.toggle('current', current);
  });
}

function followPlayback() {
  if (!playing) return;
  moveCursor();
  requestAnimationFrame(followPlayback);
}

function seek(seconds, play = false) {
  const audio = $('diarize-audio');
  audio.currentTime = Math.max(0, seconds);
  moveCursor();
  if (play) audio.play().catch(() => {});
}

function timelineClick(event) {
  if (!geometry) return;
  const bounds = $('diarize-timeline').getBoundingClientRect();
  // The drawing may be scaled (viewBox) until it is redrawn at a new width.
  const x = ((event.clientX - bounds.left) * geometry.width) / Math.max(bounds.width, 1);
  const fraction = (x - geometry.left) / geometry.plotPx;
  seek(Math.min(Math.max(fraction, 0), 1) * geometry.duration);
}

function describeTimeline() {
  const { result, speakers } = last;
  const parts = speakers.map(
    (speaker) =>
      `${speaker.label} ${formatDuration(speaker.seconds)} in ${speaker.turns} turn${speaker.turns === 1 ? '' : 's'}`,
  );
  return (
    `Timeline of ${speakers.length} speaker${speakers.length === 1 ? '' : 's'} over ${formatDuration(result.duration_s)}: ` +
    `${parts.join(', ')}. Every turn is listed in the table of turns.`
  );
}

function renderSpeakers() {
  const body = $('diarize-speakers').tBodies[0];
  body.replaceChildren();
  for (const speaker of last.speakers) {
    const row = body.insertRow();
    row.dataset.speaker = speaker.label;
    const name = document.createElement('th');
    name.scope = 'row';
    const swatch = document.createElement('span');
    swatch.className = `swatch speaker-${speaker.colour}`;
    swatch.setAttribute('aria-hidden', 'true');
    name.append(swatch, speaker.label);
    row.append(name);
    const time = row.insertCell();
    time.dataset.seconds = String(speaker.seconds);
    time.textContent = formatDuration(speaker.seconds);
    const share = row.insertCell();
    share.dataset.share = String(speaker.share);
    share.textContent = `${(speaker.share * 100).toFixed(1)} %`;
    const turns = row.insertCell();
    turns.textContent = String(speaker.turns);
  }
}

function renderSegments() {
  const body = $('diarize-segments').tBodies[0];
  body.replaceChildren();
  const colourOf = new Map(last.speakers.map((speaker) => [speaker.label, speaker.colour]));
  last.result.segments.forEach((segment) => {
    const row = body.insertRow();
    row.dataset.start = String(segment.start_s);
    row.dataset.end = String(segment.end_s);
    row.dataset.speaker = segment.speaker;
    row.insertCell().textContent = clock(segment.start_s, 2);
    row.insertCell().textContent = clock(segment.end_s, 2);
    const speaker = row.insertCell();
    speaker.className = 'who';
    const swatch = document.createElement('span');
    swatch.className = `swatch speaker-${colourOf.get(segment.speaker)}`;
    swatch.setAttribute('aria-hidden', 'true');
    speaker.append(swatch, segment.speaker);
    const play = document.createElement('button');
    play.type = 'button';
    play.className = 'play';
    play.textContent = '▶';
    play.setAttribute('aria-label', `Play ${segment.speaker} from ${clock(segment.start_s, 2)}`);
    play.addEventListener('click', () => seek(segment.start_s, true));
    row.insertCell().append(play);
  });
}

function render(response, file, settings, roundTripS) {
  const result = response.results[0];
  const { speakers, total } = speakingTimes(result);
  last = { result, device: response.device, file, settings, roundTripS, speakers };
  const results = $('diarize-results');
  results.classList.remove('is-stale');
  show($('diarize-stale'), false);
  $('diarize-download-rttm').disabled = false;
  $('diarize-download-json').disabled = false;
  show(results);

  const audio = $('diarize-audio');
  audio.pause();
  if (audioUrl) URL.revokeObjectURL(audioUrl);
  audioUrl = URL.createObjectURL(file);
  audio.src = audioUrl;

  const empty = result.segments.length === 0;
  show($('diarize-empty'), empty);
  show($('diarize-timeline-box'), !empty);
  show($('diarize-speakers-card'), !empty);
  show($('diarize-segments-card'), !empty);
  $('diarize-title').textContent = `Who spoke when in ${result.path}`;
  const timing = `${formatDuration(result.processing_s)} on ${response.device}, ${formatDuration(roundTripS)} round trip`;
  if (empty) {
    $('diarize-empty').textContent =
      `No speech found in ${result.path} (${formatDuration(result.duration_s)} of audio), so there is nobody to tell apart. ` +
      'This is an empty result, not an error: the RTTM download is empty too.';
    $('diarize-summary').textContent = timing;
    geometry = null;
    $('diarize-timeline').replaceChildren();
    announce(`Done: no speech found in ${result.path}`);
    return;
  }
  $('diarize-summary').textContent =
    `${speakers.length} speaker${speakers.length === 1 ? '' : 's'}, ${result.segments.length} turn${result.segments.length === 1 ? '' : 's'}, ` +
    `${formatDuration(total)} of speech in ${formatDuration(result.duration_s)} of audio ` +
    `(${result.clustering === 'spectral' ? 'spectral' : 'agglomerative'} clustering) · ${timing}`;
  renderSpeakers();
  renderSegments();
  $('diarize-timeline').setAttribute('aria-label', describeTimeline());
  drawTimeline();
  announce(`Done: ${speakers.length} speakers, ${result.segments.length} turns in ${result.path}`);
}

async function diarize() {
  const error = $('diarize-error');
  showError(error, null);
  if (!selectedFile) return;
  const file = selectedFile;
  const settings = settingsFromInputs();
  const form = new FormData();
  form.append('file', file, file.name);
  for (const [name, value] of Object.entries(settings)) form.append(name, value);
  const progress = new Progress($('diarize-progress'), $('diarize-progress-bar'), $('diarize-progress-text'));
  const button = $('diarize-btn');
  const cancel = $('diarize-cancel');
  button.disabled = true;
  running = new AbortController();
  show(cancel);
  cancel.disabled = false;
  progress.start(updateEstimate());
  try {
    checkUploadSize([file]);
    const response = await postForm('/api/diarize', form, (fraction) => progress.update(fraction), running.signal);
    const roundTrip = progress.stop();
    const result = response.results[0];
    if (result.duration_s > 0) secondsPerAudioSecond = result.processing_s / result.duration_s;
    render(response, file, settings, roundTrip);
  } catch (failure) {
    progress.stop();
    // Results of other inputs would read as this run's: take them away.
    clearResults();
    showRunFailure(error, failure);
    announce(error.textContent);
  } finally {
    running = null;
    show(cancel, false);
    button.disabled = !selectedFile;
  }
}

export function initDiarize() {
  wireDropZone($('diarize-drop'), $('diarize-file'), ([file]) => selectFile(file));
  wireRecorder($('diarize-record-btn'), $('diarize-record-state'), selectFile, (error) =>
    showError($('diarize-error'), error),
  );
  for (const radio of document.querySelectorAll('input[name="diarize-count"]'))
    radio.addEventListener('change', () => {
      updateOptions();
      markStale();
    });
  for (const id of ['diarize-num', 'diarize-min', 'diarize-max', 'diarize-threshold'])
    $(id).addEventListener('input', markStale);
  $('diarize-clustering').addEventListener('change', () => {
    updateOptions();
    markStale();
  });
  $('diarize-name-speakers').addEventListener('change', () => {
    $('diarize-name-threshold').disabled = !$('diarize-name-speakers').checked;
    markStale();
  });
  $('diarize-name-threshold').disabled = true;
  $('diarize-name-threshold').addEventListener('input', markStale);
  updateOptions();
  $('diarize-btn').addEventListener('click', diarize);
  $('diarize-cancel').addEventListener('click', () => {
    $('diarize-cancel').disabled = true;
    running?.abort();
  });

  const audio = $('diarize-audio');
  audio.addEventListener('play', () => {
    playing = true;
    followPlayback();
  });
  for (const name of ['pause', 'ended', 'emptied'])
    audio.addEventListener(name, () => {
      playing = false;
      moveCursor();
    });
  for (const name of ['seeked', 'timeupdate']) audio.addEventListener(name, moveCursor);
  $('diarize-timeline').addEventListener('click', timelineClick);
  // Redrawn at the box's width: lanes scale, text does not.
  new ResizeObserver(() => {
    const width = Math.round($('diarize-timeline-box').clientWidth);
    if (last && (geometry?.result !== last.result || geometry.width !== width)) drawTimeline();
  }).observe($('diarize-timeline-box'));

  $('diarize-download-rttm').addEventListener('click', () => {
    if (!last) return;
    // The server writes the RTTM as `voxprint diarize` does: SPEAKER lines,
    // the file's name without its extension as the file id.
    download(`${baseName(last.result.path)}.rttm`, last.result.rttm || '', 'text/plain');
  });
  $('diarize-download-json').addEventListener('click', () => {
    if (!last) return;
    // `voxprint diarize --format json`'s result, with where it came from.
    const { rttm, ...result } = last.result;
    const provenance = { ...modelProvenance(), device: last.device, settings: last.settings };
    download(
      `${baseName(result.path)}.diarization.json`,
      JSON.stringify(withProvenance(result, provenance), null, 2),
      'application/json',
    );
  });
}

// Redraws what depends on layout once the tab is visible again.
export function diarizeShown() {
  drawTimeline();
}

// The server's limits, once known.
export function showDiarizeLimits() {
  $('diarize-limits').textContent = limitsText();
}
