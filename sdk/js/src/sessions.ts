/**
 * Sessions (docs/protocol.md, "Sessions"): create, join, share, leave, run inside one, and read
 * every result of its commands. The sessions a hub holds are joined again after a reconnect
 * (the rights live in the hub's store, so no share token is needed the second time).
 */

import type { CommandHandle, RunOptions } from "./commands.js";
import { HubError, UnavailableError } from "./errors.js";
import { Feed } from "./feed.js";
import type { Link } from "./link.js";
import type { Completed, DataOf, ParamsOf, Permission, Result } from "./messages.js";

/** What a `Session` needs from the hub that made it. */
export interface SessionHost {
  submit<K extends string>(type: K, params?: ParamsOf<K>, options?: RunOptions):
    CommandHandle<DataOf<K>>;
}

interface SessionAnswer {
  sessionId: string;
  name?: string;
  permissions?: Permission[];
  persistent?: boolean;
}

export class Session {
  readonly id: string;
  readonly name: string;
  readonly permissions: readonly Permission[];
  /** Known when this hub created it; undefined after a join (the hub does not say). */
  readonly persistent: boolean | undefined;
  private readonly feeds = new Set<Feed<Result>>();

  constructor(private readonly host: SessionHost, private readonly registry: Sessions,
              answer: SessionAnswer) {
    this.id = answer.sessionId;
    this.name = answer.name ?? "";
    this.permissions = answer.permissions ?? [];
    this.persistent = answer.persistent;
  }

  /** Run a command in this session (needs `write`): see `Hub.run`. */
  run<K extends string>(type: K, params?: ParamsOf<K>, options: RunOptions = {}):
      Promise<Completed<DataOf<K>>> {
    return this.submit(type, params, options).result;
  }

  submit<K extends string>(type: K, params?: ParamsOf<K>, options: RunOptions = {}):
      CommandHandle<DataOf<K>> {
    return this.host.submit(type, params, { ...options, sessionId: this.id });
  }

  /** A share token that lets another principal join with `permissions` (at most what this
   * member holds), valid `expiresIn` ms (default: the hub's). */
  share(permissions: Permission[], options: { expiresIn?: number } = {}): Promise<string> {
    return this.registry.share(this.id, permissions, options);
  }

  leave(): Promise<void> {
    return this.registry.leave(this.id);
  }

  /** Every result of this session's commands that reaches this hub from now on (its own and,
   * with `read`, other members'). Ends on `leave()` or `hub.close()`. */
  results(): AsyncIterableIterator<Result> {
    const feed: Feed<Result> = new Feed(() => this.feeds.delete(feed));
    this.feeds.add(feed);
    return feed;
  }

  /** @internal */
  deliver(result: Result): void {
    this.feeds.forEach((feed) => feed.push(result));
  }

  /** @internal */
  end(error?: HubError): void {
    [...this.feeds].forEach((feed) => feed.end(error));
  }
}

export class Sessions {
  private readonly joined = new Map<string, Session>();

  constructor(private readonly link: Link, private readonly host: SessionHost) {
    link.socket.on("result", (result: Result) => {
      if (typeof result?.sessionId === "string") {
        this.joined.get(result.sessionId)?.deliver(result);
      }
    });
  }

  async create(name: string, options: { persistent?: boolean } = {}): Promise<Session> {
    const answer = await this.link.request<SessionAnswer>("session:create", { name, ...options });
    return this.remember(answer);
  }

  async join(sessionId: string, options: { shareToken?: string } = {}): Promise<Session> {
    const answer = await this.link.request<SessionAnswer>("session:join", {
      sessionId, ...options,
    });
    return this.remember(answer);
  }

  async share(sessionId: string, permissions: Permission[],
              options: { expiresIn?: number } = {}): Promise<string> {
    const answer = await this.link.request<{ shareToken: string }>("session:share", {
      sessionId, permissions, ...options,
    });
    return answer.shareToken;
  }

  async leave(sessionId: string): Promise<void> {
    await this.link.request("session:leave", { sessionId });
    const session = this.joined.get(sessionId);
    if (session !== undefined) {
      this.forget(session);
    }
  }

  /** Join every held session again on a new connection; one that is gone ends its readers. */
  async rejoin(current: () => boolean): Promise<void> {
    for (const session of [...this.joined.values()]) {
      if (!current()) {
        return;
      }
      try {
        await this.link.ask("session:join", { sessionId: session.id });
      } catch (error) {
        if (current() && error instanceof HubError && !(error instanceof UnavailableError)) {
          this.forget(session, error); // SESSION_NOT_FOUND (expired), FORBIDDEN
        }
      }
    }
  }

  forget(session: Session, error?: HubError): void {
    this.joined.delete(session.id);
    session.end(error);
  }

  endAll(error?: HubError): void {
    [...this.joined.values()].forEach((session) => this.forget(session, error));
  }

  private remember(answer: SessionAnswer): Session {
    const session = new Session(this.host, this, answer);
    this.joined.get(session.id)?.end();
    this.joined.set(session.id, session);
    return session;
  }
}
