// wss with the official socket.io-client, trusting a test CA, optionally with a client certificate.
// Usage: node tls_client.mjs <url> <apiKey> <caFile> [certFile keyFile]
// Prints one JSON line: {connected, pong?, transport?, error?}.
import io from 'socket.io-client';
import { readFileSync } from 'node:fs';

const [url, apiKey, ca, cert, key] = process.argv.slice(2);
const options = {
  auth: { apiKey },
  transports: ['websocket'],
  reconnection: false,
  timeout: 10000,
  ca: readFileSync(ca),
};
if (cert) {
  options.cert = readFileSync(cert);
  options.key = readFileSync(key);
}
const socket = io(url, options);
const done = (outcome) => {
  clearTimeout(timer);
  console.log(JSON.stringify(outcome));
  socket.close();
};
const timer = setTimeout(() => done({ connected: false, error: 'timeout' }), 20000);
socket.on('connect', () => {
  socket.emit('ping', { timestamp: 42 }, (pong) => {
    done({ connected: true, pong, transport: socket.io.engine.transport.name });
  });
});
socket.on('connect_error', (error) => done({ connected: false, error: error.message }));
