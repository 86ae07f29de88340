// Steady load through the gateway Service with the official socket.io-client, for failover tests.
// Usage: node load.mjs '{"url": ..., "apiKey": ..., "seconds": 30, "clients": 4, "extensions": 2,
//                       "rate": 20, "drain": 60}'
// Each client sends `rate` commands/s with ids of its own for `seconds`; extensions answer each
// id once (a re-delivered id is answered from memory, as the protocol asks) and offer each result
// again after a reconnect until a gateway acknowledges it. A client asks again, with the same
// id, for a command no gateway acknowledged within 10 s, and after a reconnect for every command
// it has no result for (the protocol's recovery: a re-sent id never runs again, its sender gets
// its one result). Then it waits up to `drain` s for every command to be accepted and to have
// its result. Prints one JSON line, a summary (`longestWithoutAccept`: the longest stretch, in
// s, in which the hub accepted nothing).
import { createRequire } from 'node:module';

const require = createRequire(new URL('../../js/package.json', import.meta.url));
const { io } = require('socket.io-client');

const opts = JSON.parse(process.argv[2]);
const { url, apiKey, seconds = 30, clients = 4, extensions = 2, rate = 20, drain = 60 } = opts;
const accepted = new Set();
const results = {};       // id -> [result...]
const runs = {};          // id -> times an extension ran it
const answers = new Map(); // id -> the one result an extension gave
const errors = [];
const acceptTimes = [];   // s after start of each accept, to see the longest stretch without one
const unacked = [];       // [id, s after start] of each send no gateway answered within 10 s
let reconnects = 0;
const sockets = [];

function socket(auth) {
  const s = io(url, { auth: { apiKey, ...auth }, transports: ['websocket'], reconnectionDelayMax: 1000 });
  sockets.push(s);
  s.io.on('reconnect', () => { reconnects += 1; });
  // A connection the server refused (e.g. INTERNAL while no replica confirms a write) is not
  // retried by socket.io-client itself: connect again, as its docs say a client should.
  s.on('connect_error', () => { if (!s.active) setTimeout(() => s.connect(), 500); });
  return s;
}

// Extensions behave as docs/protocol.md asks of one that must lose nothing across a reconnect
// (a draining gateway lets them go at once): `acks: true`, each command acknowledged, and each
// result offered again on every new connection until a gateway acknowledges it.
for (let n = 0; n < extensions; n += 1) {
  const ext = socket({ role: 'extension', extensionId: `load-${n}`, capabilities: ['LOAD'],
    acks: true });
  const unconfirmed = new Map(); // id -> result no gateway acknowledged yet
  const offer = (answer) => {
    unconfirmed.set(answer.id, answer);
    ext.emit('result', answer, () => unconfirmed.delete(answer.id));
  };
  ext.on('command', (command, ack) => {
    let answer = answers.get(command.id);
    if (!answer) {
      runs[command.id] = (runs[command.id] || 0) + 1;
      answer = { id: command.id, success: true, data: { ranBy: `load-${n}` } };
      answers.set(command.id, answer);
    }
    if (typeof ack === 'function') ack();
    offer(answer);
  });
  ext.on('connect', () => { for (const answer of unconfirmed.values()) offer(answer); });
}

let started = Date.now();
let deadline = Infinity; // of the drain: no more asking again after it
const senders = [];
for (let n = 0; n < clients; n += 1) {
  const s = socket({});
  const pending = new Map(); // id -> command, no result yet
  const send = (command) => {
    s.timeout(10000).emit('command', command, (err, ack) => {
      if (err) { // no ack in time: ask again with the same id, as the SDKs do
        unacked.push([command.id, (Date.now() - started) / 1000]);
        if (Date.now() < deadline) send(command);
        return;
      }
      if (ack && ack.accepted) {
        accepted.add(command.id);
        acceptTimes.push((Date.now() - started) / 1000);
      }
      else errors.push({ id: command.id, ack });
    });
  };
  s.on('result', (result) => {
    (results[result.id] ||= []).push(result);
    pending.delete(result.id);
  });
  s.on('error', (error) => errors.push({ event: 'error', error }));
  s.io.on('reconnect', () => { for (const command of pending.values()) send(command); });
  senders.push({ s, pending, send, n });
}

await Promise.all(sockets.map((s) => new Promise((resolve) => (s.connected ? resolve() : s.once('connect', resolve)))));
started = Date.now();
let seq = 0;
while (Date.now() - started < seconds * 1000) {
  for (const { pending, send, n } of senders) {
    const command = { id: `load-${n}-${seq}`, type: 'LOAD' };
    pending.set(command.id, command);
    send(command);
  }
  seq += 1;
  await new Promise((resolve) => setTimeout(resolve, 1000 / rate));
}
deadline = Date.now() + drain * 1000;
const sent = senders.flatMap(({ n }) => Array.from({ length: seq }, (_, i) => `load-${n}-${i}`));
while (Date.now() < deadline && sent.some((id) => !accepted.has(id) || !results[id])) {
  await new Promise((resolve) => setTimeout(resolve, 200));
}
for (const s of sockets) s.close();
// A summary (a line per id would be megabytes): what ended how often, and anything odd.
const ended = Object.keys(results).filter((id) => accepted.has(id));
const summary = {
  sent: sent.length,
  accepted: accepted.size,
  ended: ended.length,
  missing: [...accepted].filter((id) => !results[id]).slice(0, 20),
  ranTwice: Object.entries(runs).filter(([, n]) => n !== 1).slice(0, 20),
  differing: Object.entries(results)
    .filter(([, rs]) => rs.some((r) => JSON.stringify(r) !== JSON.stringify(rs[0]))).slice(0, 5),
  failed: Object.values(results).map((rs) => rs[0]).filter((r) => !r.success).slice(0, 5),
  deliveredAgain: Object.values(results).filter((rs) => rs.length > 1).length,
  errors: errors.slice(0, 20),
  unacked: unacked.length,
  unackedSpan: unacked.length ? [unacked[0][1], unacked[unacked.length - 1][1]] : [],
  longestWithoutAccept: acceptTimes.sort((a, b) => a - b)
    .reduce(([gap, last], t) => [Math.max(gap, t - last), t], [0, 0])[0],
  reconnects,
};
process.stdout.write(`${JSON.stringify(summary)}\n`, () => process.exit(0));
