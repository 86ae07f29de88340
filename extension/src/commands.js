// The command set: one handler per type. A handler gets the command's parameters and a context
// ({id, signal, deadline, progress(percent, message), settings, memo, remember(change)}: memo is
// what an earlier run of the same command remembered) and answers the result's `data` or throws
// CommandError. Parameters may come at the top level of the command, in `target` or in
// `options` (the seed's shape); the top level wins.

import { Code, CommandError } from './errors.js';
import { findTab, inPage, loaded, requireTab, setWorkingTab } from './tabs.js';
import { base64, pngSize } from './bytes.js';

const HUB_FIELDS = new Set(['id', 'type', 'timeout', 'deadline', 'correlationId', 'sessionId',
  'redelivered', 'target', 'options']);

export function parameters(command) {
  const top = Object.fromEntries(Object.entries(command).filter(([key]) => !HUB_FIELDS.has(key)));
  return { ...(command.options ?? {}), ...(command.target ?? {}), ...top };
}

function required(params, name, command, what) {
  const value = params[name];
  if (typeof value !== 'string' || value === '') {
    throw new CommandError(Code.VALIDATION_FAILED, `${command} needs ${name}: ${what}`);
  }
  return value;
}

const sleep = (ms, signal) => new Promise((resolve, reject) => {
  const timer = setTimeout(resolve, ms);
  signal.addEventListener('abort', () => {
    clearTimeout(timer);
    reject(signal.reason);
  }, { once: true });
});

async function navigate(params, { id, signal, progress }) {
  const url = required(params, 'url', 'NAVIGATE', 'an http(s) URL');
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    throw new CommandError(Code.VALIDATION_FAILED, `NAVIGATE url is not a URL: ${url}`);
  }
  if (!['http:', 'https:'].includes(parsed.protocol)) {
    throw new CommandError(Code.VALIDATION_FAILED, `NAVIGATE url must be http(s), not ${url}`);
  }
  const current = params.newTab ? null : await findTab(params);
  const start = current
    ? async () => (await chrome.tabs.update(current.id, { url, active: true })).id
    : async () => (await chrome.tabs.create({ url, active: true })).id;
  const tabId = await loaded(start, signal, () => progress(10, `loading ${url}`));
  await setWorkingTab(tabId);
  progress(90, 'loaded');
  try {
    return { ...(await inPage({ id: tabId }, 'title', id)), tabId };
  } catch (error) {
    const tab = await chrome.tabs.get(tabId);
    throw new CommandError(Code.NAVIGATION_FAILED,
      `${url} did not load (${tab.title || error.message})`);
  }
}

async function click(params, { id }) {
  const selector = required(params, 'selector', 'CLICK', 'a CSS selector');
  return inPage(await requireTab(params), 'click', id, selector);
}

async function type(params, { id }) {
  const selector = required(params, 'selector', 'TYPE', 'a CSS selector');
  if (typeof params.text !== 'string') {
    throw new CommandError(Code.VALIDATION_FAILED, 'TYPE needs text: a string');
  }
  return inPage(await requireTab(params), 'type', id, selector, params.text,
    params.clear !== false);
}

const POLL_MS = 100;

async function waitFor(params, { id, signal, progress, deadline }) {
  const selector = required(params, 'selector', 'WAIT_FOR', 'a CSS selector');
  if (params.timeout !== undefined && !(Number.isFinite(params.timeout) && params.timeout >= 0)) {
    throw new CommandError(Code.VALIDATION_FAILED, 'WAIT_FOR timeout must be milliseconds >= 0');
  }
  const started = Date.now();
  const until = Math.min(deadline, started + (params.timeout ?? Infinity));
  let reported = started;
  for (;;) {
    const tab = await requireTab(params);
    // A page between two documents cannot be scripted: that is "not there yet".
    const seen = await inPage(tab, 'probe', id, selector, Boolean(params.visible))
      .catch((error) => {
        if (error.code === Code.VALIDATION_FAILED) throw error;
        return { found: false };
      });
    const now = Date.now();
    if (seen.found) return { found: true, elapsed: now - started };
    if (now >= until) {
      throw new CommandError(Code.TIMEOUT, `no element matched ${selector} within ${now - started} ms`);
    }
    if (now - reported >= 1000) {
      reported = now;
      const percent = Math.min(99, Math.floor((100 * (now - started)) / (until - started)));
      progress(percent, `waiting for ${selector}`);
    }
    await sleep(POLL_MS, signal);
  }
}

async function getText(params, { id }) {
  if (params.selector !== undefined && typeof params.selector !== 'string') {
    throw new CommandError(Code.VALIDATION_FAILED, 'GET_TEXT selector must be a CSS selector');
  }
  return inPage(await requireTab(params), 'text', id, params.selector ?? null);
}

async function evaluate(params, { id, settings }) {
  if (!settings.allowEvaluate) {
    throw new CommandError(Code.FORBIDDEN,
      'EVALUATE is off in this extension: turn on allowEvaluate in its settings');
  }
  const expression = required(params, 'expression', 'EVALUATE', 'JavaScript source');
  return inPage(await requireTab(params), 'evaluate', id, expression);
}

async function screenshot(params) {
  const tab = await requireTab(params);
  if (!tab.active) await chrome.tabs.update(tab.id, { active: true });
  const url = await chrome.tabs.captureVisibleTab(tab.windowId, { format: 'png' });
  const data = url.slice(url.indexOf(',') + 1);
  const shot = { mimeType: 'image/png', data, ...pngSize(data), tabId: tab.id };
  if (!params.download) return shot;
  // A result whose data names a download is published on the hub's `downloads` channel.
  const filename = typeof params.filename === 'string' ? params.filename : `screenshot-${Date.now()}.png`;
  return { ...shot, download: { filename, mimeType: 'image/png' } };
}

async function downloadImage(params, { id, signal, progress }) {
  let url = params.url;
  if (url === undefined) {
    const selector = required(params, 'selector', 'DOWNLOAD_IMAGE', 'a CSS selector (or url)');
    ({ url } = await inPage(await requireTab(params), 'imageSource', id, selector));
  } else if (typeof url !== 'string' || !/^https?:/.test(url)) {
    throw new CommandError(Code.VALIDATION_FAILED, 'DOWNLOAD_IMAGE url must be an http(s) URL');
  }
  let response;
  try {
    response = await fetch(url, { signal });
  } catch (error) {
    if (signal.aborted) throw error;
    throw new CommandError(Code.DOWNLOAD_FAILED, `${url}: ${error.message}`);
  }
  if (!response.ok) throw new CommandError(Code.DOWNLOAD_FAILED, `${url}: HTTP ${response.status}`);
  const mimeType = (response.headers.get('content-type') ?? '').split(';')[0].trim();
  if (!mimeType.startsWith('image/')) {
    throw new CommandError(Code.DOWNLOAD_FAILED, `${url} is ${mimeType || 'untyped'}, not an image`);
  }
  const total = Number(response.headers.get('content-length')) || 0;
  const chunks = [];
  let size = 0;
  for await (const chunk of response.body) {
    chunks.push(chunk);
    size += chunk.length;
    if (total) progress(Math.floor((100 * size) / total), `${size} of ${total} bytes`);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  const filename = typeof params.filename === 'string' ? params.filename
    : decodeURIComponent(new URL(url).pathname.split('/').pop() || 'image');
  return { url, filename, mimeType, size, data: base64(bytes) };
}

async function listTabs() {
  const tabs = await chrome.tabs.query({});
  return { tabs: tabs.map((tab) => ({ id: tab.id, windowId: tab.windowId, url: tab.url ?? null,
    title: tab.title ?? null, active: tab.active, status: tab.status })) };
}

async function closeTab(params, { memo, remember }) {
  // The tab is chosen once and remembered with the command: a CLOSE_TAB resumed after a worker
  // restart closes that tab (or finds it closed), never the tab that is active now.
  let tabId = memo.tabId;
  if (tabId === undefined) {
    tabId = (await requireTab(params)).id;
    await remember({ tabId });
  } else if (!(await chrome.tabs.get(tabId).catch(() => null))) {
    return { closed: tabId };
  }
  await chrome.tabs.remove(tabId);
  return { closed: tabId };
}

const HANDLERS = {
  NAVIGATE: navigate,
  CLICK: click,
  TYPE: type,
  WAIT_FOR: waitFor,
  GET_TEXT: getText,
  EVALUATE: evaluate,
  SCREENSHOT: screenshot,
  DOWNLOAD_IMAGE: downloadImage,
  LIST_TABS: listTabs,
  CLOSE_TAB: closeTab,
};

export const COMMAND_TYPES = Object.keys(HANDLERS);

export function handlerFor(type) {
  const handler = HANDLERS[type];
  if (!handler) {
    throw new CommandError(Code.UNKNOWN_COMMAND,
      `unknown command type ${JSON.stringify(type)}: this extension runs ${COMMAND_TYPES.join(', ')}`);
  }
  return handler;
}
