// The dashboard in headless Chromium (Debian's chromium, driven by playwright-core) against a
// real farm: three nodes, a gateway that checks an admin token and opens reads, and Redis,
// started by tests/integration/test_dashboard.py. The tests run in order, on one page: it
// looks, it follows clients and a killed node, and it acts once given the credential.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";

import { chromium } from "playwright-core";

import { Client, channelName, eventually, given, sleep } from "../../js/test/support.mjs";

const HTTP = given("WSPOOL_GATEWAY_HTTP");
const WS = `${HTTP.replace(/^http/, "ws")}/ws`;
const ADMIN = given("WSPOOL_ADMIN_TOKEN");
const NODE_PIDS = JSON.parse(given("WSPOOL_NODE_PIDS"));
const CHROMIUM = given("WSPOOL_CHROMIUM");

let browser;
let page;
const problems = []; // console errors and uncaught exceptions of the page
const sockets = [];
const clients = [];

before(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM });
  page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  page.on("pageerror", (error) => problems.push(`page error: ${error}`));
  page.on("console", (message) => {
    if (message.type() === "error") {
      problems.push(`console error: ${message.text()}`);
    }
  });
});
after(async () => {
  for (const socket of sockets) {
    socket.close();
  }
  await Promise.all(clients.map((client) => client.close()));
  await browser?.close();
});

/** A REST call from Node with the admin credential. */
async function admin(method, path, body) {
  const response = await fetch(`${HTTP}${path}`, {
    method,
    headers: { Authorization: `Bearer ${ADMIN}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

/** The node table as the page shows it: node id → the row's cells' texts. */
function table() {
  return page.evaluate(() =>
    Object.fromEntries(
      [...document.querySelectorAll("#nodes tbody tr")].map((row) => [
        row.dataset.node,
        [...row.cells].map((cell) => cell.textContent),
      ]),
    ),
  );
}

/** Whether process `pid` has exited (gone, or a zombie its parent, the driver, reaps later). */
function exited(pid) {
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].startsWith("Z");
  } catch {
    return true;
  }
}

/** The console errors a refused call made on purpose leaves (Chromium logs every 4xx). */
function expectRefusal(status) {
  const logged = `console error: Failed to load resource: the server responded with a status of ${status}`;
  assert.deepEqual(problems.map((problem) => problem.slice(0, logged.length)), [logged]);
  problems.length = 0;
}

const CONNECTIONS = 6; // the column of the node table
const chartLast = (title) => page.evaluate((title) => window.dashboard.chartLast(title), title);

/** A bare WebSocket through the gateway, open until the test ends or its node dies. */
async function bareSocket() {
  const socket = new WebSocket(WS, ["wspool"]);
  sockets.push(socket);
  const hello = await new Promise((resolve, reject) => {
    socket.onmessage = (event) => resolve(JSON.parse(event.data));
    socket.onerror = reject;
  });
  return hello.serverId;
}

test("the page loads with no console error and shows every node, live", async () => {
  await page.goto(`${HTTP}/dashboard/`);
  await page.waitForFunction(() => window.dashboard?.snapshots >= 2, null, { timeout: 15_000 });
  const rows = await eventually(async () => {
    const shown = await table();
    return Object.values(shown).every((cells) => cells[1] === "healthy") && shown;
  }, "every node healthy in the table");
  assert.deepEqual(Object.keys(rows).sort(), Object.keys(NODE_PIDS).sort());
  assert.equal(await page.textContent("#feed-state"), "live");
  assert.equal(await page.textContent("#replicas"), "1");
  assert.equal(await page.textContent("#strategy"), "least-connections");
  const points = await page.evaluate(() => window.dashboard.points());
  await page.waitForFunction((points) => window.dashboard.points() > points, points);
  assert.deepEqual(problems, []);
});

test("what the page costs its browser, a second", async (t) => {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Performance.enable");
  const metrics = async () => {
    const { metrics } = await cdp.send("Performance.getMetrics");
    const value = (name) => metrics.find((metric) => metric.name === name).value;
    return { task: value("TaskDuration"), script: value("ScriptDuration"), at: performance.now() };
  };
  const start = await metrics();
  await sleep(5_000);
  const end = await metrics();
  const perSecond = (key) => (((end[key] - start[key]) * 1000) / ((end.at - start.at) / 1000)).toFixed(2);
  t.diagnostic(`main thread: ${perSecond("task")} ms a second, ${perSecond("script")} ms of it script`);
  await cdp.detach();
});

test("without the credential the page can look but not act", async () => {
  assert.match(await page.textContent("#access-state"), /Read-only/);
  const enabled = await page.$$eval(".act", (controls) => controls.filter((c) => !c.disabled).length);
  assert.equal(enabled, 0, "every control that acts is disabled");
  // Even a call made by hand from the page is refused: the gateway checks, not the page.
  const status = await page.evaluate(async () => {
    const answer = await fetch("/api/v1/pool/config", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ strategy: "round-robin" }),
    });
    return answer.status;
  });
  assert.equal(status, 401);
  expectRefusal(401);
  assert.equal((await admin("GET", "/api/v1/pool/config")).body.strategy, "least-connections");
});

test("clients that connect show in the node table and the connections chart", async () => {
  const before = await chartLast("Connections");
  for (let i = 0; i < 12; i += 1) {
    await bareSocket();
  }
  await eventually(async () => {
    const shown = Object.values(await table()).map((cells) => Number(cells[CONNECTIONS]));
    return shown.reduce((a, b) => a + b, 0) >= 12;
  }, "12 connections in the node table");
  await eventually(async () => (await chartLast("Connections"))[0] >= before[0] + 12, "the chart rises");
});

test("a node killed shows down, and its clients show up on the others", async () => {
  const rows = await table();
  const [victim] = Object.entries(rows).sort((a, b) => b[1][CONNECTIONS] - a[1][CONNECTIONS])[0];
  const held = Number(rows[victim][CONNECTIONS]);
  assert.ok(held > 0, "the busiest node holds connections");
  const total = Object.values(rows).reduce((sum, cells) => sum + Number(cells[CONNECTIONS]), 0);
  process.kill(NODE_PIDS[victim], "SIGKILL");
  delete NODE_PIDS[victim];
  // Down at its first failed checks; gone once its registration lapses (the survivors sweep it).
  await eventually(
    async () => ["down", "gone"].includes((await table())[victim]?.[1] ?? "gone"),
    `${victim} shown down`,
    20_000,
  );
  // The gateway moves the killed node's sessions (seamless failover, on by default): the
  // survivors' rows grow by what the victim held, and no client had to reconnect.
  await eventually(
    async () => {
      const survivors = Object.entries(await table()).filter(([id]) => id !== victim);
      return survivors.reduce((sum, [, cells]) => sum + Number(cells[CONNECTIONS]), 0) >= total;
    },
    `the survivors hold the ${held} clients of ${victim} too`,
    20_000,
  );
  // Once its registration lapses the node leaves the table, and the connections chart, which
  // counted it, shows the pool's clients all still connected.
  await eventually(
    async () => (await table())[victim] === undefined && (await chartLast("Connections"))[0] >= total,
    `${victim} gone from the table, the chart at ${total} connections`,
    20_000,
  );
  assert.ok(
    sockets.every((socket) => socket.readyState === WebSocket.OPEN),
    "every client's WebSocket is still open",
  );
});

test("a strategy chosen in the page is what GET /api/v1/pool/config returns", async () => {
  await page.fill("#credential", ADMIN);
  await page.click("#credential-form button[type=submit]");
  await page.waitForFunction(() => !document.querySelector("#strategy-select").disabled);
  assert.equal(await page.evaluate(() => sessionStorage.length), 1);
  assert.ok(!page.url().includes(ADMIN), "the credential is not in the URL");
  await page.selectOption("#strategy-select", "round-robin");
  await page.click("#strategy-form button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#outcome").textContent.endsWith("done"));
  assert.equal((await admin("GET", "/api/v1/pool/config")).body.strategy, "round-robin");
  await page.waitForFunction(() => document.querySelector("#strategy").textContent === "round-robin");
});

test("a bad config from the page is refused with the gateway's reason", async () => {
  await page.fill("#config-patch", JSON.stringify({ healthCheck: { interval: -1 } }));
  await page.click("#config-form button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#outcome").className === "failed");
  assert.match(await page.textContent("#outcome"), /400 BAD_REQUEST: healthCheck.interval/);
  expectRefusal(400);
});

test("the message inspector shows what flows on a channel", async () => {
  const channel = channelName("inspected");
  await page.fill("#inspector-channel", channel);
  await page.click("#inspector-form button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#inspector-state").textContent.startsWith("subscribed"));
  for (const n of [1, 2, 3]) {
    const published = await admin("POST", `/api/v1/channels/${channel}/messages`, { payload: { n } });
    assert.equal(published.status, 201);
  }
  const shown = await eventually(async () => {
    const items = await page.$$eval("#inspector-messages li", (list) => list.map((li) => li.textContent));
    return items.length === 3 && items;
  }, "three messages in the inspector");
  assert.match(shown[0], /\{"n":3\}$/);
  assert.match(shown[2], /\{"n":1\}$/);
  await page.click("#inspector-stop");
});

test("a connection found in the page is closed from it", async () => {
  const client = new Client(WS);
  clients.push(client);
  await client.connect();
  const id = client.connectionId;
  await eventually(async () => (await admin("GET", `/api/v1/connections/${id}`)).status === 200, "recorded");
  await page.fill("#connection-id", id);
  await page.click("#connection-form button[type=submit]");
  await page.waitForFunction(() => !document.querySelector("#connection-close").hidden);
  assert.match(await page.textContent("#connection"), new RegExp(`"serverId": "${client.serverId}"`));
  await page.click("#connection-close");
  await page.waitForFunction(() => document.querySelector("#connection").textContent.includes('"closed": true'));
  assert.equal((await admin("GET", `/api/v1/connections/${id}`)).status, 404);
});

test("a node drained from the page drains and its process exits", async () => {
  const [node, pid] = Object.entries(NODE_PIDS)[0];
  const drain = `#nodes tr[data-node="${node}"] button`;
  await page.click(drain);
  assert.equal(await page.textContent(drain), "Confirm drain");
  await page.click(drain);
  await page.waitForFunction(() => document.querySelector("#outcome").textContent.endsWith("done"));
  await eventually(async () => {
    const row = (await table())[node];
    return row === undefined || row[5] === "draining";
  }, `${node} shown draining or gone`);
  await eventually(() => exited(pid), `the process of ${node} exits`, 30_000);
  await sleep(100);
  assert.deepEqual(problems, []);
});
