// The client's gateway is drained (SIGTERM): the command it holds still gets its result there;
// a command submitted after `server:draining` is not sent to the draining gateway but after the
// reconnect to its successor (on the same port), and runs once.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';

import { closeAll, connectHub, startWorker, until } from '../env.mjs';

after(closeAll);

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('a draining gateway: held work finishes there, new work waits for the next gateway', async () => {
  const hub = await connectHub({ reconnectDelayMax: 500 });
  const drained = Number(process.env.HUB_GATEWAY_PID);
  const seenWhileOldAlive = new Map();
  const { worker, calls, waiting } = await startWorker({}, {
    LATER: (ctx) => {
      seenWhileOldAlive.set(ctx.id, alive(drained));
      return 'ran';
    },
  });

  const held = hub.submit('WAIT', {}, { target: worker.extensionId, timeout: 60_000 });
  await until(() => waiting.has(held.id), 'the worker to start it');
  process.kill(drained, 'SIGTERM');
  await until(() => hub.draining, 'server:draining');
  const later = hub.submit('LATER', {}, { target: worker.extensionId, timeout: 60_000 });
  waiting.get(held.id).resolve('finished on the draining gateway');

  assert.equal((await held.result).data, 'finished on the draining gateway');
  assert.equal((await later.result).data, 'ran');
  assert.equal(seenWhileOldAlive.get(later.id), false);
  assert.equal(calls.get(held.id), 1);
  assert.equal(calls.get(later.id), 1);
  assert.equal(hub.draining, false);
});
