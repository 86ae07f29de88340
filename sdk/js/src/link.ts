/**
 * One Socket.IO connection to the hub that stays up: the official client's reconnect for a lost
 * transport, plus what it does not do by itself (docs/protocol.md, "Connecting"): a handshake
 * refusal that may pass later (`UNAVAILABLE` from a draining gateway, `RATE_LIMITED`,
 * `TOO_MANY_CONNECTIONS`) is tried again after a backoff or the hub's `retryAfter`; one that
 * cannot (`AUTH_*`, `FORBIDDEN`, `VALIDATION_FAILED`) ends the link. After every connect the
 * owner's `restore` hook runs (re-join, re-subscribe, re-send) before requests go out again.
 * `Hub` and `Worker` each own one link.
 */

import { io, type Socket } from "socket.io-client";

import {
  ClosedError, errorFromWire, FATAL_ON_CONNECT, HubError, InternalError, RateLimitedError,
  UnavailableError,
} from "./errors.js";

export interface Credentials {
  /** An API key (the handshake's `apiKey`). */
  apiKey?: string;
  /** A bearer token from `POST /auth/login`. */
  token?: string;
}

export interface ConnectOptions extends Credentials {
  /** Transports in the order tried. Default `["websocket"]`; add `"polling"` behind proxies
   * that block websockets (several gateways then need sticky sessions). */
  transports?: Array<"websocket" | "polling">;
  /** How long `Hub.connect()` / `worker.start()` keep trying before they give up (ms). */
  connectTimeout?: number;
  /** The longest wait between two connection attempts (ms). */
  reconnectDelayMax?: number;
  /** How long a request (sessions, subscribe, publish, cancel, status) waits for its answer. */
  requestTimeout?: number;
  /** Extra handshake headers (Node only: browsers do not let scripts set them). */
  extraHeaders?: Record<string, string>;
}

export const DEFAULTS = {
  connectTimeout: 20_000,
  reconnectDelayMin: 250,
  reconnectDelayMax: 5_000,
  requestTimeout: 10_000,
} as const;

/** Runs after each connect; `current()` turns false once that connection is gone. */
export type Restore = (current: () => boolean) => Promise<void>;

interface Waiter {
  resolve: () => void;
  reject: (error: HubError) => void;
}

export class Link {
  readonly socket: Socket;
  /** The gateway said `server:draining`: new commands wait for the next connection. */
  draining = false;
  private ready = false;
  private generation = 0;
  private ended: HubError | undefined;
  private readonly waiters = new Set<Waiter>();
  private restore: Restore = async () => {};
  private onFail: (error: HubError) => void = () => {};
  private refusals = 0;
  private retry: ReturnType<typeof setTimeout> | undefined;
  private lastTransportError = "";
  /** An `AUTH_INVALID` the hub sent before dropping us (a revoked credential). */
  private revoked: HubError | undefined;
  private readonly requestTimeout: number;
  private readonly reconnectDelayMax: number;

  constructor(readonly url: string, handshake: () => Record<string, unknown>,
              private readonly options: ConnectOptions) {
    this.requestTimeout = options.requestTimeout ?? DEFAULTS.requestTimeout;
    this.reconnectDelayMax = options.reconnectDelayMax ?? DEFAULTS.reconnectDelayMax;
    const credentials: Record<string, string> = {};
    if (options.apiKey !== undefined) credentials.apiKey = options.apiKey;
    if (options.token !== undefined) credentials.token = options.token;
    this.socket = io(url, {
      auth: (send) => send({ ...credentials, ...handshake() }),
      transports: options.transports ?? ["websocket"],
      reconnectionDelay: DEFAULTS.reconnectDelayMin,
      reconnectionDelayMax: this.reconnectDelayMax,
      timeout: options.connectTimeout ?? DEFAULTS.connectTimeout,
      extraHeaders: options.extraHeaders,
      autoConnect: false,
      forceNew: true, // a Hub and a Worker in one process must not share (multiplex) a socket
    });
    this.socket.on("connect", () => void this.connected());
    this.socket.on("connect_error", (error: Error & { data?: unknown }) => this.refused(error));
    this.socket.on("disconnect", (reason: string) => this.disconnected(reason));
    this.socket.on("server:draining", () => {
      this.draining = true;
    });
    this.socket.on("error", (body: { code?: unknown } | undefined) => {
      if (body?.code === "AUTH_INVALID") {
        this.revoked = errorFromWire(body);
      }
    });
  }

  /** Connect for the first time: resolves once connected and restored, or rejects with the
   * refusal, or with `UnavailableError` after `connectTimeout`. */
  open(restore: Restore, onFail: (error: HubError) => void): Promise<void> {
    this.restore = restore;
    const limit = this.options.connectTimeout ?? DEFAULTS.connectTimeout;
    const opened = this.whenReady();
    const timer = setTimeout(() => {
      const why = this.lastTransportError ? `: ${this.lastTransportError}` : "";
      this.fail(new UnavailableError(`could not connect to ${this.url} within ${limit} ms${why}`));
    }, limit);
    this.socket.connect();
    return opened.finally(() => {
      clearTimeout(timer);
      this.onFail = onFail; // from now on a fatal refusal is the owner's to report
    });
  }

  /** Why the link ended for good (closed, refused), or undefined while it lives. */
  get endedWith(): HubError | undefined {
    return this.ended;
  }

  get isReady(): boolean {
    return this.ready && this.socket.connected;
  }

  /** Resolves when connected and restored; rejects once the link has ended. */
  whenReady(): Promise<void> {
    if (this.ended) {
      return Promise.reject(this.ended);
    }
    if (this.isReady) {
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => this.waiters.add({ resolve, reject }));
  }

  /** Send an event once ready and return its acknowledgement (a refusal throws its error). */
  async request<T>(event: string, data: unknown): Promise<T> {
    await this.whenReady();
    return this.ask<T>(event, data);
  }

  /** Send an event now (restore hooks use it before the link counts as ready). */
  async ask<T>(event: string, data: unknown): Promise<T> {
    let answer: unknown;
    try {
      answer = await this.socket.timeout(this.requestTimeout).emitWithAck(event, data);
    } catch (error) {
      throw new UnavailableError(
        `no answer to '${event}' (${(error as Error).message}); the SDK reconnects by itself`,
        { event },
      );
    }
    const refusal = answer as { accepted?: unknown; error?: unknown } | null;
    if (refusal?.accepted === false) {
      throw errorFromWire(refusal.error);
    }
    return answer as T;
  }

  close(): void {
    this.end(new ClosedError("closed by this client"));
  }

  private fail(error: HubError): void {
    if (!this.ended) {
      this.end(error);
      this.onFail(error);
    }
  }

  private end(error: HubError): void {
    this.ended ??= error;
    this.ready = false;
    clearTimeout(this.retry);
    this.socket.disconnect();
    for (const waiter of this.waiters) {
      waiter.reject(error);
    }
    this.waiters.clear();
  }

  private async connected(): Promise<void> {
    const generation = ++this.generation;
    const current = () => generation === this.generation && this.socket.connected;
    this.draining = false;
    this.refusals = 0;
    try {
      await this.restore(current);
    } catch (error) { // the hooks handle what the hub may answer: this is a bug, say so
      this.fail(new InternalError(`restoring the connection failed: ${String(error)}`));
      return;
    }
    if (!current() || this.ended) {
      return;
    }
    this.ready = true;
    for (const waiter of this.waiters) {
      waiter.resolve();
    }
    this.waiters.clear();
  }

  private disconnected(reason: string): void {
    this.ready = false;
    this.generation++;
    if (reason === "io server disconnect" && !this.ended) {
      // The hub ended this connection on purpose (revoked, or replaced by a newer one with
      // the same extensionId): reconnecting would only be refused or fight the newer one.
      this.fail(this.revoked ?? new UnavailableError("the hub closed this connection"));
    }
  }

  private refused(error: Error & { data?: unknown }): void {
    if (this.socket.active) { // a transport failure: socket.io-client tries again by itself
      this.lastTransportError = error.message;
      return;
    }
    const refusal = errorFromWire(error.data ?? { code: "UNAVAILABLE", message: error.message });
    if (FATAL_ON_CONNECT.has(refusal.code)) {
      this.fail(refusal);
      return;
    }
    this.lastTransportError = `${refusal.code}: ${refusal.message}`;
    const backoff = Math.min(this.reconnectDelayMax,
                             DEFAULTS.reconnectDelayMin * 2 ** this.refusals++);
    const delay = refusal instanceof RateLimitedError ? refusal.retryAfter ?? backoff : backoff;
    this.retry = setTimeout(() => {
      if (!this.ended) this.socket.connect();
    }, delay);
  }
}
