/**
 * A push-to-pull queue: events arrive from the socket (push), a `for await` loop reads them
 * (pull). Channel subscriptions and session result streams are feeds.
 */

export class Feed<T> implements AsyncIterableIterator<T> {
  private readonly items: T[] = [];
  private readonly waiting: Array<{
    resolve: (step: IteratorResult<T>) => void;
    reject: (error: unknown) => void;
  }> = [];
  private ended = false;
  private failure: unknown = undefined;

  /** @param onReturn runs once when the reader stops (`break`, `return`) or `end()` is called. */
  constructor(private readonly onReturn: () => void = () => {}) {}

  push(item: T): void {
    if (this.ended) {
      return;
    }
    const reader = this.waiting.shift();
    if (reader) {
      reader.resolve({ value: item, done: false });
    } else {
      this.items.push(item);
    }
  }

  /** No more items: readers finish after the buffered ones, or get `error` when given. */
  end(error?: unknown): void {
    if (this.ended) {
      return;
    }
    this.ended = true;
    this.failure = error;
    for (const reader of this.waiting.splice(0)) {
      if (error === undefined) {
        reader.resolve({ value: undefined, done: true });
      } else {
        reader.reject(error);
      }
    }
    this.stopped();
  }

  /** Runs once when the feed ends (a subclass may do more). */
  protected stopped(): void {
    this.onReturn();
  }

  get closed(): boolean {
    return this.ended;
  }

  next(): Promise<IteratorResult<T>> {
    if (this.items.length > 0) {
      return Promise.resolve({ value: this.items.shift()!, done: false });
    }
    if (this.ended) {
      return this.failure === undefined
        ? Promise.resolve({ value: undefined, done: true })
        : Promise.reject(this.failure);
    }
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  return(): Promise<IteratorResult<T>> {
    this.items.length = 0;
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}
