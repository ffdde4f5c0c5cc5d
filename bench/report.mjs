// Turns the JSON files of one `make bench` run (scripts/bench.sh) into medians,
// ratios and target checks: writes <dir>/results.json and the charts (SVG, in <dir> and,
// with --doc, in docs/benchmarks/), and regenerates the figures section of
// docs/BENCHMARKS.md (between the bench:figures markers).
//
//   node bench/report.mjs --dir test-output/bench --doc docs/BENCHMARKS.md --seconds 812 --shape "..." --cpu-split "..."
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execSync } from "node:child_process";
import { charts } from "./charts.mjs";

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
// The stages of a send and a delivery, as the servers' own histograms saw them
// (quiblyload -metrics); Quibly only.
const stageNames = ["accept", "queue", "publish", "ack", "delivery"];
const chat = (prefix, target) => {
  const runs = read(prefix);
  return {
    runs: runs.length,
    rate: med(runs, (r) => r.rate),
    sends_per_s: med(runs, (r) => r.sends_per_s),
    acks_per_s: med(runs, (r) => r.acks_per_s),
    deliveries_per_s: med(runs, (r) => r.deliveries_per_s),
    ack_p50_ms: med(runs, (r) => r.ack_latency.p50_ms),
    ack_p99_ms: med(runs, (r) => r.ack_latency.p99_ms),
    delivery_p50_ms: med(runs, (r) => r.delivery_latency.p50_ms),
    delivery_mean_ms: med(runs, (r) => r.delivery_latency.mean_ms),
    delivery_p99_ms: med(runs, (r) => r.delivery_latency.p99_ms),
    delivery_p999_ms: med(runs, (r) => r.delivery_latency.p999_ms),
    ack_errors: runs.reduce((s, r) => s + r.ack_errors + r.lost, 0),
    missing_deliveries: runs.reduce((s, r) => s + r.missing_deliveries, 0),
    disconnects: runs.reduce((s, r) => s + r.disconnects, 0),
    stages: Object.fromEntries(
      stageNames
        .filter((st) => runs.some((r) => r.stages?.[st]))
        .map((st) => [st, { mean_ms: med(runs, (r) => r.stages?.[st]?.mean_ms), p50_ms: med(runs, (r) => r.stages?.[st]?.p50_ms), p99_ms: med(runs, (r) => r.stages?.[st]?.p99_ms) }]),
    ),
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
// The load sweep: each step's runs, and saturation as the 100 % step.
const sweepSteps = (target) => {
  const pcts = [...new Set(fs.readdirSync(dir).map((f) => f.match(new RegExp(`^sweep-${target}-(\\d+)-\\d+\\.json$`))?.[1]).filter(Boolean).map(Number))];
  return [...pcts.sort((a, b) => a - b).map((pct) => ({ pct, ...chat(`sweep-${target}-${pct}-`, target) })), { pct: 100, ...chat(`saturation-${target}-`, target) }].filter((st) => st.runs > 0);
};
const memory = (target) => {
  const runs = read(`memory-${target}-`);
  return { runs: runs.length, bytes_per_conn: med(runs, (r) => r.bytes_per_conn), connected: med(runs, (r) => r.connected) };
};

const results = {
  date: args.date || new Date().toISOString(), // --date: when re-rendering an earlier run
  seconds: Number(args.seconds || 0),
  note: args.note || "",
  shape: args.shape || "",
  cpu_split: args["cpu-split"] || "not recorded",
  machine: {
    cpu: sh("lscpu | sed -n 's/^Model name: *//p'") || os.cpus()[0]?.model,
    cores: os.cpus().length,
    memory_gb: Math.round(os.totalmem() / 2 ** 30),
    kernel: `${os.type()} ${os.release()}`,
    os: sh(". /etc/os-release && echo $PRETTY_NAME"),
    // bench.sh records it when the measurements end, so a re-rendered report keeps it.
    loadavg_at_end: fs.existsSync(path.join(dir, "loadavg")) ? fs.readFileSync(path.join(dir, "loadavg"), "utf8").trim() : os.loadavg().map((x) => x.toFixed(2)).join(" "),
    go: sh("go env GOVERSION"),
    node: process.version,
    socketio: sh("node -p \"require('./bench/reference/node_modules/socket.io/package.json').version\""),
    redis_adapter: sh("node -p \"require('./bench/reference/node_modules/@socket.io/redis-adapter/package.json').version\""),
    redis: sh("redis-server --version | sed 's/.*v=\\([^ ]*\\).*/\\1/'"),
    haproxy: sh("haproxy -v | head -1 | awk '{print $3}'"),
  },
  quibly: { saturation: chat("saturation-quibly-", "quibly"), sweep: sweepSteps("quibly"), memory: memory("quibly") },
  peer: { saturation: chat("saturation-peer-", "peer"), sweep: sweepSteps("peer"), memory: memory("peer") },
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
// Part "base" (BENCH_BASE): the working tree against an earlier revision, same rate.
const baseInfo = path.join(dir, "base.info");
if (fs.existsSync(baseInfo) && read("base-head-").length && read("base-base-").length) {
  const head = chat("base-head-", "quibly"), base = chat("base-base-", "quibly");
  results.base = { ...JSON.parse(fs.readFileSync(baseInfo, "utf8")), head, base };
}
// Part "mix" (BENCH_MIX): messages alone against a share of sends changing messages.
// Every event a client gets counts as a delivery: messages and the change events.
const mixInfo = path.join(dir, "mix.info");
if (fs.existsSync(mixInfo) && read("mix-plain-").length && read("mix-changes-").length) {
  const side = (prefix) => {
    const runs = read(prefix);
    return {
      ...chat(prefix, "quibly"),
      all_deliveries_per_s: med(runs, (r) => (r.deliveries + (r.change_deliveries || 0)) / r.duration_s),
      changes_per_s: med(runs, (r) => (r.changes || 0) / r.duration_s),
      node_cpu_ms_per_k_events: med(runs, (r) => (r.cpu_s && r.deliveries ? (r.cpu_s.quibly * 1000) / ((r.deliveries + (r.change_deliveries || 0)) / 1000) : null)),
    };
  };
  results.mix = { ...JSON.parse(fs.readFileSync(mixInfo, "utf8")), plain: side("mix-plain-"), changes: side("mix-changes-") };
  const a = results.mix.plain.node_cpu_ms_per_k_events.median, b = results.mix.changes.node_cpu_ms_per_k_events.median;
  results.mix.ratio = a && b ? b / a : null;
}
const q = results.quibly, p = results.peer;
const ratio = (a, b) => (a != null && b ? a / b : null);
results.ratios = {
  fanout_deliveries: ratio(q.saturation.deliveries_per_s.median, p.saturation.deliveries_per_s.median),
  memory_per_conn: ratio(q.memory.bytes_per_conn.median, p.memory.bytes_per_conn.median),
};
const step = (sweep, pct) => sweep.find((st) => st.pct === pct);
const qHalf = step(q.sweep, 50), pHalf = step(p.sweep, 50);
const nodeCPU = (st) => st.cpu_ms_per_k_deliveries.nodes.median;
const sumOver = (sweep, f) => sweep.reduce((sum, st) => sum + f(st), 0);
results.errors = Object.fromEntries(
  [["quibly", q.sweep], ["peer", p.sweep]].map(([t, sw]) => [
    t,
    { acks: sumOver(sw, (st) => st.ack_errors), missing_deliveries: sumOver(sw, (st) => st.missing_deliveries), disconnects: sumOver(sw, (st) => st.disconnects) },
  ]),
);
const below = (m, limit) => m?.median != null && m.median < limit;
// The targets (docs/BENCHMARKS.md, Targets); each is met or missed.
results.targets = {
  node_cpu_le_3ms_every_step: q.sweep.length > 1 && q.sweep.every((st) => nodeCPU(st) != null && nodeCPU(st) <= 3.0),
  delivery_p99_lt_50ms_at_half: below(qHalf?.delivery_p99_ms, 50),
  ack_p99_lt_50ms_at_half: below(qHalf?.ack_p99_ms, 50),
  fanout_ge_1_5x: results.ratios.fanout_deliveries != null && results.ratios.fanout_deliveries >= 1.5,
  idle_memory_le_6kb: q.memory.bytes_per_conn.median != null && q.memory.bytes_per_conn.median <= 6 * 1024,
  nothing_lost: q.sweep.length > 0 && Object.values(results.errors.quibly).every((x) => x === 0),
  batch_ge_80pct_copy: results.store.ratio.median != null && results.store.ratio.median >= 0.8,
};
fs.writeFileSync(path.join(dir, "results.json"), JSON.stringify(results, null, 2) + "\n");
const chartDirs = [dir, ...(doc ? [path.join(path.dirname(doc), "benchmarks")] : [])];
for (const [name, svg] of Object.entries(await charts(results))) {
  for (const d of chartDirs) {
    fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(path.join(d, name), svg);
  }
}

// ------------------------------------------------------------------ markdown
const n = (x, d = 0) => (x == null ? "–" : Number(x).toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d }));
const runsOf = (m, d = 0) => (m.runs.length > 1 ? ` <sub>(${m.runs.map((x) => n(x, d)).join(", ")})</sub>` : "");
const cell = (m, d = 0) => `${n(m.median, d)}${runsOf(m, d)}`;
const kb = (m) => ({ median: m.median == null ? null : m.median / 1024, runs: m.runs.map((x) => x / 1024) });
const yes = (b) => (b ? "**met**" : "**missed**");
const r = results;
const pctCell = (st) => `${st.pct} %${st.pct === 100 ? " (saturation)" : ""}`;
const stageCells = (st) => ["accept", "queue", "publish", "delivery"].map((k) => (st.stages[k] ? `${n(st.stages[k].p50_ms.median, 1)} / ${n(st.stages[k].p99_ms.median, 1)}` : "–")).join(" | ");
const sweepRows = (sw, withStages) =>
  sw
    .map(
      (st) =>
        `| ${pctCell(st)} | ${st.pct === 100 ? "max" : n(st.rate.median)} | ${cell(st.deliveries_per_s)} | ${n(st.delivery_p50_ms.median, 1)} / ${cell(st.delivery_p99_ms, 1)} | ` +
        `${n(st.ack_p50_ms.median, 1)} / ${cell(st.ack_p99_ms, 1)} | ${cell(st.cpu_ms_per_k_deliveries.nodes, 1)} | ` +
        `${n(st.cpu_ms_per_k_deliveries.backing.median, 1)} / ${n(st.cpu_ms_per_k_deliveries.lb_and_load.median, 1)} |` +
        (withStages ? ` ${stageCells(st)} |` : ""),
    )
    .join("\n");
const sweepHead =
  "| load (of its own saturation) | rate asked (msg/s) | deliveries/s | send→delivery p50 / p99 (ms) | send→ack p50 / p99 (ms) | node CPU per 1,000 deliveries (ms) | backing / HAProxy + load tool (ms) |";
// The top of a pprof -top listing: its duration and totals, then n rows.
const profileTop = (file, n) => {
  const f = path.join(dir, file);
  if (!fs.existsSync(f)) return "(no profile in this run)";
  const lines = fs.readFileSync(f, "utf8").split("\n");
  const at = lines.findIndex((l) => l.trim().startsWith("flat"));
  return [...lines.slice(0, at).filter((l) => /^(Duration|Showing nodes)/.test(l)), ...lines.slice(at, at + n + 1)].join("\n");
};
const worst = (sw) => sw.reduce((a, b) => (nodeCPU(b) > nodeCPU(a) ? b : a), sw[0]);
const baseMd = (b) => {
  if (!b) return "";
  const row = (name, f, d = 1) => `| ${name} | ${cell(f(b.base), d)} | ${cell(f(b.head), d)} | ${n(f(b.base).median ? (f(b.head).median / f(b.base).median - 1) * 100 : null, 1)} % |`;
  return `

Against an earlier revision (\`BENCH_BASE=${b.rev}\`, "${b.subject}"): both built here, each on a fresh
schema and Kafka topic, at ${n(b.rate)} messages/s (50 % of the working tree's saturation), runs alternating.

| figure | ${b.rev} | working tree (${b.tree}) | change |
| --- | ---: | ---: | ---: |
${row("node CPU per 1,000 deliveries (ms)", (x) => x.cpu_ms_per_k_deliveries.nodes)}
${row("backing services CPU per 1,000 deliveries (ms)", (x) => x.cpu_ms_per_k_deliveries.backing)}
${row("deliveries/s", (x) => x.deliveries_per_s, 0)}
${row("send→delivery p50 (ms)", (x) => x.delivery_p50_ms)}
${row("send→delivery p99 (ms)", (x) => x.delivery_p99_ms)}
${row("send→ack p99 (ms)", (x) => x.ack_p99_ms)}
| failed or lost acks, missing deliveries | ${b.base.ack_errors}, ${b.base.missing_deliveries} | ${b.head.ack_errors}, ${b.head.missing_deliveries} | |`;
};

const mixMd = (x) => {
  if (!x) return "";
  return `

Changes of messages (\`BENCH_MIX=${x.mix}\`): at ${n(x.rate)} sends/s (50 % of saturation), messages alone
against ${n(x.mix * 100)} % of the sends being edits, reactions, their removal and read markers in turn
(\`quiblyload -mix\`); every event a client receives counts as a delivery.

| figure | messages alone | with changes | |
| --- | ---: | ---: | --- |
| node CPU per 1,000 delivered events (ms) | ${cell(x.plain.node_cpu_ms_per_k_events, 1)} | ${cell(x.changes.node_cpu_ms_per_k_events, 1)} | ${n(x.ratio, 2)}×; target ≤ 1.10×: ${x.ratio != null && x.ratio <= 1.1 ? "**met**" : "**missed**"} |
| delivered events/s (messages + change events) | ${cell(x.plain.all_deliveries_per_s)} | ${cell(x.changes.all_deliveries_per_s)} | |
| changes/s | – | ${cell(x.changes.changes_per_s)} | |
| send→delivery p50 / p99 of messages (ms) | ${n(x.plain.delivery_p50_ms.median, 1)} / ${n(x.plain.delivery_p99_ms.median, 1)} | ${n(x.changes.delivery_p50_ms.median, 1)} / ${n(x.changes.delivery_p99_ms.median, 1)} | |
| failed or lost acks, missing deliveries | ${x.plain.ack_errors}, ${x.plain.missing_deliveries} | ${x.changes.ack_errors}, ${x.changes.missing_deliveries} | |`;
};
const md = `<!-- bench:figures:begin (generated by scripts/bench.sh via bench/report.mjs; do not edit by hand) -->
Run of ${r.date.slice(0, 10)} (${r.date}), \`make bench\` took ${Math.floor(r.seconds / 60)} min ${r.seconds % 60} s${r.note ? ` (${r.note})` : ""}.
Machine: ${r.machine.cpu}, ${r.machine.cores} cores, ${r.machine.memory_gb} GB, ${r.machine.os}, ${r.machine.kernel};
load average at the end ${r.machine.loadavg_at_end}. Go ${r.machine.go}, Node ${r.machine.node}, socket.io ${r.machine.socketio},
@socket.io/redis-adapter ${r.machine.redis_adapter}, Redis ${r.machine.redis}, HAProxy ${r.machine.haproxy}.
Shape: ${r.shape}. CPU split: ${r.cpu_split}. Figures are medians; the runs are in brackets.

| figure | Quibly | reference peer (Socket.IO + Redis adapter) | Quibly / peer | target | |
| --- | ---: | ---: | ---: | --- | --- |
| node CPU per 1,000 deliveries, the highest step of the sweep (ms) | ${q.sweep.length ? `${n(nodeCPU(worst(q.sweep)), 1)} (at ${worst(q.sweep).pct} %)` : "–"} | ${p.sweep.length ? `${n(nodeCPU(worst(p.sweep)), 1)} (at ${worst(p.sweep).pct} %)` : "–"} | | ≤ 3.0 at every step | ${yes(r.targets.node_cpu_le_3ms_every_step)} |
| send→delivery p99 at 50 % of its own saturation (ms) | ${qHalf ? cell(qHalf.delivery_p99_ms, 1) : "–"} | ${pHalf ? cell(pHalf.delivery_p99_ms, 1) : "–"} | | < 50 | ${yes(r.targets.delivery_p99_lt_50ms_at_half)} |
| send→ack p99 at 50 % (ms; Quibly acks after Kafka's acks=all) | ${qHalf ? cell(qHalf.ack_p99_ms, 1) : "–"} | ${pHalf ? cell(pHalf.ack_p99_ms, 1) : "–"} | | < 50 | ${yes(r.targets.ack_p99_lt_50ms_at_half)} |
| cross-node fan-out at saturation (deliveries/s) | ${cell(q.saturation.deliveries_per_s)} | ${cell(p.saturation.deliveries_per_s)} | ${n(r.ratios.fanout_deliveries, 2)}× | ≥ 1.5× | ${yes(r.targets.fanout_ge_1_5x)} |
| idle memory per connection (KB, RSS growth of 3 nodes) | ${cell(kb(q.memory.bytes_per_conn), 1)} | ${cell(kb(p.memory.bytes_per_conn), 1)} | ${n(r.ratios.memory_per_conn, 2)} | ≤ 6 KB | ${yes(r.targets.idle_memory_le_6kb)} |
| failed or lost acks, missing deliveries, disconnects (every load run) | ${Object.values(r.errors.quibly).join(", ")} | ${Object.values(r.errors.peer).join(", ")} | | none | ${yes(r.targets.nothing_lost)} |

![send→delivery latency against load](benchmarks/latency-vs-load.svg)
![node CPU per 1,000 deliveries against load](benchmarks/cpu-vs-load.svg)
![where a Quibly send's time goes, by stage](benchmarks/stages-vs-load.svg)

The sweep, Quibly. The last four columns are the nodes' own histograms over the window
(p50 / p99 in ms, interpolated inside doubling buckets): \`accept\` is validation, the
nonce claim and the order slot; \`queue\` until Kafka acked; \`publish\` the bus commit;
\`delivery\` from the bus to a node's client queues.

${sweepHead} accept | queue | publish | delivery |
| --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- | --- | --- |
${sweepRows(q.sweep, true)}

The sweep, the reference peer:

${sweepHead}
| --- | ---: | ---: | ---: | ---: | ---: | --- |
${sweepRows(p.sweep, false)}

The CPU profile of Quibly's node 1 over the measured window of the first 50 % run
(\`test-output/bench/pprof-sweep-quibly-50-1.pb.gz\`): where the time is spent (flat),
then which of Quibly's paths spend it (cumulative; \`batchConn.release\` holds the
\`write(2)\` calls to the client sockets).

\`\`\`
${profileTop("pprof-sweep-quibly-50-1.txt", 10)}
\`\`\`

\`\`\`
${profileTop("pprof-sweep-quibly-50-1-quibly.txt", 14)}
\`\`\`

| machine's raw limit / storage | figure | |
| --- | ---: | --- |
| Redis pub/sub, ${r.raw.redis_pubsub.subscribers} subscribers (one per node), pipelined publishers: publishes/s | ${cell(r.raw.redis_pubsub.publishes_per_s)} | |
| … deliveries/s (publishes × subscribers) | ${cell(r.raw.redis_pubsub.deliveries_per_s)} | |
| loopback websocket echo (Go, 100 connections × 8 in flight): round trips/s | ${cell(r.raw.ws_echo.round_trips_per_s)} | p99 ${n(r.raw.ws_echo.p99_ms.median, 2)} ms |
| batch writer (store.WriteMessages, batches of ${r.store.batch}): rows/s | ${cell(r.store.writer_rows_per_s)} | |
| raw COPY into the same table: rows/s | ${cell(r.store.copy_rows_per_s)} | |
| batch writer / raw COPY | ${cell({ median: r.store.ratio.median * 100, runs: r.store.ratio.runs.map((x) => x * 100) })} % | target ≥ 80 %: ${yes(r.targets.batch_ge_80pct_copy)} |${mixMd(r.mix)}${baseMd(r.base)}
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
