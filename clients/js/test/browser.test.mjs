// The client in headless Chromium against a real farm (three nodes, a gateway, Redis; tokens
// required), started by tests/integration/test_js_client.py. The page comes from another
// origin than the gateway's and imports the client from it, as an application would (on
// loopback, a public page's reaching a local address asks the user, who grants it here).
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { after, before, test } from "node:test";

import { chromium } from "playwright-core";

import { Client, channelName, eventually, given, sleep } from "./support.mjs";

const HTTP = given("WSPOOL_GATEWAY_HTTP");
const WS = `${HTTP.replace(/^http/, "ws")}/ws`;
const SECRET = given("WSPOOL_JWT_SECRET");
const NODE_PIDS = JSON.parse(given("WSPOOL_NODE_PIDS"));
const CHROMIUM = given("WSPOOL_CHROMIUM");
const PAGE = "https://app.example/"; // answered by the test, never by a server

/** An HS256 token for `sub`, good for `ttl` seconds, on every channel. */
function mint(sub, ttl) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const claims = {
    sub,
    exp: Math.floor(Date.now() / 1000) + ttl,
    channels: { subscribe: ["*"], publish: ["*"] },
  };
  const unsigned = `${part({ alg: "HS256", typ: "JWT" })}.${part(claims)}`;
  return `${unsigned}.${createHmac("sha256", SECRET).update(unsigned).digest("base64url")}`;
}

let browser;
const closing = [];
before(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM });
});
after(async () => {
  await Promise.all(closing.map((c) => c.close()));
  await browser?.close();
});

/** A page of another origin that imported the client from the gateway (`window.wspool`). */
async function openPage() {
  const context = await browser.newContext({ permissions: ["local-network-access"] });
  const page = await context.newPage();
  page.on("pageerror", (error) => console.error("page error:", error));
  page.on("console", (message) => console.error("page console:", message.text()));
  await page.exposeFunction("mintToken", (sub, ttl) => mint(sub, ttl));
  await page.route(PAGE, (route) =>
    route.fulfill({
      contentType: "text/html",
      body: `<!doctype html><script type="module">
        import * as wspool from "${HTTP}/client/wspool.js";
        window.wspool = wspool;
      </script>`,
    }),
  );
  await page.goto(PAGE);
  await page.waitForFunction(() => window.wspool !== undefined, null, { timeout: 10_000 });
  return page;
}

/**
 * In the page: a client whose provider mints tokens of `ttl` seconds (a list: the n-th token
 * lives the n-th, the last for all after it; `reuse`: the same token until it has expired),
 * subscribed to `channel`; what it receives lands in `window.received`
 * (payloads) and `window.events` (resubscribed). Returns the node it is on.
 */
function subscribeInPage(page, { channel, ttl = 600, reuse = false, options = {} }) {
  return page.evaluate(
    async ({ url, channel, ttl, reuse, options }) => {
      window.received = [];
      window.events = [];
      window.tokens = 0;
      let token = null;
      const provider = async () => {
        if (!reuse || token === null || window.wspool.tokenExpiry(token) <= Date.now()) {
          const lives = [ttl].flat();
          token = await window.mintToken("page-user", lives[Math.min(window.tokens, lives.length - 1)]);
          window.tokens += 1;
        }
        return token;
      };
      const client = new window.wspool.Client(url, { ...options, token: provider });
      window.client = client;
      await client.connect();
      window.receivedBetween = { first: null, last: null };
      client.on(channel, (message) => {
        if (message.type === "data") {
          window.receivedBetween.first ??= performance.now();
          window.receivedBetween.last = performance.now();
          window.received.push(message.payload);
        } else {
          window.events.push(message);
        }
      });
      await client.subscribe(channel);
      return client.serverId;
    },
    { url: WS, channel, ttl, reuse, options },
  );
}

const received = (page) => page.evaluate(() => window.received.length);

/** A publisher in Node on another node than `serverId` (those that land there stay open
 * until one does not, so that the gateway's strategy moves on). */
async function publisherAway(serverId) {
  const landed = [];
  try {
    for (let tries = 0; tries < 20; tries += 1) {
      const publisher = new Client(WS, { token: () => mint("publisher", 600) });
      await publisher.connect();
      if (publisher.serverId !== serverId) {
        closing.push(publisher);
        return publisher;
      }
      landed.push(publisher);
    }
    assert.fail(`every publisher landed on ${serverId}`);
  } finally {
    await Promise.all(landed.map((c) => c.close()));
  }
}

const numbers = (count) => Array.from({ length: count }, (_, i) => i + 1);

/** The page's main-thread seconds so far: all tasks, and script alone (Chromium's metrics). */
async function mainThread(cdp) {
  const { metrics } = await cdp.send("Performance.getMetrics");
  const value = (name) => metrics.find((metric) => metric.name === name).value;
  return { task: value("TaskDuration"), script: value("ScriptDuration") };
}

/**
 * In another page, the same subscription over a bare WebSocket (no client): what the page
 * would pay for the messages alone. Counts payloads in `window.count`.
 */
async function bareSubscriber(page, channel) {
  await page.evaluate(
    async ({ url, channel }) => {
      window.count = 0;
      const token = await window.mintToken("bare-page", 600);
      const ws = new WebSocket(url, ["wspool", `bearer.${token}`]);
      await new Promise((resolve) => {
        ws.onmessage = (event) => {
          const frame = JSON.parse(event.data);
          if (frame.type === "connected") {
            ws.send(JSON.stringify({ type: "subscribe", channel, messageId: "1" }));
          } else if (frame.type === "subscribed") {
            resolve();
          } else if (frame.type === "data") {
            window.count += 1;
          }
        };
      });
    },
    { url: WS, channel },
  );
}

test("a page receives what is published on another node, in order", async (t) => {
  const [page, bare] = [await openPage(), await openPage()];
  const [cdp, bareCdp] = await Promise.all(
    [page, bare].map((p) => p.context().newCDPSession(p)),
  );
  await Promise.all([cdp, bareCdp].map((session) => session.send("Performance.enable")));
  const channel = channelName("across");
  const serverId = await subscribeInPage(page, { channel });
  await bareSubscriber(bare, channel);
  const publisher = await publisherAway(serverId);
  const count = 20_000;
  const before = await Promise.all([cdp, bareCdp].map(mainThread));
  for (const n of numbers(count)) {
    await publisher.publish(channel, n);
    if (n % 1000 === 0) {
      await sleep(1); // lets the publisher's socket drain
    }
  }
  await eventually(async () => (await received(page)) === count, `${count} messages`, 60_000);
  await eventually(
    async () => (await bare.evaluate(() => window.count)) === count,
    `${count} messages on the bare WebSocket`,
    60_000,
  );
  const spent = await Promise.all([cdp, bareCdp].map(mainThread));
  assert.deepEqual(await page.evaluate(() => window.received), numbers(count));
  const between = await page.evaluate(() => window.receivedBetween);
  const seconds = (between.last - between.first) / 1000;
  const perMessage = (i, kind) => (((spent[i][kind] - before[i][kind]) * 1e6) / count).toFixed(1);
  t.diagnostic(
    `page on ${serverId}, publisher on ${publisher.serverId}: ${count} messages received in ` +
      `${seconds.toFixed(2)} s (${Math.round(count / seconds)} msg/s); main thread per message: ` +
      `${perMessage(0, "task")} µs (${perMessage(0, "script")} µs in script) with the client, ` +
      `${perMessage(1, "task")} µs (${perMessage(1, "script")} µs) on a bare WebSocket`,
  );
  await Promise.all([page, bare].map((p) => p.context().close()));
});

test("a page whose node is killed loses nothing", async () => {
  const page = await openPage();
  const channel = channelName("killed");
  const serverId = await subscribeInPage(page, { channel });
  const publisher = await publisherAway(serverId);
  const count = 1_500;
  for (const n of numbers(count)) {
    await publisher.publish(channel, n);
    if (n === 500) {
      process.kill(NODE_PIDS[serverId], "SIGKILL");
    }
    if (n % 10 === 0) {
      await sleep(10); // about 1,000 messages a second
    }
  }
  await eventually(async () => (await received(page)) >= count, `${count} messages`, 30_000);
  const page_ = await page.evaluate(() => ({
    received: window.received,
    events: window.events,
    serverId: window.client.serverId,
    connections: window.client.connections,
  }));
  assert.deepEqual(page_.received, numbers(count), "each message once, in order");
  assert.notEqual(page_.serverId, serverId);
  assert.equal(page_.connections, 2);
  assert.deepEqual(
    page_.events.map((e) => [e.type, e.channel, e.recovered]),
    [["resubscribed", channel, true]],
  );
  await page.context().close();
});

test("a page notices a frozen node by its pings and resumes elsewhere", async () => {
  const page = await openPage();
  const channel = channelName("frozen");
  const options = { pingInterval: 500, pingTimeout: 500 };
  const serverId = await subscribeInPage(page, { channel, options });
  const publisher = await publisherAway(serverId);
  process.kill(NODE_PIDS[serverId], "SIGSTOP");
  let noticed;
  try {
    const frozen = Date.now();
    await page.waitForFunction(() => !window.client.connected, null, { timeout: 5_000 });
    noticed = Date.now() - frozen;
    for (const n of numbers(20)) {
      await publisher.publish(channel, n);
    }
    await eventually(async () => (await received(page)) >= 20, "20 messages", 20_000);
  } finally {
    process.kill(NODE_PIDS[serverId], "SIGCONT");
  }
  assert.ok(noticed <= 2_000, `noticed after ${noticed} ms`);
  const state = await page.evaluate(() => ({
    received: window.received,
    events: window.events,
    serverId: window.client.serverId,
  }));
  assert.deepEqual(state.received, numbers(20));
  assert.notEqual(state.serverId, serverId);
  assert.ok(state.events.every((e) => e.recovered));
  await page.context().close();
});

test("a page renews its token before it expires, on the open connection", async () => {
  const page = await openPage();
  const channel = channelName("renewed");
  const serverId = await subscribeInPage(page, { channel, ttl: 7 });
  await sleep(9_000); // past the first token's exp
  const publisher = await publisherAway(serverId);
  await publisher.publish(channel, "still here");
  await eventually(async () => (await received(page)) === 1, "a message after exp");
  const state = await page.evaluate(() => ({
    tokens: window.tokens,
    connections: window.client.connections,
  }));
  assert.equal(state.connections, 1, "the connection outlived the first token");
  assert.ok(state.tokens >= 2, `${state.tokens} tokens`);
  await page.context().close();
});

test("a page whose token expired reconnects with a fresh one and misses nothing", async () => {
  const page = await openPage();
  const channel = channelName("expired");
  // The provider gives the same token until it has expired: no renewal, the node closes at exp.
  // The next token outlives the test, so there is exactly one reconnect however slow it runs.
  const serverId = await subscribeInPage(page, { channel, ttl: [3, 600], reuse: true });
  const publisher = await publisherAway(serverId);
  for (const n of numbers(50)) {
    await publisher.publish(channel, n);
    await sleep(100); // 5 s: across the token's exp
  }
  await eventually(async () => (await received(page)) >= 50, "50 messages");
  const state = await page.evaluate(() => ({
    received: window.received,
    events: window.events,
    tokens: window.tokens,
    connections: window.client.connections,
  }));
  assert.deepEqual(state.received, numbers(50));
  assert.equal(state.connections, 2, "reconnected once, when the first token expired");
  assert.equal(state.tokens, 2, "a fresh token for the reconnect");
  assert.ok(state.events.every((e) => e.recovered));
  await page.context().close();
});
