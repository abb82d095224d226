// The live component graph (the AxonVisualiser in a browser) and charts.
// Data: /events (Server-Sent Events): "hello" {graph, history}, then "diff"
// and "stats" once a second. Layout: d3-force; charts: Chart.js.
(function () {
  "use strict";
  const FOLD_AT = 20;          // connections under a server beyond which they start folded
  const UNFOLD_MAX = 200;      // connections drawn when unfolded; the rest stay folded (a browser
                               // cannot lay out tens of thousands of nodes live)
  const HISTORY = 300;
  const nodes = new Map();     // id -> component (from the server)
  const links = new Map();     // key -> link
  const prev = new Map();      // id -> {sent, delivered, t}
  const rates = new Map();     // id -> {msgs, inboxRate}
  const unfolded = new Set();  // server ids the user unfolded
  const folded = new Set();    // server ids the user folded by hand
  const pos = new Map();       // node key -> {x, y, vx, vy} kept across redraws
  let frame = 0, selected = null, firstDrawMs = null, lastTick = performance.now();
  const started = performance.now();
  const api = window.kamaeliaConsole = {
    frame: () => frame,
    drawnNodes: () => document.querySelectorAll("#graph g.node").length,
    drawnComponents: () => document.querySelectorAll("#graph g.node.component").length,
    drawnIds: () => Array.from(document.querySelectorAll("#graph g.node.component")).map(e => +e.dataset.id),
    drawnSchedulers: () => Array.from(document.querySelectorAll("#graph g.cluster")).map(e => +e.dataset.scheduler),
    foldedGroups: () => Array.from(document.querySelectorAll("#graph g.node.fold")).map(e => ({server: +e.dataset.server, count: +e.dataset.count})),
    knownComponents: () => nodes.size,
    chartPoints: () => charts.messages.data.labels.length,
    firstDrawMs: () => firstDrawMs,
  };

  // ---- charts ----------------------------------------------------------------------
  function lineChart(id, title, yTitle) {
    return new Chart(document.getElementById(id), {
      type: "line",
      data: { labels: [], datasets: [] },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false, normalized: true,
        elements: { point: { radius: 0 } },
        plugins: { title: { display: true, text: title }, legend: { labels: { boxWidth: 10 } } },
        scales: { x: { ticks: { maxTicksLimit: 6 } }, y: { beginAtZero: true, title: { display: !!yTitle, text: yTitle } } },
      },
    });
  }
  const charts = {
    connections: lineChart("chart-connections", "connections open"),
    messages: lineChart("chart-messages", "messages / s"),
    greylist: lineChart("chart-greylist", "greylist decisions / s"),
    drops: lineChart("chart-drops", "drops / s and store latency", ""),
  };
  const palette = ["#1e88e5", "#43a047", "#fb8c00", "#8e24aa", "#e53935", "#00acc1", "#6d4c41"];
  function series(chart, name, yAxis) {
    let ds = chart.data.datasets.find(d => d.label === name);
    if (!ds) {
      ds = { label: name, data: new Array(chart.data.labels.length).fill(null), borderWidth: 1.5,
             borderColor: palette[chart.data.datasets.length % palette.length], yAxisID: yAxis || "y" };
      chart.data.datasets.push(ds);
    }
    return ds;
  }
  function addSample(s, draw) {
    const label = new Date(s.t * 1000).toLocaleTimeString();
    const put = (chart, values) => {
      chart.data.labels.push(label);
      for (const [k, v] of Object.entries(values)) series(chart, k).data.push(v);
      for (const ds of chart.data.datasets) {
        while (ds.data.length < chart.data.labels.length) ds.data.push(null);
        while (ds.data.length > HISTORY) ds.data.shift();
      }
      while (chart.data.labels.length > HISTORY) chart.data.labels.shift();
      if (draw) chart.update("none");
    };
    put(charts.connections, s.connections);
    put(charts.messages, { "messages/s": s.messages_per_s });
    put(charts.greylist, s.greylist_per_s);
    put(charts.drops, { "drops/s": s.drops_per_s, "store latency (ms)": s.store_latency_s * 1000 });
  }

  // ---- the model ---------------------------------------------------------------------
  function noteRates(n, now) {
    const delivered = (n.boxes || []).reduce((a, b) => a + (b.delivered || 0), 0);
    const p = prev.get(n.id);
    if (p && now > p.t) {
      const dt = (now - p.t) / 1000;
      rates.set(n.id, { msgs: Math.max(0, (n.sent - p.sent) / dt), inboxRate: Math.max(0, (delivered - p.delivered) / dt) });
    }
    prev.set(n.id, { sent: n.sent, delivered, t: now });
  }
  function load(g) {
    nodes.clear(); links.clear(); prev.clear(); rates.clear();
    const now = performance.now();
    for (const n of g.nodes) { nodes.set(n.id, n); noteRates(n, now); }
    for (const l of g.links) links.set(l.key, l);
    frame = g.frame;
  }
  function applyDiff(d) {
    const now = performance.now();
    for (const n of d.nodes) { nodes.set(n.id, n); noteRates(n, now); }
    for (const id of d.gone) { nodes.delete(id); prev.delete(id); rates.delete(id); }
    for (const l of d.links) links.set(l.key, l);
    for (const k of d.unlinked) links.delete(k);
    frame = d.frame;
  }

  // What is drawn: every component, except that a server's connection graphs
  // fold into one node when there are many (or the user folded them).
  function visible() {
    const children = new Map();
    for (const n of nodes.values()) {
      if (!children.has(n.parent)) children.set(n.parent, []);
      children.get(n.parent).push(n);
    }
    const foldOf = new Map(); // server id -> {count, members}
    for (const n of nodes.values()) {
      if (!n.server) continue;
      const kids = children.get(n.id) || [];
      const conns = kids.filter(k => k.type === "connected_socket_adapter").length;
      const fold = folded.has(n.id) || (conns > FOLD_AT && !unfolded.has(n.id));
      if (fold) foldOf.set(n.id, { count: conns, members: 0, keep: null });
      else if (conns > UNFOLD_MAX) {
        // Unfolded but huge: the first UNFOLD_MAX connections (adapter and handler each) are drawn.
        const keep = new Set(kids.slice().sort((a, b) => a.id - b.id).slice(0, 2 * UNFOLD_MAX).map(k => k.id));
        foldOf.set(n.id, { count: conns - UNFOLD_MAX, members: 0, keep });
      }
    }
    const hiddenBy = new Map(); // component id -> server id folding it
    const walk = (id, server, keep) => {
      for (const k of children.get(id) || []) {
        if (keep && keep.has(k.id)) continue;
        hiddenBy.set(k.id, server); foldOf.get(server).members++; walk(k.id, server, null);
      }
    };
    for (const [s, f] of foldOf) walk(s, s, f.keep);
    const vnodes = [];
    for (const n of nodes.values()) if (!hiddenBy.has(n.id)) vnodes.push({ key: "c" + n.id, comp: n });
    for (const [s, f] of foldOf) vnodes.push({ key: "f" + s, fold: s, count: f.count, members: f.members, partial: !!f.keep });
    const keyOf = id => hiddenBy.has(id) ? "f" + hiddenBy.get(id) : "c" + id;
    const vlinks = new Map();
    for (const l of links.values()) {
      if (!nodes.has(l.source) || !nodes.has(l.sink)) continue;
      const a = keyOf(l.source), b = keyOf(l.sink);
      if (a === b) continue;
      const k = a + ">" + b;
      const r = rates.get(l.sink);
      const v = vlinks.get(k) || { key: k, source: a, target: b, passthrough: l.passthrough !== 0, rate: 0, boxes: [] };
      v.rate += r ? r.inboxRate : 0;
      if (v.boxes.length < 4) v.boxes.push(l.source_box + "→" + l.sink_box);
      vlinks.set(k, v);
    }
    const owners = [];
    for (const v of vnodes) {
      if (v.comp && v.comp.parent && nodes.has(v.comp.parent)) owners.push({ key: "o" + v.key, source: keyOf(v.comp.parent), target: v.key });
      if (v.fold) owners.push({ key: "o" + v.key, source: "c" + v.fold, target: v.key });
    }
    return { vnodes, vlinks: Array.from(vlinks.values()), owners };
  }

  // ---- drawing ------------------------------------------------------------------------
  const svg = d3.select("#graph");
  const root = svg.append("g");
  svg.call(d3.zoom().scaleExtent([0.05, 4]).on("zoom", () => root.attr("transform", d3.event.transform)));
  svg.append("defs").append("marker").attr("id", "arrow").attr("viewBox", "0 -4 8 8").attr("refX", 14)
    .attr("markerWidth", 6).attr("markerHeight", 6).attr("orient", "auto")
    .append("path").attr("d", "M0,-4L8,0L0,4").attr("fill", "#555");
  const clusterLayer = root.append("g"), ownerLayer = root.append("g"), linkLayer = root.append("g"), nodeLayer = root.append("g");
  const sim = d3.forceSimulation().alphaDecay(0.05)
    .force("charge", d3.forceManyBody().strength(-60).distanceMax(300))
    .force("owner", d3.forceLink().id(d => d.key).distance(30).strength(0.6))
    .force("link", d3.forceLink().id(d => d.key).distance(50).strength(0.2))
    .force("x", d3.forceX().strength(0.03)).force("y", d3.forceY().strength(0.03));
  // A cluster per scheduler (--threads): each scheduler's components are
  // pulled to a column of their own and framed (a fold sits with its server).
  const schedOf = v => v.comp ? (v.comp.scheduler || 0) : ((nodes.get(v.fold) || {}).scheduler || 0);
  function columns(vnodes) {
    const ids = Array.from(new Set(vnodes.map(schedOf))).sort((a, b) => a - b);
    const at = new Map(ids.map((s, i) => [s, (i - (ids.length - 1) / 2) * 500]));
    sim.force("x").x(v => at.get(schedOf(v)) || 0).strength(ids.length > 1 ? 0.1 : 0.03);
    return ids.length > 1 ? ids : [];
  }

  function shortName(n) { return n.type + "#" + n.id; }
  function depth(n) { return (n.boxes || []).reduce((a, b) => a + (b.depth || 0), 0); }
  function label(v) {
    if (v.fold) return (v.partial ? v.count + " more connections (" : v.count + " connections (") + v.members + " components)" + (v.partial ? "" : " — click to unfold");
    const n = v.comp, r = rates.get(n.id), d = depth(n);
    let s = shortName(n);
    if (d) s += " [" + d + " queued]";
    if (r && r.msgs >= 0.5) s += " " + r.msgs.toFixed(0) + " msg/s";
    return s;
  }

  function draw() {
    const { vnodes, vlinks, owners } = visible();
    const w = svg.node().clientWidth || 800, h = svg.node().clientHeight || 600;
    for (const v of vnodes) {
      const p = pos.get(v.key);
      if (p) Object.assign(v, p);
      else {
        const parent = v.comp ? pos.get("c" + v.comp.parent) : pos.get("c" + v.fold);
        v.x = (parent ? parent.x : 0) + (Math.random() - 0.5) * 40;
        v.y = (parent ? parent.y : 0) + (Math.random() - 0.5) * 40;
      }
    }
    pos.clear();
    const ownerSel = ownerLayer.selectAll("line").data(owners, d => d.key);
    ownerSel.exit().remove();
    const ownerAll = ownerSel.enter().append("line").attr("class", "owner").merge(ownerSel);
    const linkSel = linkLayer.selectAll("line").data(vlinks, d => d.key);
    linkSel.exit().remove();
    const linkAll = linkSel.enter().append("line").attr("marker-end", "url(#arrow)")
      .merge(linkSel).attr("class", d => "link" + (d.passthrough ? " passthrough" : ""))
      .attr("stroke-width", d => 1 + Math.min(5, Math.log10(1 + d.rate)));
    linkAll.selectAll("title").remove();
    linkAll.append("title").text(d => d.boxes.join(", ") + (d.rate ? " — " + d.rate.toFixed(1) + " msg/s" : ""));
    const nodeSel = nodeLayer.selectAll("g.node").data(vnodes, d => d.key);
    nodeSel.exit().remove();
    const enter = nodeSel.enter().append("g").on("click", d => click(d))
      .call(d3.drag().on("start", d => { if (!d3.event.active) sim.alphaTarget(0.2).restart(); d.fx = d.x; d.fy = d.y; })
        .on("drag", d => { d.fx = d3.event.x; d.fy = d3.event.y; })
        .on("end", d => { if (!d3.event.active) sim.alphaTarget(0); d.fx = null; d.fy = null; }));
    enter.append("circle");
    enter.append("text").attr("dx", 9).attr("dy", 3);
    enter.append("title");
    const all = enter.merge(nodeSel);
    all.attr("class", d => "node " + (d.fold ? "fold" : "component" + (d.comp.server ? " server" : "") + (d.comp.failed ? " failed" : "")))
      .attr("data-id", d => d.comp ? d.comp.id : null)
      .attr("data-server", d => d.fold || null).attr("data-count", d => d.fold ? d.count : null);
    all.select("circle").attr("r", d => d.fold ? 10 + Math.min(20, Math.log2(1 + d.count) * 2) : (d.comp.server ? 9 : 5 + Math.min(6, depth(d.comp))))
      .attr("fill", d => d.fold || (d.comp && (d.comp.server || d.comp.failed)) ? null : d3.schemeTableau10[d.comp.parent % 10]);
    all.select("text").text(label);
    all.select("title").text(d => d.fold ? "connections of " + shortName(nodes.get(d.fold)) : d.comp.name + " (" + d.comp.state + ")");
    const clusterIds = columns(vnodes);
    const clusterSel = clusterLayer.selectAll("g.cluster").data(clusterIds, s => s);
    clusterSel.exit().remove();
    const clusterEnter = clusterSel.enter().append("g").attr("class", "cluster").attr("data-scheduler", s => s);
    clusterEnter.append("rect");
    clusterEnter.append("text").text(s => "scheduler " + s);
    const clusterAll = clusterEnter.merge(clusterSel);
    const frameClusters = () => clusterAll.each(function (s) {
      const mine = vnodes.filter(v => schedOf(v) === s);
      if (!mine.length) return;
      const x0 = Math.min(...mine.map(v => v.x)) - 20, x1 = Math.max(...mine.map(v => v.x)) + 20;
      const y0 = Math.min(...mine.map(v => v.y)) - 30, y1 = Math.max(...mine.map(v => v.y)) + 20;
      const g = d3.select(this);
      g.select("rect").attr("x", x0).attr("y", y0).attr("width", x1 - x0).attr("height", y1 - y0);
      g.select("text").attr("x", x0 + 6).attr("y", y0 + 14);
    });
    sim.nodes(vnodes);
    sim.force("owner").links(owners);
    sim.force("link").links(vlinks);
    sim.on("tick", () => {
      ownerAll.attr("x1", d => d.source.x).attr("y1", d => d.source.y).attr("x2", d => d.target.x).attr("y2", d => d.target.y);
      linkAll.attr("x1", d => d.source.x).attr("y1", d => d.source.y).attr("x2", d => d.target.x).attr("y2", d => d.target.y);
      all.attr("transform", d => "translate(" + d.x + "," + d.y + ")");
      frameClusters();
      for (const v of vnodes) pos.set(v.key, v);
    });
    for (const v of vnodes) pos.set(v.key, v);
    sim.alpha(Math.max(sim.alpha(), 0.3)).restart();
    if (firstDrawMs === null) {
      firstDrawMs = Math.round(performance.now() - started);
      svg.attr("transform", null);
      root.attr("transform", "translate(" + w / 2 + "," + h / 2 + ")");
    }
    const comps = nodes.size, servers = Array.from(nodes.values()).filter(n => n.server).length;
    document.getElementById("summary").textContent = comps + " components, " + links.size + " links, " + servers + " servers, frame " + frame;
    if (selected !== null) details(selected);
  }

  function click(v) {
    if (v.fold) { unfolded.add(v.fold); folded.delete(v.fold); draw(); return; }
    selected = v.comp.id;
    details(selected);
  }
  function esc(s) { return String(s).replace(/[&<>"]/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]); }
  function details(id) {
    const n = nodes.get(id), el = document.getElementById("details");
    if (!n) { el.innerHTML = "<p class='hint'>component " + id + " has ended</p>"; return; }
    const r = rates.get(id) || { msgs: 0 };
    let html = "<h3>" + esc(n.name) + "</h3><table>" +
      "<tr><th>state</th><td>" + esc(n.state) + (n.failed ? " (failed)" : "") + "</td></tr>" +
      "<tr><th>scheduler</th><td>" + (n.scheduler || 0) + "</td></tr>" +
      "<tr><th>parent</th><td>" + (n.parent && nodes.has(n.parent) ? esc(nodes.get(n.parent).name) : "—") + "</td></tr>" +
      "<tr><th>wake-ups</th><td>" + n.wakeups + "</td></tr><tr><th>messages sent</th><td>" + n.sent + "</td></tr>" +
      "<tr><th>messages/s</th><td>" + r.msgs.toFixed(1) + "</td></tr>" +
      "<tr><th>CPU</th><td>" + (n.cpu_ns / 1e6).toFixed(2) + " ms</td></tr></table>" +
      "<h4>boxes</h4><table><tr><th>box</th><th>kind</th><th>depth/limit</th><th>delivered</th><th>parked</th></tr>";
    for (const b of n.boxes || [])
      html += "<tr><td>" + esc(b.name) + "</td><td>" + b.kind + "</td><td>" + (b.kind === "inbox" ? b.depth + "/" + b.limit : "") +
        "</td><td>" + (b.delivered ?? "") + "</td><td>" + (b.parked ?? "") + "</td></tr>";
    html += "</table>";
    if (n.server) html += "<p><button id='fold'>" + (unfolded.has(id) ? "fold" : "unfold") + " its connections</button></p>";
    el.innerHTML = html;
    const b = document.getElementById("fold");
    if (b) b.onclick = () => {
      if (unfolded.has(id)) { unfolded.delete(id); folded.add(id); } else { unfolded.add(id); folded.delete(id); }
      draw();
    };
  }

  // ---- the stream ----------------------------------------------------------------------
  const status = document.getElementById("status");
  const es = new EventSource("/events");
  es.onopen = () => { status.textContent = "live"; };
  es.onerror = () => { status.textContent = "reconnecting…"; };
  es.addEventListener("hello", e => {
    const h = JSON.parse(e.data);
    for (const c of Object.values(charts)) { c.data.labels = []; c.data.datasets = []; }
    for (const s of h.history) addSample(s, false);
    for (const c of Object.values(charts)) c.update("none");
    load(h.graph);
    draw();
  });
  es.addEventListener("diff", e => { applyDiff(JSON.parse(e.data)); draw(); });
  es.addEventListener("stats", e => { addSample(JSON.parse(e.data), true); });
})();
