// Inbox holds one peer's relayed frames (its handshake and sealed
// signalling) until the code that speaks with it asks for the next one.
// A peer that sends more than it may before being read is flooding; the
// owner decides what that costs it.

/** The frames a peer may have waiting, unread. */
export const MAX_WAITING = 64;

export class Inbox {
  #frames = [];
  #waiter = null;
  #closed = false;

  /**
   * put hands b to a waiting next, or keeps it: false when full. Once
   * closed it drops b (true: a late frame is not a flood).
   */
  put(b) {
    if (this.#closed) return true;
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = null;
      w(b);
      return true;
    }
    if (this.#frames.length >= MAX_WAITING) return false;
    this.#frames.push(b);
    return true;
  }

  /**
   * next resolves with the next frame; with undefined once timeout ms (0:
   * no bound) pass first, with null once the inbox is closed (at once if
   * it already is: a wait begun after close would otherwise never end).
   */
  next(timeout) {
    if (this.#closed) return Promise.resolve(null);
    if (this.#frames.length > 0) return Promise.resolve(this.#frames.shift());
    return new Promise((resolve) => {
      const t = timeout ? setTimeout(() => {
        this.#waiter = null;
        resolve(undefined);
      }, timeout) : null;
      this.#waiter = (d) => {
        if (t) clearTimeout(t);
        resolve(d);
      };
    });
  }

  /** close wakes a waiting next with null, and every later one; it drops what waits. */
  close() {
    this.#closed = true;
    this.#frames = [];
    const w = this.#waiter;
    this.#waiter = null;
    w?.(null);
  }
}
