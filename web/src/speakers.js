// Tab "Speakers": the server's speakers store. Enroll a person from
// recordings (files or the microphone), see and delete who is enrolled, and
// identify who speaks in a recording.
import { checkUploadSize, formatBytes, formatDuration, limitsText, postForm, requestJson } from './api.js';
import { $, announce, Progress, show, showError, showRunFailure, showWarnings, wireDropZone } from './dom.js';
import { wireRecorder } from './recorder.js';

export const DEFAULT_THRESHOLD = 0.7;
const DEFAULT_RECOMMENDED_S = 20;
const MAX_NAME_CHARACTERS = 128;
// Statuses of GET /api/speakers that mean "no usable store here" rather than
// "try again" (401 key, 503 loading or busy, 0 offline).
const STORE_PROBLEMS = new Set([404, 405, 422, 500]);

let speakers = [];  // the last list from the server
let listLoaded = false;
let listRetry = false;  // the last load failed for a reason that passes
let storeUsable = true;
let recommendedS = DEFAULT_RECOMMENDED_S;
let enrollFiles = [];
let identifyFile = null;
let identifyThreshold = DEFAULT_THRESHOLD;
let lastIdentification = null;  // {result, fileName, roundTripS}
let enrolling = null;  // AbortController of the request in flight
let identifying = null;

// ---- names ----------------------------------------------------------------

const isControl = (character) => {
  const code = character.codePointAt(0);
  return code < 0x20 || (code >= 0x7f && code <= 0x9f);
};

// The server's rule (ValidateSpeakerName) and, for ASCII names, its very
// words: 1 to 128 characters (code points), no control characters. Null
// when the name is acceptable.
export function nameProblem(name) {
  const characters = [...name];
  const shown = characters
    .slice(0, 40)
    .map((character) => (isControl(character) ? '?' : character))
    .join('');
  const bad = (why) => `bad speaker name "${shown}": ${why}`;
  if (characters.some(isControl)) return bad('control characters are not allowed');
  if (characters.length === 0) return bad('empty');
  if (characters.length > MAX_NAME_CHARACTERS)
    return bad(`${characters.length} characters (at most ${MAX_NAME_CHARACTERS})`);
  return null;
}

function enrolledSpeaker(name) {
  return speakers.find((speaker) => speaker.name === name) || null;
}

function recordingsText(count) {
  return `${count} recording${count === 1 ? '' : 's'}`;
}

// ---- the microphone --------------------------------------------------------

// ---- the list --------------------------------------------------------------

function speechText(seconds) {
  return `${formatDuration(seconds)} of speech`;
}

function renderList() {
  const list = $('speakers-list');
  list.replaceChildren();
  show($('speakers-empty'), listLoaded && speakers.length === 0);
  $('speakers-count').textContent = listLoaded
    ? `${speakers.length} speaker${speakers.length === 1 ? '' : 's'} · ` +
      `${formatDuration(recommendedS)} of speech recommended for each`
    : '';
  for (const speaker of speakers) {
    const item = document.createElement('li');
    item.className = 'speaker';
    item.dataset.name = speaker.name;
    item.dataset.enrollments = String(speaker.enrollments);
    item.dataset.speech = String(speaker.speech_s);

    const name = document.createElement('span');
    name.className = 'speaker-name';
    name.textContent = speaker.name;
    const facts = document.createElement('span');
    facts.className = 'speaker-facts';
    facts.textContent = `${recordingsText(speaker.enrollments)} · ${speechText(speaker.speech_s)}`;
    const bar = document.createElement('progress');
    bar.className = 'speaker-speech';
    bar.max = recommendedS;
    bar.value = Math.min(speaker.speech_s, recommendedS);
    bar.setAttribute(
      'aria-label',
      `${speaker.name}: ${speechText(speaker.speech_s)} of ${formatDuration(recommendedS)} recommended`,
    );

    const add = document.createElement('button');
    add.type = 'button';
    add.className = 'secondary';
    add.textContent = 'Add recordings';
    add.setAttribute('aria-label', `Add recordings to ${speaker.name}`);
    add.addEventListener('click', () => {
      $('enroll-name').value = speaker.name;
      updateName();
      $('enroll-name').focus();
    });
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'secondary delete';
    remove.textContent = 'Delete';
    remove.setAttribute('aria-label', `Delete ${speaker.name}`);
    remove.addEventListener('click', () => confirmDelete(speaker));

    const actions = document.createElement('span');
    actions.className = 'speaker-actions';
    actions.append(add, remove);
    item.append(name, facts, bar, actions);
    list.append(item);
  }
}

// Says the store cannot be used (and why), and stops the forms that need it.
function setStoreUsable(usable, error = null) {
  storeUsable = usable;
  const notice = $('speakers-unavailable');
  if (usable) {
    showError(notice, null);
  } else {
    notice.textContent =
      'This server has no usable speakers store, so nobody can be enrolled or identified here: ' +
      `${error.message.replace(/\.?$/, '.')} ` +
      'Start the server with a store, e.g. voxprint serve --db speakers.db (a SQLite file, or postgresql://…).';
    show(notice);
  }
  updateEnrollReady();
  updateIdentifyReady();
}

// GET /api/speakers; the list, the recommended speech and whether the store
// is there at all.
export async function loadSpeakers() {
  const error = $('speakers-error');
  try {
    const body = await requestJson('GET', '/api/speakers');
    speakers = Array.isArray(body.speakers) ? body.speakers : [];
    recommendedS = body.recommended_speech_s > 0 ? body.recommended_speech_s : DEFAULT_RECOMMENDED_S;
    $('enroll-recommended').textContent = formatDuration(recommendedS);
    listLoaded = true;
    listRetry = false;
    showError(error, null);
    setStoreUsable(true);
  } catch (failure) {
    listRetry = !STORE_PROBLEMS.has(failure.status);
    if (STORE_PROBLEMS.has(failure.status)) {
      speakers = [];
      listLoaded = false;
      showError(error, null);
      setStoreUsable(false, failure);
    } else {
      showError(error, new Error(`Could not load the speakers: ${failure.message}`));
    }
  }
  renderList();
  updateName();
}

// The list changed: identification results may name someone gone, or miss
// someone new.
async function speakersChanged() {
  await loadSpeakers();
  markIdentifyStale();
}

function confirmDelete(speaker) {
  const dialog = $('speaker-delete-dialog');
  $('speaker-delete-name').textContent = speaker.name;
  $('speaker-delete-text').textContent =
    `Their voiceprint and ${recordingsText(speaker.enrollments)} (${speechText(speaker.speech_s)}) are removed ` +
    'from the server’s store. This cannot be undone.';
  dialog.returnValue = '';
  dialog.onclose = () => {
    if (dialog.returnValue === 'delete') deleteSpeaker(speaker.name);
  };
  dialog.showModal();
}

async function deleteSpeaker(name) {
  const error = $('speakers-error');
  showError(error, null);
  try {
    await requestJson('DELETE', `/api/speakers/${encodeURIComponent(name)}`);
    announce(`Deleted ${name}`);
  } catch (failure) {
    showError(error, new Error(`Could not delete “${name}”: ${failure.message}`));
    announce(error.textContent);
  }
  await speakersChanged();
  $('speakers-title').focus();
}

// ---- enrolling -------------------------------------------------------------

// The name field: the server's rule at once, and whether enrolling adds to
// an existing speaker.
function updateName() {
  const input = $('enroll-name');
  const name = input.value;
  const problem = name === '' ? null : nameProblem(name);
  const message = $('enroll-name-error');
  message.textContent = problem || '';
  show(message, Boolean(problem));
  if (problem) {
    input.setAttribute('aria-invalid', 'true');
    input.setAttribute('aria-describedby', 'enroll-name-help enroll-name-error');
  } else {
    input.removeAttribute('aria-invalid');
    input.setAttribute('aria-describedby', 'enroll-name-help');
  }
  const existing = problem ? null : enrolledSpeaker(name);
  $('enroll-btn').textContent = existing ? `Add to “${shortName(name)}”` : 'Enroll';
  updateEnrollReady();
}

function shortName(name) {
  const characters = [...name];
  return characters.length > 24 ? `${characters.slice(0, 23).join('')}…` : name;
}

function updateEnrollReady() {
  const name = $('enroll-name').value;
  $('enroll-btn').disabled =
    !storeUsable || Boolean(enrolling) || !enrollFiles.length || name === '' || Boolean(nameProblem(name));
}

function renderEnrollFiles() {
  const list = $('enroll-files');
  list.replaceChildren();
  // Emptied: picking the same file again must count as a change.
  if (!enrollFiles.length) $('enroll-file').value = '';
  enrollFiles.forEach((file, index) => {
    const item = document.createElement('li');
    const label = document.createElement('span');
    label.className = 'file-name';
    label.textContent = `${file.name} · ${formatBytes(file.size)}`;
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'link remove';
    remove.textContent = 'remove';
    remove.setAttribute('aria-label', `Remove ${file.name}`);
    remove.addEventListener('click', () => {
      enrollFiles.splice(index, 1);
      renderEnrollFiles();
      $('enroll-file').focus();
    });
    item.append(label, remove);
    list.append(item);
  });
  updateEnrollReady();
}

const WARNING_TEXT = {
  silence: () => 'no speech found: check the microphone or the file',
  too_short: (added) => `only ${formatDuration(added.speech_s)} of speech (3 s at least per recording is better)`,
  clipping: (added) =>
    `${(100 * added.clipped_fraction).toFixed(1)} % of the samples are clipped (too loud): record at a lower level`,
};

function warningsOf(added) {
  return (added.warnings || []).map((code) => ({
    code,
    message: WARNING_TEXT[code] ? WARNING_TEXT[code](added) : code.replace(/_/g, ' '),
  }));
}

function renderEnrollment(report, fileCount, appended) {
  const speaker = report.speaker;
  const recommended = report.recommended_speech_s > 0 ? report.recommended_speech_s : recommendedS;
  $('enroll-summary').textContent =
    `${appended ? 'Added' : 'Enrolled'} “${speaker.name}”: ${recordingsText(fileCount)} now, ` +
    `${recordingsText(speaker.enrollments)} in all.`;
  const bar = $('enroll-speech-bar');
  bar.max = recommended;
  bar.value = Math.min(report.speech_s, recommended);
  bar.dataset.speech = String(report.speech_s);
  const percent = Math.round(100 * Math.min(1, report.progress ?? report.speech_s / recommended));
  $('enroll-speech-text').textContent =
    `${formatDuration(report.speech_s)} of speech of the ${formatDuration(recommended)} recommended (${percent} %)`;
  const added = $('enroll-added');
  added.replaceChildren(
    ...report.added.map((item) => {
      const line = document.createElement('li');
      line.textContent =
        `${item.source}: ${formatDuration(item.duration_s)} of audio, ${speechText(item.speech_s)}` +
        (item.speech_method ? ` (measured by ${item.speech_method === 'silero-vad' ? 'Silero VAD' : 'energy'})` : '');
      return line;
    }),
  );
  const groups = report.added.map((item) => [item.source, warningsOf(item)]);
  if ((report.warnings || []).includes('not_enough_speech'))
    groups.push([
      '',
      [
        {
          code: 'not_enough_speech',
          message:
            `${formatDuration(report.speech_s)} of speech so far; ${formatDuration(recommended)} is recommended ` +
            'for a reliable voiceprint: add more recordings of this speaker.',
        },
      ],
    ]);
  const warnings = showWarnings($('enroll-warnings'), groups);
  show($('enroll-result'));
  return warnings;
}

async function enroll() {
  const error = $('enroll-error');
  showError(error, null);
  const name = $('enroll-name').value;
  const problem = nameProblem(name);
  if (problem || !enrollFiles.length) return;
  const append = Boolean(enrolledSpeaker(name));
  const files = enrollFiles;
  const form = new FormData();
  form.append('name', name);
  if (append) form.append('append', 'true');
  for (const file of files) form.append('file', file, file.name);
  const progress = new Progress($('enroll-progress'), $('enroll-progress-bar'), $('enroll-progress-text'));
  const cancel = $('enroll-cancel');
  enrolling = new AbortController();
  updateEnrollReady();
  show(cancel);
  cancel.disabled = false;
  show($('enroll-result'), false);
  progress.start();
  try {
    checkUploadSize(files);
    const report = await postForm('/api/speakers', form, (fraction) => progress.update(fraction), enrolling.signal);
    progress.stop();
    const warnings = renderEnrollment(report, files.length, append);
    enrollFiles = [];
    renderEnrollFiles();
    announce(
      `${append ? 'Added to' : 'Enrolled'} ${name}: ${formatDuration(report.speech_s)} of speech` +
        (warnings ? `, with ${warnings} warning${warnings > 1 ? 's' : ''}` : ''),
    );
    await speakersChanged();
  } catch (failure) {
    progress.stop();
    if (failure.status === 409) {
      // Enrolled meanwhile (another page, the CLI): the list catches up, and
      // the button turns into "Add to".
      await speakersChanged();
      showError(
        error,
        new Error(
          `“${name}” is enrolled already (added since this page loaded the list). ` +
            'Press “Add to” to add these recordings to that speaker, or choose another name.',
        ),
      );
    } else {
      showRunFailure(error, failure);
    }
    announce(error.textContent);
  } finally {
    enrolling = null;
    show(cancel, false);
    updateEnrollReady();
  }
}

// ---- identifying -----------------------------------------------------------

function updateIdentifyReady() {
  $('identify-btn').disabled = !storeUsable || !identifyFile || Boolean(identifying);
}

function topK() {
  const value = Number($('identify-top-k').value);
  return Number.isInteger(value) && value >= 1 ? Math.min(value, 100) : 5;
}

function markIdentifyStale() {
  if (!lastIdentification) return;
  $('identify-results').classList.add('is-stale');
  show($('identify-stale'));
}

// The verdict follows the threshold without asking the server again: the
// server's rule is the same (the best score > threshold).
function renderIdentification() {
  if (!lastIdentification) return;
  const { result } = lastIdentification;
  const limit = identifyThreshold;
  const best = result.candidates[0] || null;
  const accepted = Boolean(best) && best.score > limit;
  const verdict = $('identify-verdict');
  verdict.textContent = accepted ? best.name : 'Unknown speaker';
  verdict.className = `verdict ${accepted ? 'same' : 'different'}`;
  verdict.dataset.unknown = String(!accepted);
  verdict.dataset.speaker = accepted ? best.name : '';
  $('identify-rule').textContent = best
    ? `best ${best.score.toFixed(2)} ${accepted ? '>' : '≤'} ${limit.toFixed(2)} → ${accepted ? best.name : 'unknown'}`
    : 'nobody is enrolled → unknown';
  const list = $('identify-candidates');
  list.replaceChildren(
    ...result.candidates.map((candidate, index) => {
      const item = document.createElement('li');
      item.className = 'candidate';
      if (index === 0 && accepted) item.classList.add('best');
      item.dataset.name = candidate.name;
      item.dataset.score = String(candidate.score);
      const name = document.createElement('span');
      name.className = 'candidate-name';
      name.textContent = candidate.name;
      const bar = document.createElement('span');
      bar.className = 'score-bar';
      bar.setAttribute('aria-hidden', 'true');
      const fill = document.createElement('span');
      fill.className = `score-fill${candidate.score > limit ? ' above' : ''}`;
      fill.style.width = `${(100 * (Math.max(-1, Math.min(1, candidate.score)) + 1)) / 2}%`;
      const tick = document.createElement('span');
      tick.className = 'score-tick';
      tick.style.left = `${(100 * (limit + 1)) / 2}%`;
      bar.append(fill, tick);
      const score = document.createElement('span');
      score.className = 'candidate-score';
      score.textContent = candidate.score.toFixed(4);
      item.append(name, bar, score);
      return item;
    }),
  );
  show($('identify-candidates-title'), result.candidates.length > 0);
}

function setThreshold(value, from) {
  const clamped = Math.min(1, Math.max(-1, value));
  identifyThreshold = clamped;
  if (from !== 'slider') $('identify-threshold').value = String(clamped);
  if (from !== 'number') $('identify-threshold-number').value = clamped.toFixed(2);
  renderIdentification();
}

async function identify() {
  const error = $('identify-error');
  showError(error, null);
  if (!identifyFile) return;
  const file = identifyFile;
  const form = new FormData();
  form.append('file', file, file.name);
  form.append('threshold', String(identifyThreshold));
  form.append('top_k', String(topK()));
  const progress = new Progress($('identify-progress'), $('identify-progress-bar'), $('identify-progress-text'));
  const cancel = $('identify-cancel');
  identifying = new AbortController();
  updateIdentifyReady();
  show(cancel);
  cancel.disabled = false;
  progress.start();
  try {
    checkUploadSize([file]);
    const body = await postForm('/api/identify', form, (fraction) => progress.update(fraction), identifying.signal);
    const roundTripS = progress.stop();
    const result = body.results[0];
    lastIdentification = { result, fileName: file.name };
    const results = $('identify-results');
    results.classList.remove('is-stale');
    show($('identify-stale'), false);
    show(results);
    $('identify-details').textContent =
      `${result.path} (${formatDuration(result.duration_s)}) against ${body.speakers} enrolled ` +
      `speaker${body.speakers === 1 ? '' : 's'} · ${formatDuration(roundTripS)} round trip · scores: ${body.score_scale}`;
    renderIdentification();
    announce(`${$('identify-verdict').textContent}: ${$('identify-rule').textContent}`);
  } catch (failure) {
    progress.stop();
    lastIdentification = null;
    show($('identify-results'), false);
    showRunFailure(error, failure);
    announce(error.textContent);
  } finally {
    identifying = null;
    show(cancel, false);
    updateIdentifyReady();
  }
}

function selectIdentifyFile(file) {
  identifyFile = file;
  $('identify-file-name').textContent = `${file.name} · ${formatBytes(file.size)}`;
  showError($('identify-error'), null);
  markIdentifyStale();
  updateIdentifyReady();
}

// ---- wiring ----------------------------------------------------------------

export function initSpeakers() {
  $('enroll-name').addEventListener('input', updateName);
  $('enroll-name').addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !$('enroll-btn').disabled) enroll();
  });
  const addEnrollFiles = (files) => {
    enrollFiles = files;
    showError($('enroll-error'), null);
    renderEnrollFiles();
  };
  wireDropZone($('enroll-drop'), $('enroll-file'), addEnrollFiles);
  wireRecorder(
    $('enroll-record'),
    $('enroll-record-state'),
    (file) => {
      // A recording joins the files already chosen: several takes, one voiceprint.
      enrollFiles = [...enrollFiles, file];
      showError($('enroll-error'), null);
      renderEnrollFiles();
    },
    (failure) => showError($('enroll-error'), failure),
  );
  $('enroll-btn').addEventListener('click', enroll);
  $('enroll-cancel').addEventListener('click', () => {
    $('enroll-cancel').disabled = true;
    enrolling?.abort();
  });

  $('speakers-refresh').addEventListener('click', speakersChanged);

  wireDropZone($('identify-drop'), $('identify-file'), ([file]) => selectIdentifyFile(file));
  wireRecorder($('identify-record'), $('identify-record-state'), selectIdentifyFile, (failure) =>
    showError($('identify-error'), failure),
  );
  $('identify-threshold').addEventListener('input', (event) => setThreshold(Number(event.target.value), 'slider'));
  $('identify-threshold-number').addEventListener('input', (event) => {
    const value = Number(event.target.value);
    if (event.target.value.trim() !== '' && Number.isFinite(value)) setThreshold(value, 'number');
  });
  $('identify-threshold-number').addEventListener('change', () => setThreshold(identifyThreshold));
  $('identify-threshold-reset').addEventListener('click', () => setThreshold(DEFAULT_THRESHOLD));
  $('identify-top-k').addEventListener('input', markIdentifyStale);
  $('identify-btn').addEventListener('click', identify);
  $('identify-cancel').addEventListener('click', () => {
    $('identify-cancel').disabled = true;
    identifying?.abort();
  });
  updateName();
}

// The tab is shown: the list as the server has it now.
export function speakersShown() {
  loadSpeakers();
}

// The server is ready (again): a list that failed to load for a passing
// reason (loading, busy, a key) is asked for again.
export function speakersServerReady() {
  if (listRetry && !$('panel-speakers').hidden) loadSpeakers();
}

export function showSpeakersLimits() {
  $('enroll-limits').textContent = limitsText(' (all recordings together)');
  $('identify-limits').textContent = limitsText();
}
