// Runs commands: each id once per browser session, whatever the hub sends again. A command is
// written to chrome.storage.session before it is acknowledged, and its result before it is sent,
// so a worker stopped at any point resumes the work or re-sends the answer when it starts again.

import { Code, CommandError, errorOf } from './errors.js';
import { handlerFor, parameters } from './commands.js';
import * as inflight from './inflight.js';

// The extension answers this long before the hub's deadline, so its own TIMEOUT (which says
// what it was waiting for) arrives before the hub's.
const MARGIN_MS = 250;

export class Runner {
  constructor() {
    this.send = () => {}; // send(event, payload, onAck?): set by hub.connect
    this.running = new Map(); // id → AbortController, this worker's life only
    this.settings = null;
  }

  /** A `command` from the hub; `ack` is the Socket.IO acknowledgement (acks: true). */
  async accept(command, ack = () => {}) {
    const id = command?.id;
    if (typeof id !== 'string') return ack();
    if (this.running.has(id)) return ack(); // a repeat of work in hand
    this.running.set(id, new AbortController());
    const known = await inflight.get(id);
    if (known?.result) {
      this.running.delete(id);
      ack();
      return this.report(known.result);
    }
    if (!known) await inflight.remember(command);
    ack();
    return this.execute(known ?? { command, memo: {} });
  }

  cancel(id) {
    const controller = this.running.get(id);
    if (!controller) return;
    controller.abort(new CommandError('CANCELLED', 'cancelled by the client'));
    this.running.delete(id);
    inflight.forget(id);
  }

  /** After a worker restart: results not yet confirmed go again, unfinished work resumes. */
  async resume() {
    for (const record of await inflight.all()) {
      const { id, deadline } = record.command;
      if (record.result) {
        this.report(record.result);
      } else if (!this.running.has(id) && deadline > Date.now()) {
        this.running.set(id, new AbortController());
        this.execute(record);
      } else if (!this.running.has(id)) {
        inflight.forget(id); // the hub has ended it with TIMEOUT already
      }
    }
  }

  async execute({ command, memo }) {
    const { id } = command;
    const controller = this.running.get(id);
    if (!controller) return inflight.forget(id); // cancelled while it was being written down
    const cancelled = controller.signal;
    const deadline = (command.deadline ?? Date.now() + 30000) - MARGIN_MS;
    const late = AbortSignal.timeout(Math.max(0, deadline - Date.now()));
    const signal = AbortSignal.any([cancelled, late]);
    const context = {
      id, signal, deadline, memo, settings: this.settings,
      progress: (percent, message) => this.send('progress', { id, percent, message }),
      remember: (change) => inflight.update(id, { memo: { ...memo, ...change } }),
    };
    let result;
    try {
      const data = await handlerFor(command.type)(parameters(command), context);
      result = { id, success: true, data };
    } catch (thrown) {
      if (cancelled.aborted) return; // the hub has ended it already: nothing to say
      const error = late.aborted
        ? { code: Code.TIMEOUT, message: `${command.type} did not finish before its deadline` }
        : errorOf(thrown);
      result = { id, success: false, error };
    }
    if (cancelled.aborted) return;
    this.running.delete(id);
    result = this.sendable(result);
    await inflight.update(id, { result });
    this.report(result);
  }

  /** A result the hub would refuse for its size becomes a failure that says so: sent as it
   * is, the hub would refuse it (or close the connection, past 4 × its maxPayload). */
  sendable(result) {
    const size = new TextEncoder().encode(JSON.stringify(['result', result])).length;
    const limit = this.settings.maxResultBytes;
    if (size <= limit) return result;
    return { id: result.id, success: false, error: { code: Code.PAYLOAD_TOO_LARGE,
      message: `the result is ${size} bytes, over maxResultBytes (${limit}); the hub's `
        + 'websocket.maxPayload bounds it' } };
  }

  report(result) {
    this.send('result', result, (answer) => {
      const refusal = answer?.accepted === false ? answer.error : null;
      if (refusal && result.success) {
        // The hub refused the result (over its websocket.maxPayload, ...): the client hears
        // why, instead of waiting for its deadline.
        const failed = { id: result.id, success: false,
          error: { code: refusal.code, message: refusal.message } };
        inflight.update(result.id, { result: failed }).then(() => this.report(failed));
        return;
      }
      inflight.forget(result.id);
    });
  }
}
