// The client against a real `wspool dev` (a gateway and three nodes in one process, history of
// WSPOOL_HISTORY_SIZE messages per channel), started by tests/integration/test_js_client.py.
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";

import {
  AuthenticationError,
  Backoff,
  Client,
  RequestError,
  channelName,
  eventually,
  given,
  renewalDelay,
  take,
  tokenExpiry,
} from "./support.mjs";

const GATEWAY = given("WSPOOL_GATEWAY_URL");
const API = GATEWAY.replace(/^ws/, "http").replace(/\/ws$/, "/api/v1");
const DEAD_URL = given("WSPOOL_DEAD_URL");
const HISTORY = Number(given("WSPOOL_HISTORY_SIZE"));
const DEV_PID = Number(given("WSPOOL_DEV_PID"));

const clients = [];
function client(urls = GATEWAY, options = {}) {
  const made = new Client(urls, options);
  clients.push(made);
  return made;
}
after(() => Promise.all(clients.map((c) => c.close())));

/** Closes the client's connection from the pool's side (the REST API), once the pool's
 * records show it: a node writes its new connections there in batches, tens of ms apart. */
async function closeFromPool(c) {
  let status = 0;
  await eventually(async () => {
    const response = await fetch(`${API}/connections/${c.connectionId}`, { method: "DELETE" });
    status = response.status;
    return status !== 404;
  }, "the pool knows the connection");
  assert.ok(status === 200 || status === 202, `DELETE: ${status}`);
}

/** A client that waits about a second before reconnecting. */
const slowBackoff = () => new Backoff(1000, 1000, () => 0.999);

describe("publish and subscribe", () => {
  test("a subscriber receives typed data messages with their offsets, in order", async () => {
    const channel = channelName("prices");
    const subscriber = client();
    const publisher = client();
    await Promise.all([subscriber.connect(), publisher.connect()]);
    const start = await subscriber.subscribe(channel);
    assert.match(start, /^[0-9a-f]+:0$/);
    const messages = subscriber.messages();
    for (let n = 1; n <= 3; n += 1) {
      await publisher.publish(channel, { n });
    }
    const received = await take(messages, 3);
    assert.deepEqual(
      received.map((m) => [m.type, m.channel, m.payload.n]),
      [1, 2, 3].map((n) => ["data", channel, n]),
    );
    const epoch = start.split(":")[0];
    assert.deepEqual(
      received.map((m) => m.offset),
      [1, 2, 3].map((n) => `${epoch}:${n}`),
    );
    assert.deepEqual(subscriber.positions, { [channel]: `${epoch}:3` });
  });

  test("callbacks per channel receive that channel's messages, the iterator the rest", async () => {
    const [first, second] = [channelName("a"), channelName("b")];
    const c = client();
    await c.connect();
    const seen = [];
    const off = c.on(first, (message) => seen.push(message.payload));
    await c.subscribe(first);
    await c.subscribe(second);
    await c.publish(first, "one");
    await c.publish(second, "two");
    const [other] = await take(c.messages(), 1);
    assert.equal(other.payload, "two");
    await eventually(() => seen.length === 1, "the callback was called");
    assert.deepEqual(seen, ["one"]);
    off();
    await c.publish(first, "three");
    const [queued] = await take(c.messages(), 1);
    assert.equal(queued.payload, "three");
  });

  test("a refused subscribe rejects with the pool's code; a refused publish is an error message", async () => {
    const errors = [];
    const c = client(GATEWAY, { onError: (error) => errors.push(error) });
    await c.connect();
    await assert.rejects(c.subscribe("no spaces allowed"), (error) => {
      assert.ok(error instanceof RequestError);
      assert.equal(error.code, "BAD_REQUEST");
      return true;
    });
    assert.deepEqual(c.positions, {});
    const id = await c.publish("no spaces allowed", 1, "my-publish");
    await eventually(() => errors.length === 1, "the refusal arrived");
    assert.equal(errors[0].type, "error");
    assert.equal(errors[0].code, "BAD_REQUEST");
    assert.equal(errors[0].messageId, id);
  });

  test("after unsubscribe nothing more arrives from that channel", async () => {
    const [gone, kept] = [channelName("gone"), channelName("kept")];
    const c = client();
    const publisher = client();
    await Promise.all([c.connect(), publisher.connect()]);
    await c.subscribe(gone);
    await c.subscribe(kept);
    await c.unsubscribe(gone);
    await publisher.publish(gone, "unwanted");
    await publisher.publish(kept, "wanted");
    const [message] = await take(c.messages(), 1);
    assert.equal(message.payload, "wanted");
    assert.deepEqual(Object.keys(c.positions), [kept]);
  });

  test("subscribing with an offset the application stored resumes after it", async () => {
    const channel = channelName("stored");
    const publisher = client();
    await publisher.connect();
    const first = client();
    await first.connect();
    await first.subscribe(channel);
    await publisher.publish(channel, 1);
    const [one] = await take(first.messages(), 1);
    await first.close();
    await publisher.publish(channel, 2);
    await publisher.publish(channel, 3);
    const later = client();
    await later.connect();
    await later.subscribe(channel, { since: one.offset });
    const replayed = await take(later.messages(), 2);
    assert.deepEqual(
      replayed.map((m) => m.payload),
      [2, 3],
    );
  });

  test("ping measures a round trip to the node", async () => {
    const c = client();
    await c.connect();
    const ms = await c.ping();
    assert.ok(ms >= 0 && ms < 5000, `${ms} ms`);
  });
});

describe("reconnecting and recovering", () => {
  test("closed by the pool, the client reconnects and gets what was published meanwhile", async () => {
    const channel = channelName("recover");
    const c = client(GATEWAY, { backoff: slowBackoff() });
    const publisher = client();
    await Promise.all([c.connect(), publisher.connect()]);
    await c.subscribe(channel);
    const messages = c.messages();
    await publisher.publish(channel, 1);
    await take(messages, 1);
    await closeFromPool(c);
    await eventually(() => !c.connected, "the client noticed the close");
    const missed = HISTORY - 1;
    for (let n = 2; n <= missed + 1; n += 1) {
      await publisher.publish(channel, n);
    }
    const [resubscribed, ...replayed] = await take(messages, 1 + missed);
    assert.deepEqual(
      { ...resubscribed, serverId: undefined },
      { type: "resubscribed", channel, recovered: true, serverId: undefined },
    );
    assert.deepEqual(
      replayed.map((m) => m.payload),
      Array.from({ length: missed }, (_, i) => i + 2),
    );
    assert.equal(c.connections, 2);
    await publisher.publish(channel, "live");
    const [live] = await take(messages, 1);
    assert.equal(live.payload, "live");
  });

  test("when history lost what it missed, the application learns recovered: false", async () => {
    const channel = channelName("lost");
    const c = client(GATEWAY, { backoff: slowBackoff() });
    const publisher = client();
    await Promise.all([c.connect(), publisher.connect()]);
    await c.subscribe(channel);
    const messages = c.messages();
    await publisher.publish(channel, 0);
    await take(messages, 1);
    await closeFromPool(c);
    await eventually(() => !c.connected, "the client noticed the close");
    for (let n = 1; n <= HISTORY * 2; n += 1) {
      await publisher.publish(channel, n);
    }
    const [resubscribed] = await take(messages, 1);
    assert.equal(resubscribed.type, "resubscribed");
    assert.equal(resubscribed.recovered, false);
    await publisher.publish(channel, "after");
    const [next] = await take(messages, 1);
    assert.equal(next.payload, "after", "nothing partial is replayed");
  });

  test("given several URLs, the client tries them in turn until one answers", async () => {
    const channel = channelName("urls");
    const c = client([DEAD_URL, GATEWAY]);
    await c.connect();
    assert.equal(c.connections, 1);
    await c.subscribe(channel);
    await closeFromPool(c);
    await eventually(() => c.connections === 2, "the client came back through the list");
    const publisher = client();
    await publisher.connect();
    await publisher.publish(channel, "again");
    const [resubscribed, data] = await take(c.messages(), 2);
    assert.equal(resubscribed.recovered, true);
    assert.equal(data.payload, "again");
  });

  test("a link that stops answering is given up by the client's pings, not by TCP", async () => {
    const channel = channelName("frozen");
    const c = client(GATEWAY, { pingInterval: 300, pingTimeout: 300 });
    await c.connect();
    await c.subscribe(channel);
    process.kill(DEV_PID, "SIGSTOP");
    let noticedAfter;
    try {
      const frozen = Date.now();
      await eventually(() => !c.connected, "the dead link was noticed", 3_000);
      noticedAfter = Date.now() - frozen;
    } finally {
      process.kill(DEV_PID, "SIGCONT");
    }
    assert.ok(noticedAfter <= 1_500, `noticed after ${noticedAfter} ms`);
    await eventually(() => c.connected, "the client reconnected");
    const publisher = client();
    await publisher.connect();
    await publisher.publish(channel, "back");
    const received = await take(c.messages(), 2);
    assert.deepEqual(
      received.map((m) => m.type),
      ["resubscribed", "data"],
    );
    assert.equal(received[0].recovered, true);
  });

  test("an application that stops reading pauses the client, which then resumes losing nothing", async () => {
    const channel = channelName("behind");
    const c = client(GATEWAY, { queueSize: 4 });
    const publisher = client();
    await Promise.all([c.connect(), publisher.connect()]);
    await c.subscribe(channel);
    const count = Math.min(HISTORY, 10);
    for (let n = 1; n <= count; n += 1) {
      await publisher.publish(channel, n);
    }
    await eventually(() => !c.connected, "the client paused its connection");
    const received = await take(c.messages(), count + 1, 15_000);
    const data = received.filter((m) => m.type === "data").map((m) => m.payload);
    assert.deepEqual(
      data,
      Array.from({ length: count }, (_, i) => i + 1),
    );
    assert.ok(received.some((m) => m.type === "resubscribed" && m.recovered));
  });
});

describe("credentials", () => {
  test("a token provider that fails stops the client with AuthenticationError", async () => {
    const c = client(GATEWAY, {
      token: () => {
        throw new Error("no session");
      },
    });
    await assert.rejects(c.connect(), AuthenticationError);
    await assert.rejects(c.publish("x", 1), AuthenticationError);
    await assert.rejects(c.subscribe("x"), AuthenticationError);
    const messages = [];
    for await (const message of c.messages()) {
      messages.push(message);
    }
    assert.deepEqual(
      messages.map((m) => [m.type, m.code]),
      [["error", "UNAUTHORIZED"]],
    );
  });

  test("a provider that returns an expired token stops the client instead of retrying", async () => {
    const expired = [
      "e30",
      Buffer.from(JSON.stringify({ sub: "alice", exp: Math.floor(Date.now() / 1000) - 60 }))
        .toString("base64url"),
      "signature",
    ].join(".");
    const c = client(GATEWAY, { token: async () => expired });
    await assert.rejects(c.connect(), /expired token/);
  });

  test("close ends the iterator and rejects what waits", async () => {
    const c = client();
    await c.connect();
    const messages = c.messages();
    const pending = messages.next();
    await c.close();
    assert.deepEqual(await pending, { value: undefined, done: true });
    await assert.rejects(c.publish("x", 1), /closed/);
  });
});

describe("pure parts", () => {
  test("backoff: full jitter below an exponential ceiling, capped, reset", () => {
    const backoff = new Backoff(100, 1000, () => 0.999999);
    const delays = Array.from({ length: 6 }, () => Math.round(backoff.nextDelay()));
    assert.deepEqual(delays, [100, 200, 400, 800, 1000, 1000]);
    backoff.reset();
    assert.equal(Math.round(backoff.nextDelay()), 100);
    assert.throws(() => new Backoff(0, 1), RangeError);
  });

  test("token expiry is read from a JWT's claims; renewal comes a fifth of its life early", () => {
    const jwt = (claims) => `e30.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.s`;
    assert.equal(tokenExpiry(jwt({ exp: 1_700_000_000, name: "é" })), 1_700_000_000_000);
    assert.equal(tokenExpiry(jwt({ sub: "no exp" })), null);
    assert.equal(tokenExpiry("not-a-jwt"), null);
    assert.equal(renewalDelay(100_000, 0), 80_000); // 20 s early
    assert.equal(renewalDelay(10_000, 0), 5_000); // at least 5 s early
    assert.equal(renewalDelay(3600_000, 0), 3540_000); // at most 60 s early
    assert.equal(renewalDelay(1_000, 5_000), 0);
  });

  test("a bad option or URL is refused at once", () => {
    assert.throws(() => new Client([]), /at least one URL/);
    assert.throws(() => new Client("ftp://example.com/ws"), /not a WebSocket URL/);
    assert.throws(() => new Client(GATEWAY, { pingInterval: -1 }), /pingInterval/);
  });
});
