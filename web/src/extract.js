// Tab 1: extract embeddings from files or a microphone recording.
import { checkUploadSize, formatBytes, formatDuration, limitsText, postForm } from './api.js';
import { embeddingChart, setEmbedding, setSimilarities, similarityChart } from './charts.js';
import { $, announce, copyText, fillInfo, Progress, show, showError, showRunFailure, showWarnings, wireDropZone } from './dom.js';
import { baseName, cosine, download, encodeCsv, encodeNpy, friendlyFormat, withProvenance } from './formats.js';
import { drawHeatmap } from './heatmap.js';
import { wireRecorder } from './recorder.js';
import { modelProvenance } from './model.js';

const TABLE_DIMS = 16;
// Steps finer than duration / DENSE_RATIO get a warning before they run.
const DENSE_RATIO = 10;

let selectedFiles = [];
let previewUrl = null;
let knownDurationS = null;  // of the first selected file, from the browser
let lastResponse = null;
let lastSettings = null;
let lastResult = null;
let barChart = null;
let lineChart = null;
let running = null;  // AbortController of the request in flight
// Server seconds per second of network input, from the last run (estimates).
let secondsPerInputSecond = null;

function selectFiles(files) {
  selectedFiles = files;
  const total = files.reduce((sum, file) => sum + file.size, 0);
  $('extract-file-name').textContent =
    files.length === 1 ? `${files[0].name} · ${formatBytes(files[0].size)}` : `${files.length} files · ${formatBytes(total)}: ${files.map((file) => file.name).join(', ')}`;
  $('extract-btn').disabled = false;
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = URL.createObjectURL(files[0]);
  knownDurationS = null;
  const preview = $('extract-preview');
  preview.src = previewUrl;
  show(preview);
  showError($('extract-error'), null);
  markStale();
  updateEstimate();
}

function mode() {
  return document.querySelector('input[name="mode"]:checked').value;
}

function numberOf(id) {
  const text = $(id).value.trim();
  return text === '' ? null : Number(text);
}

// Results on screen no longer match the inputs: say so, and stop the
// downloads from exporting them as if they did.
function markStale() {
  if (!lastResult) return;
  $('extract-results').classList.add('is-stale');
  show($('extract-stale'));
  for (const id of ['download-json', 'download-npy', 'download-csv', 'copy-embedding']) $(id).disabled = true;
}

function clearResults() {
  lastResponse = null;
  lastResult = null;
  show($('extract-results'), false);
}

// Windows the settings ask for over `seconds` of audio (pyannote's count:
// complete windows, plus a zero-padded last one when the audio does not end
// on a window).
export function windowCount(seconds, duration, step) {
  if (seconds <= duration) return 1;
  const complete = Math.floor((seconds - duration) / step + 1e-9) + 1;
  const covered = (complete - 1) * step + duration;
  return complete + (seconds - covered > 1e-9 ? 1 : 0);
}

// Before running: how many windows, how long, and a warning when dense.
function updateEstimate() {
  const estimate = $('window-estimate');
  const dense = $('dense-warning');
  show(estimate, false);
  show(dense, false);
  const duration = numberOf('duration');
  const step = numberOf('step');
  if (mode() !== 'sliding') {
    if (!knownDurationS || selectedFiles.length !== 1) return null;
    const seconds = Math.max(0, Math.min(numberOf('end') ?? knownDurationS, knownDurationS) - (numberOf('start') ?? 0));
    const estimateS = secondsPerInputSecond ? seconds * secondsPerInputSecond : null;
    estimate.textContent = `${formatDuration(seconds)} of audio${estimateS ? ` (about ${formatDuration(estimateS)} on this server)` : ''}.`;
    show(estimate);
    return estimateS;
  }
  if (!(duration > 0) || !(step > 0)) return null;
  const ratio = duration / step;
  if (ratio > DENSE_RATIO) {
    dense.textContent =
      `⚠ A step of ${step} s with ${duration} s windows is dense: every second of audio goes through the network ` +
      `${Math.round(ratio)} times (pyannote's default is ${DENSE_RATIO}× at most). Expect a long wait; a larger step is much faster.`;
    show(dense);
  }
  if (!knownDurationS || selectedFiles.length !== 1) return null;
  const from = numberOf('start') ?? 0;
  const to = Math.min(numberOf('end') ?? knownDurationS, knownDurationS);
  const seconds = Math.max(0, to - from);
  const windows = windowCount(seconds, duration, step);
  const inputS = windows * duration;
  const estimateS = secondsPerInputSecond ? inputS * secondsPerInputSecond : null;
  estimate.textContent =
    `${windows} window${windows === 1 ? '' : 's'} over ${formatDuration(seconds)} of audio ` +
    `(${formatDuration(inputS)} of network input${estimateS ? `, about ${formatDuration(estimateS)} on this server` : ''}).`;
  show(estimate);
  return estimateS;
}

function renderTable(result) {
  const table = $('embedding-table');
  table.replaceChildren();
  const head = table.createTHead().insertRow();
  const corner = document.createElement('th');
  corner.textContent = result.mode === 'sliding' ? 'window' : '';
  head.append(corner);
  const rows = result.mode === 'sliding' ? result.windows : [{ embedding: result.embedding }];
  const dims = Math.min(TABLE_DIMS, rows[0].embedding.length);
  for (let d = 0; d < dims; d++) {
    const cell = document.createElement('th');
    cell.textContent = `dim ${d}`;
    head.append(cell);
  }
  const body = table.createTBody();
  rows.forEach((row, r) => {
    const line = body.insertRow();
    line.dataset.row = r;
    const label = document.createElement('th');
    label.scope = 'row';
    label.textContent = result.mode === 'sliding' ? windowLabel(row) : 'value';
    if (row.padded) {
      line.classList.add('padded');
      line.dataset.padded = 'true';
    }
    line.append(label);
    for (let d = 0; d < dims; d++) {
      const cell = line.insertCell();
      const value = row.embedding[d];
      cell.dataset.dim = d;
      // Full precision for copy-paste (and tests); four decimals to read.
      cell.dataset.value = value === null ? 'NaN' : String(value);
      cell.title = cell.dataset.value;
      cell.textContent = value === null ? 'NaN' : value.toFixed(4);
    }
  });
}

// "28.00–30.00 s (zero-padded to 31.00 s)": labels stop at the audio's end.
function windowLabel(window) {
  const end = window.padded ? window.covered_end_s : window.end_s;
  const text = `${window.start_s.toFixed(2)}–${end.toFixed(2)} s`;
  return window.padded ? `${text} (zero-padded to ${window.end_s.toFixed(2)} s)` : text;
}

function describeValues(values) {
  const finite = values.filter((value) => value !== null);
  const low = Math.min(...finite);
  const high = Math.max(...finite);
  const norm = Math.sqrt(finite.reduce((sum, value) => sum + value * value, 0));
  return `${values.length} values from ${low.toFixed(3)} to ${high.toFixed(3)}, norm ${norm.toFixed(2)}`;
}

function showWindow(result, index) {
  const chunk = result.windows[index];
  setEmbedding(barChart, chunk.embedding, chunk.padded);
  $('window-label').textContent = `#${index + 1} of ${result.windows.length}: ${windowLabel(chunk)}`;
  $('embedding-title').textContent = `Embedding of window ${index + 1} (${chunk.embedding.length} values)`;
  $('embedding-chart').setAttribute(
    'aria-label',
    `Bar chart of window ${index + 1} (${windowLabel(chunk)}): ${describeValues(chunk.embedding)}`,
  );
}

function showResult(index) {
  const result = lastResponse.results[index];
  const file = selectedFilesAtRun[index];
  lastResult = result;
  const sliding = result.mode === 'sliding';
  const dims = sliding ? (result.windows[0]?.embedding.length ?? 0) : result.embedding.length;
  const padded = sliding ? result.windows.filter((window) => window.padded).length : 0;
  fillInfo($('extract-info'), [
    ['File', result.path, 'info-file'],
    ['Size', file ? formatBytes(file.size) : '–'],
    ['Duration', formatDuration(result.duration_s), 'info-duration'],
    ['Sample rate', `${result.sample_rate_hz} Hz`, 'info-rate'],
    ['Channels', String(result.channels), 'info-channels'],
    ['Format', friendlyFormat(result.container, result.codec), 'info-format'],
    ['Mode', sliding ? `sliding windows of ${lastSettings.duration} s every ${lastSettings.step} s` : 'whole file'],
    [
      'Windows',
      sliding ? `${result.windows.length}${padded ? ` (the last zero-padded past the end of the audio)` : ''}` : '1 (whole file)',
      'info-windows',
    ],
    ['Dimensions', String(dims)],
    ['Processing', `${formatDuration(result.processing_s)} on the server, ${formatDuration(lastRoundTripS)} round trip`, 'info-time'],
    ['Device', lastResponse.device, 'info-device'],
  ]);
  const warnings = showWarnings($('extract-warnings'), [['', result.warnings]]);

  barChart ??= embeddingChart($('embedding-chart'));
  show($('window-picker'), sliding);
  show($('sliding-cards'), sliding);
  if (sliding) {
    const picker = $('window-index');
    picker.max = String(Math.max(0, result.windows.length - 1));
    picker.value = '0';
    showWindow(result, 0);
    drawSliding(result);
    lineChart ??= similarityChart($('similarity-chart'));
    const labels = [];
    const values = [];
    let paddedFrom = null;
    for (let i = 1; i < result.windows.length; i++) {
      labels.push(result.windows[i].start_s.toFixed(1));
      values.push(cosine(result.windows[i - 1].embedding, result.windows[i].embedding));
      if (result.windows[i].padded && paddedFrom === null) paddedFrom = i - 1;
    }
    setSimilarities(lineChart, labels, values, paddedFrom);
    const lowest = values.length ? Math.min(...values) : null;
    $('similarity-chart').setAttribute(
      'aria-label',
      values.length
        ? `Line chart of the cosine similarity of ${values.length} pairs of consecutive windows: from ${lowest.toFixed(3)} to ${Math.max(...values).toFixed(3)}` +
            (paddedFrom !== null ? '; the last pair involves the zero-padded window' : '')
        : 'Only one window: no consecutive pairs',
    );
  } else {
    $('embedding-title').textContent = `Embedding (${dims} values)`;
    setEmbedding(barChart, result.embedding);
    $('embedding-chart').setAttribute('aria-label', `Bar chart of the embedding: ${describeValues(result.embedding)}`);
  }
  renderTable(result);
  return warnings;
}

function drawSliding(result) {
  const scale = drawHeatmap($('heatmap'), result.windows);
  $('legend-min').textContent = `≤ −${scale.toFixed(2)}`;
  $('legend-max').textContent = `≥ ${scale.toFixed(2)}`;
  const padded = result.windows.filter((window) => window.padded).length;
  $('heatmap').setAttribute(
    'aria-label',
    `Heat map of ${result.windows.length} windows × ${result.windows[0].embedding.length} dimensions, ` +
      `${result.windows[0].start_s.toFixed(1)} to ${(result.windows.at(-1).covered_end_s ?? result.windows.at(-1).end_s).toFixed(1)} s; ` +
      `colours saturate at ±${scale.toFixed(2)}` +
      (padded ? '; the last column, hatched, is a zero-padded window' : ''),
  );
}

let selectedFilesAtRun = [];
let lastRoundTripS = 0;

function render(response, roundTripS) {
  lastResponse = response;
  lastRoundTripS = roundTripS;
  const results = $('extract-results');
  results.classList.remove('is-stale');
  show($('extract-stale'), false);
  for (const id of ['download-json', 'download-npy', 'download-csv', 'copy-embedding']) $(id).disabled = false;
  show(results);
  const picker = $('result-picker');
  picker.replaceChildren(
    ...response.results.map((result, i) => {
      const option = document.createElement('option');
      option.value = String(i);
      option.textContent = result.path;
      return option;
    }),
  );
  show($('batch-card'), response.results.length > 1);
  const warnings = showResult(0);
  const first = response.results[0];
  announce(
    `Done: ${response.results.length === 1 ? first.path : `${response.results.length} files`}` +
      (first.mode === 'sliding' ? `, ${first.windows.length} windows` : '') +
      (warnings ? `, with ${warnings} warning${warnings > 1 ? 's' : ''}` : ''),
  );
}

async function extract() {
  const error = $('extract-error');
  showError(error, null);
  if (!selectedFiles.length) return;
  const form = new FormData();
  for (const file of selectedFiles) form.append('file', file, file.name);
  const windowMode = mode();
  const settings = { window: windowMode };
  form.append('window', windowMode);
  if (windowMode === 'sliding') {
    settings.duration = $('duration').value.trim();
    settings.step = $('step').value.trim();
    settings.drop_partial = $('drop-partial').checked;
    form.append('duration', settings.duration);
    form.append('step', settings.step);
    if (settings.drop_partial) form.append('drop_partial', 'true');
  }
  for (const name of ['start', 'end']) {
    const value = $(name).value.trim();
    if (value !== '') {
      form.append(name, value);
      settings[name] = value;
    }
  }
  const estimateS = updateEstimate();
  const progress = new Progress($('extract-progress'), $('extract-progress-bar'), $('extract-progress-text'));
  const button = $('extract-btn');
  const cancel = $('extract-cancel');
  button.disabled = true;
  running = new AbortController();
  show(cancel);
  cancel.disabled = false;
  progress.start(estimateS);
  const files = selectedFiles;
  try {
    checkUploadSize(files);
    const response = await postForm('/api/embed', form, (fraction) => progress.update(fraction), running.signal);
    selectedFilesAtRun = files;
    lastSettings = settings;
    const roundTrip = progress.stop();
    const first = response.results[0];
    const inputS = first.mode === 'sliding' ? first.windows.length * Number(settings.duration) : first.duration_s;
    if (inputS > 0) secondsPerInputSecond = first.processing_s / inputS;
    render(response, roundTrip);
  } catch (failure) {
    progress.stop();
    // Results of earlier inputs would read as this run's: take them away.
    clearResults();
    showRunFailure(error, failure);
    announce(error.textContent);
  } finally {
    running = null;
    show(cancel, false);
    button.disabled = false;
  }
}

function currentEmbedding() {
  if (!lastResult) return [];
  if (lastResult.mode === 'sliding') return lastResult.windows[Number($('window-index').value)].embedding;
  return lastResult.embedding;
}

export function initExtract() {
  wireDropZone($('extract-drop'), $('extract-file'), selectFiles);
  wireRecorder($('record-btn'), $('record-state'), (file) => selectFiles([file]), (error) =>
    showError($('extract-error'), error),
  );
  for (const radio of document.querySelectorAll('input[name="mode"]'))
    radio.addEventListener('change', () => {
      show($('sliding-options'), mode() === 'sliding');
      markStale();
      updateEstimate();
    });
  for (const id of ['duration', 'step', 'start', 'end', 'drop-partial'])
    $(id).addEventListener('input', () => {
      markStale();
      updateEstimate();
    });
  $('extract-preview').addEventListener('loadedmetadata', (event) => {
    const seconds = event.target.duration;
    knownDurationS = Number.isFinite(seconds) ? seconds : null;
    updateEstimate();
  });
  $('extract-btn').addEventListener('click', extract);
  $('extract-cancel').addEventListener('click', () => {
    $('extract-cancel').disabled = true;
    running?.abort();
  });
  $('result-picker').addEventListener('change', (event) => showResult(Number(event.target.value)));
  $('window-index').addEventListener('input', (event) => {
    if (lastResult && lastResult.mode === 'sliding') showWindow(lastResult, Number(event.target.value));
  });
  const provenance = () => ({ ...modelProvenance(), device: lastResponse?.device, settings: lastSettings });
  $('download-json').addEventListener('click', () => {
    if (lastResult)
      download(
        `${baseName(lastResult.path)}.embedding.json`,
        JSON.stringify(withProvenance(lastResult, provenance()), null, 2),
        'application/json',
      );
  });
  $('download-npy').addEventListener('click', () => {
    if (lastResult) download(`${baseName(lastResult.path)}.embedding.npy`, encodeNpy(lastResult), 'application/octet-stream');
  });
  $('download-csv').addEventListener('click', () => {
    if (lastResult) download(`${baseName(lastResult.path)}.embedding.csv`, encodeCsv(lastResult), 'text/csv');
  });
  $('copy-embedding').addEventListener('click', (event) => copyText(event.target, JSON.stringify(currentEmbedding())));
  window.addEventListener('resize', () => {
    if (lastResult && lastResult.mode === 'sliding' && !$('panel-extract').hidden) drawSliding(lastResult);
  });
}

// Redraws what depends on layout once the tab is visible again.
export function extractShown() {
  if (lastResult && lastResult.mode === 'sliding') drawSliding(lastResult);
}

// The server's limits, once known (model.js).
export function showLimits() {
  $('limits').textContent = limitsText(' (all files together)');
}
