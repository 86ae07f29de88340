// What brings a stopped service worker back. Chromium stops an idle worker (and may stop a busy
// one); once stopped, only an extension event starts it again. Two such events:
// - an offscreen document (it outlives the worker) holds a runtime port: the port breaks when
//   the worker stops, and connecting again at once wakes the worker (well under a second);
// - an alarm every 30 s, in case the offscreen document itself is gone.

const OFFSCREEN = 'offscreen.html';
export const ALARM = 'semantest-keepalive';

export async function ensureOffscreen() {
  if (await chrome.offscreen.hasDocument()) return;
  try {
    await chrome.offscreen.createDocument({
      url: OFFSCREEN,
      reasons: ['WORKERS'],
      justification: 'wakes the service worker so it keeps its connection to the Semantest hub',
    });
  } catch (error) {
    // Two starts racing: the other one made it.
    if (!/single offscreen/i.test(error.message)) throw error;
  }
}

export async function ensureAlarm() {
  if (!(await chrome.alarms.get(ALARM))) {
    await chrome.alarms.create(ALARM, { periodInMinutes: 0.5 });
  }
}
