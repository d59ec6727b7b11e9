// voxprint's page: three tabs over the server's JSON API.
import './style.css';
import { getApiKey, onUnauthorized, setApiKey } from './api.js';
import { initCompare } from './compare.js';
import { $ } from './dom.js';
import { extractShown, initExtract } from './extract.js';
import { loadModel } from './model.js';

const TABS = ['extract', 'compare', 'model'];

function selectTab(name) {
  if (!TABS.includes(name)) name = 'extract';
  for (const tab of TABS) {
    const selected = tab === name;
    $(`tab-${tab}`).setAttribute('aria-selected', String(selected));
    $(`panel-${tab}`).hidden = !selected;
  }
  if (name === 'model') loadModel();
  if (name === 'extract') extractShown();
}

// The badge says whether the model is loaded; it polls only while it is not.
async function watchHealth() {
  const badge = $('health');
  let status = 'offline';
  try {
    const response = await fetch('/healthz', { cache: 'no-store' });
    status = (await response.json()).status || 'offline';
  } catch {
    status = 'offline';
  }
  badge.textContent = status === 'ok' ? 'ready' : status === 'loading' ? 'loading model…' : 'server offline';
  badge.className = `badge ${status === 'ok' ? 'ok' : 'waiting'}`;
  if (status === 'ok') loadModel();
  else setTimeout(watchHealth, 1000);
}

function initKeyPanel() {
  const panel = $('key-panel');
  const input = $('api-key');
  input.value = getApiKey();
  $('key-toggle').addEventListener('click', () => {
    panel.hidden = !panel.hidden;
    if (!panel.hidden) input.focus();
  });
  const save = () => {
    setApiKey(input.value.trim());
    panel.hidden = true;
    loadModel(true);
  };
  $('key-save').addEventListener('click', save);
  input.addEventListener('keydown', (event) => event.key === 'Enter' && save());
  onUnauthorized(() => {
    panel.hidden = false;
  });
}

for (const tab of TABS) {
  $(`tab-${tab}`).addEventListener('click', () => {
    history.replaceState(null, '', `#${tab}`);
    selectTab(tab);
  });
}
window.addEventListener('hashchange', () => selectTab(location.hash.slice(1)));

initKeyPanel();
initExtract();
initCompare();
selectTab(location.hash.slice(1));
watchHealth();
