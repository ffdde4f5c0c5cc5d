// Turns the JSON files of one `make bench` run (scripts/bench.sh) into medians,
// ratios and target checks: writes <dir>/results.json and regenerates the figures
// section of docs/BENCHMARKS.md (between the bench:figures markers).
//
//   node bench/report.mjs --dir test-output/bench --doc docs/BENCHMARKS.md --seconds 812 --shape "..."
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execSync } from "node:child_process";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const dir = args.dir || "test-output/bench";
const doc = args.doc || "";

const read = (prefix) =>
  fs
    .readdirSync(dir)
    .filter((f) => f.startsWith(prefix) && f.endsWith(".json"))
    .sort()
    .map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")));
const median = (xs) => {
  const v = xs.filter((x) => typeof x === "number" && !Number.isNaN(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};
const med = (runs, f) => ({ median: median(runs.map(f)), runs: runs.map(f) });
const sh = (cmd) => {
  try {
    return execSync(cmd, { stdio: ["ignore", "pipe", "ignore"] }).toString().trim();
  } catch {
    return "";
  }
};

const cpuGroups = {
  quibly: { nodes: ["quibly"], backing: ["java", "redis-server", "postgres"], lb_and_load: ["haproxy", "quiblyload"] },
  peer: { nodes: ["node"], backing: ["redis-server"], lb_and_load: ["haproxy", "quiblyload"] },
};
const chat = (kind, target) => {
  const runs = read(`${kind}-${target}-`);
  return {
    runs: runs.length,
    rate: med(runs, (r) => r.rate),
    sends_per_s: med(runs, (r) => r.sends_per_s),
    acks_per_s: med(runs, (r) => r.acks_per_s),
    deliveries_per_s: med(runs, (r) => r.deliveries_per_s),
    ack_p50_ms: med(runs, (r) => r.ack_latency.p50_ms),
    ack_p99_ms: med(runs, (r) => r.ack_latency.p99_ms),
    delivery_p50_ms: med(runs, (r) => r.delivery_latency.p50_ms),
    delivery_p99_ms: med(runs, (r) => r.delivery_latency.p99_ms),
    delivery_p999_ms: med(runs, (r) => r.delivery_latency.p999_ms),
    ack_errors: runs.reduce((s, r) => s + r.ack_errors + r.lost, 0),
    missing_deliveries: runs.reduce((s, r) => s + r.missing_deliveries, 0),
    disconnects: runs.reduce((s, r) => s + r.disconnects, 0),
    // CPU milliseconds per 1,000 deliveries over the measured window, per group of
    // programs (quiblyload -cpu): what a delivery costs, whatever else shares the cores.
    cpu_ms_per_k_deliveries: Object.fromEntries(
      Object.entries(cpuGroups[target]).map(([group, programs]) => [
        group,
        med(runs, (r) => (r.cpu_s && r.deliveries ? (programs.reduce((s, p) => s + (r.cpu_s[p] || 0), 0) * 1000) / (r.deliveries / 1000) : null)),
      ]),
    ),
  };
};
const memory = (target) => {
  const runs = read(`memory-${target}-`);
  return { runs: runs.length, bytes_per_conn: med(runs, (r) => r.bytes_per_conn), connected: med(runs, (r) => r.connected) };
};

const results = {
  date: new Date().toISOString(),
  seconds: Number(args.seconds || 0),
  note: args.note || "",
  shape: args.shape || "",
  machine: {
    cpu: sh("lscpu | sed -n 's/^Model name: *//p'") || os.cpus()[0]?.model,
    cores: os.cpus().length,
    memory_gb: Math.round(os.totalmem() / 2 ** 30),
    kernel: `${os.type()} ${os.release()}`,
    os: sh(". /etc/os-release && echo $PRETTY_NAME"),
    loadavg_at_end: os.loadavg().map((x) => x.toFixed(2)).join(" "),
    go: sh("go env GOVERSION"),
    node: process.version,
    socketio: sh("node -p \"require('./bench/reference/node_modules/socket.io/package.json').version\""),
    redis_adapter: sh("node -p \"require('./bench/reference/node_modules/@socket.io/redis-adapter/package.json').version\""),
    redis: sh("redis-server --version | sed 's/.*v=\\([^ ]*\\).*/\\1/'"),
    haproxy: sh("haproxy -v | head -1 | awk '{print $3}'"),
  },
  quibly: { saturation: chat("saturation", "quibly"), half: chat("half", "quibly"), light: chat("light", "quibly"), memory: memory("quibly") },
  peer: { saturation: chat("saturation", "peer"), half: chat("half", "peer"), memory: memory("peer") },
  raw: {
    redis_pubsub: (() => {
      const r = read("raw-redis-");
      return { publishes_per_s: med(r, (x) => x.publishes_per_s), deliveries_per_s: med(r, (x) => x.deliveries_per_s), subscribers: r[0]?.subscribers };
    })(),
    ws_echo: (() => {
      const r = read("raw-echo-");
      return { round_trips_per_s: med(r, (x) => x.round_trips_per_s), p50_ms: med(r, (x) => x.latency.p50_ms), p99_ms: med(r, (x) => x.latency.p99_ms) };
    })(),
  },
  store: (() => {
    const r = read("store-");
    return { batch: r[0]?.batch, rows: r[0]?.rows, writer_rows_per_s: med(r, (x) => x.writer_rows_per_s), copy_rows_per_s: med(r, (x) => x.copy_rows_per_s), ratio: med(r, (x) => x.ratio) };
  })(),
};
const q = results.quibly, p = results.peer;
const ratio = (a, b) => (a != null && b ? a / b : null);
results.ratios = {
  fanout_deliveries: ratio(q.saturation.deliveries_per_s.median, p.saturation.deliveries_per_s.median),
  memory_per_conn: ratio(q.memory.bytes_per_conn.median, p.memory.bytes_per_conn.median),
};
results.targets = {
  idle_memory_le_8kb: q.memory.bytes_per_conn.median != null && q.memory.bytes_per_conn.median <= 8 * 1024,
  fanout_ge_3x: results.ratios.fanout_deliveries != null && results.ratios.fanout_deliveries >= 3,
  delivery_p99_lt_10ms_at_half: q.half.delivery_p99_ms.median != null && q.half.delivery_p99_ms.median < 10,
  ack_p99_lt_20ms: q.half.ack_p99_ms.median != null && q.half.ack_p99_ms.median < 20,
  batch_ge_80pct_copy: results.store.ratio.median != null && results.store.ratio.median >= 0.8,
};
fs.writeFileSync(path.join(dir, "results.json"), JSON.stringify(results, null, 2) + "\n");

// ------------------------------------------------------------------ markdown
const n = (x, d = 0) => (x == null ? "–" : Number(x).toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d }));
const runsOf = (m, d = 0) => (m.runs.length > 1 ? ` <sub>(${m.runs.map((x) => n(x, d)).join(", ")})</sub>` : "");
const cell = (m, d = 0) => `${n(m.median, d)}${runsOf(m, d)}`;
const kb = (m) => ({ median: m.median == null ? null : m.median / 1024, runs: m.runs.map((x) => x / 1024) });
const yes = (b) => (b ? "**met**" : "**missed**");
const r = results;
const md = `<!-- bench:figures:begin (generated by scripts/bench.sh via bench/report.mjs; do not edit by hand) -->
Run of ${r.date.slice(0, 10)} (${r.date}), \`make bench\` took ${Math.floor(r.seconds / 60)} min ${r.seconds % 60} s${r.note ? ` (${r.note})` : ""}.
Machine: ${r.machine.cpu}, ${r.machine.cores} cores, ${r.machine.memory_gb} GB, ${r.machine.os}, ${r.machine.kernel};
load average at the end ${r.machine.loadavg_at_end}. Go ${r.machine.go}, Node ${r.machine.node}, socket.io ${r.machine.socketio},
@socket.io/redis-adapter ${r.machine.redis_adapter}, Redis ${r.machine.redis}, HAProxy ${r.machine.haproxy}.
Shape: ${r.shape}. Figures are medians; the runs are in brackets.

| figure | Quibly (full path: Kafka acks=all, Redis fan-out) | reference peer (Socket.IO + Redis adapter) | Quibly / peer | target | |
| --- | ---: | ---: | ---: | --- | --- |
| idle memory per connection (KB, RSS growth of 3 nodes) | ${cell(kb(q.memory.bytes_per_conn), 1)} | ${cell(kb(p.memory.bytes_per_conn), 1)} | ${n(r.ratios.memory_per_conn, 2)} | ≤ 8 KB | ${yes(r.targets.idle_memory_le_8kb)} |
| cross-node fan-out at saturation (deliveries/s) | ${cell(q.saturation.deliveries_per_s)} | ${cell(p.saturation.deliveries_per_s)} | ${n(r.ratios.fanout_deliveries, 2)}× | ≥ 3× | ${yes(r.targets.fanout_ge_3x)} |
| … messages sent/s at saturation | ${cell(q.saturation.sends_per_s)} | ${cell(p.saturation.sends_per_s)} | ${n(ratio(q.saturation.sends_per_s.median, p.saturation.sends_per_s.median), 2)}× | | |
| … send→delivery p99 at saturation (ms) | ${cell(q.saturation.delivery_p99_ms, 1)} | ${cell(p.saturation.delivery_p99_ms, 1)} | | | |
| half of saturation: rate asked (messages/s) | ${n(q.half.rate.median)} | ${n(p.half.rate.median)} | | | |
| … send→delivery p50 (ms) | ${cell(q.half.delivery_p50_ms, 2)} | ${cell(p.half.delivery_p50_ms, 2)} | | | |
| … send→delivery p99 (ms) | ${cell(q.half.delivery_p99_ms, 2)} | ${cell(p.half.delivery_p99_ms, 2)} | | < 10 ms | ${yes(r.targets.delivery_p99_lt_10ms_at_half)} |
| … send→ack p50 (ms) | ${cell(q.half.ack_p50_ms, 2)} | ${cell(p.half.ack_p50_ms, 2)} | | | |
| … send→ack p99 (ms) (Quibly: after Kafka acks=all) | ${cell(q.half.ack_p99_ms, 2)} | ${cell(p.half.ack_p99_ms, 2)} | | < 20 ms | ${yes(r.targets.ack_p99_lt_20ms)} |
| CPU per 1,000 deliveries at saturation (ms): the 3 nodes | ${cell(q.saturation.cpu_ms_per_k_deliveries.nodes, 1)} | ${cell(p.saturation.cpu_ms_per_k_deliveries.nodes, 1)} | ${n(ratio(q.saturation.cpu_ms_per_k_deliveries.nodes.median, p.saturation.cpu_ms_per_k_deliveries.nodes.median), 2)} | | |
| … their backing services (Quibly: Kafka, Redis, PostgreSQL; peer: Redis) | ${cell(q.saturation.cpu_ms_per_k_deliveries.backing, 1)} | ${cell(p.saturation.cpu_ms_per_k_deliveries.backing, 1)} | | | |
| … HAProxy and the load tool | ${cell(q.saturation.cpu_ms_per_k_deliveries.lb_and_load, 1)} | ${cell(p.saturation.cpu_ms_per_k_deliveries.lb_and_load, 1)} | | | |
| CPU per 1,000 deliveries at half of saturation (ms): nodes / backing / HAProxy and load tool | ${n(q.half.cpu_ms_per_k_deliveries.nodes.median, 1)} / ${n(q.half.cpu_ms_per_k_deliveries.backing.median, 1)} / ${n(q.half.cpu_ms_per_k_deliveries.lb_and_load.median, 1)} | ${n(p.half.cpu_ms_per_k_deliveries.nodes.median, 1)} / ${n(p.half.cpu_ms_per_k_deliveries.backing.median, 1)} / ${n(p.half.cpu_ms_per_k_deliveries.lb_and_load.median, 1)} | | | |
| light load (200 messages/s): send→ack p50 / p99 (ms) | ${n(q.light.ack_p50_ms.median, 2)} / ${cell(q.light.ack_p99_ms, 2)} | – | | | |
| errors: failed or lost acks, missing deliveries, disconnects (all runs) | ${q.saturation.ack_errors + q.half.ack_errors + q.light.ack_errors}, ${q.saturation.missing_deliveries + q.half.missing_deliveries + q.light.missing_deliveries}, ${q.saturation.disconnects + q.half.disconnects + q.light.disconnects} | ${p.saturation.ack_errors + p.half.ack_errors}, ${p.saturation.missing_deliveries + p.half.missing_deliveries}, ${p.saturation.disconnects + p.half.disconnects} | | | |

| machine's raw limit / storage | figure | |
| --- | ---: | --- |
| Redis pub/sub, ${r.raw.redis_pubsub.subscribers} subscribers (one per node), pipelined publishers: publishes/s | ${cell(r.raw.redis_pubsub.publishes_per_s)} | |
| … deliveries/s (publishes × subscribers) | ${cell(r.raw.redis_pubsub.deliveries_per_s)} | |
| loopback websocket echo (Go, 100 connections × 8 in flight): round trips/s | ${cell(r.raw.ws_echo.round_trips_per_s)} | p99 ${n(r.raw.ws_echo.p99_ms.median, 2)} ms |
| batch writer (store.WriteMessages, batches of ${r.store.batch}): rows/s | ${cell(r.store.writer_rows_per_s)} | |
| raw COPY into the same table: rows/s | ${cell(r.store.copy_rows_per_s)} | |
| batch writer / raw COPY | ${cell({ median: r.store.ratio.median * 100, runs: r.store.ratio.runs.map((x) => x * 100) })} % | target ≥ 80 %: ${yes(r.targets.batch_ge_80pct_copy)} |
<!-- bench:figures:end -->`;

if (doc) {
  const begin = "<!-- bench:figures:begin";
  const end = "<!-- bench:figures:end -->";
  let text = fs.existsSync(doc) ? fs.readFileSync(doc, "utf8") : `# Benchmarks\n\n## Figures\n\n${begin} -->\n${end}\n`;
  const i = text.indexOf(begin), j = text.indexOf(end);
  if (i < 0 || j < 0) throw new Error(`${doc} has no ${begin} … ${end} section`);
  text = text.slice(0, i) + md + text.slice(j + end.length);
  fs.writeFileSync(doc, text);
}
console.log(md);
