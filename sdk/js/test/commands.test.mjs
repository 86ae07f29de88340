// Commands through a real hub: results, progress, correlation, every error class, timeouts,
// cancel (handle and AbortSignal), re-sending an id, connect refusals.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  AuthInvalidError, CancelledError, CommandFailedError, CommandTimeoutError, ExtensionDisconnectedError,
  Hub, HubError, NoExtensionError, UnavailableError, ValidationFailedError,
} from '../dist/index.js';
import { API_KEY, HUB_URL, closeAll, connectHub, login, startWorker, uid, until } from './env.mjs';

let hub;
let served;

before(async () => {
  hub = await connectHub({ name: 'commands-test' });
  served = await startWorker();
});
after(closeAll);

test('run resolves with the typed result, progress and correlation id', async () => {
  const progress = [];
  const result = await hub.run('NAVIGATE', { url: 'http://page.test/' }, {
    target: served.worker.extensionId, correlationId: 'corr-1', timeout: 10_000,
    onProgress: (p) => progress.push(p),
  });
  assert.equal(result.success, true);
  assert.deepEqual(result.data, { url: 'http://page.test/', title: 'title of http://page.test/' });
  assert.equal(result.correlationId, 'corr-1');
  assert.equal(result.metadata.extension, served.worker.extensionId);
  assert.ok(result.metadata.duration >= 0);
  assert.deepEqual(progress.map((p) => [p.id, p.percent, p.message, p.correlationId]),
    [[result.id, 50, 'loading', 'corr-1']]);
});

test('submit returns the id before the result; the same id sent again is not run again', async () => {
  const id = uid('cmd');
  const handle = hub.submit('NAVIGATE', { url: 'http://once.test/' }, { id, target: served.worker.extensionId });
  assert.equal(handle.id, id);
  const first = await handle.result;
  const again = await hub.run('NAVIGATE', { url: 'http://once.test/' }, { id, target: served.worker.extensionId });
  assert.equal(again.id, first.id);
  assert.deepEqual(again.data, first.data);
  assert.equal(served.calls.get(id), 1);
});

test("an extension's own error code becomes CommandFailedError with that code", async () => {
  const error = await hub.run('FAIL', { how: 'own-code' }, { target: served.worker.extensionId })
    .then(() => assert.fail('resolved'), (e) => e);
  assert.ok(error instanceof CommandFailedError && error instanceof HubError);
  assert.equal(error.code, 'ELEMENT_NOT_FOUND');
  assert.equal(error.message, 'no #missing');
  assert.deepEqual(error.details, { selector: '#missing' });
  assert.equal(error.result.success, false);
  assert.equal(error.commandId, error.result.id);
});

test('a crashing handler fails with HANDLER_ERROR; an unserved type with UNKNOWN_COMMAND', async () => {
  const crash = await hub.run('FAIL', { how: 'crash' }, { target: served.worker.extensionId }).catch((e) => e);
  assert.equal(crash.code, 'HANDLER_ERROR');
  assert.match(crash.message, /RangeError: boom/);
  const { worker } = await startWorker({ capabilities: ['*'] });
  const unknown = await hub.run('NO_SUCH_THING', {}, { target: worker.extensionId }).catch((e) => e);
  assert.equal(unknown.code, 'UNKNOWN_COMMAND');
  assert.ok(unknown instanceof CommandFailedError);
});

test('a command no extension can take ends with NoExtensionError at its deadline', async () => {
  const error = await hub.run('NAVIGATE', { url: 'http://x.test/' }, { target: uid('nobody'), timeout: 300 })
    .catch((e) => e);
  assert.ok(error instanceof NoExtensionError, String(error));
  assert.equal(error.code, 'NO_EXTENSION');
});

test('a command that outlives its timeout ends with CommandTimeoutError, and the handler is aborted', async () => {
  const handle = hub.submit('WAIT', {}, { target: served.worker.extensionId, timeout: 400 });
  const error = await handle.result.catch((e) => e);
  assert.ok(error instanceof CommandTimeoutError, String(error));
  assert.equal(error.details?.local, undefined); // the hub's TIMEOUT, not the local fallback
  await until(() => served.waiting.get(handle.id)?.ctx.signal.aborted, 'the handler to be aborted');
  assert.ok(served.waiting.get(handle.id).ctx.signal.reason instanceof CommandTimeoutError);
});

test('cancel() ends the command with CancelledError and aborts the handler with a CancelledError', async () => {
  const handle = hub.submit('WAIT', {}, { target: served.worker.extensionId, timeout: 30_000 });
  await until(() => served.waiting.has(handle.id), 'the worker to start it');
  assert.equal(await handle.cancel(), true);
  await assert.rejects(handle.result, CancelledError);
  const { ctx } = served.waiting.get(handle.id);
  await until(() => ctx.signal.aborted, 'the handler to be aborted');
  assert.ok(ctx.signal.reason instanceof CancelledError);
  assert.equal(await handle.cancel(), false); // it has ended
});

test('aborting the AbortSignal passed to run() cancels the command', async () => {
  const controller = new AbortController();
  const id = uid('abort');
  const running = hub.run('WAIT', {}, { id, target: served.worker.extensionId, signal: controller.signal });
  await until(() => served.waiting.has(id), 'the worker to start it');
  controller.abort();
  await assert.rejects(running, CancelledError);
  const aborted = new AbortController();
  aborted.abort();
  await assert.rejects(hub.run('WAIT', {}, { signal: aborted.signal }), CancelledError);
});

test('when the worker goes away for good, its command ends with ExtensionDisconnectedError', async () => {
  const { worker, waiting } = await startWorker();
  const handle = hub.submit('WAIT', {}, { target: worker.extensionId, timeout: 30_000 });
  await until(() => waiting.has(handle.id), 'the worker to start it');
  await worker.close(); // then the hub's extensionGrace passes
  await assert.rejects(handle.result, ExtensionDisconnectedError);
});

test('bad input is refused with ValidationFailedError: by the SDK, and by the hub', async () => {
  assert.throws(() => hub.submit('NAVIGATE', { id: 'mine', url: 'x' }), ValidationFailedError);
  assert.throws(() => hub.submit('NAVIGATE', { sessionId: 's' }), /params may not set 'sessionId'/);
  assert.throws(() => hub.submit(''), ValidationFailedError);
  const refused = await hub.run('NAVIGATE', { url: 'x' }, { correlationId: 'has spaces' }).catch((e) => e);
  assert.ok(refused instanceof ValidationFailedError, String(refused));
  assert.match(refused.message, /correlationId/);
  assert.equal(refused.event, 'command');
  const id = uid('dup');
  const first = hub.submit('WAIT', {}, { id, target: served.worker.extensionId });
  assert.throws(() => hub.submit('WAIT', {}, { id }), /already waiting/);
  await first.cancel();
  await first.result.catch(() => {});
});

test('status and ping answer', async () => {
  const status = await hub.status();
  assert.equal(status.status, 'healthy');
  assert.ok(status.extensions.some((e) => e.extensionId === served.worker.extensionId));
  const pong = await hub.ping();
  assert.ok(pong.serverTime > 0);
});

test('a token from /auth/login connects too; a wrong key is refused with AuthInvalidError', async () => {
  const token = await login(process.env.USERNAME, process.env.PASSWORD);
  const withToken = await Hub.connect(HUB_URL, { token });
  assert.equal(withToken.connected, true);
  await withToken.close();
  await assert.rejects(Hub.connect(HUB_URL, { apiKey: `${API_KEY}-wrong` }),
    (e) => e instanceof AuthInvalidError && e.code === 'AUTH_INVALID');
});

test('a credential revoked while connected fails what waits with AuthInvalidError, for good', async () => {
  const token = await login(process.env.USERNAME, process.env.PASSWORD);
  const doomed = await Hub.connect(HUB_URL, { token });
  const handle = doomed.submit('WAIT', {}, { target: served.worker.extensionId });
  await until(() => served.waiting.has(handle.id), 'the worker to start it');
  const logout = await fetch(`${HUB_URL}/auth/logout`, { method: 'POST', headers: { Authorization: `Bearer ${token}` } });
  assert.equal(logout.status, 200);
  await assert.rejects(handle.result, (e) => e instanceof AuthInvalidError && /revoked/.test(e.message));
  assert.equal(doomed.connected, false);
  await assert.rejects(doomed.run('NAVIGATE', { url: 'http://x.test/' }), AuthInvalidError); // no reconnect
  await doomed.close();
});

test('nothing listening: connect gives up after connectTimeout with UnavailableError', async () => {
  const error = await Hub.connect('http://127.0.0.1:9', { apiKey: API_KEY, connectTimeout: 500 })
    .catch((e) => e);
  assert.ok(error instanceof UnavailableError, String(error));
  assert.match(error.message, /could not connect to http:\/\/127\.0\.0\.1:9 within 500 ms/);
});

test('close() fails what still waits with ClosedError', async () => {
  const other = await Hub.connect(HUB_URL, { apiKey: API_KEY });
  const handle = other.submit('WAIT', {}, { target: served.worker.extensionId });
  await other.close();
  await assert.rejects(handle.result, (e) => e.code === 'CLOSED');
  await assert.rejects(other.run('WAIT'), (e) => e.code === 'CLOSED');
});
