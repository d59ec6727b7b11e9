// Tab 1: extract an embedding from a file or a microphone recording.
import { checkUploadSize, formatBytes, postForm } from './api.js';
import { embeddingChart, setEmbedding, setSimilarities, similarityChart } from './charts.js';
import { $, fillInfo, Progress, show, showError, wireDropZone } from './dom.js';
import { baseName, cosine, download, encodeCsv, encodeNpy } from './formats.js';
import { drawHeatmap } from './heatmap.js';

const TABLE_DIMS = 16;

let selectedFile = null;
let previewUrl = null;
let lastResult = null;
let barChart = null;
let lineChart = null;

function selectFile(file) {
  selectedFile = file;
  $('extract-file-name').textContent = `${file.name} · ${formatBytes(file.size)}`;
  $('extract-btn').disabled = false;
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = URL.createObjectURL(file);
  const preview = $('extract-preview');
  preview.src = previewUrl;
  show(preview);
  showError($('extract-error'), null);
}

function mode() {
  return document.querySelector('input[name="mode"]:checked').value;
}

// Microphone -> MediaRecorder -> a WebM (or whatever the browser records)
// file, handled like a picked one.
function wireRecorder() {
  const button = $('record-btn');
  const state = $('record-state');
  let recorder = null;
  let timer = null;

  button.addEventListener('click', async () => {
    if (recorder) {
      recorder.stop();
      return;
    }
    if (!navigator.mediaDevices || !window.MediaRecorder) {
      showError(
        $('extract-error'),
        new Error('Recording needs a browser with MediaRecorder and a secure page (https or localhost).'),
      );
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (error) {
      showError($('extract-error'), new Error(`Microphone not available: ${error.message || error.name}`));
      return;
    }
    const type = ['audio/webm;codecs=opus', 'audio/webm', 'audio/ogg;codecs=opus', 'audio/mp4'].find((t) =>
      MediaRecorder.isTypeSupported(t),
    );
    recorder = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
    const chunks = [];
    recorder.ondataavailable = (event) => event.data.size && chunks.push(event.data);
    recorder.onstop = () => {
      stream.getTracks().forEach((track) => track.stop());
      clearInterval(timer);
      const mime = recorder.mimeType || 'audio/webm';
      const extension = mime.includes('ogg') ? 'ogg' : mime.includes('mp4') ? 'm4a' : 'webm';
      const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
      selectFile(new File(chunks, `recording-${stamp}.${extension}`, { type: mime.split(';')[0] }));
      recorder = null;
      button.textContent = '● Record from microphone';
      button.classList.remove('recording');
      state.textContent = '';
    };
    const begin = performance.now();
    recorder.start(250);
    button.textContent = '■ Stop recording';
    button.classList.add('recording');
    timer = setInterval(() => {
      state.textContent = `recording… ${((performance.now() - begin) / 1000).toFixed(1)} s`;
    }, 100);
  });
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
    label.textContent =
      result.mode === 'sliding' ? `${row.start_s.toFixed(2)}–${row.end_s.toFixed(2)} s` : 'value';
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

function showWindow(result, index) {
  const chunk = result.windows[index];
  setEmbedding(barChart, chunk.embedding);
  $('window-label').textContent = `#${index + 1} of ${result.windows.length}: ${chunk.start_s.toFixed(2)}–${chunk.end_s.toFixed(2)} s`;
  $('embedding-title').textContent = `Embedding of window ${index + 1} (256 values)`;
}

function render(response, file, roundTripS) {
  const result = response.results[0];
  lastResult = result;
  show($('extract-results'));
  const sliding = result.mode === 'sliding';
  const dims = sliding ? (result.windows[0]?.embedding.length ?? 0) : result.embedding.length;
  fillInfo($('extract-info'), [
    ['File', result.path, 'info-file'],
    ['Size', formatBytes(file.size)],
    ['Duration', `${result.duration_s.toFixed(3)} s`, 'info-duration'],
    ['Sample rate', `${result.sample_rate_hz} Hz`, 'info-rate'],
    ['Channels', String(result.channels), 'info-channels'],
    ['Format', `${result.container} / ${result.codec}`],
    ['Mode', sliding ? 'sliding windows' : 'whole file'],
    ['Windows', sliding ? String(result.windows.length) : '1 (whole file)', 'info-windows'],
    ['Dimensions', String(dims)],
    ['Processing', `${result.processing_s.toFixed(3)} s on the server, ${roundTripS.toFixed(2)} s round trip`, 'info-time'],
    ['Device', response.device, 'info-device'],
  ]);

  barChart ??= embeddingChart($('embedding-chart'));
  show($('window-picker'), sliding);
  show($('sliding-cards'), sliding);
  if (sliding) {
    const picker = $('window-index');
    picker.max = String(Math.max(0, result.windows.length - 1));
    picker.value = '0';
    showWindow(result, 0);
    drawHeatmap($('heatmap'), result.windows);
    lineChart ??= similarityChart($('similarity-chart'));
    const labels = [];
    const values = [];
    for (let i = 1; i < result.windows.length; i++) {
      labels.push(result.windows[i].start_s.toFixed(1));
      values.push(cosine(result.windows[i - 1].embedding, result.windows[i].embedding));
    }
    setSimilarities(lineChart, labels, values);
  } else {
    $('embedding-title').textContent = `Embedding (${dims} values)`;
    setEmbedding(barChart, result.embedding);
  }
  renderTable(result);
}

async function extract() {
  const error = $('extract-error');
  showError(error, null);
  if (!selectedFile) return;
  const form = new FormData();
  form.append('file', selectedFile, selectedFile.name);
  const windowMode = mode();
  form.append('window', windowMode);
  if (windowMode === 'sliding') {
    form.append('duration', $('duration').value.trim());
    form.append('step', $('step').value.trim());
  }
  for (const name of ['start', 'end']) {
    const value = $(name).value.trim();
    if (value !== '') form.append(name, value);
  }
  const progress = new Progress($('extract-progress'), $('extract-progress-bar'), $('extract-progress-text'));
  const button = $('extract-btn');
  button.disabled = true;
  progress.start();
  try {
    checkUploadSize([selectedFile]);
    const response = await postForm('/api/embed', form, (fraction) => progress.update(fraction));
    render(response, selectedFile, progress.stop());
  } catch (failure) {
    progress.stop();
    showError(error, failure);
  } finally {
    button.disabled = false;
  }
}

export function initExtract() {
  wireDropZone($('extract-drop'), $('extract-file'), selectFile);
  wireRecorder();
  for (const radio of document.querySelectorAll('input[name="mode"]'))
    radio.addEventListener('change', () => show($('sliding-options'), mode() === 'sliding'));
  $('extract-btn').addEventListener('click', extract);
  $('window-index').addEventListener('input', (event) => {
    if (lastResult && lastResult.mode === 'sliding') showWindow(lastResult, Number(event.target.value));
  });
  $('download-json').addEventListener('click', () => {
    if (lastResult)
      download(`${baseName(lastResult.path)}.embedding.json`, JSON.stringify(lastResult, null, 2), 'application/json');
  });
  $('download-npy').addEventListener('click', () => {
    if (lastResult) download(`${baseName(lastResult.path)}.embedding.npy`, encodeNpy(lastResult), 'application/octet-stream');
  });
  $('download-csv').addEventListener('click', () => {
    if (lastResult) download(`${baseName(lastResult.path)}.embedding.csv`, encodeCsv(lastResult), 'text/csv');
  });
  window.addEventListener('resize', () => {
    if (lastResult && lastResult.mode === 'sliding' && !$('panel-extract').hidden)
      drawHeatmap($('heatmap'), lastResult.windows);
  });
}

// Redraws what depends on layout once the tab is visible again.
export function extractShown() {
  if (lastResult && lastResult.mode === 'sliding') drawHeatmap($('heatmap'), lastResult.windows);
}
