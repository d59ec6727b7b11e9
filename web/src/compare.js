// Tab 2: are two recordings the same speaker?
import { checkUploadSize, formatBytes, formatDuration, limitsText, postForm } from './api.js';
import { gaugeChart, setGauge } from './charts.js';
import { $, announce, Progress, show, showError, showRunFailure, showWarnings, wireDropZone } from './dom.js';

export const DEFAULT_THRESHOLD = 0.7;
const files = { a: null, b: null };
let last = null;
let gauge = null;
let running = null;

function threshold() {
  return Number($('threshold').value);
}

function updateReady() {
  $('compare-btn').disabled = !(files.a && files.b) || Boolean(running);
}

// The verdict follows the threshold without asking the server again: the
// server's rule is the same, similarity > threshold.
function renderVerdict() {
  const limit = threshold();
  $('gauge-threshold').textContent = limit.toFixed(2);
  if (!last) return;
  const same = last.similarity > limit;
  const verdict = $('verdict');
  verdict.textContent = same ? 'Same speaker' : 'Different speakers';
  verdict.className = `verdict ${same ? 'same' : 'different'}`;
  verdict.dataset.same = String(same);
  $('verdict-rule').textContent = `${last.similarity.toFixed(2)} ${same ? '>' : '≤'} ${limit.toFixed(2)} → ${
    same ? 'same speaker' : 'different speakers'
  }`;
  gauge ??= gaugeChart($('gauge'));
  setGauge(gauge, last.similarity, limit);
  $('gauge').setAttribute(
    'aria-label',
    `Gauge from −1 to 1: similarity ${last.similarity.toFixed(2)}, threshold ${limit.toFixed(2)}`,
  );
}

function setThreshold(value, from) {
  const clamped = Math.min(1, Math.max(-1, value));
  if (from !== 'slider') $('threshold').value = String(clamped);
  if (from !== 'number') $('threshold-number').value = clamped.toFixed(2);
  $('threshold-value').textContent = clamped.toFixed(2);
  renderVerdict();
}

// New inputs: the old verdict does not describe them.
function clearResult() {
  last = null;
  show($('compare-results'), false);
}

async function compare() {
  const error = $('compare-error');
  showError(error, null);
  const form = new FormData();
  form.append('a', files.a, files.a.name);
  form.append('b', files.b, files.b.name);
  form.append('threshold', String(threshold()));
  const progress = new Progress($('compare-progress'), $('compare-progress-bar'), $('compare-progress-text'));
  const cancel = $('compare-cancel');
  running = new AbortController();
  updateReady();
  show(cancel);
  cancel.disabled = false;
  progress.start();
  try {
    checkUploadSize([files.a, files.b]);
    last = await postForm('/api/compare', form, (fraction) => progress.update(fraction), running.signal);
    const roundTrip = progress.stop();
    show($('compare-results'));
    const value = $('similarity-value');
    value.textContent = last.similarity.toFixed(4);
    value.dataset.value = String(last.similarity);
    $('compare-details').textContent =
      `A: ${last.a} (${formatDuration(last.duration_a_s)}) · B: ${last.b} (${formatDuration(last.duration_b_s)}) · ` +
      `${formatDuration(last.processing_s)} on ${last.device}, ${formatDuration(roundTrip)} round trip`;
    const warnings = showWarnings($('compare-warnings'), [
      [`A (${last.a})`, last.warnings_a],
      [`B (${last.b})`, last.warnings_b],
    ]);
    if (warnings) {
      const note = document.createElement('p');
      note.className = 'warning-lead';
      note.textContent = 'Treat this verdict with caution:';
      $('compare-warnings').prepend(note);
    }
    renderVerdict();
    announce(
      `Similarity ${last.similarity.toFixed(2)}: ${$('verdict').textContent}` +
        (warnings ? `, with ${warnings} warning${warnings > 1 ? 's' : ''}` : ''),
    );
  } catch (failure) {
    progress.stop();
    clearResult();
    showRunFailure(error, failure);
    announce(error.textContent);
  } finally {
    running = null;
    show(cancel, false);
    updateReady();
  }
}

export function initCompare() {
  for (const side of ['a', 'b']) {
    wireDropZone($(`compare-${side}-drop`), $(`compare-${side}-file`), ([file]) => {
      files[side] = file;
      $(`compare-${side}-name`).textContent = `${file.name} · ${formatBytes(file.size)}`;
      showError($('compare-error'), null);
      clearResult();
      updateReady();
    });
  }
  $('threshold').addEventListener('input', () => setThreshold(threshold(), 'slider'));
  $('threshold-number').addEventListener('input', (event) => {
    const value = Number(event.target.value);
    if (event.target.value.trim() !== '' && Number.isFinite(value)) setThreshold(value, 'number');
  });
  $('threshold-number').addEventListener('change', () => setThreshold(threshold(), 'slider'));
  $('threshold-reset').addEventListener('click', () => setThreshold(DEFAULT_THRESHOLD));
  $('compare-btn').addEventListener('click', compare);
  $('compare-cancel').addEventListener('click', () => {
    $('compare-cancel').disabled = true;
    running?.abort();
  });
}

export function showCompareLimits() {
  $('compare-limits').textContent = limitsText(' (both files together)');
}
