// Tab 3: what model is loaded, its license and how to cite it, and how to
// call the API.
import { formatBytes, formatDuration, getJson, serverLimits } from './api.js';
import { showCompareLimits } from './compare.js';
import { $, copyText, fillInfo, showError } from './dom.js';
import { showLimits } from './extract.js';

let loaded = false;
let current = null;

// What a JSON download records about where its numbers came from.
export function modelProvenance() {
  if (!current) return {};
  return {
    voxprint_version: current.version,
    model_file: current.file?.path,
    model_sha256: current.file?.sha256,
    model_source: current.source,
  };
}

// Float32 settings arrive as doubles (0.9700000286102295): show them short.
function short(value) {
  return typeof value === 'number' ? String(Number(value.toPrecision(7))) : String(value);
}

function yesNo(value) {
  return value ? 'yes' : 'no';
}

function curlExamples(model) {
  const origin = window.location.origin;
  const auth = model.server && model.server.auth_required ? ' -H "Authorization: Bearer $VOXPRINT_API_KEY"' : '';
  return [
    '# Whole-file embedding (256 values)',
    `curl${auth} -F file=@speech.wav ${origin}/api/embed`,
    '',
    '# Sliding windows of 3 s every 1 s, on the excerpt 5-12.5 s',
    `curl${auth} -F file=@speech.wav -F window=sliding -F duration=3 -F step=1 -F start=5 -F end=12.5 ${origin}/api/embed`,
    '',
    '# Raw body instead of multipart',
    `curl${auth} -H "Content-Type: audio/wav" --data-binary @speech.wav "${origin}/api/embed?name=speech.wav"`,
    '',
    '# Same speaker?',
    `curl${auth} -F a=@one.wav -F b=@two.wav -F threshold=0.7 ${origin}/api/compare`,
    '',
    '# Who spoke when (two speakers), as RTTM and turns',
    `curl${auth} -F file=@meeting.wav -F num_speakers=2 ${origin}/api/diarize`,
    '',
    '# Enroll a speaker, then ask who is speaking (a server started with --db)',
    `curl${auth} -F name=alice -F file=@alice1.wav -F file=@alice2.wav ${origin}/api/speakers`,
    `curl${auth} -F file=@unknown.wav -F top_k=3 ${origin}/api/identify`,
    '',
    '# This model',
    `curl${auth} ${origin}/api/model`,
  ].join('\n');
}

export function applyModel(model) {
  current = model;
  const server = model.server || {};
  serverLimits.maxUploadBytes = server.max_upload_bytes || null;
  serverLimits.maxAudioSeconds = server.max_audio_seconds || null;
  serverLimits.authRequired = Boolean(server.auth_required);
  showLimits();
  showCompareLimits();
  const file = model.file || {};
  const device = model.device || {};
  fillInfo($('model-info'), [
    ['Architecture', `${model.architecture} (${model.block} blocks ${JSON.stringify(model.blocks_per_stage)}, ${model.base_channels} base channels)`, 'model-architecture'],
    ['Parameters', Number(model.parameters).toLocaleString('en-US'), 'model-parameters'],
    ['Embedding size', String(model.embedding_dim), 'model-dim'],
    ['Pooling', model.pooling],
    ['Sample rate', `${model.sample_rate_hz} Hz`],
    ['File', `${file.path} (${file.format}, ${Number(file.size_bytes).toLocaleString('en-US')} bytes)`, 'model-file'],
    ['SHA-256', file.sha256, 'model-sha256'],
    ['Device', `${device.name}${device.description ? ` – ${device.description}` : ''} (${device.precision}, ${device.threads} threads)`, 'model-device'],
  ]);
  fillInfo($('server-info'), [
    ['voxprint', model.version ? `version ${model.version}` : '–', 'server-version'],
    ['Why this device', device.choice || '–', 'server-device-choice'],
    ['Upload limit', server.max_upload_bytes ? `${formatBytes(server.max_upload_bytes)} per request` : 'none', 'server-upload-limit'],
    ['Audio limit', server.max_audio_seconds ? `${formatDuration(server.max_audio_seconds)} per file` : 'none', 'server-audio-limit'],
    ['Workers', `${server.workers} at once, ${server.queue} more may wait`],
    ['API key', server.auth_required ? 'required' : 'not required', 'server-auth'],
  ]);
  const features = model.features || {};
  fillInfo($('model-features'), [
    ['Type', features.type],
    ['Mel bins', String(features.num_mel_bins)],
    ['Frame length / shift', `${short(features.frame_length_ms)} ms / ${short(features.frame_shift_ms)} ms`],
    ['Window', features.window],
    ['Pre-emphasis', short(features.preemphasis)],
    ['Dither', short(features.dither)],
    ['Snip edges', yesNo(features.snip_edges)],
    ['Waveform scale', short(features.waveform_scale)],
    ['Normalisation', features.mean_normalization],
  ]);
  $('model-license').textContent = model.license;
  $('model-source').textContent = model.source || '';
  const list = $('model-citations');
  list.replaceChildren();
  for (const citation of model.citations || []) {
    const item = document.createElement('li');
    item.textContent = citation.text;
    list.append(item);
  }
  $('curl-examples').textContent = curlExamples(model);
}

export function initModel() {
  $('copy-curl').addEventListener('click', (event) => copyText(event.target, $('curl-examples').textContent));
}

export async function loadModel(force = false) {
  if (loaded && !force) return;
  const error = $('model-error');
  try {
    applyModel(await getJson('/api/model'));
    loaded = true;
    showError(error, null);
  } catch (failure) {
    showError(error, failure);
  }
}
