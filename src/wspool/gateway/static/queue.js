/**
 * The queue between the socket and the application's `for await`: messages wait here until
 * the application takes them; `end()` finishes every iteration once the queue is drained.
 */
export class MessageQueue {
    items = [];
    waiters = [];
    ended = false;
    drainedListeners = new Set();
    get length() {
        return this.items.length;
    }
    push(item) {
        if (this.ended) {
            return;
        }
        const waiter = this.waiters.shift();
        if (waiter !== undefined) {
            waiter({ value: item, done: false });
        }
        else {
            this.items.push(item);
        }
    }
    /** No more items: waiting iterations end, and later ones end after what is queued. */
    end() {
        this.ended = true;
        for (const waiter of this.waiters.splice(0)) {
            waiter({ value: undefined, done: true });
        }
    }
    /** Calls `listener` once the queue has no more than `size` items (at once if so now). */
    whenAtMost(size, listener) {
        if (this.items.length <= size) {
            listener();
            return () => undefined;
        }
        const check = () => {
            if (this.items.length <= size) {
                this.drainedListeners.delete(check);
                listener();
            }
        };
        this.drainedListeners.add(check);
        return () => this.drainedListeners.delete(check);
    }
    next() {
        if (this.items.length > 0) {
            const value = this.items.shift();
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
    [Symbol.asyncIterator]() {
        return this;
    }
}
