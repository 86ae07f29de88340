// Channels: subscribe as an async iterable, publish, `since` replay, the hub's own channels.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { ForbiddenError, ValidationFailedError } from '../dist/index.js';
import { closeAll, connectHub, startWorker, uid } from './env.mjs';

let hub;

before(async () => {
  hub = await connectHub();
});
after(closeAll);

test('for await reads what is published after the subscription, in order', async () => {
  const channel = uid('news');
  const subscription = hub.subscribe(channel);
  await subscription.ready;
  const offsets = [];
  for (const n of [1, 2, 3]) offsets.push(await hub.publish(channel, { n }));
  const seen = [];
  for await (const message of subscription) {
    seen.push(message);
    if (seen.length === 3) break; // break unsubscribes
  }
  assert.deepEqual(seen.map((m) => m.message), [{ n: 1 }, { n: 2 }, { n: 3 }]);
  assert.deepEqual(seen.map((m) => m.offset), offsets);
  assert.ok(seen.every((m) => m.channel === channel && typeof m.publisher === 'string'));
  assert.equal(subscription.closed, true);
});

test('since replays what came after an offset, and no message twice', async () => {
  const channel = uid('log');
  const first = await hub.publish(channel, 'a');
  await hub.publish(channel, 'b');
  await hub.publish(channel, 'c');
  const subscription = hub.subscribe(channel, { since: first });
  const seen = [];
  for await (const message of subscription) {
    seen.push(message.message);
    if (seen.length === 2) {
      await hub.publish(channel, 'd'); // live, after the replay
    }
    if (seen.length === 3) break;
  }
  assert.deepEqual(seen, ['b', 'c', 'd']);
});

test('a failed command is published on the errors channel', async () => {
  const { worker } = await startWorker();
  const errors = hub.subscribe('errors');
  await errors.ready;
  const failed = await hub.run('FAIL', { how: 'own-code' }, { target: worker.extensionId }).catch((e) => e);
  for await (const message of errors) {
    if (message.message?.id === failed.commandId) break;
  }
  await errors.close();
});

test('bad channels are refused: a malformed name by the SDK, a system channel by the hub', async () => {
  assert.throws(() => hub.subscribe('has space'), ValidationFailedError);
  await assert.rejects(hub.publish('errors', 'x'), ForbiddenError);
  await assert.rejects(hub.publish('bad name', 'x'), ValidationFailedError);
  const refused = hub.subscribe('ok', { since: 'not-an-offset' });
  await assert.rejects(refused.ready, ValidationFailedError);
  await assert.rejects(refused.next(), ValidationFailedError); // and the loop throws it
});
