// The connection to the hub: the official socket.io-client over WebSocket (a service worker has
// no XMLHttpRequest for long-polling), as an extension that acknowledges every command.

import { io } from 'socket.io-client';

// Refusals that a retry cannot fix: the settings must change first.
const FINAL = new Set(['AUTH_REQUIRED', 'AUTH_INVALID', 'AUTH_EXPIRED', 'FORBIDDEN',
  'VALIDATION_FAILED']);

export function connect(settings, runner, setStatus) {
  const auth = {
    role: 'extension',
    extensionId: settings.extensionId,
    capabilities: settings.capabilities,
    name: settings.name,
    version: chrome.runtime.getManifest().version,
    acks: true,
  };
  if (settings.apiKey) auth.apiKey = settings.apiKey;
  if (settings.token) auth.token = settings.token;
  const socket = io(settings.hubUrl, {
    transports: ['websocket'],
    auth,
    reconnectionDelay: 250,
    reconnectionDelayMax: 3000,
  });
  let retry = null;
  socket.on('connect', () => {
    setStatus({ state: 'connected', extensionId: settings.extensionId });
    runner.resume();
  });
  socket.on('disconnect', (reason) => setStatus({ state: 'disconnected', reason }));
  socket.on('connect_error', (error) => {
    const code = error.data?.code ?? error.message;
    setStatus({ state: 'refused', code, message: error.data?.message ?? error.message });
    // A refusal by the hub (not a network error) ends the client's own retries.
    if (!socket.active && !FINAL.has(code)) {
      retry = setTimeout(() => socket.connect(), error.data?.retryAfter ?? 1000);
    }
  });
  socket.on('command', (command, ack) => runner.accept(command, ack));
  socket.on('cancel', (message) => runner.cancel(message?.id));
  runner.send = (event, payload, onAck) => (onAck ? socket.emit(event, payload, onAck)
    : socket.emit(event, payload));
  return () => {
    clearTimeout(retry);
    socket.disconnect();
  };
}
