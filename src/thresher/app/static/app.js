// Thresher's front end: plain JS, no build step. Text from the run is always set with
// textContent (never innerHTML), so ids and class names cannot inject markup.
"use strict";

const COLOURS = { kept: "#2ca02c", outlier: "#d62728", similar: "#1f77b4", other: "#7f7f7f" };
// one meaning per colour in every mode: green = fine (kept, safe), red = outlier (removed as
// one, or the archetype), grey = nothing to say
const ARCHETYPE_COLOURS = { safe: "#2ca02c", border: "#ff7f0e", rare: "#9467bd", outlier: "#d62728", none: "#7f7f7f" };
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
  "#7f7f7f", "#bcbd22", "#17becf"];
const T = (window.thresher = { timings: {}, loaded: {} });  // state + test hooks

// plotly.js (4.8 MB) is fetched and parsed only when a view draws a plot (the cloud), once,
// in parallel with that view's data: the other views never pay for it
let plotlyPromise = null;
function plotlyReady() {
  plotlyPromise ??= new Promise((resolve, reject) => {
    const s = document.createElement("script");
    s.src = "/vendor/plotly.min.js";
    s.onload = () => { T.timings.plotlyLoaded = performance.now(); resolve(); };
    s.onerror = () => reject(new Error("could not load /vendor/plotly.min.js (is plotly installed?)"));
    document.head.append(s);
  });
  return plotlyPromise;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c != null) node.append(c);
  return node;
}

async function api(path, options) {
  const resp = await fetch(path, options);
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(body.error || `${resp.status} ${resp.statusText}`);
  return body;
}

function showError(err) {
  const box = document.getElementById("error");
  box.textContent = err ? String(err.message || err) : "";
  box.hidden = !err;
}

function imageUrl(id, split = "train") {
  return `/api/image?split=${split}&id=${encodeURIComponent(id)}`;
}

function thumb(id, caption, onclick) {
  const img = el("img", { class: "sample", src: imageUrl(id), alt: id, title: id, loading: "lazy" });
  if (onclick) {  // only a thumbnail that does something looks clickable
    img.classList.add("clickable");
    img.addEventListener("click", onclick);
  }
  return el("div", { class: "tile" }, img, caption ? el("span", { text: caption }) : null);
}

function b64(data, Type) {
  const bin = atob(data);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Type(bytes.buffer);
}

function table(header, rows) {
  return el("table", {},
    el("thead", {}, el("tr", {}, ...header.map((h) => el("th", { text: h })))),
    el("tbody", {}, ...rows.map((r) => el("tr", {}, ...r.map((c) => el("td", { text: c == null ? "" : String(c) }))))));
}

// --- views -------------------------------------------------------------------------------------
const views = {};

views.overview = async () => {
  const o = await api("/api/overview");
  document.getElementById("run-name").textContent = o.run;
  const tr = o.splits.train, te = o.splits.test;
  const cards = document.getElementById("overview-summary");
  cards.replaceChildren(
    el("div", { class: "card" }, el("b", { text: o.data.name ? o.data.name.split("/").pop() : "?" }), "data set"),
    el("div", { class: "card" }, el("b", { text: o.model.name || "?" }), "model"),
    el("div", { class: "card" }, el("b", { text: tr.size ?? "?" }), "train images"),
    el("div", { class: "card" }, el("b", { text: te.size ?? "?" }), "test images"),
    el("div", { class: "card" }, el("b", { text: tr.imbalance_ratio == null ? "n/a" : tr.imbalance_ratio.toFixed(2) }), "imbalance (max/min)"),
    el("div", { class: "card" }, el("b", { text: o.test_accuracy == null ? "n/a" : (100 * o.test_accuracy).toFixed(2) + "%" }), "test accuracy"),
    el("div", { class: "card" }, el("b", { text: o.filters }), "filter results"),
    el("div", { class: "card" }, el("b", { text: o.steps.join(", ") || "none" }), "steps done"));
  const rows = o.classes.map((c) => [c, tr.counts?.[c] ?? "", te.counts?.[c] ?? ""]);
  rows.push(["total", tr.size ?? tr.error, te.size ?? te.error]);
  document.getElementById("overview-counts").replaceChildren(table(["class", "train", "test"], rows));
  const s = await api("/api/samples?split=train&per_class=10");
  document.getElementById("overview-samples").replaceChildren(...s.groups.map((g) =>
    el("div", { class: "class-row" }, el("span", { class: "name", text: g.class }),
      ...g.ids.map((id) => thumb(id)))));
  T.loaded.overview = true;
};

async function fillTagSelect(select, { keep = true } = {}) {
  const f = await api("/api/filters");
  const old = select.value;
  select.replaceChildren(...f.filters.map((r) =>
    el("option", { value: r.tag, text: `${r.tag} (kept ${r.counts.kept ?? "?"}/${r.counts.total ?? "?"})` })));
  if (keep && old && f.filters.some((r) => r.tag === old)) select.value = old;
  else if (f.latest) select.value = f.latest;
  return f;
}

// --- point cloud ---
let cloud = null;  // decoded payload of the current filter

views.cloud = async () => {
  const select = document.getElementById("cloud-tag");
  const f = await fillTagSelect(select);
  if (!f.filters.length) {
    document.getElementById("cloud-status").textContent = "no filter result yet: run one in Filter & export";
    return;
  }
  await loadCloud(select.value);
};

async function loadCloud(tag) {
  if (T.timings.cloudRequested == null) T.timings.cloudRequested = performance.now();
  const status = document.getElementById("cloud-status");
  status.textContent = "loading…";
  const plotly = plotlyReady();  // starts the download beside the data request
  const c = await api(`/api/cloud?tag=${encodeURIComponent(tag)}`);
  if (T.timings.cloudFetched == null) T.timings.cloudFetched = performance.now();
  await plotly;
  cloud = {
    tag: c.tag, n: c.n, groups: c.groups, classes: c.classes,
    coords: b64(c.coords, Float32Array), group: b64(c.group, Uint8Array),
    label: b64(c.label, Int16Array),
    archetype: c.archetype ? b64(c.archetype, Int16Array) : null,
    archetypeNames: c.archetype_names, ids: c.ids,
  };
  const opt = document.querySelector('#cloud-colour option[value="archetype"]');
  opt.disabled = !cloud.archetype;
  opt.textContent = cloud.archetype ? "archetype" : "archetype (needs diagnostics)";
  if (!cloud.archetype && document.getElementById("cloud-colour").value === "archetype") {
    document.getElementById("cloud-colour").value = "group";
  }
  drawCloud();
  status.textContent = `${cloud.n.toLocaleString()} points`;
}

function drawCloud() {
  const by = document.getElementById("cloud-colour").value;
  const codes = by === "group" ? cloud.group : by === "label" ? cloud.label : cloud.archetype;
  const names = by === "group" ? cloud.groups : by === "label" ? cloud.classes : cloud.archetypeNames;
  // one trace per category: typed index lists, so a click maps back to the sample row
  const buckets = new Map();
  for (let i = 0; i < cloud.n; i++) {
    const k = codes[i];
    if (!buckets.has(k)) buckets.set(k, []);
    buckets.get(k).push(i);
  }
  const keys = [...buckets.keys()].sort((a, b) => a - b);
  cloud.traceRows = [];
  const traces = keys.map((k, t) => {
    const rows = Int32Array.from(buckets.get(k));
    cloud.traceRows.push(rows);
    const x = new Float32Array(rows.length), y = new Float32Array(rows.length), z = new Float32Array(rows.length);
    rows.forEach((r, j) => { x[j] = cloud.coords[3 * r]; y[j] = cloud.coords[3 * r + 1]; z[j] = cloud.coords[3 * r + 2]; });
    const name = k < 0 ? "none" : (names[k] ?? String(k));
    // a class keeps its colour whichever classes are present (indexed by class, not by trace)
    const colour = by === "group" ? COLOURS[name]
      : by === "archetype" ? (ARCHETYPE_COLOURS[name] ?? COLOURS.other)
      : PALETTE[(k < 0 ? t : k) % PALETTE.length];
    // hover names the image and its class, then the group it is drawn in
    const text = Array.from(rows, (r) => `${cloud.ids[r]} · ${cloud.classes[cloud.label[r]] ?? "unlabelled"}`);
    return { type: "scatter3d", mode: "markers", name: `${name} (${rows.length})`, x, y, z, text,
      hovertemplate: "%{text}<extra>" + name + "</extra>",
      // squares: plotly draws each marker as a glyph mesh, and a square's is 2.5x cheaper
      marker: { size: cloud.n > 20000 ? 1.5 : 3, color: colour, symbol: "square" } };
  });
  if (T.timings.cloudTraces == null) T.timings.cloudTraces = performance.now();
  const gd = document.getElementById("cloud-plot");
  const layout = { margin: { l: 0, r: 0, t: 0, b: 0 }, legend: { itemsizing: "constant" },
    scene: { xaxis: { title: "" }, yaxis: { title: "" }, zaxis: { title: "" } }, uirevision: cloud.tag };
  let first = true;
  const done = Plotly.react(gd, traces, layout, { responsive: true, displaylogo: false });
  gd.once("plotly_afterplot", mark);  // Plotly.react set up the div's events synchronously
  Promise.resolve(done).then(mark);
  if (!gd._thresherBound) {
    gd._thresherBound = true;
    gd.on("plotly_click", (ev) => {
      const p = ev.points && ev.points[0];
      if (!p || p.curveNumber >= cloud.traceRows.length) return;  // the selection marker itself
      selectPoint(cloud.traceRows[p.curveNumber][p.pointNumber]).catch(showError);
    });
  }
  function mark() {
    if (!first) return;
    first = false;
    if (T.timings.cloudFirstRender == null) {
      T.timings.cloudFirstRender = performance.now();  // ms since navigation started
      requestAnimationFrame(() => { T.timings.cloudFirstFrame = performance.now(); });
    }
    T.loaded.cloud = cloud.tag;
  }
}

async function selectPoint(index) {
  const panel = document.getElementById("point-panel");
  const p = await api(`/api/point?tag=${encodeURIComponent(cloud.tag)}&index=${index}`);
  const facts = [["id", p.id], ["label", p.class ?? "—"], ["prediction", p.prediction_class ?? "n/a"],
    ["reason", p.reason], ["score", p.score.toFixed(3)], ["outlier score", p.outlier_score.toFixed(3)]];
  const dl = el("dl", {}, ...facts.flatMap(([k, v]) => [el("dt", { text: k }),
    el("dd", { text: v, class: k === "reason" ? `reason-${v}` : "" })]));
  const parts = [el("img", { class: "big", src: imageUrl(p.id), alt: p.id, id: "point-image" }), dl];
  if (p.label_issue) {
    const li = p.label_issue;
    parts.push(el("h3", { text: "label check (cross-validated, cleanlab)" }),
      el("p", { id: "label-issue", class: li.is_label_issue ? "reason-label" : "",
        text: `${li.is_label_issue ? "likely mislabelled" : "label looks right"}; ` +
          `label score ${li.label_score.toFixed(3)}; suggested: ${li.suggested_class ?? li.suggested_label}` }));
  }
  if (p.representative_id) {
    parts.push(el("h3", { text: `duplicates this kept image${p.signal ? ` (found by ${p.signal})` : ""}` }),
      thumb(p.representative_id, p.representative_id, () => selectPoint(p.representative_index)));
  }
  if (p.duplicates.length) {
    parts.push(el("h3", { text: "removed as its near-duplicates" }),
      el("div", { class: "grid" }, ...p.duplicates.map((d) => thumb(d, d))));
  }
  parts.push(el("h3", { text: "nearest neighbours" }), el("div", { class: "grid", id: "neighbours" },
    ...p.neighbours.map((nb) => thumb(nb.id, `${nb.class ?? ""} ${nb.reason}`, () => selectPoint(nb.index)))));
  panel.replaceChildren(...parts);
  showSelection(index, p.representative_index);
  T.loaded.point = p;
}

// the selected point as a black diamond, joined by a line to the kept image it duplicates
function showSelection(index, rep) {
  const gd = document.getElementById("cloud-plot");
  if (!cloud || !window.Plotly || !gd.data) return;
  const at = (i) => [cloud.coords[3 * i], cloud.coords[3 * i + 1], cloud.coords[3 * i + 2]];
  const pts = rep == null ? [at(index)] : [at(index), at(rep)];
  const trace = { type: "scatter3d", mode: rep == null ? "markers" : "lines+markers", name: "selected",
    x: pts.map((q) => q[0]), y: pts.map((q) => q[1]), z: pts.map((q) => q[2]),
    showlegend: false, hoverinfo: "skip",
    marker: { size: 7, color: "#000", symbol: "diamond" }, line: { color: "#000", width: 4 } };
  const n = cloud.traceRows.length;
  if (gd.data.length > n) Plotly.deleteTraces(gd, n);
  Plotly.addTraces(gd, trace);
}
T.selectPoint = selectPoint;

// --- removed grids ---
const removedState = { outlier: 0, label: 0, similar: 0, other: 0 };

views.removed = async () => {
  const select = document.getElementById("removed-tag");
  const f = await fillTagSelect(select);
  if (!f.filters.length) {
    document.getElementById("removed-status").textContent = "no filter result yet";
    return;
  }
  for (const r of Object.keys(removedState)) {
    removedState[r] = 0;
    document.getElementById(`removed-${r}`).replaceChildren();
    await loadRemoved(r);
  }
  T.loaded.removed = select.value;
};

async function loadRemoved(reason) {
  const tag = document.getElementById("removed-tag").value;
  const page = await api(`/api/removed?tag=${encodeURIComponent(tag)}&reason=${reason}&offset=${removedState[reason]}&limit=60`);
  removedState[reason] += page.items.length;
  document.getElementById(`count-${reason}`).textContent = `(${page.total})`;
  const box = document.getElementById(`removed-${reason}`);
  for (const it of page.items) {
    if (reason === "similar") {
      box.append(el("div", { class: "pair", title: `similarity ${it.score.toFixed(3)}` },
        thumb(it.id, "removed"), thumb(it.representative_id, "kept"),
        el("span", { text: it.score.toFixed(2) })));
    } else {
      box.append(thumb(it.id, `${it.class ?? ""} ${it.score.toFixed(2)}`));
    }
  }
  document.getElementById(`more-${reason}`).hidden = removedState[reason] >= page.total;
}

// --- filter, compare, export ---
views.filter = async () => {
  const f = await api("/api/filters");
  for (const id of ["compare-a", "compare-b", "export-tag"]) await fillTagSelect(document.getElementById(id));
  const a = document.getElementById("compare-a");
  if (f.filters.length > 1) a.value = f.filters[1].tag;
  updateExportLink();
  api("/api/layers").then((l) => {
    const sel = document.getElementById("filter-layer");
    sel.replaceChildren(el("option", { value: "", text: `(default: ${l.default})` }),
      ...l.layers.map((la) => el("option", { value: la.name, text: `${la.name} (${la.type}, ${la.features})` })));
  }).catch(showError);
  T.loaded.filter = true;
};

function updateExportLink() {
  const tag = document.getElementById("export-tag").value;
  const fmt = document.getElementById("export-fmt").value;
  const link = document.getElementById("export-link");
  link.href = tag ? `/api/export?tag=${encodeURIComponent(tag)}&fmt=${fmt}` : "#";
}

async function runFilter(ev) {
  ev.preventDefault();
  const form = new FormData(ev.target);
  const body = {
    outliers: Number(form.get("outliers")), similar: Number(form.get("similar")),
    per_class: form.get("per_class") === "" ? null : form.get("per_class") === "on",
    outlier_score: form.get("outlier_score"), preset: form.get("preset"),
    label_issues: Number(form.get("label_issues") || 0),
    seed: Number(form.get("seed")), layer: form.get("layer") || null,
  };
  const job = await api("/api/filter", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const box = document.getElementById("job"), text = document.getElementById("job-text");
  const bar = document.getElementById("job-bar");
  box.hidden = false;
  bar.removeAttribute("value");
  document.getElementById("filter-run").disabled = true;
  let st = job;
  while (st.status === "running") {
    text.textContent = `${st.phase}… ${st.elapsed_s.toFixed(1)} s`;
    await new Promise((r) => setTimeout(r, 400));
    st = await api(`/api/jobs/${st.id}`);
  }
  document.getElementById("filter-run").disabled = false;
  bar.value = 1; bar.max = 1;
  if (st.status === "error") { text.textContent = `failed: ${st.error}`; T.loaded.job = st; return; }
  text.textContent = `done in ${st.elapsed_s.toFixed(1)} s: kept ${st.counts.kept}/${st.counts.total}, ` +
    `${st.counts.outlier} outliers, ${st.counts.similar} near-duplicates (${st.tag})`;
  await views.filter();
  document.getElementById("export-tag").value = st.tag;  // export what was just made
  updateExportLink();
  if (st.previous_tag && st.previous_tag !== st.tag) {
    document.getElementById("compare-a").value = st.previous_tag;
    document.getElementById("compare-b").value = st.tag;
    await compare();
  }
  T.loaded.job = st;
}

async function compare() {
  const a = document.getElementById("compare-a").value, b = document.getElementById("compare-b").value;
  const c = await api(`/api/compare?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`);
  const keys = ["total", "kept", "outlier", "similar", "other"];
  document.getElementById("compare-out").replaceChildren(
    table(["", ...keys], [["A " + c.a.tag, ...keys.map((k) => c.a.counts[k])],
      ["B " + c.b.tag, ...keys.map((k) => c.b.counts[k])]]),
    el("p", { id: "compare-summary", text: `removed by both: ${c.removed_both}, only A: ${c.removed_only_a}, ` +
      `only B: ${c.removed_only_b}; Jaccard index of the removed sets: ${c.jaccard_removed.toFixed(3)}` }));
  T.loaded.compare = c;
}

// --- diagnostics / reduction (whatever files the run holds) ---
async function areaView(area) {
  const box = document.getElementById(`area-${area}`);
  const listing = await api(`/api/area?area=${area}`);
  if (!listing.files.length) {
    box.replaceChildren(el("p", { class: "muted", text: area === "diagnose"
      ? "This run has no diagnostics yet (RUN/diagnose is empty or missing)."
      : "This run has no reduction results yet (RUN/reduce is empty or missing)." }));
    T.loaded[area] = 0;
    return;
  }
  const items = [];
  for (const f of listing.files) {
    const q = `area=${area}&name=${encodeURIComponent(f.name)}`;
    const item = el("div", { class: "area-item" }, el("h3", { text: f.name }));
    if (f.kind === "png") item.append(el("img", { src: `/api/area/file?${q}`, alt: f.name }));
    else {
      const t = await api(`/api/area/table?${q}`);
      if (t.kind === "json" && Array.isArray(t.data?.result?.prototype_ids)) {
        item.append(renderPrototypes(t.data.result), renderJson(t.data));
      } else if (t.kind === "json") item.append(renderJson(t.data));
      else {
        item.append(el("div", { class: "scroll" }, table(t.columns, t.rows.map((r) => t.columns.map((c) => fmt(r[c]))))));
        if (t.total_rows > t.rows.length) item.append(el("p", { class: "muted", text: `first ${t.rows.length} of ${t.total_rows} rows` }));
      }
    }
    items.push(item);
  }
  box.replaceChildren(...items);
  T.loaded[area] = listing.files.length;
}
views.diagnose = () => areaView("diagnose");
views.reduce = () => areaView("reduce");

function fmt(v) {
  if (typeof v === "number") return Number.isInteger(v) ? v : v.toFixed(4);
  if (v && typeof v === "object") return JSON.stringify(v);
  return v;
}

const ARCHETYPES = ["safe", "border", "rare", "outlier"];

function renderPrototypes(result) {
  // one row per class, one image per archetype: the prototype sample of that group
  const classes = result.classes || [];
  const rows = result.prototype_ids.map((ids, c) => el("div", { class: "class-row" },
    el("span", { class: "name", text: classes[c] ?? String(c) }),
    ...ids.map((id, a) => id ? thumb(id, ARCHETYPES[a] ?? String(a))
      : el("div", { class: "tile" }, el("span", { text: `${ARCHETYPES[a] ?? a}: none` })))));
  return el("div", { class: "prototypes" }, el("h4", { text: "prototypes per class and archetype" }), ...rows);
}

function renderJson(data) {
  // a list of flat records reads best as a table; anything else as indented JSON
  if (Array.isArray(data) && data.length && data.every((r) => r && typeof r === "object" && !Array.isArray(r))) {
    const cols = [...new Set(data.flatMap((r) => Object.keys(r)))];
    return el("div", { class: "scroll" }, table(cols, data.slice(0, 200).map((r) => cols.map((c) => fmt(r[c])))));
  }
  return el("pre", { text: JSON.stringify(data, null, 2).slice(0, 20000) });
}

// --- routing -----------------------------------------------------------------------------------
async function route() {
  const name = (location.hash || "#overview").slice(1);
  const view = views[name] ? name : "overview";
  for (const s of document.querySelectorAll(".view")) s.hidden = s.id !== `view-${view}`;
  for (const a of document.querySelectorAll("#tabs a")) a.classList.toggle("active", a.dataset.view === view);
  showError(null);
  try { await views[view](); } catch (err) { showError(err); }
}

window.addEventListener("hashchange", route);
document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("cloud-tag").addEventListener("change", (e) => loadCloud(e.target.value).catch(showError));
  document.getElementById("cloud-colour").addEventListener("change", () => cloud && drawCloud());
  document.getElementById("removed-tag").addEventListener("change", () => views.removed().catch(showError));
  for (const r of Object.keys(removedState)) {
    document.getElementById(`more-${r}`).addEventListener("click", () => loadRemoved(r).catch(showError));
  }
  document.getElementById("filter-form").addEventListener("submit", (e) => runFilter(e).catch((err) => {
    document.getElementById("filter-run").disabled = false; showError(err);
  }));
  document.getElementById("compare-run").addEventListener("click", () => compare().catch(showError));
  document.getElementById("export-tag").addEventListener("change", updateExportLink);
  document.getElementById("export-fmt").addEventListener("change", updateExportLink);
  route();
});
