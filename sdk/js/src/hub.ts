/**
 * `Hub`: the client side of the wire contract (docs/protocol.md) in one object. Commands,
 * sessions and channels each live in their own module; this one wires them to one link and
 * says what a reconnect restores, in order: sessions (commands in them need the rights), then
 * channels, then every unfinished command is sent again by id.
 */

import { Channels, type SubscribeOptions, type Subscription } from "./channels.js";
import { Commands, type CommandHandle, type RunOptions } from "./commands.js";
import { ClosedError, type HubError } from "./errors.js";
import { Link, type ConnectOptions } from "./link.js";
import type { Completed, DataOf, ParamsOf, Permission, Pong } from "./messages.js";
import { Sessions, type Session } from "./sessions.js";

export interface HubOptions extends ConnectOptions {
  /** Shown in the hub's logs and status. */
  name?: string;
  version?: string;
}

export class Hub {
  private readonly commands: Commands;
  private readonly sessions: Sessions;
  private readonly channels: Channels;

  private constructor(private readonly link: Link) {
    this.commands = new Commands(link);
    this.sessions = new Sessions(link, this);
    this.channels = new Channels(link);
  }

  /** Connect as a client. Rejects with the hub's refusal (`AuthInvalidError`, ...) or, after
   * `connectTimeout`, with `UnavailableError`. */
  static async connect(url: string, options: HubOptions = {}): Promise<Hub> {
    const handshake: Record<string, unknown> = { role: "client" };
    if (options.name !== undefined) handshake.name = options.name;
    if (options.version !== undefined) handshake.version = options.version;
    const hub = new Hub(new Link(url, () => handshake, options));
    await hub.link.open((current) => hub.restore(current), (error) => hub.ended(error));
    return hub;
  }

  /** Connected now (false while it reconnects). */
  get connected(): boolean {
    return this.link.isReady;
  }

  /** The gateway said `server:draining`: new commands wait to be sent on the next connection
   * (the gateway lets this client go once the commands it already has are answered). */
  get draining(): boolean {
    return this.link.draining;
  }

  /** Run a command and wait for its result. A failed result throws its typed error
   * (`NoExtensionError`, `CommandTimeoutError`, `CancelledError`, `CommandFailedError`, ...). */
  run<K extends string>(type: K, params?: ParamsOf<K>, options?: RunOptions):
      Promise<Completed<DataOf<K>>> {
    return this.submit(type, params, options).result;
  }

  /** Send a command and return at once: a handle with its id, its result and `cancel()`. */
  submit<K extends string>(type: K, params?: ParamsOf<K>, options?: RunOptions):
      CommandHandle<DataOf<K>> {
    return this.commands.submit<DataOf<K>>(type, params, options);
  }

  createSession(name: string, options?: { persistent?: boolean }): Promise<Session> {
    return this.sessions.create(name, options);
  }

  joinSession(sessionId: string, options?: { shareToken?: string }): Promise<Session> {
    return this.sessions.join(sessionId, options);
  }

  /** A share token for a session this hub is in: `session.share()` by id. */
  shareSession(sessionId: string, permissions: Permission[],
               options?: { expiresIn?: number }): Promise<string> {
    return this.sessions.share(sessionId, permissions, options);
  }

  leaveSession(sessionId: string): Promise<void> {
    return this.sessions.leave(sessionId);
  }

  /** Read a channel: `for await (const msg of hub.subscribe("news", {since}))`. */
  subscribe<M = unknown>(channel: string, options?: SubscribeOptions): Subscription<M> {
    return this.channels.subscribe<M>(channel, options);
  }

  /** Publish on a channel; resolves with the message's offset. */
  publish(channel: string, message: unknown): Promise<string> {
    return this.channels.publish(channel, message);
  }

  /** The hub's `status` for this tenant (extensions, commands in flight, ...). */
  status(): Promise<Record<string, unknown>> {
    return this.link.request("status", null);
  }

  ping(): Promise<Pong> {
    return this.link.request("ping", { timestamp: Date.now() });
  }

  /** Disconnect. Commands still waiting fail with `ClosedError`; subscriptions and session
   * readers end. */
  async close(): Promise<void> {
    this.link.close();
    this.ended(new ClosedError("hub.close() was called"), false);
  }

  private async restore(current: () => boolean): Promise<void> {
    await this.sessions.rejoin(current);
    await this.channels.resubscribe(current);
    if (current()) {
      this.commands.resendAll();
    }
  }

  /** The link ended (closed, or refused for good): nothing waiting will be answered. */
  private ended(error: HubError, readersFail = true): void {
    this.commands.failAll(error);
    this.sessions.endAll(readersFail ? error : undefined);
    this.channels.endAll(readersFail ? error : undefined);
  }
}
