/**
 * Commands in flight for one `Hub`: each gets its id here, before it is sent, so it can be sent
 * again after a reconnect (the hub runs an id once and answers a re-send with its one result,
 * docs/protocol.md). A command waits unsent while the link is down or its gateway drains.
 */

import {
  CancelledError, CommandTimeoutError, errorFromWire, HubError, ValidationFailedError,
} from "./errors.js";
import type { Link } from "./link.js";
import {
  ENVELOPE_FIELDS, newId, type CommandMessage, type CommandParams, type Completed, type Progress,
  type Result,
} from "./messages.js";

export interface RunOptions {
  /** Milliseconds the hub gives the command (default: the hub's `MESSAGE_TIMEOUT`). */
  timeout?: number;
  /** Called with each `progress` the extension reports. */
  onProgress?: (progress: Progress) => void;
  /** Which extension runs it: an extensionId, or a whole `target` object (`{extensionId}`). */
  target?: string | Record<string, unknown>;
  /** Echoed on the command's progress and result; groups related commands. */
  correlationId?: string;
  /** Run inside this session (needs `write`); `session.run()` sets it. */
  sessionId?: string;
  /** The command id (default: a fresh UUID). Re-using an id returns that command's result. */
  id?: string;
  /** Aborting it cancels the command. */
  signal?: AbortSignal;
  /** With `timeout`: how long past it to wait for the hub's own `TIMEOUT` result before giving
   * up locally (the hub unreachable). Default 15000 ms, as the Python SDK. */
  resultGrace?: number;
}

const RESULT_GRACE_MS = 15_000;

interface Pending {
  message: CommandMessage;
  sent: boolean;
  onProgress: ((progress: Progress) => void) | undefined;
  settle: (outcome: Result | HubError) => void;
}

/** A submitted command: its id, its result to come, and a way to cancel it. */
export class CommandHandle<D = unknown> {
  constructor(private readonly commands: Commands, readonly id: string,
              readonly result: Promise<Completed<D>>) {}

  /** Ask the hub to cancel: the result then fails with `CancelledError`. Resolves false when
   * the command had already ended. */
  cancel(): Promise<boolean> {
    return this.commands.cancel(this.id);
  }
}

export class Commands {
  private readonly pending = new Map<string, Pending>();

  constructor(private readonly link: Link) {
    link.socket.on("result", (result: Result) => this.pending.get(result?.id)?.settle(result));
    link.socket.on("progress", (progress: Progress) => {
      this.pending.get(progress?.id)?.onProgress?.(progress);
    });
  }

  submit<D>(type: string, params: CommandParams = {}, options: RunOptions = {}):
      CommandHandle<D> {
    const message = this.message(type, params, options);
    const id = message.id;
    const cleanups: Array<() => void> = [];
    let settle!: (outcome: Result | HubError) => void;
    const result = new Promise<Completed<D>>((resolve, reject) => {
      settle = (outcome) => {
        if (this.pending.get(id)?.settle !== settle) {
          return; // already settled
        }
        this.pending.delete(id);
        cleanups.forEach((cleanup) => cleanup());
        if (outcome instanceof HubError) {
          reject(outcome);
        } else if (outcome.success) {
          resolve(outcome as Completed<D>);
        } else {
          reject(errorFromWire({ ...outcome.error, id }, outcome));
        }
      };
    });
    result.catch(() => {}); // a handle nobody awaits must not crash Node with its rejection
    this.pending.set(id, { message, sent: false, onProgress: options.onProgress, settle });
    const ended = this.link.endedWith;
    if (ended !== undefined) {
      settle(ended); // closed, or refused for good: nothing will ever send it
    } else {
      this.guard(id, options, settle, cleanups);
      this.send(id);
    }
    return new CommandHandle(this, id, result);
  }

  /** Send every unfinished command (again): the last step of restoring a connection. */
  resendAll(): void {
    for (const id of this.pending.keys()) {
      this.send(id, true);
    }
  }

  async cancel(id: string): Promise<boolean> {
    const pending = this.pending.get(id);
    if (pending === undefined) {
      return false;
    }
    if (!pending.sent) {
      pending.settle(new CancelledError("cancelled before it was sent", { commandId: id }));
      return true;
    }
    try {
      await this.link.request("cancel", { id });
      return true;
    } catch (error) {
      if (error instanceof ValidationFailedError) {
        return false; // it ended meanwhile: its result is on the way
      }
      throw error;
    }
  }

  failAll(error: HubError): void {
    for (const pending of [...this.pending.values()]) {
      pending.settle(error);
    }
  }

  private message(type: string, params: CommandParams, options: RunOptions): CommandMessage {
    if (typeof type !== "string" || type === "") {
      throw new ValidationFailedError("a command needs a type, e.g. \"NAVIGATE\"");
    }
    for (const field of ENVELOPE_FIELDS) {
      if (field in params) {
        throw new ValidationFailedError(
          `params may not set '${field}': pass it in the options (or let the SDK set it)`);
      }
    }
    const message: CommandMessage = { ...params, id: options.id ?? newId(), type };
    if (this.pending.has(message.id)) {
      throw new ValidationFailedError(`command ${message.id} is already waiting for its result`);
    }
    if (options.timeout !== undefined) message.timeout = options.timeout;
    if (options.target !== undefined) {
      message.target = typeof options.target === "string"
        ? { extensionId: options.target } : options.target;
    }
    if (options.correlationId !== undefined) message.correlationId = options.correlationId;
    if (options.sessionId !== undefined) message.sessionId = options.sessionId;
    return message;
  }

  /** The local deadline and the abort signal of one command. */
  private guard(id: string, options: RunOptions, settle: (outcome: HubError) => void,
                cleanups: Array<() => void>): void {
    if (options.timeout !== undefined) {
      const wait = options.timeout + (options.resultGrace ?? RESULT_GRACE_MS);
      const timer = setTimeout(() => settle(new CommandTimeoutError(
        `no result ${wait} ms after it was submitted (the hub did not answer in time)`,
        { commandId: id, details: { local: true } })), wait);
      cleanups.push(() => clearTimeout(timer));
    }
    const signal = options.signal;
    if (signal === undefined) {
      return;
    }
    if (signal.aborted) {
      settle(new CancelledError("aborted before it was sent", { commandId: id }));
      return;
    }
    const abort = () => void this.cancel(id).catch(() => {});
    signal.addEventListener("abort", abort, { once: true });
    cleanups.push(() => signal.removeEventListener("abort", abort));
  }

  private send(id: string, restoring = false): void {
    const pending = this.pending.get(id);
    const open = (restoring || this.link.isReady) && this.link.socket.connected;
    if (pending === undefined || !open || this.link.draining) {
      return; // sent by resendAll() once connected to a gateway that is not draining
    }
    pending.sent = true;
    this.link.socket.emit("command", pending.message, (ack: { accepted?: unknown; error?: unknown }) => {
      if (ack?.accepted === false) {
        this.pending.get(id)?.settle(errorFromWire(ack.error));
      }
    });
  }
}
