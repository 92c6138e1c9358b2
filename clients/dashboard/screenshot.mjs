// Takes docs/dashboard.png: the dashboard of a pool under load, in headless Chromium.
//
//   .venv/bin/wspool dev --port 8080 --connection-attempts-per-ip 0   # in another terminal
//   node --experimental-websocket screenshot.mjs http://127.0.0.1:8080 ../../docs/dashboard.png
//
// Loads the pool from here, with the JavaScript client (the modules the gateway serves): 60
// clients subscribed to 6 channels and 6 publishers, each sending 30 messages a second, for
// the minute the charts take to fill (CHROMIUM names the browser, /usr/bin/chromium by
// default).
import { chromium } from "playwright-core";

import { Client } from "../../src/wspool/gateway/static/wspool.js";

const [gateway, out] = process.argv.slice(2);
if (!gateway || !out) {
  console.error("usage: node --experimental-websocket screenshot.mjs GATEWAY_HTTP_URL OUT.png");
  process.exit(2);
}
const ws = `${gateway.replace(/^http/, "ws")}/ws`;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const clients = [];
for (let i = 0; i < 60; i += 1) {
  const client = new Client(ws);
  await client.connect();
  await client.subscribe(`prices-${i % 6}`);
  client.on(`prices-${i % 6}`, () => {});
  clients.push(client);
}
let running = true;
const publishers = Array.from({ length: 6 }, async (_, n) => {
  const publisher = new Client(ws);
  await publisher.connect();
  clients.push(publisher);
  for (let i = 0; running; i += 1) {
    await publisher.publish(`prices-${n}`, { eur: 1 + (i % 100) / 1000 });
    await sleep(33);
  }
});

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium" });
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
await page.goto(`${gateway}/dashboard/`);
await sleep(60_000);
await page.screenshot({ path: out, clip: { x: 0, y: 0, width: 1280, height: 900 } });
running = false;
await Promise.all(publishers);
await Promise.all(clients.map((client) => client.close()));
await browser.close();
