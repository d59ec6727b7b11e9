// voxprint's page: one tab per task over the server's JSON API.
import './style.css';
import { getApiKey, hasApiKey, onFailure, onUnauthorized, serverLimits, setApiKey } from './api.js';
import { applyChartTheme } from './charts.js';
import { initCompare, showCompareLimits } from './compare.js';
import { diarizeShown, initDiarize, showDiarizeLimits } from './diarize.js';
import { $ } from './dom.js';
import { extractShown, initExtract, showLimits } from './extract.js';
import { initModel, loadModel } from './model.js';
import { initSpeakers, showSpeakersLimits, speakersServerReady, speakersShown } from './speakers.js';

const TABS = ['extract', 'compare', 'speakers', 'diarize', 'model'];
// How often the badge asks /healthz: soon while the model loads or the
// server is away, at leisure once it is ready.
const POLL_WAITING_MS = 2000;
const POLL_READY_MS = 15000;

function selectTab(name, { focus = false } = {}) {
  if (!TABS.includes(name)) name = 'extract';
  for (const tab of TABS) {
    const selected = tab === name;
    const button = $(`tab-${tab}`);
    button.setAttribute('aria-selected', String(selected));
    // Roving tabindex (WAI-ARIA tabs): only the selected tab is a tab stop.
    button.tabIndex = selected ? 0 : -1;
    $(`panel-${tab}`).hidden = !selected;
  }
  if (focus) $(`tab-${name}`).focus();
  if (name === 'model') loadModel();
  if (name === 'extract') extractShown();
  if (name === 'speakers') speakersShown();
  if (name === 'diarize') diarizeShown();
}

// Each tab is a history entry, so Back returns to the previous tab.
function goToTab(name, options) {
  if (location.hash !== `#${name}`) history.pushState(null, '', `#${name}`);
  selectTab(name, options);
}

function initTabs() {
  for (const tab of TABS) {
    const button = $(`tab-${tab}`);
    button.addEventListener('click', () => goToTab(tab));
    button.addEventListener('keydown', (event) => {
      const index = TABS.indexOf(tab);
      const moves = {
        ArrowRight: (index + 1) % TABS.length,
        ArrowLeft: (index + TABS.length - 1) % TABS.length,
        Home: 0,
        End: TABS.length - 1,
      };
      if (!(event.key in moves)) return;
      event.preventDefault();
      goToTab(TABS[moves[event.key]], { focus: true });
    });
  }
  window.addEventListener('popstate', () => selectTab(location.hash.slice(1)));
  window.addEventListener('hashchange', () => selectTab(location.hash.slice(1)));
}

// The badge says whether the server is there and the model loaded, and
// whether it wants a key this browser does not have. It is polled, and
// checked again after a failed request.
let healthTimer = null;
let checking = false;
let checkAgain = false;  // asked for while a check was under way
async function checkHealth() {
  if (checking) {
    checkAgain = true;
    return;
  }
  checking = true;
  checkAgain = false;
  clearTimeout(healthTimer);
  const badge = $('health');
  let health = { status: 'offline' };
  try {
    const response = await fetch('/healthz', { cache: 'no-store' });
    health = await response.json();
  } catch {
    health = { status: 'offline' };
  }
  const status = health.status || 'offline';
  if (status !== 'offline') {
    // /healthz is open: the limits are known before any upload, key or not.
    serverLimits.maxUploadBytes = health.max_upload_bytes || null;
    serverLimits.maxAudioSeconds = health.max_audio_seconds || null;
    serverLimits.authRequired = Boolean(health.auth_required);
    showLimits();
    showCompareLimits();
    showSpeakersLimits();
    showDiarizeLimits();
  }
  const needsKey = status === 'ok' && serverLimits.authRequired && !hasApiKey();
  if (status === 'ok' && !needsKey) {
    loadModel();
    speakersServerReady();
  }
  let text = 'server offline';
  if (status === 'loading') text = 'loading model…';
  else if (needsKey) text = 'ready · API key needed';
  else if (status === 'ok') text = 'ready';
  badge.textContent = text;
  badge.className = `badge ${status === 'ok' && !needsKey ? 'ok' : status === 'ok' ? 'waiting' : 'down'}`;
  healthTimer = setTimeout(checkHealth, status === 'ok' ? POLL_READY_MS : POLL_WAITING_MS);
  checking = false;
  if (checkAgain) checkHealth();
}

// After a failure, once per few seconds at most (a burst of failures is one
// check).
let lastFailureCheck = 0;
function checkAfterFailure() {
  if (Date.now() - lastFailureCheck < POLL_WAITING_MS) return;
  lastFailureCheck = Date.now();
  checkHealth();
}

function initKeyPanel() {
  const panel = $('key-panel');
  const input = $('api-key');
  const toggle = $('key-toggle');
  input.value = getApiKey();
  const open = (visible) => {
    panel.hidden = !visible;
    toggle.setAttribute('aria-expanded', String(visible));
    if (visible) input.focus();
  };
  toggle.addEventListener('click', () => open(panel.hidden));
  const save = () => {
    setApiKey(input.value.trim());
    open(false);
    loadModel(true);
    checkHealth();
  };
  $('key-save').addEventListener('click', save);
  input.addEventListener('keydown', (event) => event.key === 'Enter' && save());
  onUnauthorized(() => open(true));
}

const darkMode = window.matchMedia('(prefers-color-scheme: dark)');
darkMode.addEventListener('change', () => {
  applyChartTheme();
  extractShown();
});

applyChartTheme();
initTabs();
initKeyPanel();
initExtract();
initCompare();
initSpeakers();
initDiarize();
initModel();
onFailure(checkAfterFailure);
selectTab(location.hash.slice(1));
checkHealth();
