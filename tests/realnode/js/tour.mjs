// The hub in pods, driven by the official socket.io-client (the one pinned in tests/js).
// Usage: node tour.mjs '{"url": ..., "apiKey": ..., "ca"?: FILE, "serverName"?: NAME}'
// An extension, an API-key client and a second client (all through the gateway Service) run
// commands, a shared session and a channel. Prints one JSON line of what was observed.
// With ca/serverName the connection is wss:// verified against that CA and for that name (the
// Service's DNS name, while the URL dials its ClusterIP from the host).
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';

const require = createRequire(new URL('../../js/package.json', import.meta.url));
const { io } = require('socket.io-client');

const { url, apiKey, ca, serverName } = JSON.parse(process.argv[2]);
const observed = {};
const timer = setTimeout(() => {
  console.log(JSON.stringify({ timeout: true, observed }));
  process.exit(2);
}, 45000);

// Over TLS only websocket: the polling transport's XHR does not take checkServerIdentity.
const secure = ca ? {
  transports: ['websocket'],
  ca: readFileSync(ca),
  rejectUnauthorized: true,
  checkServerIdentity: (_host, cert) => tls.checkServerIdentity(serverName, cert),
} : {};
const sockets = [];
function connect(auth, extra = {}) {
  const socket = io(url, { auth: { apiKey, ...auth }, ...extra, ...secure });
  sockets.push(socket);
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', (err) => reject(new Error(`connect_error: ${err.message}`)));
  });
}
const next = (socket, event) => new Promise((resolve) => socket.once(event, resolve));

const extension = await connect(
  { role: 'extension', extensionId: 'pod-tour', capabilities: ['*'] },
  { transports: ['websocket'] },
);
extension.on('command', (command) => {
  extension.emit('progress', { id: command.id, percent: 50 });
  extension.emit('result', { id: command.id, success: true, data: { type: command.type, url: command.url } });
});

// The seed's API-key client: default transports (polling, then the upgrade to websocket).
const client = await connect({});
observed.transport = await new Promise((resolve) => {
  if (client.io.engine.transport.name === 'websocket') resolve('websocket');
  client.io.engine.once('upgrade', (t) => resolve(t.name));
});
const progress = next(client, 'progress');
const result = next(client, 'result');
observed.ack = await client.emitWithAck('command', { type: 'NAVIGATE', url: 'https://example.com' });
observed.progress = await progress;
observed.result = await result;
observed.pong = await client.emitWithAck('ping', { timestamp: 42 });

// Sessions: the owner shares read access; a member on its own socket sees the session's results.
const member = await connect({}, { transports: ['websocket'] });
const created = await client.emitWithAck('session:create', { name: 'pod-session' });
const shared = await client.emitWithAck('session:share', { sessionId: created.sessionId, permissions: ['read'] });
observed.joined = await member.emitWithAck('session:join', { sessionId: created.sessionId, shareToken: shared.shareToken });
const seen = next(member, 'result');
observed.sessionAck = await client.emitWithAck('command', { type: 'CLICK', sessionId: created.sessionId });
observed.sessionResult = await seen;

// Channels: the member subscribes, the client publishes.
observed.subscribed = await member.emitWithAck('subscribe', { channels: ['pod-news'] });
const message = next(member, 'channel:pod-news');
observed.published = await client.emitWithAck('publish', { channel: 'pod-news', message: { hello: 'pods' } });
observed.message = await message;

for (const s of sockets) s.close();
clearTimeout(timer);
console.log(JSON.stringify(observed));
process.exit(0);
