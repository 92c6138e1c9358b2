"use strict";
/*
 * The Node.js peer for the side by side: Socket.IO with its Redis adapter.
 *
 * The same server as wspool/bench/peers/socketio_server.py, in the runtime most Socket.IO
 * users pick: a `subscribe` event joins the room named after the channel (acked with
 * "subscribed"), a `publish` event emits `data` to that room through
 * @socket.io/redis-adapter, so every server sharing the Redis delivers it to its own
 * members, as our nodes do. The publisher, if it is a member, hears its own message (as
 * with python-socketio's emit to a room). WebSocket transport only (the generator never
 * polls), default options otherwise.
 *
 * For `wspool bench` it also answers /health ({"store": "up"} once it listens and both
 * Redis clients are connected) and /metrics in the Prometheus text format: CPU seconds,
 * resident memory, and the counters the generator reads from a node (connections, messages
 * received, deliveries). Deliveries are counted as the room's local members when a message
 * is published: exact with one server, which is how the side by side runs.
 *
 * Run: node server.js --host H --port P --redis-url URL
 * (after `npm ci` in this folder; `wspool bench --peer socketio-node` does both).
 */

const http = require("node:http");
const { parseArgs } = require("node:util");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

const { values: args } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "8090" },
    "redis-url": { type: "string", default: "redis://127.0.0.1:6379/0" },
  },
});

let connections = 0;
let received = 0;
let deliveries = 0;
let storeUp = false;

function metrics() {
  const cpu = process.cpuUsage();
  const lines = [
    ["process_cpu_seconds_total", "counter", (cpu.user + cpu.system) / 1e6],
    ["process_resident_memory_bytes", "gauge", process.memoryUsage.rss()],
    ["wspool_connections", "gauge", connections],
    ["wspool_messages_received_total", "counter", received],
    ["wspool_deliveries_total", "counter", deliveries],
  ];
  return lines.map(([name, type, value]) => `# TYPE ${name} ${type}\n${name} ${value}\n`).join("");
}

// Socket.IO answers /socket.io/ itself; every other request reaches this handler.
const httpServer = http.createServer((request, response) => {
  if (request.url === "/health") {
    response.writeHead(storeUp ? 200 : 503, { "Content-Type": "application/json" });
    response.end(JSON.stringify({ status: storeUp ? "ok" : "starting", store: storeUp ? "up" : "down" }));
  } else if (request.url === "/metrics") {
    response.writeHead(200, { "Content-Type": "text/plain; version=0.0.4; charset=utf-8" });
    response.end(metrics());
  } else {
    response.writeHead(404);
    response.end();
  }
});

async function main() {
  const pubClient = createClient({ url: args["redis-url"] });
  const subClient = pubClient.duplicate();
  for (const client of [pubClient, subClient]) {
    client.on("error", (error) => console.error(`redis: ${error.message}`));
  }
  await Promise.all([pubClient.connect(), subClient.connect()]);

  const io = new Server(httpServer, {
    adapter: createAdapter(pubClient, subClient),
    transports: ["websocket"],
    cors: { origin: "*" },
  });
  const rooms = io.of("/").adapter.rooms;

  io.on("connection", (socket) => {
    connections += 1;
    socket.on("disconnect", () => {
      connections -= 1;
    });
    socket.on("subscribe", (channel, ack) => {
      socket.join(channel);
      if (typeof ack === "function") ack("subscribed");
    });
    socket.on("publish", (data) => {
      const channel = data && data.channel;
      if (typeof channel !== "string") return;
      received += 1;
      deliveries += rooms.get(channel)?.size ?? 0;
      io.to(channel).emit("data", data);
    });
  });

  // The same listen backlog as the python peer (aiohttp) and our nodes: connect bursts.
  httpServer.listen(Number(args.port), args.host, 4096, () => {
    storeUp = true;
  });

  const stop = () => {
    io.close();
    Promise.allSettled([pubClient.quit(), subClient.quit()]).finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((error) => {
  console.error(`socketio-node peer: ${error.message}`);
  process.exit(1);
});
