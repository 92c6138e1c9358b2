// What the tests share: the client module the gateway serves, the processes the pytest driver
// (tests/integration/test_js_client.py) started for them, and small waiting helpers.
import assert from "node:assert/strict";

export * from "../../../src/wspool/gateway/static/wspool.js";

/** An environment variable the driver must have set. */
export function given(name) {
  const value = process.env[name];
  assert.ok(value, `${name} is not set: run these tests through tests/integration/test_js_client.py`);
  return value;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `condition()` is truthy, polling; fails with `what` after `within` ms. */
export async function eventually(condition, what, within = 10_000) {
  const deadline = Date.now() + within;
  for (;;) {
    const value = await condition();
    if (value) {
      return value;
    }
    assert.ok(Date.now() < deadline, `not within ${within} ms: ${what}`);
    await sleep(25);
  }
}

/** The next `count` messages of an iterator (fails after `within` ms). */
export async function take(iterator, count, within = 10_000) {
  const messages = [];
  const deadline = Date.now() + within;
  while (messages.length < count) {
    const left = deadline - Date.now();
    assert.ok(left > 0, `only ${messages.length} of ${count} messages within ${within} ms`);
    const next = await Promise.race([iterator.next(), sleep(left).then(() => null)]);
    assert.ok(next !== null, `only ${messages.length} of ${count} messages within ${within} ms`);
    assert.ok(!next.done, `the iterator ended after ${messages.length} of ${count} messages`);
    messages.push(next.value);
  }
  return messages;
}

/** A channel name no other test uses. */
export function channelName(prefix) {
  return `${prefix}-${Math.random().toString(36).slice(2, 10)}`;
}
