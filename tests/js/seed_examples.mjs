// The seed's client examples, run verbatim with the official socket.io-client against a hub.
// Usage: node seed_examples.mjs <url> <apiKey> <username> <password> [extensionUrl]
// Prints one JSON line with everything observed; the Python test asserts on it.
import io from 'socket.io-client';

const [url, apiKey, username, password, extensionUrl = url] = process.argv.slice(2);
const observed = {};
const timer = setTimeout(() => { console.log(JSON.stringify({ timeout: true, observed })); process.exit(2); }, 30000);

function once(socket, event) {
  return new Promise((resolve) => socket.once(event, resolve));
}

// An extension that answers every command, with progress first.
const extension = io(extensionUrl, {
  auth: { apiKey, role: 'extension', extensionId: 'seed-extension', capabilities: ['*'] },
  transports: ['websocket'],
});
extension.on('command', (command) => {
  extension.emit('progress', { id: command.id, percent: 50 });
  if (command.type === 'FAIL') {
    extension.emit('result', { id: command.id, success: false, error: { code: 'NOT_FOUND', message: 'no such element' } });
  } else {
    extension.emit('result', { id: command.id, success: true, data: { type: command.type, url: command.url } });
  }
});
await once(extension, 'connect');

// --- JWT Authentication (seed) ---
const response = await fetch(`${url}/auth/login`, {
  method: 'POST',
  headers: { 'Content-Type': 'application/json' },
  body: JSON.stringify({
    username,
    password,
  }),
});

const { token } = await response.json();
observed.loginStatus = response.status;

// --- Connection (seed) ---
const socket = io(url, {
  auth: {
    token,
  },
  transports: ['websocket'],
});

socket.on('connect', () => {
  observed.connectedWithToken = true;
});
await once(socket, 'connect');

// --- API Key Authentication (seed; default transports: polling, then upgrade) ---
const keySocket = io(url, {
  auth: {
    apiKey,
  },
});
await once(keySocket, 'connect');
observed.connectedWithApiKey = keySocket.connected;

// --- Server Events (seed) ---
const results = [];
const progress = [];
socket.on('result', (data) => { results.push(data); });
socket.on('progress', (data) => { progress.push(data.percent); });
const errors = [];
socket.on('error', (error) => { errors.push(error); });
const statusEvent = once(socket, 'status');

// --- Client Events (seed) ---
socket.emit('command', {
  type: 'DOWNLOAD_IMAGE',
  target: { /* target details */ },
  options: { /* command options */ },
});

socket.emit('status');

const pong = once(socket, 'pong');
socket.emit('ping');

// --- Event Correlation (seed) ---
const correlationId = 'corr-' + Date.now();
socket.emit('command', {
  type: 'NAVIGATE',
  url: 'https://example.com',
  correlationId,
});

socket.emit('command', {
  type: 'CLICK',
  target: { selector: 'button' },
  correlationId,
});

// --- A failing command and a malformed one ---
socket.emit('command', { type: 'FAIL' });
socket.emit('command', { nope: true });

observed.status = await statusEvent;
observed.pong = await pong;
while (results.length < 4 || errors.length < 1) {
  await new Promise((resolve) => setTimeout(resolve, 20));
}
observed.results = results;
observed.progress = progress;
observed.errors = errors;

// --- Connect refusal (connect_error with the code as message) ---
const refused = io(url, { auth: { apiKey: 'wrong' }, transports: ['websocket'], reconnection: false });
observed.refusal = await new Promise((resolve) => refused.on('connect_error', (err) => resolve({ message: err.message, data: err.data })));

for (const s of [socket, keySocket, extension, refused]) s.close();
clearTimeout(timer);
console.log(JSON.stringify(observed));
process.exit(0);
