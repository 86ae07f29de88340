/**
 * Channel subscriptions (docs/protocol.md, "Channels") as async iterables. Each subscription
 * remembers the offset of the last message it gave out: after a reconnect the channel is
 * subscribed again with `since` that offset, so nothing published meanwhile is lost (up to the
 * hub's `channels.history`) and nothing is given twice.
 */

import { HubError, UnavailableError, ValidationFailedError } from "./errors.js";
import { Feed } from "./feed.js";
import type { Link } from "./link.js";
import { offsetAfter, type ChannelMessage } from "./messages.js";

const CHANNEL_NAME = /^[A-Za-z0-9_.:-]{1,128}$/;

export interface SubscribeOptions {
  /** Replay what was published after this offset (a `ChannelMessage.offset`). */
  since?: string;
}

export class Subscription<M = unknown> extends Feed<ChannelMessage<M>> {
  /** Resolves once the hub confirmed the subscription; a refusal also ends the iteration. */
  readonly ready: Promise<void>;
  /** The offset of the last message given out (or `since`): where a re-subscribe resumes. */
  lastOffset: string | undefined;
  private unsubscribing: Promise<void> | undefined;

  constructor(readonly channel: string, since: string | undefined,
              subscribed: (subscription: Subscription<M>) => Promise<void>,
              private readonly unsubscribed: (subscription: Subscription<M>) => Promise<void>) {
    super();
    this.lastOffset = since;
    this.ready = subscribed(this);
    this.ready.catch((error: unknown) => this.end(error));
  }

  /** @internal A message from the socket; one already given out (a replay overlap) is skipped. */
  offer(message: ChannelMessage<M>): void {
    if (offsetAfter(message.offset, this.lastOffset)) {
      this.lastOffset = message.offset;
      this.push(message);
    }
  }

  override async next(): Promise<IteratorResult<ChannelMessage<M>>> {
    await this.ready;
    return super.next();
  }

  /** Stop: unsubscribes (when no other subscription of this hub reads the channel). */
  async close(): Promise<void> {
    this.end();
    await this.unsubscribing;
  }

  protected override stopped(): void {
    this.unsubscribing = this.unsubscribed(this).catch(() => {});
  }
}

interface Listening {
  subscriptions: Set<Subscription<unknown>>;
  listener: (message: ChannelMessage) => void;
}

export class Channels {
  private readonly channels = new Map<string, Listening>();

  constructor(private readonly link: Link) {}

  subscribe<M>(channel: string, options: SubscribeOptions = {}): Subscription<M> {
    if (typeof channel !== "string" || !CHANNEL_NAME.test(channel)) {
      throw new ValidationFailedError(
        `channel name ${JSON.stringify(channel)} does not match ${CHANNEL_NAME.source}`);
    }
    return new Subscription<M>(channel, options.since,
      (subscription) => this.add(subscription as Subscription<unknown>, options.since),
      (subscription) => this.remove(subscription as Subscription<unknown>));
  }

  async publish(channel: string, message: unknown): Promise<string> {
    const answer = await this.link.request<{ offset: string }>("publish", { channel, message });
    return answer.offset;
  }

  /** Subscribe every read channel again, from the earliest offset its readers have seen. */
  async resubscribe(current: () => boolean): Promise<void> {
    for (const [channel, { subscriptions }] of this.channels) {
      if (!current()) {
        return;
      }
      const offsets = [...subscriptions].map((subscription) => subscription.lastOffset);
      const since = offsets.includes(undefined) ? undefined
        : offsets.reduce((earliest, offset) => offsetAfter(offset!, earliest) ? earliest : offset);
      try {
        await this.link.ask("subscribe", request(channel, since));
      } catch (error) {
        if (current() && error instanceof HubError && !(error instanceof UnavailableError)) {
          subscriptions.forEach((subscription) => subscription.end(error));
        }
      }
    }
  }

  endAll(error?: HubError): void {
    for (const { subscriptions } of [...this.channels.values()]) {
      subscriptions.forEach((subscription) => subscription.end(error));
    }
  }

  private async add(subscription: Subscription<unknown>, since: string | undefined):
      Promise<void> {
    const channel = subscription.channel;
    let listening = this.channels.get(channel);
    if (listening === undefined) {
      const subscriptions = new Set<Subscription<unknown>>();
      const listener = (message: ChannelMessage) => {
        subscriptions.forEach((reader) => reader.offer(message));
      };
      listening = { subscriptions, listener };
      this.channels.set(channel, listening);
      this.link.socket.on(`channel:${channel}`, listener);
    }
    listening.subscriptions.add(subscription);
    await this.link.request("subscribe", request(channel, since));
  }

  private async remove(subscription: Subscription<unknown>): Promise<void> {
    const listening = this.channels.get(subscription.channel);
    if (listening === undefined || !listening.subscriptions.delete(subscription)) {
      return;
    }
    if (listening.subscriptions.size === 0) {
      this.channels.delete(subscription.channel);
      this.link.socket.off(`channel:${subscription.channel}`, listening.listener);
      if (this.link.isReady) {
        await this.link.request("unsubscribe", { channels: [subscription.channel] });
      }
    }
  }
}

function request(channel: string, since: string | undefined): Record<string, unknown> {
  return since === undefined ? { channels: [channel] } : { channels: [channel], since };
}
