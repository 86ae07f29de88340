/**
 * The wire shapes of docs/protocol.md as TypeScript types, and the command registry that gives
 * `hub.run("NAVIGATE", ...)` its typed result. Nothing here does I/O.
 */

/** `{code, message, details?}` in a failed result; refusals add `event`, `id`, `correlationId`. */
export interface ErrorBody {
  code: string;
  message: string;
  details?: unknown;
  event?: string;
  id?: string;
  correlationId?: string;
}

/** Fields a command carries besides its type: anything else reaches the extension unchanged. */
export type CommandParams = Record<string, unknown>;

/** What a client sends (`command`): the SDK fills `id`, the hub adds `timeout` and `deadline`. */
export interface CommandMessage extends CommandParams {
  id: string;
  type: string;
  timeout?: number;
  correlationId?: string;
  sessionId?: string;
  target?: Record<string, unknown>;
}

/** What an extension receives: the client's message plus the hub's `timeout` and `deadline`. */
export interface DeliveredCommand extends CommandMessage {
  timeout: number;
  /** Epoch milliseconds after which the hub ends the command with `TIMEOUT`. */
  deadline: number;
  /** Sent again after a reconnect (extensions that declared `acks: true`). */
  redelivered?: boolean;
}

export interface ResultMetadata {
  duration: number;
  timestamp: number;
  /** The extensionId that ran it (absent when none did: `NO_EXTENSION`, a queue `TIMEOUT`). */
  extension?: string;
}

/** A command's one result. `run()` resolves with the successful ones and throws the others. */
export interface Result<D = unknown> {
  id: string;
  success: boolean;
  data?: D;
  error?: ErrorBody;
  correlationId?: string;
  sessionId?: string;
  metadata: ResultMetadata;
}

/** The result `run()` resolves with: a successful one, its `data` typed by the command type. */
export interface Completed<D = unknown> extends Result<D> {
  success: true;
  data: D;
}

export interface Progress {
  id: string;
  percent: number;
  message?: string;
  data?: unknown;
  correlationId?: string;
  sessionId?: string;
}

export interface ChannelMessage<M = unknown> {
  channel: string;
  message: M;
  /** Pass it as `since` to replay what came after this message. */
  offset: string;
  timestamp?: number;
  publisher?: string;
}

export type Permission = "read" | "write";

export interface Pong {
  timestamp: number | string | null;
  serverTime: number;
}

/**
 * Known command types: their parameters and the `data` of their result (the reference
 * extension's fixed points, docs/extension.md). Add your own by declaration merging:
 *
 * ```ts
 * declare module "@semantest/client" {
 *   interface CommandTypes { RESIZE: { params: { width: number }; data: { ok: boolean } } }
 * }
 * ```
 */
export interface CommandTypes {
  NAVIGATE: { params: { url: string; newTab?: boolean }; data: { url: string; title: string } };
  GET_TEXT: { params: { selector?: string }; data: { text: string } };
  SCREENSHOT: { params: { download?: boolean; filename?: string };
                data: { mimeType: "image/png"; data: string } };
  EVALUATE: { params: { expression: string }; data: { value: unknown } };
}

/** The parameters of command type `K`: typed for known types, free-form for the rest. */
export type ParamsOf<K extends string> = K extends keyof CommandTypes
  ? CommandTypes[K]["params"] & CommandParams : CommandParams;

/** The result `data` of command type `K`: typed for known types, `unknown` for the rest. */
export type DataOf<K extends string> = K extends keyof CommandTypes
  ? CommandTypes[K]["data"] : unknown;

/** Fields the SDK and the hub own in a command message: parameters may not set them (the
 * run options do), and a worker's handler does not get them as parameters (`ctx.command` has
 * them). The same set as the Python SDK's. */
export const ENVELOPE_FIELDS: readonly string[] = [
  "id", "type", "target", "timeout", "deadline", "correlationId", "sessionId", "redelivered",
];

/** A fresh id that matches the protocol's id pattern (a UUID, also in insecure browser pages). */
export function newId(): string {
  const crypto = globalThis.crypto;
  if (typeof crypto.randomUUID === "function") {
    return crypto.randomUUID();
  }
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Channel offsets are `<ms>-<seq>`: compare them as number pairs. */
export function offsetAfter(offset: string, than: string | undefined): boolean {
  if (than === undefined) {
    return true;
  }
  const [ms, seq] = offset.split("-").map(BigInt);
  const [thanMs, thanSeq] = than.split("-").map(BigInt);
  return ms! > thanMs! || (ms === thanMs && seq! > thanSeq!);
}
