// The offscreen document's only job: hold a port to the service worker and open a new one the
// moment it breaks (the worker stopped), which starts the worker again.

function hold() {
  const port = chrome.runtime.connect({ name: 'keepalive' });
  port.onDisconnect.addListener(() => setTimeout(hold, 100));
}

hold();
