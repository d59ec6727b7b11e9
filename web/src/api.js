// Talking to the voxprint server: JSON in, JSON out, errors as ApiError with
// a message a person can act on.

const KEY_STORAGE = 'voxprint.apiKey';

export function getApiKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || '';
  } catch {
    return '';
  }
}

export function setApiKey(key) {
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    // Private mode without storage: the key lives until the page closes.
  }
  memoryKey = key;
}

let memoryKey = '';
function currentKey() {
  return getApiKey() || memoryKey;
}

export class ApiError extends Error {
  constructor(message, { status = 0, code = '', retryAfter = null } = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

// Listeners for "the server wants a key" (to open the key panel).
const unauthorizedListeners = [];
export function onUnauthorized(listener) {
  unauthorizedListeners.push(listener);
}

function errorFrom(status, body, retryAfter) {
  const code = body && typeof body.error === 'string' ? body.error : '';
  const detail = body && typeof body.detail === 'string' ? body.detail : '';
  let message;
  switch (status) {
    case 401:
      unauthorizedListeners.forEach((listener) => listener());
      message = currentKey()
        ? 'The server refused this API key: check it with the “API key” button at the top.'
        : 'This server needs an API key: enter it with the “API key” button at the top.';
      break;
    case 413:
      // A duration limit is not a size: resource_limit is too long (or too
      // many windows), payload_too_large/too_many_files too big.
      if (code === 'resource_limit') message = `Too long: ${detail}`;
      else message = detail ? `Too large: ${detail}` : 'The upload is larger than the server accepts.';
      break;
    case 503:
      message =
        code === 'loading'
          ? 'The model is still loading; try again in a moment.'
          : `The server is busy${retryAfter ? `; try again in ${retryAfter} s` : ''}.` +
            (detail ? ` (${detail})` : '');
      break;
    case 504:
      message = detail ? `The server gave up: ${detail}.` : 'The server took too long to answer.';
      break;
    default:
      message = detail || `The server answered HTTP ${status}.`;
  }
  failureListeners.forEach((listener) => listener(status));
  return new ApiError(message, { status, code, retryAfter });
}

// Listeners for any failed request (the status badge checks again).
const failureListeners = [];
export function onFailure(listener) {
  failureListeners.push(listener);
}

export function hasApiKey() {
  return Boolean(currentKey());
}

function authHeaders() {
  const key = currentKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

export function getJson(url) {
  return requestJson('GET', url);
}

// A request without a body (GET, DELETE) answered with JSON; errors as
// ApiError, like postForm's.
export async function requestJson(method, url) {
  let response;
  try {
    response = await fetch(url, { method, headers: authHeaders(), cache: 'no-store' });
  } catch {
    throw new ApiError('Cannot reach the voxprint server.');
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) throw errorFrom(response.status, body, response.headers.get('Retry-After'));
  return body;
}

// POSTs a FormData with XMLHttpRequest, which (unlike fetch) reports upload
// progress: onProgress(fraction) while sending, onProgress(null) once the
// server has it all and is computing. `signal` (an AbortSignal) aborts it:
// the connection closes, and the server cancels the job and frees its worker.
export function postForm(url, form, onProgress = () => {}, signal = null) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    if (signal) {
      if (signal.aborted) return reject(new ApiError('Cancelled.', { code: 'cancelled' }));
      signal.addEventListener('abort', () => request.abort(), { once: true });
    }
    request.onabort = () => reject(new ApiError('Cancelled.', { code: 'cancelled' }));
    request.open('POST', url);
    for (const [name, value] of Object.entries(authHeaders())) request.setRequestHeader(name, value);
    request.responseType = 'text';
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    };
    request.upload.onload = () => onProgress(null);
    request.onerror = () => {
      failureListeners.forEach((listener) => listener(0));
      reject(new ApiError('The connection to the server failed.'));
    };
    request.ontimeout = () => reject(new ApiError('The request timed out.'));
    request.onload = () => {
      let body = null;
      try {
        body = JSON.parse(request.responseText);
      } catch {
        body = null;
      }
      if (request.status >= 200 && request.status < 300 && body) resolve(body);
      else reject(errorFrom(request.status, body, request.getResponseHeader('Retry-After')));
    };
    request.send(form);
  });
}

// Server limits from GET /api/model (null until known).
export const serverLimits = { maxUploadBytes: null, maxAudioSeconds: null, authRequired: false };

export function checkUploadSize(files) {
  const total = files.reduce((sum, file) => sum + file.size, 0);
  const limit = serverLimits.maxUploadBytes;
  if (limit && total > limit) {
    throw new ApiError(
      `Too large: the file${files.length > 1 ? 's are' : ' is'} ${formatBytes(total)} together; this server accepts at most ${formatBytes(limit)} per request.`,
      { status: 413, code: 'payload_too_large' },
    );
  }
}

// "What this server accepts", for before an upload.
export function limitsText(perRequestNote = '') {
  const parts = [];
  if (serverLimits.maxUploadBytes) parts.push(`up to ${formatBytes(serverLimits.maxUploadBytes)} per request${perRequestNote}`);
  if (serverLimits.maxAudioSeconds) parts.push(`at most ${formatDuration(serverLimits.maxAudioSeconds)} of audio per file`);
  return parts.length ? `This server accepts ${parts.join(', ')}.` : '';
}

export function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

// 12.3 s, 4 min 5 s, 30 min, 2 h 5 min.
export function formatDuration(seconds) {
  if (!Number.isFinite(seconds)) return '–';
  if (seconds < 60) return `${Number(seconds.toFixed(seconds < 10 ? 2 : 1))} s`;
  const total = Math.round(seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h) return m ? `${h} h ${m} min` : `${h} h`;
  return s ? `${m} min ${s} s` : `${m} min`;
}
