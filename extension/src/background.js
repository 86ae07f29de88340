// The service worker: reads the settings, connects to the hub, runs commands. Every listener is
// registered in the first turn, as MV3 requires for events that start a stopped worker.

import { connect } from './hub.js';
import { ALARM, ensureAlarm, ensureOffscreen } from './keepalive.js';
import { Runner } from './runner.js';
import { loadSettings, problems } from './settings.js';

const runner = new Runner();
let disconnect = null;

function setStatus(status) {
  chrome.storage.session.set({ status: { ...status, at: Date.now() } });
}

async function connectWithSettings() {
  disconnect?.();
  disconnect = null;
  const settings = await loadSettings();
  runner.settings = settings;
  const wrong = problems(settings);
  if (wrong.length) {
    setStatus({ state: 'invalid', message: wrong.join('; ') });
    return;
  }
  setStatus({ state: 'connecting', extensionId: settings.extensionId });
  disconnect = connect(settings, runner, setStatus);
}

function start() {
  connectWithSettings().catch((error) => setStatus({ state: 'failed', message: String(error) }));
}

chrome.runtime.onConnect.addListener(() => {}); // the offscreen port: waking us is its purpose
chrome.alarms.onAlarm.addListener((alarm) => {
  if (alarm.name === ALARM) ensureOffscreen();
});
chrome.storage.onChanged.addListener((changes, area) => {
  if (area === 'managed' || (area === 'local' && changes.settings)) start();
});

start();
ensureOffscreen();
ensureAlarm();
