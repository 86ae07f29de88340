// The pure pieces, without a hub: the error for each wire code, and what a handler's parameters are.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import * as sdk from '../dist/index.js';
import { parameters } from '../dist/worker.js';

const CODES = {
  AUTH_REQUIRED: 'AuthRequiredError', AUTH_INVALID: 'AuthInvalidError', AUTH_EXPIRED: 'AuthExpiredError',
  FORBIDDEN: 'ForbiddenError', VALIDATION_FAILED: 'ValidationFailedError', PAYLOAD_TOO_LARGE: 'PayloadTooLargeError',
  RATE_LIMITED: 'RateLimitedError', TOO_MANY_CONNECTIONS: 'TooManyConnectionsError', NO_EXTENSION: 'NoExtensionError',
  TIMEOUT: 'CommandTimeoutError', EXTENSION_DISCONNECTED: 'ExtensionDisconnectedError', CANCELLED: 'CancelledError',
  SESSION_NOT_FOUND: 'SessionNotFoundError', UNKNOWN_EVENT: 'UnknownEventError', UNAVAILABLE: 'UnavailableError',
  INTERNAL: 'InternalError',
};

test('every protocol error code has its class; any other code is CommandFailedError with that code', () => {
  for (const [code, name] of Object.entries(CODES)) {
    const error = sdk.errorFromWire({ code, message: 'm', event: 'command', id: 'c-1' });
    assert.equal(error.constructor, sdk[name]);
    assert.ok(error instanceof sdk.HubError && error instanceof Error);
    assert.deepEqual([error.code, error.message, error.event, error.commandId, error.name], [code, 'm', 'command', 'c-1', name]);
  }
  const own = sdk.errorFromWire({ code: 'NOT_FOUND', message: 'no #x', details: { selector: '#x' } });
  assert.ok(own instanceof sdk.CommandFailedError);
  assert.deepEqual([own.code, own.details], ['NOT_FOUND', { selector: '#x' }]);
  assert.equal(sdk.errorFromWire({ code: 'RATE_LIMITED', message: 'slow down', retryAfter: 1500 }).retryAfter, 1500);
  assert.equal(sdk.errorFromWire('nonsense').code, 'INTERNAL');
  assert.equal(sdk.errorFromWire({ message: 'no code' }).code, 'INTERNAL');
});

test("a handler's parameters: options, then target, then the top level; the envelope left out", () => {
  const command = {
    id: 'c', type: 'CLICK', timeout: 1, deadline: 2, correlationId: 'x', sessionId: 's', redelivered: true,
    options: { selector: 'from-options', wait: true }, target: { selector: 'from-target', extensionId: 'e' },
    clear: false,
  };
  assert.deepEqual(parameters(command), { selector: 'from-target', wait: true, extensionId: 'e', clear: false });
  assert.deepEqual(parameters({ ...command, selector: 'top' }).selector, 'top');
  assert.deepEqual(parameters({ id: 'c', type: 'T', options: [1], target: 'not-an-object' }), {});
});

test('a command delivered again (redelivered) is not run again', async () => {
  const worker = new sdk.Worker('http://127.0.0.1:9', { extensionId: 'unit' }); // never connected
  let runs = 0;
  worker.handle('X', () => {
    runs += 1;
    return runs;
  });
  const command = { id: 'r-1', type: 'X', timeout: 1000, deadline: Date.now() + 1000 };
  worker.received(command); // what the socket's `command` listener calls
  worker.received({ ...command, redelivered: true });
  await new Promise((resolve) => setImmediate(resolve));
  worker.received({ ...command, redelivered: true }); // after it finished, too
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(runs, 1);
  await worker.close();
});
