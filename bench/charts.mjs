// The charts of the bench report: Vega-Lite specs rendered to SVG without a browser.
import * as vega from "vega";
import * as vl from "vega-lite";

const servers = { quibly: "Quibly", peer: "reference peer" };
const colors = { domain: Object.values(servers), range: ["#1f6feb", "#d97706"] };

async function svg(spec) {
  const view = new vega.View(vega.parse(vl.compile({ $schema: "https://vega.github.io/schema/vega-lite/v6.json", ...spec }).spec), { renderer: "none" });
  return view.toSVG();
}

// One row per server and sweep step.
function points(results) {
  return Object.entries(servers).flatMap(([key, label]) =>
    (results[key]?.sweep || []).map((st) => ({
      server: label,
      pct: st.pct,
      deliveries: st.deliveries_per_s.median,
      p50: st.delivery_p50_ms.median,
      p99: st.delivery_p99_ms.median,
      cpu: st.cpu_ms_per_k_deliveries.nodes.median,
    })),
  );
}

const title = (text, subtitle) => ({ text, subtitle, anchor: "start", fontSize: 14 });
const deliveriesAxis = { field: "deliveries", type: "quantitative", title: "deliveries/s (measured)", axis: { format: "~s" } };

// charts returns file name → SVG text.
export async function charts(results) {
  const pts = points(results);
  const latency = {
    width: 560,
    height: 300,
    title: title("send→delivery latency against load", "p50 (dashed) and p99 (solid), each step the median of its runs; the line at 50 ms is the p99 target at 50 % load"),
    layer: [
      {
        data: { values: pts.flatMap((p) => [{ ...p, quantile: "p99", ms: p.p99 }, { ...p, quantile: "p50", ms: p.p50 }]) },
        mark: { type: "line", point: true },
        encoding: {
          x: deliveriesAxis,
          y: { field: "ms", type: "quantitative", title: "ms (log scale)", scale: { type: "log" } },
          color: { field: "server", type: "nominal", scale: colors, title: null },
          strokeDash: { field: "quantile", type: "nominal", scale: { domain: ["p99", "p50"], range: [[1, 0], [4, 3]] }, title: null },
          detail: { field: "quantile" },
        },
      },
      { data: { values: [{ ms: 50 }] }, mark: { type: "rule", color: "#888", strokeDash: [2, 2] }, encoding: { y: { field: "ms", type: "quantitative" } } },
    ],
  };
  const cpu = {
    width: 560,
    height: 300,
    title: title("node CPU per 1,000 deliveries against load", "the three nodes' CPU time in the window ÷ its deliveries; the line at 3 ms is the target at every step"),
    layer: [
      {
        data: { values: pts },
        mark: { type: "line", point: true },
        encoding: {
          x: deliveriesAxis,
          y: { field: "cpu", type: "quantitative", title: "ms of CPU per 1,000 deliveries" },
          color: { field: "server", type: "nominal", scale: colors, title: null },
        },
      },
      { data: { values: [{ cpu: 3 }] }, mark: { type: "rule", color: "#888", strokeDash: [2, 2] }, encoding: { y: { field: "cpu", type: "quantitative" } } },
    ],
  };
  // Means add up where quantiles do not: the server's stages, and the rest of the
  // client-seen send→delivery mean (proxy, network, scheduling, the load tool).
  const order = ["accept", "queue", "publish", "delivery (bus → client queue)", "outside the node's handlers"];
  const stageRows = (results.quibly?.sweep || []).flatMap((st) => {
    const mean = (k) => st.stages[k]?.mean_ms?.median ?? 0;
    const inside = mean("accept") + mean("queue") + mean("publish") + mean("delivery");
    const rows = [
      ["accept", mean("accept")],
      ["queue", mean("queue")],
      ["publish", mean("publish")],
      ["delivery (bus → client queue)", mean("delivery")],
      ["outside the node's handlers", Math.max(0, (st.delivery_mean_ms.median ?? 0) - inside)],
    ];
    return rows.map(([stage, ms]) => ({ step: `${st.pct} %`, pct: st.pct, stage, ms, rank: order.indexOf(stage) }));
  });
  const stages = {
    width: 560,
    height: 300,
    title: title("where a Quibly message's time goes, by load", "mean ms per stage (the nodes' histograms) and the rest of the client-seen send→delivery mean"),
    data: { values: stageRows },
    mark: "bar",
    encoding: {
      x: { field: "step", type: "ordinal", sort: { field: "pct" }, title: "load, % of Quibly's saturation" },
      y: { field: "ms", type: "quantitative", stack: "zero", title: "mean ms" },
      color: { field: "stage", type: "nominal", sort: order, title: null, legend: { labelLimit: 260 } },
      order: { field: "rank" },
    },
  };
  return {
    "latency-vs-load.svg": await svg(latency),
    "cpu-vs-load.svg": await svg(cpu),
    "stages-vs-load.svg": await svg(stages),
  };
}
