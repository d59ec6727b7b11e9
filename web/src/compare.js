// Tab 2: are two recordings the same speaker?
import { checkUploadSize, formatBytes, postForm } from './api.js';
import { gaugeChart, setGauge } from './charts.js';
import { $, Progress, show, showError, wireDropZone } from './dom.js';

const files = { a: null, b: null };
let last = null;
let gauge = null;

function threshold() {
  return Number($('threshold').value);
}

function updateReady() {
  $('compare-btn').disabled = !(files.a && files.b);
}

// The verdict follows the slider without asking the server again: the
// server's rule is the same, similarity > threshold.
function renderVerdict() {
  if (!last) return;
  const limit = threshold();
  const same = last.similarity > limit;
  const verdict = $('verdict');
  verdict.textContent = same ? 'Same speaker' : 'Different speakers';
  verdict.className = `verdict ${same ? 'same' : 'different'}`;
  verdict.dataset.same = String(same);
  gauge ??= gaugeChart($('gauge'));
  setGauge(gauge, last.similarity, limit);
}

async function compare() {
  const error = $('compare-error');
  showError(error, null);
  const form = new FormData();
  form.append('a', files.a, files.a.name);
  form.append('b', files.b, files.b.name);
  form.append('threshold', String(threshold()));
  const progress = new Progress($('compare-progress'), $('compare-progress-bar'), $('compare-progress-text'));
  const button = $('compare-btn');
  button.disabled = true;
  progress.start();
  try {
    checkUploadSize([files.a, files.b]);
    last = await postForm('/api/compare', form, (fraction) => progress.update(fraction));
    const roundTrip = progress.stop();
    show($('compare-results'));
    const value = $('similarity-value');
    value.textContent = last.similarity.toFixed(4);
    value.dataset.value = String(last.similarity);
    $('compare-details').textContent =
      `A: ${last.a} (${last.duration_a_s.toFixed(2)} s) · B: ${last.b} (${last.duration_b_s.toFixed(2)} s) · ` +
      `${last.processing_s.toFixed(2)} s on ${last.device}, ${roundTrip.toFixed(2)} s round trip`;
    renderVerdict();
  } catch (failure) {
    progress.stop();
    showError(error, failure);
  } finally {
    updateReady();
  }
}

export function initCompare() {
  for (const side of ['a', 'b']) {
    wireDropZone($(`compare-${side}-drop`), $(`compare-${side}-file`), (file) => {
      files[side] = file;
      $(`compare-${side}-name`).textContent = `${file.name} · ${formatBytes(file.size)}`;
      showError($('compare-error'), null);
      updateReady();
    });
  }
  $('threshold').addEventListener('input', () => {
    $('threshold-value').textContent = threshold().toFixed(2);
    renderVerdict();
  });
  $('compare-btn').addEventListener('click', compare);
}
