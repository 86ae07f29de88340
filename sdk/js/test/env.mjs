// What the pytest driver (tests/sdk/test_js_sdk.py) hands every test file, and small helpers.
// HUB_URL: where clients connect; WORKER_URL: where workers connect (another gateway in the
// services mode, so every command crosses Redis); API_KEY; USERNAME/PASSWORD for /auth/login.
import { randomUUID } from 'node:crypto';

import { CommandError, Hub, Worker } from '../dist/index.js';

export const HUB_URL = need('HUB_URL');
export const WORKER_URL = process.env.WORKER_URL || HUB_URL;
export const API_KEY = need('API_KEY');

function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run these tests through tests/sdk/test_js_sdk.py`);
  return value;
}

export const uid = (prefix) => `${prefix}-${randomUUID().slice(0, 8)}`;

/** Everything opened through these helpers is closed by closeAll() (call it in after()). */
const opened = [];

export async function connectHub(options = {}) {
  const hub = await Hub.connect(HUB_URL, { apiKey: API_KEY, ...options });
  opened.push(hub);
  return hub;
}

/** A worker with the result shapes the browser extension documents, plus test commands:
 * WAIT (until aborted, or resolved through `waiting`), FAIL (own code, or a crash), and `extra`
 * handlers. `calls` counts runs by id. */
export async function startWorker(options = {}, extra = {}) {
  const worker = new Worker(WORKER_URL, { apiKey: API_KEY, extensionId: uid('js'), ...options });
  const calls = new Map();
  const count = (ctx) => calls.set(ctx.id, (calls.get(ctx.id) ?? 0) + 1);
  const waiting = new Map();
  worker.handle('NAVIGATE', async (ctx, { url }) => {
    count(ctx);
    ctx.progress(50, 'loading');
    return { url, title: `title of ${url}` };
  });
  worker.handle('WAIT', (ctx) => {
    count(ctx);
    return new Promise((resolve, reject) => {
      waiting.set(ctx.id, { resolve, ctx });
      ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true });
    });
  });
  worker.handle('FAIL', (ctx, { how }) => {
    count(ctx);
    if (how === 'own-code') throw new CommandError('ELEMENT_NOT_FOUND', 'no #missing', { selector: '#missing' });
    throw new RangeError('boom');
  });
  for (const [type, handler] of Object.entries(extra)) {
    worker.handle(type, (ctx, params) => {
      count(ctx);
      return handler(ctx, params);
    });
  }
  await worker.start();
  opened.push(worker);
  return { worker, calls, waiting };
}

/** Resolves when `predicate()` holds (checked on every turn of the event loop, 10 s at most). */
export async function until(predicate, what) {
  const limit = Date.now() + 10_000;
  while (!predicate()) {
    if (Date.now() > limit) throw new Error(`still waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export async function closeAll() {
  await Promise.all(opened.splice(0).map((it) => it.close()));
}

export async function login(username, password) {
  const response = await fetch(`${HUB_URL}/auth/login`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  if (response.status !== 200) throw new Error(`login failed: ${response.status}`);
  return (await response.json()).token;
}
