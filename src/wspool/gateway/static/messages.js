/**
 * What a {@link Client} hands to the application: typed messages, and the errors its calls
 * reject with.
 */
/** The server refused a request (`subscribe`, `unsubscribe`, `ping`); `code` is its code. */
export class RequestError extends Error {
    code;
    detail;
    name = "RequestError";
    constructor(code, detail) {
        super(`${code}: ${detail}`);
        this.code = code;
        this.detail = detail;
    }
}
/**
 * The client stopped because of its credential: the token provider failed, returned no
 * token or one already expired, or the pool refused it on an open connection. Every call
 * rejects with it from then on, and `messages()` ends after an error message with code
 * `UNAUTHORIZED`.
 */
export class AuthenticationError extends Error {
    name = "AuthenticationError";
}
/** A request needs an open connection, and there is none (or it closed before the answer). */
export class ConnectionError extends Error {
    name = "ConnectionError";
}
/** No answer (or no connection, for `connect()`) within the configured time. */
export class TimeoutError extends Error {
    name = "TimeoutError";
}
/** The client was closed by the application. */
export class ClosedError extends Error {
    name = "ClosedError";
}
