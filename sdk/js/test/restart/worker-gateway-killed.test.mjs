// The worker's gateway is killed (SIGKILL) mid-command and comes back on the same port within the
// hub's extensionGrace: the worker reconnects with the same extensionId and reports the result it
// finished while away; the client gets exactly that one result and the command ran once.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';

import { closeAll, connectHub, startWorker, until } from '../env.mjs';

after(closeAll);

test('a killed worker gateway: the result finished while away is delivered once', async () => {
  const hub = await connectHub();
  const { worker, calls, waiting } = await startWorker({ reconnectDelayMax: 500 });
  const results = [];
  hub.link.socket.on('result', (result) => results.push(result.id));

  const running = hub.submit('WAIT', {}, { target: worker.extensionId, timeout: 60_000 });
  await until(() => waiting.has(running.id), 'the worker to start it');
  process.kill(Number(process.env.WORKER_GATEWAY_PID), 'SIGKILL');
  await until(() => !worker.connected, 'the worker to notice');
  waiting.get(running.id).resolve({ finished: 'offline' });

  const result = await running.result;
  assert.deepEqual(result.data, { finished: 'offline' });
  assert.equal(result.metadata.extension, worker.extensionId);
  assert.equal(worker.connected, true);
  assert.equal(calls.get(running.id), 1);
  assert.equal(results.filter((id) => id === running.id).length, 1);
  // and it serves on the new connection
  assert.equal((await hub.run('NAVIGATE', { url: 'http://after.test/' }, { target: worker.extensionId })).data.url,
    'http://after.test/');
});
