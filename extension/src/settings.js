// Where the extension's settings come from, weakest first: defaults, `config.json` beside
// manifest.json (a deployment or a test presets it), the options page (chrome.storage.local),
// managed policy (chrome.storage.managed, which an administrator enforces).

import { COMMAND_TYPES } from './commands.js';

export const KEYS = ['hubUrl', 'apiKey', 'token', 'extensionId', 'name', 'capabilities',
  'allowEvaluate', 'maxResultBytes'];

const DEFAULTS = {
  hubUrl: 'http://localhost:3000',
  apiKey: '',
  token: '',
  extensionId: '',
  name: 'semantest-chromium',
  capabilities: COMMAND_TYPES,
  allowEvaluate: false,
  maxResultBytes: 1048576, // the hub's default websocket.maxPayload
};

const ID = /^[A-Za-z0-9_.:@/+=#~-]{1,128}$/;

function pick(source) {
  return Object.fromEntries(KEYS.filter((key) => source?.[key] !== undefined)
    .map((key) => [key, source[key]]));
}

async function readConfigFile() {
  try {
    const response = await fetch(chrome.runtime.getURL('config.json'));
    return response.ok ? await response.json() : {};
  } catch {
    return {}; // no config.json: nothing preset
  }
}

/** The id this browser keeps for its life, so a restarted worker registers as the same one. */
async function generatedId() {
  const { generatedExtensionId } = await chrome.storage.local.get('generatedExtensionId');
  if (generatedExtensionId) return generatedExtensionId;
  const made = `chromium-${crypto.randomUUID()}`;
  await chrome.storage.local.set({ generatedExtensionId: made });
  return made;
}

/** Every layer, so the options page can show where each value comes from. */
export async function layers() {
  const { settings: local } = await chrome.storage.local.get('settings');
  const managed = await chrome.storage.managed.get().catch(() => ({}));
  return { defaults: DEFAULTS, file: pick(await readConfigFile()), local: pick(local),
    managed: pick(managed) };
}

/** What is wrong with a merged settings object, one message per key; empty when usable. */
export function problems(settings) {
  const found = [];
  let url = null;
  try {
    url = new URL(settings.hubUrl);
  } catch { /* reported below */ }
  if (!url || !['http:', 'https:', 'ws:', 'wss:'].includes(url.protocol)) {
    found.push(`hubUrl must be an http(s) or ws(s) URL, not ${JSON.stringify(settings.hubUrl)}`);
  }
  if (!ID.test(settings.extensionId)) {
    found.push(`extensionId must match ${ID.source}`);
  }
  const capabilities = settings.capabilities;
  if (!Array.isArray(capabilities) || capabilities.length === 0
      || !capabilities.every((c) => c === '*' || COMMAND_TYPES.includes(c))) {
    found.push(`capabilities must be a non-empty list of ${COMMAND_TYPES.join(', ')} or "*"`);
  }
  if (typeof settings.allowEvaluate !== 'boolean') found.push('allowEvaluate must be true or false');
  if (!Number.isInteger(settings.maxResultBytes) || settings.maxResultBytes < 1024) {
    found.push('maxResultBytes must be an integer of at least 1024');
  }
  for (const key of ['apiKey', 'token', 'name']) {
    if (typeof settings[key] !== 'string') found.push(`${key} must be a string`);
  }
  return found;
}

export async function loadSettings() {
  const { defaults, file, local, managed } = await layers();
  const merged = { ...defaults, ...file, ...local, ...managed };
  if (!merged.extensionId) merged.extensionId = await generatedId();
  return merged;
}
