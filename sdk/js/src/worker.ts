/**
 * `Worker`: the extension side of docs/protocol.md, for commands served by JavaScript code
 * (a Playwright or Puppeteer script, a test double, a service).
 *
 * It declares `acks: true` and acknowledges every command as it arrives, so a command its
 * gateway sent but it never got is sent again after a reconnect; it runs each id once (a
 * `redelivered` repeat of a finished one only gets its result again); a `cancel`, the command's
 * deadline or `close()` aborts `ctx.signal`; a handler's throw becomes an error result; a result
 * is offered again on each new connection until a gateway acknowledges it or the command's
 * deadline has passed. Mirrors the Python SDK's `semantest.client.Worker`.
 */

import {
  CancelledError, ClosedError, CommandTimeoutError, HubError, ValidationFailedError,
} from "./errors.js";
import { Link, type ConnectOptions } from "./link.js";
import {
  ENVELOPE_FIELDS, newId, type CommandParams, type DataOf, type DeliveredCommand, type ErrorBody,
  type ParamsOf,
} from "./messages.js";

export const UNKNOWN_COMMAND = "UNKNOWN_COMMAND";
export const HANDLER_ERROR = "HANDLER_ERROR";

export interface WorkerOptions extends ConnectOptions {
  /** Stable across restarts to keep in-flight commands (default: a fresh `js-worker-<uuid>`). */
  extensionId?: string;
  /** Command types served (default: the types with a handler, `["*"]` if one handles all). */
  capabilities?: string[];
  name?: string;
  version?: string;
  /** Commands the hub gives this worker at once. */
  maxConcurrency?: number;
}

/** What a handler knows about the command it runs, and how it reports progress. */
export interface CommandContext {
  readonly id: string;
  readonly type: string;
  /** The whole command as delivered (with `target`, `correlationId`, `sessionId`, ...). */
  readonly command: DeliveredCommand;
  /** Epoch ms after which the hub has ended the command with `TIMEOUT`. */
  readonly deadline: number | undefined;
  readonly redelivered: boolean;
  /** Aborted on `cancel` (reason `CancelledError`), at the deadline (`CommandTimeoutError`) or on
   * `worker.close()` (`ClosedError`): pass it to fetch, Playwright, timers. */
  readonly signal: AbortSignal;
  /** Report progress (0-100); dropped quietly while the worker is between connections. */
  progress(percent: number, message?: string, data?: unknown): void;
}

export type Handler<P = CommandParams, D = unknown> =
  (ctx: CommandContext, params: P) => D | Promise<D>;

/** Throw it in a handler to fail the command with your own code (and details); any thrown
 * error with a string `code` does the same, anything else fails with `HANDLER_ERROR`. */
export class CommandError extends HubError {
  constructor(code: string, message: string, details?: unknown) {
    super(message, { code, details });
  }
}

interface ResultMessage {
  id: string;
  success: boolean;
  data?: unknown;
  error?: ErrorBody;
}

interface Run {
  controller: AbortController;
  deadline: number | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Set when the handler is done; `undefined` while it runs. */
  result: ResultMessage | undefined;
  /** A gateway took the result (or nobody wants it any more). */
  delivered: boolean;
}

export class Worker {
  readonly extensionId: string;
  private readonly handlers = new Map<string, Handler<any, unknown>>();
  private readonly runs = new Map<string, Run>();
  private readonly link: Link;
  private started: Promise<void> | undefined;

  constructor(url: string, private readonly options: WorkerOptions = {}) {
    this.extensionId = options.extensionId ?? `js-worker-${newId()}`;
    this.link = new Link(url, () => this.handshake(), options);
    this.link.socket.on("command", (command: DeliveredCommand, ack?: () => void) => {
      this.received(command);
      ack?.(); // the acknowledgement `acks: true` promised: this worker has the command
    });
    this.link.socket.on("cancel", (body: { id?: string } | undefined) => {
      this.runs.get(body?.id ?? "")?.controller.abort(
        new CancelledError("the command was cancelled", { commandId: body?.id }));
    });
  }

  /** Serve `type` (`"*"`: every type without its own handler). Returns the worker. */
  handle<K extends string>(type: K, handler: Handler<ParamsOf<K>, DataOf<K>>): this {
    this.handlers.set(type, handler);
    return this;
  }

  /** Connect and serve. Rejects with the hub's refusal or, after `connectTimeout`, with
   * `UnavailableError`. */
  start(): Promise<void> {
    if (this.capabilities().length === 0) {
      return Promise.reject(new ValidationFailedError(
        "a worker needs a handler (worker.handle) or capabilities before start()"));
    }
    this.started ??= this.link.open(async (current) => this.offerResults(current),
                                    (error) => this.stopAll(error));
    return this.started;
  }

  get connected(): boolean {
    return this.link.isReady;
  }

  /** Disconnect; running handlers see `ctx.signal` abort with `ClosedError`. */
  async close(): Promise<void> {
    this.link.close();
    this.stopAll(new ClosedError("worker.close() was called"));
  }

  private capabilities(): string[] {
    if (this.options.capabilities !== undefined) {
      return this.options.capabilities;
    }
    return this.handlers.has("*") ? ["*"] : [...this.handlers.keys()].sort();
  }

  private handshake(): Record<string, unknown> {
    const handshake: Record<string, unknown> = {
      role: "extension", extensionId: this.extensionId, capabilities: this.capabilities(),
      acks: true,
    };
    const { name, version, maxConcurrency } = this.options;
    if (name !== undefined) handshake.name = name;
    if (version !== undefined) handshake.version = version;
    if (maxConcurrency !== undefined) handshake.maxConcurrency = maxConcurrency;
    return handshake;
  }

  private received(command: DeliveredCommand): void {
    const id = command?.id;
    if (typeof id !== "string") {
      return;
    }
    const known = this.runs.get(id);
    if (known !== undefined) { // a redelivery: never run twice, answer again if done
      this.offer(id);
      return;
    }
    this.forgetPast();
    const deadline = typeof command.deadline === "number" ? command.deadline : undefined;
    const run: Run = {
      controller: new AbortController(), deadline, timer: undefined, result: undefined,
      delivered: false,
    };
    if (deadline !== undefined) {
      run.timer = setTimeout(() => run.controller.abort(new CommandTimeoutError(
        "the command's deadline passed", { commandId: id })), Math.max(0, deadline - Date.now()));
    }
    this.runs.set(id, run);
    void this.execute(command, run);
  }

  private async execute(command: DeliveredCommand, run: Run): Promise<void> {
    const outcome = await this.outcome(command, run);
    clearTimeout(run.timer);
    run.result = { id: command.id, ...outcome };
    if (run.controller.signal.aborted) {
      run.delivered = true; // the hub already ended it (CANCELLED, TIMEOUT): nobody listens
      return;
    }
    this.offer(command.id);
  }

  private async outcome(command: DeliveredCommand, run: Run):
      Promise<Omit<ResultMessage, "id">> {
    const handler = this.handlers.get(command.type) ?? this.handlers.get("*");
    if (handler === undefined) {
      return failure(UNKNOWN_COMMAND, `this worker has no handler for ${command.type}`);
    }
    try {
      const data = await handler(this.context(command, run), parameters(command));
      return data === undefined ? { success: true } : { success: true, data };
    } catch (error) {
      const coded = error as { code?: unknown; message?: unknown; details?: unknown } | null;
      if (typeof coded?.code === "string" && coded.code !== "") {
        // A HubError/CommandError, or any error that names its code (Node's system errors)
        return failure(coded.code, String(coded.message ?? coded.code), coded.details);
      }
      const why = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      return failure(HANDLER_ERROR, why);
    }
  }

  private context(command: DeliveredCommand, run: Run): CommandContext {
    const socket = this.link.socket;
    return {
      id: command.id,
      type: command.type,
      command,
      deadline: run.deadline,
      redelivered: command.redelivered === true,
      signal: run.controller.signal,
      progress(percent: number, message?: string, data?: unknown): void {
        if (!socket.connected || run.controller.signal.aborted) {
          return;
        }
        const report: Record<string, unknown> = { id: command.id, percent };
        if (message !== undefined) report.message = message;
        if (data !== undefined) report.data = data;
        socket.emit("progress", report);
      },
    };
  }

  /** Send a finished command's result, unless a gateway already took it. */
  private offer(id: string): void {
    const run = this.runs.get(id);
    if (run?.result === undefined || run.delivered || !this.link.socket.connected) {
      return; // still running, or offered again by offerResults() after the next connect
    }
    const result = run.result;
    this.link.socket.emit("result", result, (answer?: { accepted?: unknown; error?: ErrorBody }) => {
      if (answer?.accepted !== false || !result.success) {
        run.delivered = true;
        return;
      }
      // The hub refused this result (too large, not JSON): fail the command with why.
      const why = answer.error ?? { code: "INTERNAL", message: "refused" };
      run.result = { id, ...failure(why.code, `the hub refused the result: ${why.message}`) };
      this.offer(id);
    });
  }

  private async offerResults(current: () => boolean): Promise<void> {
    for (const id of this.runs.keys()) {
      if (!current()) {
        return;
      }
      this.offer(id);
    }
  }

  /** Forget commands whose deadline has passed: the hub has ended them and never re-sends. */
  private forgetPast(): void {
    const now = Date.now();
    for (const [id, run] of this.runs) {
      if (run.result !== undefined && run.deadline !== undefined && run.deadline < now) {
        this.runs.delete(id);
      }
    }
  }

  private stopAll(error: HubError): void {
    for (const run of this.runs.values()) {
      clearTimeout(run.timer);
      run.controller.abort(error);
    }
  }
}

/** A handler's parameters: the command's `options`, then `target`, then its own top-level
 * fields, the later winning (as the reference extension and the Python SDK read them). */
export function parameters(command: DeliveredCommand): CommandParams {
  const own = Object.entries(command).filter(([key]) => !HANDLER_ENVELOPE.includes(key));
  return { ...objectOrNothing(command.options), ...objectOrNothing(command.target),
           ...Object.fromEntries(own) };
}

const HANDLER_ENVELOPE = [...ENVELOPE_FIELDS, "options"];

function objectOrNothing(value: unknown): CommandParams {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? value as CommandParams : {};
}

function failure(code: string, message: string, details?: unknown):
    { success: false; error: ErrorBody } {
  const error: ErrorBody = { code, message };
  if (details !== undefined) error.details = details;
  return { success: false, error };
}
