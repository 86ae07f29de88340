// The options page: edits the chrome.storage.local layer of the settings. Keys set by managed
// policy are shown and locked; keys preset by config.json are shown as the starting value.

import { KEYS, layers } from './settings.js';

const form = document.getElementById('settings');

function show(key, value) {
  const field = document.getElementById(key);
  if (field.type === 'checkbox') field.checked = Boolean(value);
  else field.value = Array.isArray(value) ? value.join(', ') : (value ?? '');
}

function read(key) {
  const field = document.getElementById(key);
  if (field.type === 'checkbox') return field.checked;
  if (key === 'capabilities') return field.value.split(',').map((s) => s.trim()).filter(Boolean);
  if (key === 'maxResultBytes') return Number(field.value);
  return field.value.trim();
}

async function load() {
  const { defaults, file, local, managed } = await layers();
  for (const key of KEYS) {
    const [value, from] = key in managed ? [managed[key], 'set by policy']
      : key in local ? [local[key], '']
        : key in file ? [file[key], 'from config.json'] : [defaults[key], 'default'];
    show(key, value);
    document.getElementById(key).disabled = key in managed;
    document.getElementById(key).closest('form').querySelector(`label[for=${key}] .from`)
      ?.replaceChildren(from);
  }
}

async function showStatus() {
  const { status } = await chrome.storage.session.get('status');
  document.getElementById('status').textContent = status
    ? `${status.state}${status.code ? ` (${status.code})` : ''}${status.message ? `: ${status.message}` : ''}`
    : 'not started';
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const { managed } = await layers();
  const settings = Object.fromEntries(KEYS.filter((key) => !(key in managed))
    .map((key) => [key, read(key)]));
  await chrome.storage.local.set({ settings });
  document.getElementById('saved').textContent = 'saved';
});

chrome.storage.onChanged.addListener((changes, area) => {
  if (area === 'session' && changes.status) showStatus();
});
load().then(showStatus); // the status shows once the fields are filled
