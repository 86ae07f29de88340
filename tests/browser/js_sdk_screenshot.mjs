// The README's JavaScript example against the extension in Chromium, through the JS SDK
// (sdk/js, built by `make sdk-js`): open a page, screenshot it, and meet one typed error.
// Usage: node js_sdk_screenshot.mjs HUB_URL API_KEY PAGE_URL; prints one JSON line.

import { CommandFailedError, Hub } from '../../sdk/js/dist/index.js';

const [url, apiKey, page] = process.argv.slice(2);
const hub = await Hub.connect(url, { apiKey });
try {
  const progress = [];
  const opened = await hub.run('NAVIGATE', { url: page },
    { onProgress: (p) => progress.push(p.percent) });
  const shot = await hub.run('SCREENSHOT');
  let failure = null;
  try {
    await hub.run('CLICK', { selector: '#nothing' });
  } catch (error) {
    failure = { typed: error instanceof CommandFailedError, code: error.code,
      message: error.message };
  }
  console.log(JSON.stringify({
    opened: opened.data, extension: opened.metadata.extension, progress,
    shot: { mimeType: shot.data.mimeType, png: Buffer.from(shot.data.data, 'base64')
      .subarray(0, 8).toString('hex') },
    failure,
  }));
} finally {
  await hub.close();
}
