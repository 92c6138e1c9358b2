/**
 * The JavaScript client of a websocket-pool, for browsers and Node.js: one logical
 * connection to a pool that survives node failures, as the Python client (`wspool.client`).
 *
 *     import { Client } from "/client/wspool.js";   // served by the gateway
 *     const client = new Client("wss://pool.example/ws", { token: () => fetchToken() });
 *     await client.connect();
 *     await client.subscribe("prices");
 *     for await (const message of client.messages()) { ... }
 *
 * The client owns its WebSocket. After any close (1012 from a draining node, a crashed node,
 * a dead link noticed by its own pings) it waits a jittered exponential delay
 * ({@link Backoff}), connects to the next URL and subscribes to every channel again with
 * `since` set to the offset of the last message it delivered there, so the node replays what
 * was missed and the application sees each message once, in order. When the history no longer
 * holds them, the application gets a `resubscribed` message with `recovered: false`.
 *
 * Messages reach the application through `for await (... of client.messages())`, or through
 * callbacks per channel (`client.on(channel, callback)`). The queue behind `messages()` holds
 * at most `queueSize` messages: when the application falls that far behind, the client closes
 * its connection, waits until the application has read half of them, and reconnects with
 * `since`, so nothing is lost and memory stays bounded.
 *
 * Credentials ({@link TokenProvider}, `./credentials.js`) travel as the subprotocol
 * `bearer.<token>` and are renewed on the open connection before they expire.
 */

import { Backoff } from "./backoff.js";
import { fetchToken, renewalDelay, subprotocols, tokenExpiry } from "./credentials.js";
import type { TokenProvider } from "./credentials.js";
import {
  AuthenticationError,
  ClosedError,
  ConnectionError,
  RequestError,
  TimeoutError,
} from "./messages.js";
import type { ChannelMessage, ErrorMessage, Message } from "./messages.js";
import { MessageQueue } from "./queue.js";

export { Backoff } from "./backoff.js";
export { renewalDelay, tokenExpiry } from "./credentials.js";
export type { TokenProvider } from "./credentials.js";
export {
  AuthenticationError,
  ClosedError,
  ConnectionError,
  RequestError,
  TimeoutError,
} from "./messages.js";
export type { ChannelMessage, Data, ErrorMessage, Message, Resubscribed } from "./messages.js";

/** What the client needs of a WebSocket: the browser's, Node's, or the `ws` package's. */
export interface WebSocketLike {
  readonly readyState: number;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string, protocols: string[]) => WebSocketLike;

/** Times are in milliseconds. */
export interface ClientOptions {
  /** Asked for as `?clientId=`; otherwise the pool names the client (`client.clientId`). */
  clientId?: string;
  /** A token, or a provider asked before every connection and ahead of each `exp`. */
  token?: string | TokenProvider;
  /** Delays between connection attempts; full jitter, 100 ms base, 5 s cap by default. */
  backoff?: Backoff;
  /** How often the client pings the node (10 s); 0 sends no pings. */
  pingInterval?: number;
  /** How long it waits for any frame after a ping before it gives the link up (10 s). */
  pingTimeout?: number;
  /** How long one connection attempt may take, until the node's `connected` frame (5 s). */
  openTimeout?: number;
  /** How long `connect()` waits for the first connection (10 s). */
  connectTimeout?: number;
  /** How long `subscribe()`, `unsubscribe()` and `ping()` wait for their answer (10 s). */
  requestTimeout?: number;
  /** Messages `messages()` holds before the client pauses its connection (10,000). */
  queueSize?: number;
  /** Receives the error messages (refused publishes) instead of `messages()`. */
  onError?: (error: ErrorMessage) => void;
  /** The WebSocket class; `globalThis.WebSocket` by default. */
  WebSocket?: WebSocketConstructor;
}

/** Milliseconds a connection must last before the backoff starts again from its base. */
export const STABLE_AFTER = 2_000;

const OPEN = 1;

type Frame = Record<string, unknown>;

interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(error: Error): void;
  settled: boolean;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<T>((yes, no) => {
    resolve = yes;
    reject = no;
  });
  promise.catch(() => undefined); // a rejection nobody awaits is not an unhandled one
  const result: Deferred<T> = {
    promise,
    settled: false,
    resolve(value) {
      result.settled = true;
      resolve(value);
    },
    reject(error) {
      result.settled = true;
      reject(error);
    },
  };
  return result;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The client's side of one subscription. */
interface Channel {
  position: string | null;
  readonly ready: Deferred<string>;
  sentOn: WebSocketLike | null;
  confirmedOnce: boolean;
  sentSince: string | null;
  /** Delays between the sends of a resubscribe the node could not take yet. */
  readonly retries: Backoff;
}

/** Codes of a refusal that a later attempt may not get: the node's store out of reach, a rate limit. */
const FOR_NOW = new Set(["INTERNAL", "RATE_LIMITED"]);

/** A WebSocket URL; relative ones (`/ws`) resolve against the page, `http(s)` as `ws(s)`. */
function socketUrl(url: string): URL {
  const base = (globalThis as { location?: { href: string } }).location?.href;
  const parsed = new URL(url, base);
  parsed.protocol = parsed.protocol.replace(/^http/, "ws");
  if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:") {
    throw new TypeError(`not a WebSocket URL: ${url}`);
  }
  return parsed;
}

/** Connects to a pool (the gateway's URL, or a list of node URLs tried in turn). */
export class Client {
  clientId: string | null;
  serverId = "";
  connectionId = "";
  /** How many connections the client has opened (1 + reconnects). */
  connections = 0;

  private readonly urls: URL[];
  private readonly tokenProvider: TokenProvider | null;
  private readonly backoff: Backoff;
  private readonly options: Required<
    Pick<
      ClientOptions,
      "pingInterval" | "pingTimeout" | "openTimeout" | "connectTimeout" | "requestTimeout" | "queueSize"
    >
  >;
  private readonly onError: ((error: ErrorMessage) => void) | null;
  private readonly WebSocketClass: WebSocketConstructor;
  private readonly queue = new MessageQueue<Message>();
  private readonly channels = new Map<string, Channel>();
  private readonly listeners = new Map<string, Set<(message: ChannelMessage) => void>>();
  private readonly requests = new Map<string, Deferred<Frame>>();
  private readonly subscribeIds = new Map<string, string>();
  /** Resubscribes waiting their turn (cleared by `close()`). */
  private readonly resends = new Set<ReturnType<typeof setTimeout>>();
  private ids = 0;
  private token: string | null = null;
  private failure: AuthenticationError | null = null;
  private started = false;
  private closing = false;
  private index = 0;
  private attemptStarted = 0;
  /** The socket being opened or open; frames of any other socket are ignored. */
  private socket: WebSocketLike | null = null;
  /** The socket once the node said `connected`. */
  private ws: WebSocketLike | null = null;
  private online = deferred<void>();
  private lastFrameAt = 0;
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();
  private pinger: ReturnType<typeof setInterval> | null = null;

  constructor(urls: string | readonly string[], options: ClientOptions = {}) {
    const list = typeof urls === "string" ? [urls] : [...urls];
    if (list.length === 0) {
      throw new TypeError("Client needs at least one URL");
    }
    this.urls = list.map(socketUrl);
    this.clientId = options.clientId ?? null;
    const token = options.token;
    this.tokenProvider = token === undefined ? null : typeof token === "string" ? () => token : token;
    this.backoff = options.backoff ?? new Backoff(100, 5_000);
    this.options = {
      pingInterval: options.pingInterval ?? 10_000,
      pingTimeout: options.pingTimeout ?? 10_000,
      openTimeout: options.openTimeout ?? 5_000,
      connectTimeout: options.connectTimeout ?? 10_000,
      requestTimeout: options.requestTimeout ?? 10_000,
      queueSize: options.queueSize ?? 10_000,
    };
    for (const [name, value] of Object.entries(this.options)) {
      if (!(Number.isFinite(value) && value >= 0)) {
        throw new RangeError(`${name} must be a finite number >= 0, not ${value}`);
      }
    }
    this.onError = options.onError ?? null;
    const WebSocketClass =
      options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (WebSocketClass === undefined) {
      throw new TypeError(
        "no WebSocket class: pass options.WebSocket (Node.js 20 needs --experimental-websocket)",
      );
    }
    this.WebSocketClass = WebSocketClass;
  }

  // lifecycle --------------------------------------------------------------------------------

  /** Starts the connection loop; resolves once connected (`TimeoutError` after
   * `connectTimeout` without a connection; the loop keeps trying). */
  async connect(): Promise<void> {
    this.raiseFailure();
    if (!this.started) {
      this.started = true;
      void this.attempt();
    }
    await withTimeout(this.online.promise, this.options.connectTimeout, "connect");
    this.raiseFailure();
  }

  /** Closes the connection for good: `messages()` ends, pending calls reject. */
  async close(): Promise<void> {
    if (this.closing) {
      return;
    }
    this.closing = true;
    const socket = this.socket;
    this.socket = null;
    this.disconnected(new ClosedError("the client was closed"));
    socket?.close(1000, "client closed");
    this.resends.forEach(clearTimeout);
    this.resends.clear();
    for (const state of this.channels.values()) {
      if (!state.ready.settled) {
        state.ready.reject(this.failure ?? new ClosedError("the client was closed"));
      }
    }
    this.online.reject(this.failure ?? new ClosedError("the client was closed"));
    this.queue.end();
  }

  /** Whether the client holds an open connection now. */
  get connected(): boolean {
    return this.ws !== null;
  }

  /** The offset of the last message delivered, per subscribed channel. */
  get positions(): Record<string, string | null> {
    return Object.fromEntries([...this.channels].map(([name, state]) => [name, state.position]));
  }

  // what the application calls ---------------------------------------------------------------

  /**
   * Subscribes (again after every reconnect, from the last offset delivered); resolves to the
   * channel's offset when the subscription took effect, rejects with {@link RequestError}
   * when the pool refuses it. `since` resumes from an offset the application stored itself.
   */
  async subscribe(channel: string, options: { since?: string } = {}): Promise<string> {
    this.raiseFailure();
    this.raiseClosed();
    let state = this.channels.get(channel);
    if (state === undefined) {
      state = {
        position: options.since ?? null,
        ready: deferred<string>(),
        sentOn: null,
        confirmedOnce: false,
        sentSince: null,
        retries: new Backoff(100, 2_000),
      };
      this.channels.set(channel, state);
      if (this.ws !== null) {
        this.sendSubscribe(this.ws, channel, state);
      }
    }
    return withTimeout(state.ready.promise, this.options.requestTimeout, `subscribe ${channel}`);
  }

  /** Stops receiving `channel`; also not subscribed again after reconnects. */
  async unsubscribe(channel: string): Promise<void> {
    const state = this.channels.get(channel);
    this.channels.delete(channel);
    if (state === undefined || this.ws === null || state.sentOn !== this.ws) {
      return;
    }
    try {
      await this.request({ type: "unsubscribe", channel });
    } catch (error) {
      if (!(error instanceof ConnectionError)) {
        throw error;
      }
    }
  }

  /**
   * Sends a message; resolves to its `messageId` once sent. The protocol acknowledges
   * nothing: a refusal comes back as an error message. While disconnected this waits for the
   * next connection.
   */
  async publish(channel: string, payload: unknown, messageId?: string): Promise<string> {
    const id = messageId ?? this.nextId();
    const frame = JSON.stringify({ type: "data", channel, payload, messageId: id });
    for (;;) {
      this.raiseClosed();
      await this.online.promise;
      this.raiseFailure();
      const ws = this.ws;
      if (ws !== null && ws.readyState === OPEN) {
        ws.send(frame);
        return id;
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** Round trip to the node, in milliseconds (`ConnectionError` while disconnected). */
  async ping(): Promise<number> {
    const started = performance.now();
    await this.request({ type: "ping" });
    return performance.now() - started;
  }

  /** Every message of channels without a callback, and every error message, in order. */
  messages(): AsyncIterableIterator<Message> {
    return this.queue;
  }

  /**
   * Calls `callback` with each message of `channel` (data, and `resubscribed`) instead of
   * queueing it for `messages()`; returns the function that removes the callback.
   */
  on(channel: string, callback: (message: ChannelMessage) => void): () => void {
    let callbacks = this.listeners.get(channel);
    if (callbacks === undefined) {
      callbacks = new Set();
      this.listeners.set(channel, callbacks);
    }
    callbacks.add(callback);
    return () => {
      callbacks.delete(callback);
      if (callbacks.size === 0 && this.listeners.get(channel) === callbacks) {
        this.listeners.delete(channel);
      }
    };
  }

  private raiseFailure(): void {
    if (this.failure !== null) {
      throw this.failure;
    }
  }

  private raiseClosed(): void {
    if (this.closing) {
      throw this.failure ?? new ClosedError("the client was closed");
    }
  }

  private nextId(): string {
    this.ids += 1;
    return `c${this.ids}`;
  }

  private async request(frame: Frame): Promise<Frame> {
    this.raiseFailure();
    const ws = this.ws;
    if (ws === null) {
      throw new ConnectionError("not connected");
    }
    const messageId = this.nextId();
    const reply = deferred<Frame>();
    this.requests.set(messageId, reply);
    try {
      ws.send(JSON.stringify({ ...frame, messageId }));
      return await withTimeout(reply.promise, this.options.requestTimeout, String(frame.type));
    } finally {
      this.requests.delete(messageId);
    }
  }

  private sendSubscribe(ws: WebSocketLike, channel: string, state: Channel): void {
    if (state.sentOn === ws) {
      return;
    }
    state.sentOn = ws;
    const messageId = this.nextId();
    this.subscribeIds.set(messageId, channel);
    const frame: Frame = { type: "subscribe", channel, messageId };
    state.sentSince = state.position;
    if (state.position !== null) {
      frame.since = state.position;
    }
    ws.send(JSON.stringify(frame));
  }

  // the connection loop ----------------------------------------------------------------------

  private async attempt(): Promise<void> {
    if (this.closing) {
      return;
    }
    this.attemptStarted = Date.now();
    const url = this.urls[this.index % this.urls.length]!;
    if (this.tokenProvider !== null) {
      try {
        this.token = await fetchToken(this.tokenProvider);
      } catch (error) {
        this.fail(error as AuthenticationError);
        return;
      }
    }
    if (this.closing) {
      return;
    }
    let socket: WebSocketLike;
    try {
      socket = new this.WebSocketClass(this.withClientId(url), subprotocols(this.token));
    } catch {
      this.retry();
      return;
    }
    this.socket = socket;
    this.later(() => {
      if (this.socket === socket && this.ws !== socket) {
        this.abandon(socket);
      }
    }, this.options.openTimeout);
    socket.onmessage = (event) => this.received(socket, event.data);
    // An error always ends a WebSocket; Node's does not always fire close after it.
    socket.onclose = socket.onerror = () => {
      if (this.socket === socket) {
        this.abandon(socket);
      }
    };
  }

  private withClientId(url: URL): string {
    if (this.clientId === null) {
      return url.href;
    }
    const withId = new URL(url);
    withId.searchParams.set("clientId", this.clientId);
    return withId.href;
  }

  /** Gives the socket up now (closed, dead or unwanted) and tries again after a delay. */
  private abandon(socket: WebSocketLike): void {
    this.socket = null;
    this.disconnected(new ConnectionError("connection lost"));
    if (socket.readyState <= OPEN) {
      socket.close();
    }
    this.retry();
  }

  private retry(): void {
    if (this.closing) {
      return;
    }
    if (Date.now() - this.attemptStarted >= STABLE_AFTER) {
      this.backoff.reset();
    }
    // The next URL: the node just left is draining or gone.
    this.index += 1;
    const delay = this.backoff.nextDelay();
    // An application that fell behind reads half its queue before the client reads again.
    this.queue.whenAtMost(Math.floor(this.options.queueSize / 2), () =>
      this.later(() => void this.attempt(), delay),
    );
  }

  private later(action: () => void, ms: number): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      action();
    }, Math.min(ms, 2 ** 31 - 1));
    this.timers.add(timer);
  }

  private disconnected(reason: Error): void {
    this.ws = null;
    if (this.online.settled && this.failure === null && !this.closing) {
      this.online = deferred<void>();
    }
    for (const timer of this.timers) {
      clearTimeout(timer);
    }
    this.timers.clear();
    if (this.pinger !== null) {
      clearInterval(this.pinger);
      this.pinger = null;
    }
    this.subscribeIds.clear();
    for (const reply of this.requests.values()) {
      reply.reject(reason);
    }
  }

  private fail(error: AuthenticationError): void {
    this.failure = error;
    this.deliver({ type: "error", code: "UNAUTHORIZED", message: error.message, messageId: null });
    void this.close();
  }

  private received(socket: WebSocketLike, data: unknown): void {
    if (this.socket !== socket) {
      return;
    }
    this.lastFrameAt = Date.now();
    let frame: Frame;
    try {
      frame = JSON.parse(String(data)) as Frame;
    } catch {
      this.abandon(socket);
      return;
    }
    if (this.ws === socket) {
      this.handle(socket, frame);
    } else if (frame.type === "connected") {
      this.opened(socket, frame.payload as Record<string, string>);
    } else {
      this.abandon(socket);
    }
  }

  private opened(socket: WebSocketLike, hello: Record<string, string>): void {
    this.serverId = String(hello.serverId);
    this.connectionId = String(hello.connectionId);
    this.clientId ??= String(hello.clientId);
    this.connections += 1;
    this.ws = socket;
    for (const [channel, state] of this.channels) {
      this.sendSubscribe(socket, channel, state);
    }
    this.online.resolve();
    this.keepAlive(socket);
    if (this.token !== null) {
      this.renewLater(socket, this.token);
    }
  }

  /** Pings every `pingInterval`; a link silent for `pingTimeout` after a ping is dead. */
  private keepAlive(socket: WebSocketLike): void {
    const { pingInterval, pingTimeout } = this.options;
    if (pingInterval === 0) {
      return;
    }
    this.pinger = setInterval(() => {
      const sent = Date.now();
      socket.send(JSON.stringify({ type: "ping", messageId: this.nextId() }));
      this.later(() => {
        if (this.socket === socket && this.lastFrameAt < sent) {
          this.abandon(socket);
        }
      }, pingTimeout);
    }, pingInterval);
  }

  /** Shows the node a fresh token ahead of `exp`, for as long as the provider gives one that
   * lasts longer; otherwise the node closes at `exp` and the reconnect asks again. */
  private renewLater(socket: WebSocketLike, token: string): void {
    const expires = tokenExpiry(token);
    if (expires === null || this.tokenProvider === null) {
      return;
    }
    const provider = this.tokenProvider;
    this.later(async () => {
      let fresh: string;
      try {
        fresh = await fetchToken(provider);
      } catch {
        return;
      }
      const renewed = tokenExpiry(fresh);
      if (renewed === null || renewed <= expires || this.ws !== socket) {
        return;
      }
      try {
        await this.request({ type: "auth", payload: { token: fresh } });
      } catch {
        return; // refused, or the connection went: the reconnect asks the provider again
      }
      this.token = fresh;
      this.renewLater(socket, fresh);
    }, renewalDelay(expires, Date.now()));
  }

  // frames from the node ---------------------------------------------------------------------

  private handle(socket: WebSocketLike, frame: Frame): void {
    switch (frame.type) {
      case "data":
        this.data(socket, frame);
        break;
      case "subscribed":
        this.subscribed(frame);
        break;
      case "error":
        this.error(frame);
        break;
      default: {
        // pong, unsubscribed, authenticated
        const reply = this.requests.get(String(frame.messageId));
        if (reply !== undefined && !reply.settled) {
          reply.resolve(frame);
        }
      }
    }
  }

  private data(socket: WebSocketLike, frame: Frame): void {
    const channel = String(frame.channel);
    const state = this.channels.get(channel);
    if (state === undefined) {
      return; // unsubscribed meanwhile
    }
    if (!this.listeners.has(channel) && this.queue.length >= this.options.queueSize) {
      // Not delivered, so not its position: the reconnect resumes before it.
      this.abandon(socket);
      return;
    }
    const offset = typeof frame.offset === "string" ? frame.offset : null;
    if (offset !== null) {
      state.position = offset;
    }
    this.deliver({
      type: "data",
      channel,
      payload: frame.payload,
      messageId: String(frame.messageId ?? ""),
      offset,
    });
  }

  private subscribed(frame: Frame): void {
    const messageId = String(frame.messageId);
    const channel = this.subscribeIds.get(messageId);
    this.subscribeIds.delete(messageId);
    const state = channel === undefined ? undefined : this.channels.get(channel);
    if (channel === undefined || state === undefined) {
      return;
    }
    const offset = typeof frame.offset === "string" ? frame.offset : null;
    const recovered = frame.recovered;
    if (offset !== null && recovered !== true) {
      // A new subscription starts here; a failed recovery restarts here.
      state.position = offset;
    }
    if (state.confirmedOnce) {
      const lost = state.sentSince === null || recovered !== true;
      this.deliver({ type: "resubscribed", channel, recovered: !lost, serverId: this.serverId });
    }
    state.confirmedOnce = true;
    state.retries.reset();
    if (!state.ready.settled) {
      state.ready.resolve(state.position ?? "");
    }
  }

  private error(frame: Frame): void {
    const payload = (frame.payload ?? {}) as Record<string, unknown>;
    const code = String(payload.code ?? "");
    const text = String(payload.message ?? "");
    const messageId = typeof frame.messageId === "string" ? frame.messageId : null;
    const channel = messageId === null ? undefined : this.subscribeIds.get(messageId);
    if (channel !== undefined) {
      this.subscribeIds.delete(messageId!);
      this.subscribeRefused(channel, code, text, messageId);
      return;
    }
    const reply = messageId === null ? undefined : this.requests.get(messageId);
    if (reply !== undefined && !reply.settled) {
      reply.reject(new RequestError(code, text));
      return;
    }
    this.deliver({ type: "error", code, message: text, messageId });
  }

  /**
   * A node refused a subscribe. The application's own `subscribe()` rejects. A resubscribe
   * after a reconnect that the node could not take yet (its store out of reach, a rate
   * limit) is sent again after a backoff delay; one refused for good ends the subscription,
   * and the application gets the error, naming the channel.
   */
  private subscribeRefused(channel: string, code: string, text: string, messageId: string | null): void {
    const state = this.channels.get(channel);
    if (state === undefined) {
      return;
    }
    if (!state.ready.settled) {
      this.channels.delete(channel);
      state.ready.reject(new RequestError(code, text));
    } else if (FOR_NOW.has(code)) {
      const ws = state.sentOn;
      state.sentOn = null;
      const resend = setTimeout(() => {
        this.resends.delete(resend);
        // A reconnect meanwhile subscribed on the new connection already.
        if (ws !== null && this.ws === ws && this.channels.get(channel) === state) {
          this.sendSubscribe(ws, channel, state);
        }
      }, state.retries.nextDelay());
      this.resends.add(resend);
    } else {
      this.channels.delete(channel);
      this.deliver({ type: "error", code, message: text, messageId, channel });
    }
  }

  private deliver(message: Message): void {
    if (message.type === "error") {
      if (this.onError !== null) {
        this.onError(message);
      } else {
        this.queue.push(message);
      }
      return;
    }
    const callbacks = this.listeners.get(message.channel);
    if (callbacks === undefined) {
      this.queue.push(message);
      return;
    }
    for (const callback of [...callbacks]) {
      try {
        callback(message);
      } catch (error) {
        // The application's own failure: reported where uncaught errors go, the client goes on.
        setTimeout(() => {
          throw error;
        });
      }
    }
  }
}
