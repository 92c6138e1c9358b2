/**
 * The queue between the socket and the application's `for await`: messages wait here until
 * the application takes them; `end()` finishes every iteration once the queue is drained.
 */
export class MessageQueue<T> implements AsyncIterableIterator<T> {
  private readonly items: T[] = [];
  private readonly waiters: ((result: IteratorResult<T>) => void)[] = [];
  private ended = false;
  private readonly drainedListeners = new Set<() => void>();

  get length(): number {
    return this.items.length;
  }

  push(item: T): void {
    if (this.ended) {
      return;
    }
    const waiter = this.waiters.shift();
    if (waiter !== undefined) {
      waiter({ value: item, done: false });
    } else {
      this.items.push(item);
    }
  }

  /** No more items: waiting iterations end, and later ones end after what is queued. */
  end(): void {
    this.ended = true;
    for (const waiter of this.waiters.splice(0)) {
      waiter({ value: undefined, done: true });
    }
  }

  /** Calls `listener` once the queue has no more than `size` items (at once if so now). */
  whenAtMost(size: number, listener: () => void): () => void {
    if (this.items.length <= size) {
      listener();
      return () => undefined;
    }
    const check = (): void => {
      if (this.items.length <= size) {
        this.drainedListeners.delete(check);
        listener();
      }
    };
    this.drainedListeners.add(check);
    return () => this.drainedListeners.delete(check);
  }

  next(): Promise<IteratorResult<T>> {
    if (this.items.length > 0) {
      const value = this.items.shift()!;
      for (const check of [...this.drainedListeners]) {
        check();
      }
      return Promise.resolve({ value, done: false });
    }
    if (this.ended) {
      return Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}
