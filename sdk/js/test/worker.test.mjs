// The Worker end to end: what a handler gets, progress, capabilities, refusals, results the hub
// will not take.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  AuthInvalidError, ForbiddenError, NoExtensionError, PayloadTooLargeError, ValidationFailedError, Worker,
} from '../dist/index.js';
import { API_KEY, WORKER_URL, closeAll, connectHub, login, uid } from './env.mjs';

let hub;
const workers = [];

before(async () => {
  hub = await connectHub();
});
after(async () => {
  await Promise.all(workers.map((w) => w.close()));
  await closeAll();
});

async function started(options, handlers) {
  const worker = new Worker(WORKER_URL, { apiKey: API_KEY, extensionId: uid('w'), ...options });
  for (const [type, handler] of Object.entries(handlers)) worker.handle(type, handler);
  workers.push(worker);
  await worker.start();
  return worker;
}

test('a handler gets options, target and top-level fields as parameters, and the context', async () => {
  let seen;
  const worker = await started({}, {
    ECHO: (ctx, params) => {
      seen = { ctx, params };
      ctx.progress(30, 'a third', { step: 1 });
      return { got: params };
    },
  });
  const progress = [];
  const result = await hub.run('ECHO', { a: 1, nested: { b: [2] }, options: { o: true, a: 0 } }, {
    target: worker.extensionId, correlationId: 'c-9', timeout: 10_000, onProgress: (p) => progress.push(p),
  });
  // options, then target, then the top level (the later winning), as the extension reads them
  assert.deepEqual(seen.params, { o: true, a: 1, nested: { b: [2] }, extensionId: worker.extensionId });
  assert.deepEqual(result.data, { got: seen.params });
  assert.equal(seen.ctx.id, result.id);
  assert.equal(seen.ctx.type, 'ECHO');
  assert.equal(seen.ctx.redelivered, false);
  assert.equal(seen.ctx.command.correlationId, 'c-9');
  assert.deepEqual(seen.ctx.command.target, { extensionId: worker.extensionId });
  assert.ok(seen.ctx.deadline > Date.now() - 60_000 && seen.ctx.deadline <= Date.now() + 10_000);
  assert.equal(seen.ctx.signal.aborted, false);
  assert.deepEqual(progress.map((p) => [p.percent, p.message, p.data]), [[30, 'a third', { step: 1 }]]);
});

test('capabilities default to the handled types: another type waits for a capable extension', async () => {
  const worker = await started({}, { ONLY_THIS: () => 'ok' });
  assert.equal((await hub.run('ONLY_THIS', {}, { target: worker.extensionId })).data, 'ok');
  await assert.rejects(hub.run('NOT_THIS', {}, { target: worker.extensionId, timeout: 300 }), NoExtensionError);
});

test('a "*" handler serves every type', async () => {
  const worker = await started({}, { '*': (ctx) => ({ type: ctx.type }) });
  assert.deepEqual((await hub.run('ANYTHING', {}, { target: worker.extensionId })).data, { type: 'ANYTHING' });
});

test('a result the hub refuses (too large) fails the command with the reason instead', async () => {
  const worker = await started({}, { BIG: () => ({ blob: 'x'.repeat(1_500_000) }) });
  const error = await hub.run('BIG', {}, { target: worker.extensionId, timeout: 10_000 }).catch((e) => e);
  assert.ok(error instanceof PayloadTooLargeError, String(error));
  assert.match(error.message, /the hub refused the result/);
});

test('a worker without handlers or capabilities cannot start', async () => {
  await assert.rejects(new Worker(WORKER_URL, { apiKey: API_KEY }).start(), ValidationFailedError);
});

test('refusals: a wrong key, and an extensionId another principal holds', async () => {
  await assert.rejects(
    new Worker(WORKER_URL, { apiKey: 'wrong-key-0123456789' }).handle('X', () => 1).start(),
    AuthInvalidError);
  const held = await started({}, { X: () => 1 });
  const token = await login(process.env.USERNAME, process.env.PASSWORD);
  const thief = new Worker(WORKER_URL, { token, extensionId: held.extensionId }).handle('X', () => 2);
  await assert.rejects(thief.start(), ForbiddenError);
});
