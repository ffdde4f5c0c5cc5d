// The reference peer for Quibly's benchmarks (docs/BENCHMARKS.md): what the deployment
// guide's stack would run — Socket.IO 4.8 on Node with @socket.io/redis-adapter — with
// Quibly's events and nothing else: no auth, no persistence, no rate limit.
//
//   channel:join {channelId}            -> ack {ok: true}
//   message:send {channelId, text, nonce} -> broadcast `message` {id, channelId, text, ts, nonce, ...}
//                                          to the channel's room on every node, ack {id, ts}
//
// Environment: PORT (7001), SERVER_ID (ref-1), REDIS_URL (redis://127.0.0.1:6379),
// REDIS_KEY (socket.io-bench: the adapter's pub/sub channel prefix, apart from Quibly's).
"use strict";
const http = require("node:http");
const crypto = require("node:crypto");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

const port = Number(process.env.PORT || 7001);
const serverId = process.env.SERVER_ID || "ref-1";
const redisURL = process.env.REDIS_URL || "redis://127.0.0.1:6379";

async function main() {
  const pub = createClient({ url: redisURL });
  const sub = pub.duplicate();
  for (const c of [pub, sub]) c.on("error", (err) => console.error(`${serverId}: redis:`, err.message));
  await Promise.all([pub.connect(), sub.connect()]);

  const httpServer = http.createServer((req, res) => {
    if (req.url === "/health") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ status: "healthy", serverId, connections: io.engine.clientsCount }));
      return;
    }
    res.writeHead(404).end();
  });
  const io = new Server(httpServer, {
    cors: { origin: true },
    adapter: createAdapter(pub, sub, { key: process.env.REDIS_KEY || "socket.io-bench" }),
  });

  io.on("connection", (socket) => {
    socket.on("channel:join", (p, ack) => {
      if (typeof ack !== "function") return;
      if (!p || typeof p.channelId !== "string" || p.channelId === "") return ack({ error: { code: "invalid", message: "channelId is required" } });
      socket.join(p.channelId);
      ack({ ok: true });
    });
    socket.on("channel:leave", (p, ack) => {
      if (p && typeof p.channelId === "string") socket.leave(p.channelId);
      if (typeof ack === "function") ack({ ok: true });
    });
    socket.on("message:send", (p, ack) => {
      if (typeof ack !== "function") ack = () => {};
      if (!p || typeof p.channelId !== "string" || typeof p.text !== "string" || p.text.trim() === "") {
        return ack({ error: { code: "invalid", message: "channelId and text are required" } });
      }
      if (!socket.rooms.has(p.channelId)) return ack({ error: { code: "forbidden", message: "join the channel first" } });
      const msg = { id: crypto.randomUUID(), channelId: p.channelId, authorId: socket.id, author: "anonymous",
        text: p.text, ts: Date.now(), nonce: p.nonce };
      io.to(p.channelId).emit("message", msg);
      ack({ id: msg.id, ts: msg.ts });
    });
  });

  httpServer.listen(port, "127.0.0.1", () => console.log(`${serverId}: socket.io ${require("socket.io/package.json").version} on 127.0.0.1:${port}`));
  const stop = () => {
    io.close();
    Promise.allSettled([pub.quit(), sub.quit()]).finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 3000).unref();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => {
  console.error(`${serverId}:`, err);
  process.exit(1);
});
