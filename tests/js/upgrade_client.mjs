// The default transports: long-polling first, then the upgrade to WebSocket; one ping after it.
// Usage: node upgrade_client.mjs <url> <apiKey>
import io from 'socket.io-client';

const [url, apiKey] = process.argv.slice(2);
const timer = setTimeout(() => { console.log('timeout'); process.exit(2); }, 20000);
const socket = io(url, { auth: { apiKey } });
socket.on('connect_error', (error) => { console.log('connect_error', error.message); process.exit(1); });
await new Promise((resolve) => { socket.io.engine.once('upgrade', resolve); });
const pong = await socket.emitWithAck('ping', { timestamp: 11 });
console.log(socket.io.engine.transport.name, pong.timestamp);
socket.close();
clearTimeout(timer);
process.exit(0);
