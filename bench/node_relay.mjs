// Peer 3 of the benchmark: the Node relay a user would write instead of the hub.
//
// socket.io 4.8 + @socket.io/redis-adapter (Redis pub/sub), run as two or more processes; the
// benchmark puts clients on one process and extensions on another, so every command and every
// result crosses Redis. It does the hub's routing job with the hub's wire contract (DESIGN.md §3):
// a client's `command` is acked {id, accepted}, sent to one extension (round robin over all
// extensions of the cluster), and the extension's `progress` and `result` go back to the client,
// with metadata {duration, timestamp, extension}; deadlines give TIMEOUT, a dropped extension
// gives EXTENSION_DISCONNECTED, no extension gives NO_EXTENSION.
//
// usage: node node_relay.mjs --port P --redis-port R    (serves GET /health, prints READY)
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Server } from 'socket.io';
import { createAdapter } from '@socket.io/redis-adapter';
import { createClient } from 'redis';

const { values: opt } = parseArgs({
  options: { port: { type: 'string' }, 'redis-port': { type: 'string' } },
});
const pub = createClient({ url: `redis://127.0.0.1:${opt['redis-port']}` });
const sub = pub.duplicate();
await Promise.all([pub.connect(), sub.connect()]);

const server = http.createServer((req, res) => {
  const ok = req.url === '/health';
  res.writeHead(ok ? 200 : 404, { 'content-type': 'application/json' });
  res.end(ok ? '{"status":"healthy"}' : '{"error":{"code":"NOT_FOUND","message":"not found"}}');
});
const io = new Server(server, { adapter: createAdapter(pub, sub) });

const extensions = [];          // socket ids of every extension in the cluster
const localNames = new Map();   // socket id -> extensionId, extensions connected to this process
const pending = new Map();      // command id -> {origin, t0, sid, deadline}, on the extension's process
let next = 0;

function addExtension(sid) { if (!extensions.includes(sid)) extensions.push(sid); }
function removeExtension(sid) {
  const i = extensions.indexOf(sid);
  if (i >= 0) extensions.splice(i, 1);
}
function fail(origin, id, code, message) {
  io.to(origin).emit('result', {
    id, success: false, error: { code, message },
    metadata: { duration: 0, timestamp: Date.now(), extension: null },
  });
}
function finish(id, body) {
  const rec = pending.get(id);
  if (!rec) return;
  pending.delete(id);
  const now = Date.now();
  io.to(rec.origin).emit('result', {
    ...body, id,
    metadata: { duration: now - rec.t0, timestamp: now, extension: localNames.get(rec.sid) },
  });
}
function deliver(sid, origin, cmd) {
  const socket = io.sockets.sockets.get(sid);
  if (!socket) { fail(origin, cmd.id, 'EXTENSION_DISCONNECTED', 'extension left'); return; }
  pending.set(cmd.id, { origin, t0: Date.now(), sid, deadline: cmd.deadline });
  socket.emit('command', cmd);
}

io.on('ext:up', addExtension);
io.on('ext:down', removeExtension);
io.on('ext:sync', () => { for (const sid of localNames.keys()) io.serverSideEmit('ext:up', sid); });
io.on('route', (sid, origin, cmd) => { if (localNames.has(sid)) deliver(sid, origin, cmd); });

io.on('connection', (socket) => {
  const auth = socket.handshake.auth ?? {};
  if (auth.role === 'extension') {
    localNames.set(socket.id, auth.extensionId ?? socket.id);
    addExtension(socket.id);
    io.serverSideEmit('ext:up', socket.id);
    socket.on('progress', (p) => {
      const rec = p && pending.get(p.id);
      if (rec) io.to(rec.origin).emit('progress', p);
    });
    socket.on('result', (r) => { if (r && r.id) finish(r.id, r); });
    socket.on('disconnect', () => {
      localNames.delete(socket.id);
      removeExtension(socket.id);
      io.serverSideEmit('ext:down', socket.id);
      for (const [id, rec] of pending) {
        if (rec.sid === socket.id) {
          pending.delete(id);
          fail(rec.origin, id, 'EXTENSION_DISCONNECTED', 'extension disconnected');
        }
      }
    });
    return;
  }
  socket.on('command', (cmd, ack) => {
    const reply = typeof ack === 'function' ? ack : () => {};
    if (!cmd || typeof cmd.type !== 'string' || !cmd.type) {
      reply({ accepted: false, error: { code: 'VALIDATION_FAILED', message: 'type is required' } });
      return;
    }
    const routed = { ...cmd, id: randomUUID(), deadline: Date.now() + (cmd.timeout ?? 30000) };
    reply({ id: routed.id, accepted: true });
    if (extensions.length === 0) {
      fail(socket.id, routed.id, 'NO_EXTENSION', 'no extension connected');
      return;
    }
    const sid = extensions[next++ % extensions.length];
    if (localNames.has(sid)) deliver(sid, socket.id, routed);
    else io.serverSideEmit('route', sid, socket.id, routed);
  });
});

setInterval(() => {
  const now = Date.now();
  for (const [id, rec] of pending) {
    if (now > rec.deadline) {
      pending.delete(id);
      fail(rec.origin, id, 'TIMEOUT', 'deadline passed');
    }
  }
}, 250).unref();

// The benchmark asks for a full collection before it reads RSS (started with --expose-gc).
if (global.gc) process.on('SIGUSR2', () => global.gc());

// Give the adapter's SUBSCRIBE a moment, learn the extensions other processes hold, then serve.
await new Promise((resolve) => setTimeout(resolve, 200));
io.serverSideEmit('ext:sync');
server.listen(Number(opt.port), '127.0.0.1', 4096, () => console.log('READY'));
