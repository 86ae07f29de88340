// Every command type of the extension through the JS SDK (sdk/js, built by `make sdk-js`), with
// the typed errors a caller meets. Usage: node js_sdk_commands.mjs HUB_URL API_KEY PAGES_URL;
// prints one JSON line of what it saw, for the Python test to check.

import { Hub, HubError } from '../../sdk/js/dist/index.js';

const [url, apiKey, pages] = process.argv.slice(2);

async function failure(promise) {
  try {
    await promise;
    return null;
  } catch (error) {
    if (!(error instanceof HubError)) throw error;
    return { class: error.constructor.name, code: error.code };
  }
}

const hub = await Hub.connect(url, { apiKey });
try {
  const seen = {};
  seen.navigate = (await hub.run('NAVIGATE', { url: `${pages}/form.html` })).data.title;
  seen.type = (await hub.run('TYPE', { selector: '#name', text: 'js' })).data;
  seen.echo = (await hub.run('GET_TEXT', { selector: '#echo' })).data;
  seen.click = (await hub.run('CLICK', { selector: '#go' })).data;
  seen.count = (await hub.run('GET_TEXT', { selector: '#count' })).data;
  seen.waitFor = (await hub.run('WAIT_FOR', { selector: '#pic' })).data.found;
  const image = (await hub.run('DOWNLOAD_IMAGE', { selector: '#pic' })).data;
  seen.image = { filename: image.filename, size: image.size };
  seen.screenshot = (await hub.run('SCREENSHOT')).data.mimeType;
  const opened = await hub.run('NAVIGATE', { url: `${pages}/form.html`, newTab: true });
  const tabs = (await hub.run('LIST_TABS')).data.tabs.map((tab) => tab.id);
  seen.listed = tabs.includes(opened.data.tabId);
  seen.closed = (await hub.run('CLOSE_TAB', { tabId: opened.data.tabId })).data.closed
    === opened.data.tabId;
  seen.evaluate = await failure(hub.run('EVALUATE', { expression: '1 + 1' }));
  seen.unknown = await failure(hub.run('FLY'));
  seen.invalid = await failure(hub.run('CLICK'));
  let polling;
  const started = new Promise((resolve) => { polling = resolve; });
  const waiting = hub.submit('WAIT_FOR', { selector: '#never' },
    { timeout: 60_000, onProgress: polling });
  await started; // the browser is polling the page: the cancel has to reach it
  seen.cancelAccepted = await waiting.cancel();
  seen.cancelled = await failure(waiting.result);
  console.log(JSON.stringify(seen));
} finally {
  await hub.close();
}
