/**
 * What a {@link Client} hands to the application: typed messages, and the errors its calls
 * reject with.
 */

/** A message published on a channel the client subscribes to. */
export interface Data {
  readonly type: "data";
  readonly channel: string;
  readonly payload: unknown;
  readonly messageId: string;
  /** The message's position in its channel's history (`"<epoch>:<n>"`). */
  readonly offset: string | null;
}

/**
 * The client reconnected and subscribed to `channel` again.
 *
 * `recovered` is true when every message published meanwhile follows (replayed from the
 * channel's history); false when the history no longer held them all, so the application
 * should reload its state for this channel: nothing before the next message is replayed.
 */
export interface Resubscribed {
  readonly type: "resubscribed";
  readonly channel: string;
  readonly recovered: boolean;
  readonly serverId: string;
}

/**
 * An `error` frame not tied to a request the client awaits: a refused publish, or a
 * resubscribe after a reconnect refused for good (`channel`: the client no longer receives it).
 */
export interface ErrorMessage {
  readonly type: "error";
  readonly code: string;
  readonly message: string;
  readonly messageId: string | null;
  readonly channel?: string;
}

export type ChannelMessage = Data | Resubscribed;
export type Message = Data | Resubscribed | ErrorMessage;

/** The server refused a request (`subscribe`, `unsubscribe`, `ping`); `code` is its code. */
export class RequestError extends Error {
  override readonly name = "RequestError";
  constructor(
    readonly code: string,
    readonly detail: string,
  ) {
    super(`${code}: ${detail}`);
  }
}

/**
 * The client stopped because of its credential: the token provider failed, returned no
 * token or one already expired, or the pool refused it on an open connection. Every call
 * rejects with it from then on, and `messages()` ends after an error message with code
 * `UNAUTHORIZED`.
 */
export class AuthenticationError extends Error {
  override readonly name = "AuthenticationError";
}

/** A request needs an open connection, and there is none (or it closed before the answer). */
export class ConnectionError extends Error {
  override readonly name = "ConnectionError";
}

/** No answer (or no connection, for `connect()`) within the configured time. */
export class TimeoutError extends Error {
  override readonly name = "TimeoutError";
}

/** The client was closed by the application. */
export class ClosedError extends Error {
  override readonly name = "ClosedError";
}
