// The client's gateway is killed (SIGKILL) mid-command and comes back on the same port: the SDK
// reconnects and re-sends the unfinished command id; the command runs once and ends in exactly
// one result. A command submitted while disconnected is sent after the reconnect.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';

import { closeAll, connectHub, startWorker, until } from '../env.mjs';

after(closeAll);

test('a killed client gateway: one run, one result, and nothing submitted meanwhile is lost', async () => {
  const hub = await connectHub({ reconnectDelayMax: 500 });
  const { worker, calls, waiting } = await startWorker();
  const results = [];
  hub.link.socket.on('result', (result) => results.push(result.id)); // every result on the wire

  const running = hub.submit('WAIT', {}, { target: worker.extensionId, timeout: 60_000 });
  await until(() => waiting.has(running.id), 'the worker to start it');
  process.kill(Number(process.env.HUB_GATEWAY_PID), 'SIGKILL');
  await until(() => !hub.connected, 'the client to notice');
  waiting.get(running.id).resolve({ done: 'while the client was away' });
  const meanwhile = hub.submit('NAVIGATE', { url: 'http://later.test/' }, { target: worker.extensionId });

  const result = await running.result; // re-sent on the new gateway by id
  assert.deepEqual(result.data, { done: 'while the client was away' });
  assert.equal((await meanwhile.result).data.url, 'http://later.test/');
  assert.equal(hub.connected, true);
  assert.equal(calls.get(running.id), 1);
  assert.equal(calls.get(meanwhile.id), 1);
  assert.equal(results.filter((id) => id === running.id).length, 1);
});
