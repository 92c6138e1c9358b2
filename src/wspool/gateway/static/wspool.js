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
import { ClosedError, ConnectionError, RequestError, TimeoutError, } from "./messages.js";
import { MessageQueue } from "./queue.js";
export { Backoff } from "./backoff.js";
export { renewalDelay, tokenExpiry } from "./credentials.js";
export { AuthenticationError, ClosedError, ConnectionError, RequestError, TimeoutError, } from "./messages.js";
/** Milliseconds a connection must last before the backoff starts again from its base. */
export const STABLE_AFTER = 2_000;
const OPEN = 1;
function deferred() {
    let resolve;
    let reject;
    const promise = new Promise((yes, no) => {
        resolve = yes;
        reject = no;
    });
    promise.catch(() => undefined); // a rejection nobody awaits is not an unhandled one
    const result = {
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
function withTimeout(promise, ms, what) {
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new TimeoutError(`${what}: no answer within ${ms} ms`)), ms);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
/** Codes of a refusal that a later attempt may not get: the node's store out of reach, a rate limit. */
const FOR_NOW = new Set(["INTERNAL", "RATE_LIMITED"]);
/** A WebSocket URL; relative ones (`/ws`) resolve against the page, `http(s)` as `ws(s)`. */
function socketUrl(url) {
    const base = globalThis.location?.href;
    const parsed = new URL(url, base);
    parsed.protocol = parsed.protocol.replace(/^http/, "ws");
    if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:") {
        throw new TypeError(`not a WebSocket URL: ${url}`);
    }
    return parsed;
}
/** Connects to a pool (the gateway's URL, or a list of node URLs tried in turn). */
export class Client {
    clientId;
    serverId = "";
    connectionId = "";
    /** How many connections the client has opened (1 + reconnects). */
    connections = 0;
    urls;
    tokenProvider;
    backoff;
    options;
    onError;
    WebSocketClass;
    queue = new MessageQueue();
    channels = new Map();
    listeners = new Map();
    requests = new Map();
    subscribeIds = new Map();
    /** Resubscribes waiting their turn (cleared by `close()`). */
    resends = new Set();
    ids = 0;
    token = null;
    failure = null;
    started = false;
    closing = false;
    index = 0;
    attemptStarted = 0;
    /** The socket being opened or open; frames of any other socket are ignored. */
    socket = null;
    /** The socket once the node said `connected`. */
    ws = null;
    online = deferred();
    lastFrameAt = 0;
    timers = new Set();
    pinger = null;
    constructor(urls, options = {}) {
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
        const WebSocketClass = options.WebSocket ?? globalThis.WebSocket;
        if (WebSocketClass === undefined) {
            throw new TypeError("no WebSocket class: pass options.WebSocket (Node.js 20 needs --experimental-websocket)");
        }
        this.WebSocketClass = WebSocketClass;
    }
    // lifecycle --------------------------------------------------------------------------------
    /** Starts the connection loop; resolves once connected (`TimeoutError` after
     * `connectTimeout` without a connection; the loop keeps trying). */
    async connect() {
        this.raiseFailure();
        if (!this.started) {
            this.started = true;
            void this.attempt();
        }
        await withTimeout(this.online.promise, this.options.connectTimeout, "connect");
        this.raiseFailure();
    }
    /** Closes the connection for good: `messages()` ends, pending calls reject. */
    async close() {
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
    get connected() {
        return this.ws !== null;
    }
    /** The offset of the last message delivered, per subscribed channel. */
    get positions() {
        return Object.fromEntries([...this.channels].map(([name, state]) => [name, state.position]));
    }
    // what the application calls ---------------------------------------------------------------
    /**
     * Subscribes (again after every reconnect, from the last offset delivered); resolves to the
     * channel's offset when the subscription took effect, rejects with {@link RequestError}
     * when the pool refuses it. `since` resumes from an offset the application stored itself.
     */
    async subscribe(channel, options = {}) {
        this.raiseFailure();
        this.raiseClosed();
        let state = this.channels.get(channel);
        if (state === undefined) {
            state = {
                position: options.since ?? null,
                ready: deferred(),
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
    async unsubscribe(channel) {
        const state = this.channels.get(channel);
        this.channels.delete(channel);
        if (state === undefined || this.ws === null || state.sentOn !== this.ws) {
            return;
        }
        try {
            await this.request({ type: "unsubscribe", channel });
        }
        catch (error) {
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
    async publish(channel, payload, messageId) {
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
    async ping() {
        const started = performance.now();
        await this.request({ type: "ping" });
        return performance.now() - started;
    }
    /** Every message of channels without a callback, and every error message, in order. */
    messages() {
        return this.queue;
    }
    /**
     * Calls `callback` with each message of `channel` (data, and `resubscribed`) instead of
     * queueing it for `messages()`; returns the function that removes the callback.
     */
    on(channel, callback) {
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
    raiseFailure() {
        if (this.failure !== null) {
            throw this.failure;
        }
    }
    raiseClosed() {
        if (this.closing) {
            throw this.failure ?? new ClosedError("the client was closed");
        }
    }
    nextId() {
        this.ids += 1;
        return `c${this.ids}`;
    }
    async request(frame) {
        this.raiseFailure();
        const ws = this.ws;
        if (ws === null) {
            throw new ConnectionError("not connected");
        }
        const messageId = this.nextId();
        const reply = deferred();
        this.requests.set(messageId, reply);
        try {
            ws.send(JSON.stringify({ ...frame, messageId }));
            return await withTimeout(reply.promise, this.options.requestTimeout, String(frame.type));
        }
        finally {
            this.requests.delete(messageId);
        }
    }
    sendSubscribe(ws, channel, state) {
        if (state.sentOn === ws) {
            return;
        }
        state.sentOn = ws;
        const messageId = this.nextId();
        this.subscribeIds.set(messageId, channel);
        const frame = { type: "subscribe", channel, messageId };
        state.sentSince = state.position;
        if (state.position !== null) {
            frame.since = state.position;
        }
        ws.send(JSON.stringify(frame));
    }
    // the connection loop ----------------------------------------------------------------------
    async attempt() {
        if (this.closing) {
            return;
        }
        this.attemptStarted = Date.now();
        const url = this.urls[this.index % this.urls.length];
        if (this.tokenProvider !== null) {
            try {
                this.token = await fetchToken(this.tokenProvider);
            }
            catch (error) {
                this.fail(error);
                return;
            }
        }
        if (this.closing) {
            return;
        }
        let socket;
        try {
            socket = new this.WebSocketClass(this.withClientId(url), subprotocols(this.token));
        }
        catch {
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
    withClientId(url) {
        if (this.clientId === null) {
            return url.href;
        }
        const withId = new URL(url);
        withId.searchParams.set("clientId", this.clientId);
        return withId.href;
    }
    /** Gives the socket up now (closed, dead or unwanted) and tries again after a delay. */
    abandon(socket) {
        this.socket = null;
        this.disconnected(new ConnectionError("connection lost"));
        if (socket.readyState <= OPEN) {
            socket.close();
        }
        this.retry();
    }
    retry() {
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
        this.queue.whenAtMost(Math.floor(this.options.queueSize / 2), () => this.later(() => void this.attempt(), delay));
    }
    later(action, ms) {
        const timer = setTimeout(() => {
            this.timers.delete(timer);
            action();
        }, Math.min(ms, 2 ** 31 - 1));
        this.timers.add(timer);
    }
    disconnected(reason) {
        this.ws = null;
        if (this.online.settled && this.failure === null && !this.closing) {
            this.online = deferred();
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
    fail(error) {
        this.failure = error;
        this.deliver({ type: "error", code: "UNAUTHORIZED", message: error.message, messageId: null });
        void this.close();
    }
    received(socket, data) {
        if (this.socket !== socket) {
            return;
        }
        this.lastFrameAt = Date.now();
        let frame;
        try {
            frame = JSON.parse(String(data));
        }
        catch {
            this.abandon(socket);
            return;
        }
        if (this.ws === socket) {
            this.handle(socket, frame);
        }
        else if (frame.type === "connected") {
            this.opened(socket, frame.payload);
        }
        else {
            this.abandon(socket);
        }
    }
    opened(socket, hello) {
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
    keepAlive(socket) {
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
    renewLater(socket, token) {
        const expires = tokenExpiry(token);
        if (expires === null || this.tokenProvider === null) {
            return;
        }
        const provider = this.tokenProvider;
        this.later(async () => {
            let fresh;
            try {
                fresh = await fetchToken(provider);
            }
            catch {
                return;
            }
            const renewed = tokenExpiry(fresh);
            if (renewed === null || renewed <= expires || this.ws !== socket) {
                return;
            }
            try {
                await this.request({ type: "auth", payload: { token: fresh } });
            }
            catch {
                return; // refused, or the connection went: the reconnect asks the provider again
            }
            this.token = fresh;
            this.renewLater(socket, fresh);
        }, renewalDelay(expires, Date.now()));
    }
    // frames from the node ---------------------------------------------------------------------
    handle(socket, frame) {
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
    data(socket, frame) {
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
    subscribed(frame) {
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
    error(frame) {
        const payload = (frame.payload ?? {});
        const code = String(payload.code ?? "");
        const text = String(payload.message ?? "");
        const messageId = typeof frame.messageId === "string" ? frame.messageId : null;
        const channel = messageId === null ? undefined : this.subscribeIds.get(messageId);
        if (channel !== undefined) {
            this.subscribeIds.delete(messageId);
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
    subscribeRefused(channel, code, text, messageId) {
        const state = this.channels.get(channel);
        if (state === undefined) {
            return;
        }
        if (!state.ready.settled) {
            this.channels.delete(channel);
            state.ready.reject(new RequestError(code, text));
        }
        else if (FOR_NOW.has(code)) {
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
        }
        else {
            this.channels.delete(channel);
            this.deliver({ type: "error", code, message: text, messageId, channel });
        }
    }
    deliver(message) {
        if (message.type === "error") {
            if (this.onError !== null) {
                this.onError(message);
            }
            else {
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
            }
            catch (error) {
                // The application's own failure: reported where uncaught errors go, the client goes on.
                setTimeout(() => {
                    throw error;
                });
            }
        }
    }
}
