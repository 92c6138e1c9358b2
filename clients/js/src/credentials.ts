/**
 * The client's credentials: a token provider, and when to renew what it gives.
 *
 * The application hands the client a token, or a provider: a function, plain or async, that
 * returns a current token. The client calls it before every connection (so a reconnect after
 * the token expired shows a fresh one) and again before the token's `exp`, to renew it on the
 * open connection (`{"type": "auth"}`). A browser cannot set headers on a WebSocket, so the
 * token travels as the subprotocol `bearer.<token>` beside `wspool`, never in the URL.
 */

import { AuthenticationError } from "./messages.js";

/** Returns the token to show the pool now; called again whenever one is needed. */
export type TokenProvider = () => string | Promise<string>;

/** Share of a token's remaining lifetime before its `exp` at which the client renews it. */
export const RENEW_AHEAD = 0.2;

/** Least and most milliseconds before `exp` at which the client renews a token. */
export const RENEW_MARGIN: readonly [number, number] = [5_000, 60_000];

/**
 * The provider's current token; {@link AuthenticationError} when it fails, gives none, or
 * gives a JSON Web Token whose `exp` has passed (the pool would refuse it, and a browser
 * cannot tell a refused handshake from a network failure).
 */
export async function fetchToken(provider: TokenProvider, now = Date.now()): Promise<string> {
  let token: unknown;
  try {
    token = await provider();
  } catch (error) {
    const kind = error instanceof Error ? error.name : typeof error;
    throw new AuthenticationError(`the token provider failed: ${kind}`);
  }
  if (typeof token !== "string" || token === "") {
    throw new AuthenticationError("the token provider returned no token");
  }
  const expires = tokenExpiry(token);
  if (expires !== null && expires <= now) {
    throw new AuthenticationError("the token provider returned an expired token");
  }
  return token;
}

/**
 * The `exp` of a JWT in milliseconds since the epoch, read without verifying it (the node
 * verifies); null for a token that is not a JWT or has no `exp`.
 */
export function tokenExpiry(token: string): number | null {
  const parts = token.split(".");
  if (parts.length !== 3) {
    return null;
  }
  try {
    const base64 = parts[1]!.replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
    const claims: unknown = JSON.parse(utf8(atob(padded)));
    const expires = (claims as { exp?: unknown } | null)?.exp;
    return typeof expires === "number" && Number.isFinite(expires) ? expires * 1000 : null;
  } catch {
    return null;
  }
}

function utf8(binary: string): string {
  return new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0)));
}

/** Milliseconds from `now` until a token expiring at `expiresAt` should be renewed. */
export function renewalDelay(expiresAt: number, now: number): number {
  const remaining = expiresAt - now;
  const [low, high] = RENEW_MARGIN;
  const margin = Math.min(high, Math.max(low, remaining * RENEW_AHEAD));
  return Math.max(0, remaining - margin);
}

/** The subprotocols to offer: `wspool`, and the token beside it when there is one. */
export function subprotocols(token: string | null): string[] {
  return token === null ? ["wspool"] : ["wspool", `bearer.${token}`];
}
