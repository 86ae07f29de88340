// A long-polling-only client (no WebSocket upgrade): many HTTP requests that must all reach the
// same gateway. Usage: node polling_client.mjs <url> <apiKey>
import io from 'socket.io-client';

const [url, apiKey] = process.argv.slice(2);
const timer = setTimeout(() => { console.log('timeout'); process.exit(2); }, 20000);
const socket = io(url, { auth: { apiKey }, transports: ['polling'], upgrade: false });
await new Promise((resolve, reject) => { socket.on('connect', resolve); socket.on('connect_error', reject); });
for (let n = 0; n < 20; n += 1) {
  const pong = await socket.emitWithAck('ping', { timestamp: n });
  if (pong.timestamp !== n) throw new Error(`pong ${JSON.stringify(pong)} for ${n}`);
}
socket.close();
clearTimeout(timer);
console.log('polling ok');
process.exit(0);
