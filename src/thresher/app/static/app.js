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

// the image view of one sample; `nav` is the list it was opened from (previous/next keys)
function openImage(id, nav = null, split = "train") {
  if (nav) T.nav = nav;
  else T.nav = { from: currentTab(), ids: [id], pos: 0 };
  location.hash = `#image?split=${split}&id=${encodeURIComponent(id)}`;
}

function currentTab() {
  const name = hashParts().name;
  return name === "image" ? (T.nav?.from || "grid") : name;
}

// a thumbnail that opens the image view, stepping through `ids` with previous/next
function listThumb(id, caption, ids) {
  return thumb(id, caption, () => openImage(id, { from: currentTab(), ids, pos: ids.indexOf(id) }));
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
      ...g.ids.map((id) => listThumb(id, null, g.ids)))));
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
  const c = await api(`/api/cloud?tag=${encodeURIComponent(tag)}`);
  if (T.timings.cloudFetched == null) T.timings.cloudFetched = performance.now();
  cloud = {
    tag: c.tag, n: c.n, groups: c.groups, classes: c.classes,
    coords: b64(c.coords, Float32Array), group: b64(c.group, Uint8Array),
    label: b64(c.label, Int16Array),
    archetype: c.archetype ? b64(c.archetype, Int16Array) : null,
    archetypeNames: c.archetype_names, ids: c.ids,
    rep: c.representative ? b64(c.representative, Int32Array) : null,
  };
  const opt = document.querySelector('#cloud-colour option[value="archetype"]');
  opt.disabled = !cloud.archetype;
  opt.textContent = cloud.archetype ? "archetype" : "archetype (needs diagnostics)";
  if (!cloud.archetype && document.getElementById("cloud-colour").value === "archetype") {
    document.getElementById("cloud-colour").value = "group";
  }
  viewer().setSelection(null);
  drawCloud();
  status.textContent = `${cloud.n.toLocaleString()} points · drag to turn, wheel to zoom, double-click to reset`;
}

let cloudViewer = null;
function viewer() {
  cloudViewer ??= new PointCloud3D(document.getElementById("cloud-canvas"), {
    tooltip: document.getElementById("cloud-tip"),
    legend: document.getElementById("cloud-legend"),
    onPick: (row) => selectPoint(row).catch(showError),
    onRender: () => {
      if (T.timings.cloudFirstRender == null) {
        T.timings.cloudFirstRender = performance.now();  // ms since navigation started
        requestAnimationFrame(() => { T.timings.cloudFirstFrame = performance.now(); });
      }
      T.loaded.cloud = cloud.tag;
    },
  });
  T.cloudViewer = cloudViewer;
  return cloudViewer;
}

function drawCloud() {
  const by = document.getElementById("cloud-colour").value;
  const codes = by === "group" ? cloud.group : by === "label" ? cloud.label : cloud.archetype;
  const names = by === "group" ? cloud.groups : by === "label" ? cloud.classes : cloud.archetypeNames;
  const present = [...new Set(codes)].sort((a, b) => a - b);
  // one meaning per colour: groups and archetypes by name, a class by its index (a class keeps
  // its colour whichever classes are present)
  const categories = present.map((k, t) => {
    const name = k < 0 ? "none" : (names[k] ?? String(k));
    const colour = by === "group" ? COLOURS[name]
      : by === "archetype" ? (ARCHETYPE_COLOURS[name] ?? COLOURS.other)
      : PALETTE[(k < 0 ? t : k) % PALETTE.length];
    return { code: k, name, colour };
  });
  viewer().setData({
    coords: cloud.coords, n: cloud.n, codes, categories, rep: cloud.rep,
    text: (i) => `${cloud.ids[i]} · ${cloud.classes[cloud.label[i]] ?? "unlabelled"} · ${cloud.groups[cloud.group[i]]}`,
  });
  viewer().setLines(document.getElementById("cloud-lines").checked);
  if (T.timings.cloudTraces == null) T.timings.cloudTraces = performance.now();
}

let lastPick = { index: -1, at: 0 };
async function selectPoint(index) {
  const now = performance.now();
  if (index === lastPick.index && now - lastPick.at < 400) return;  // the same click, seen twice
  lastPick = { index, at: now };
  const panel = document.getElementById("point-panel");
  const p = await api(`/api/point?tag=${encodeURIComponent(cloud.tag)}&index=${index}`);
  const facts = [["id", p.id], ["label", p.class ?? "—"], ["prediction", p.prediction_class ?? "n/a"],
    ["reason", p.reason], ["score", p.score.toFixed(3)], ["outlier score", p.outlier_score.toFixed(3)]];
  const dl = el("dl", {}, ...facts.flatMap(([k, v]) => [el("dt", { text: k }),
    el("dd", { text: v, class: k === "reason" ? `reason-${v}` : "" })]));
  const open = el("button", { type: "button", id: "point-open", onclick: () => openImage(p.id, { from: "cloud", ids: [p.id], pos: 0 }) }, "open the image view");
  const parts = [el("img", { class: "big clickable", src: imageUrl(p.id), alt: p.id, id: "point-image",
    title: "open the image view", onclick: () => open.click() }), open, dl];
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

// the selected point as a black diamond, joined by lines to the kept image it duplicates and to
// each image removed as its duplicate
function showSelection(index, rep) {
  if (!cloud || !cloudViewer) return;
  const others = [];
  if (rep != null) others.push(rep);
  if (cloud.rep) for (let i = 0; i < cloud.n; i++) if (cloud.rep[i] === index) others.push(i);
  cloudViewer.setSelection(index, others);
  T.selection = { index, others };
}
T.selectPoint = selectPoint;

// --- removed grids ---
const removedState = { outlier: 0, label: 0, similar: 0, other: 0 };
const removedLists = {};

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
  const list = (removedLists[reason] ??= []);
  if (removedState[reason] === page.items.length) list.length = 0;  // a fresh first page
  for (const it of page.items) list.push(it.id);
  for (const it of page.items) {
    if (reason === "similar") {
      box.append(el("div", { class: "pair", title: `similarity ${it.score.toFixed(3)}` },
        listThumb(it.id, "removed", list), listThumb(it.representative_id, "kept", [it.representative_id]),
        el("span", { text: `similarity ${it.score.toFixed(2)}` })));
    } else {
      box.append(listThumb(it.id, `${it.class ?? ""} · score ${it.score.toFixed(2)}`, list));
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
  const apply = document.getElementById("export-apply-tags").checked;
  link.href = tag ? `/api/export?tag=${encodeURIComponent(tag)}&fmt=${fmt}${apply ? "" : "&apply_tags=false"}` : "#";
  const note = document.getElementById("export-curated");
  if (!tag) { note.textContent = ""; return; }
  api(`/api/curated?tag=${encodeURIComponent(tag)}`).then((c) => {
    note.textContent = apply
      ? `${c.count} images will be exported: the filter kept ${c.base_kept}; your tags removed ` +
        `${c.removed_by_tag} and put back ${c.kept_by_tag}.`
      : `${c.base_kept} images will be exported (your tags are not applied).`;
  }).catch(showError);
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
    ...ids.map((id, a) => id ? listThumb(id, ARCHETYPES[a] ?? String(a), ids.filter(Boolean))
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

// --- the sample grid ---------------------------------------------------------------------------
const PAGE = 100;
const grid = { offset: 0, total: 0, items: [], selected: new Set(), anchor: null, choicesFor: null };

function gridQuery() {
  const form = new FormData(document.getElementById("grid-form"));
  const q = new URLSearchParams();
  for (const [k, v] of form.entries()) if (v !== "") q.set(k, v);
  return q;
}

function fillSelect(select, values, { keepFirst = 1, label = (v) => v, value = (v) => v } = {}) {
  const old = select.value;
  const fixed = [...select.options].slice(0, keepFirst);
  select.replaceChildren(...fixed, ...values.map((v, i) => el("option", { value: String(value(v, i)), text: label(v, i) })));
  if ([...select.options].some((o) => o.value === old)) select.value = old;
}

views.grid = async (params) => {
  const tagSelect = document.getElementById("grid-tag");
  const f = await api("/api/filters");
  const old = tagSelect.value;
  tagSelect.replaceChildren(...f.filters.map((r) => el("option", { value: r.tag, text: r.tag })));
  if (!f.filters.length) tagSelect.append(el("option", { value: "", text: "(no filter result)" }));
  tagSelect.value = old && f.filters.some((r) => r.tag === old) ? old : (f.latest ?? tagSelect.value);
  if (params && params.get("offset")) grid.offset = Number(params.get("offset")) || 0;
  await loadGrid();
};

async function loadGrid() {
  const q = gridQuery();
  if (q.get("split") === "test") q.delete("tag");
  q.set("offset", grid.offset);
  q.set("limit", PAGE);
  const mine = (grid.request = (grid.request ?? 0) + 1);
  const page = await api(`/api/items?${q}`);
  if (mine !== grid.request) return;  // a newer query was sent meanwhile: its answer wins
  grid.total = page.total;
  grid.items = page.items;
  grid.query = q;
  const c = page.choices;
  fillSelect(document.getElementById("grid-class"), c.classes, { value: (v, i) => i });
  fillSelect(document.getElementById("grid-reason"), c.reasons);
  fillSelect(document.getElementById("grid-archetype"), c.archetypes);
  fillSelect(document.getElementById("grid-has-tag"), c.tags, { keepFirst: 2 });
  const first = page.total ? grid.offset + 1 : 0;
  document.getElementById("grid-status").textContent =
    `${first.toLocaleString()}–${(grid.offset + page.items.length).toLocaleString()} of ` +
    `${page.total.toLocaleString()} (${page.size.toLocaleString()} images in the split)`;
  document.getElementById("grid-prev").disabled = grid.offset === 0;
  document.getElementById("grid-next").disabled = grid.offset + PAGE >= page.total;
  renderGrid();
  T.loaded.grid = { total: page.total, offset: grid.offset, ids: page.items.map((i) => i.id) };
}

function tileCaption(it) {
  const lines = [];
  const pred = it.prediction_class != null && it.prediction_class !== it.class ? ` → ${it.prediction_class}` : "";
  if (it.objects_text != null) lines.push(el("span", { class: "line", text: it.objects_text || "no objects", title: "the classes of its boxes" }));
  else lines.push(el("span", { class: "line", text: `${it.class ?? "?"}${pred}`, title: "label → the model's prediction" }));
  if (it.reason) {
    const score = it.score == null ? "" : ` ${it.score.toFixed(2)}`;
    lines.push(el("span", { class: `line reason-${it.reason}`, text: `${it.reason}${score}`,
      title: "the filter's verdict and removal score (1 = removed first)" }));
  }
  if (it.archetype) lines.push(el("span", { class: `line arch-${it.archetype}`, text: it.archetype, title: "archetype (safe, border, rare, outlier)" }));
  if (it.is_label_issue) lines.push(el("span", { class: "line reason-label", text: "label issue" }));
  if (it.tags.length) lines.push(el("span", { class: "line chips" }, ...it.tags.map((t) => el("span", { class: `chip chip-${t}`, text: t }))));
  return lines;
}

function renderGrid() {
  const box = document.getElementById("grid-tiles");
  const split = grid.query.get("split") || "train";
  box.replaceChildren(...grid.items.map((it, k) => {
    const check = el("input", { type: "checkbox", class: "pick", title: "select for tagging", "aria-label": `select ${it.id}` });
    check.checked = grid.selected.has(it.id);
    check.disabled = split !== "train";
    check.addEventListener("click", (ev) => pickTile(it.id, k, ev.shiftKey, check.checked));
    const img = el("img", { class: "sample clickable", src: imageUrl(it.id, split), alt: it.id, title: it.id, loading: "lazy" });
    img.addEventListener("click", () => openImage(it.id, { from: "grid", query: grid.query.toString(), pos: grid.offset + k, total: grid.total }, split));
    return el("div", { class: "gtile" + (grid.selected.has(it.id) ? " selected" : ""), "data-id": it.id },
      el("div", { class: "gtop" }, check, el("span", { class: "gid", text: it.id })), img, ...tileCaption(it));
  }));
  updateSelection();
}

function pickTile(id, k, shift, on) {
  if (shift && grid.anchor != null) {
    const [a, b] = [Math.min(grid.anchor, k), Math.max(grid.anchor, k)];
    for (let i = a; i <= b; i++) { if (on) grid.selected.add(grid.items[i].id); else grid.selected.delete(grid.items[i].id); }
  } else if (on) grid.selected.add(id);
  else grid.selected.delete(id);
  grid.anchor = k;
  renderGrid();
}

function updateSelection() {
  const n = grid.selected.size;
  document.getElementById("grid-selected").textContent = n
    ? `${n} selected: tag them as` : "click a tile's box to select it (shift-click: a range)";
  for (const b of document.querySelectorAll("#grid-tagbar button[data-tag], #grid-tag-free")) b.disabled = n === 0;
}

async function tagIds(ids, add, remove = []) {
  const r = await api("/api/tags", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ ids, add, remove }) });
  T.loaded.tagged = r;
  return r;
}

function setupGrid() {
  const form = document.getElementById("grid-form");
  let timer = null;
  const reload = () => { grid.offset = 0; loadGrid().catch(showError); };
  form.addEventListener("change", reload);
  form.addEventListener("submit", (e) => { e.preventDefault(); reload(); });
  document.getElementById("grid-search").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(reload, 250); });
  document.getElementById("grid-prev").addEventListener("click", () => { grid.offset = Math.max(0, grid.offset - PAGE); loadGrid().catch(showError); });
  document.getElementById("grid-next").addEventListener("click", () => { grid.offset += PAGE; loadGrid().catch(showError); });
  for (const b of document.querySelectorAll("#grid-tagbar button[data-tag]")) {
    b.addEventListener("click", () => tagIds([...grid.selected], [b.dataset.tag]).then(() => { grid.selected.clear(); return loadGrid(); }).catch(showError));
  }
  document.getElementById("grid-tag-free").addEventListener("click", () => {
    const text = document.getElementById("grid-free-tag").value.trim();
    if (!text) return showError("type a tag first");
    tagIds([...grid.selected], [text]).then(() => { grid.selected.clear(); return loadGrid(); }).catch(showError);
  });
  document.getElementById("grid-select-page").addEventListener("click", () => { for (const it of grid.items) grid.selected.add(it.id); renderGrid(); });
  document.getElementById("grid-clear").addEventListener("click", () => { grid.selected.clear(); renderGrid(); });
}

// --- the image view: everything the run knows about one image ----------------------------------
let imageRequest = 0;
views.image = async (params) => {
  const id = params.get("id"), split = params.get("split") || "train";
  if (!id) throw new Error("no image chosen: open one from the Samples grid");
  const tag = T.nav?.query ? new URLSearchParams(T.nav.query).get("tag") : null;
  const mine = (imageRequest += 1);
  const p = await api(`/api/item?split=${split}&id=${encodeURIComponent(id)}${tag ? `&tag=${encodeURIComponent(tag)}` : ""}`);
  if (mine !== imageRequest) return;  // the user stepped on: show the newest
  renderImage(p);
  updateImageNav();
  T.loaded.image = p;
};

function pct(x) { return x == null ? "n/a" : `${(100 * x).toFixed(1)}%`; }

function renderImage(p) {
  const box = document.getElementById("image-body");
  const pics = [el("figure", {}, el("img", { class: "huge", src: imageUrl(p.id, p.split), alt: p.id, id: "image-main" }),
    el("figcaption", { text: "the image" }))];
  if (p.has_model) {
    const targets = [];
    if (p.label != null) targets.push([p.label, `relevance for its label (${p.class})`]);
    if (p.prediction != null && p.prediction !== p.label) targets.push([p.prediction, `relevance for the prediction (${p.prediction_class})`]);
    for (const [c, text] of targets) {
      const caption = el("figcaption", { text: `${text}: computing (LRP)…` });
      const img = el("img", { class: "huge relevance", alt: text,
        src: `/api/relevance?split=${p.split}&id=${encodeURIComponent(p.id)}&target=${c}` });
      img.addEventListener("load", () => { caption.textContent = `${text}: red for, blue against (LRP)`; });
      img.addEventListener("error", () => { caption.textContent = `${text}: could not be computed`; });
      pics.push(el("figure", {}, img, caption));
    }
  }
  const f = p.filter;
  const facts = [["id", p.id], ["split", p.split], ["label", p.class ?? "—"],
    ["prediction", p.prediction_class == null ? "n/a" : `${p.prediction_class} (confidence ${pct(p.confidence)})`]];
  if (f) {
    const why = f.reason === "kept" ? "kept" : f.reason === "outlier" ? `removed as an outlier (${f.outlier_method} score)`
      : f.reason === "similar" ? `removed as a near-duplicate${f.signal ? `, found by ${f.signal}` : ""}`
      : f.reason === "label" ? "removed as a likely label error" : `removed by ${f.baseline ?? f.reason}`;
    facts.push(["filter", `${why}`], ["filter result", `${f.tag} (layer ${f.layer})`],
      ["removal score", f.score.toFixed(3)], ["outlier score", f.outlier_score.toFixed(3)]);
  }
  if (p.objects) facts.push(["objects", p.objects.length
    ? `${p.objects.length} (${p.objects.map((o) => o.class).join(", ")})` : "none (background)"]);
  if (p.detections) facts.push(["detected (score ≥ 0.3)", p.detections.length
    ? p.detections.map((d) => `${d.class} ${d.score.toFixed(2)}`).join(", ") : "nothing"]);
  if (p.archetype) facts.push(["archetype", `${p.archetype} (${p.same_class_neighbours ?? "?"} of ${p.archetype_k ?? "k"} nearest neighbours share its class)`]);
  if (p.label_issue) {
    const li = p.label_issue;
    facts.push(["label check", `${li.is_label_issue ? "likely mislabelled" : "label looks right"} (score ${li.label_score.toFixed(3)}; suggested ${li.suggested_class ?? li.suggested_label})`]);
  }
  const dl = el("dl", { class: "facts" }, ...facts.flatMap(([k, v]) => [el("dt", { text: k }),
    el("dd", { text: v, class: k === "filter" && f ? `reason-${f.reason}` : "" })]));
  const chips = el("div", { class: "chips", id: "image-tags" }, ...p.tags.map((t) =>
    el("span", { class: `chip chip-${t}` }, t, el("button", { class: "x", title: `take off ${t}`, "aria-label": `take off ${t}`,
      onclick: () => tagIds([p.id], [], [t]).then(() => route()).catch(showError) }, "×"))));
  const tagging = p.split === "train" ? el("div", { class: "toolbar" }, el("b", { text: "tags" }), chips,
    ...["keep", "remove", "review"].map((t) => el("button", { type: "button", "data-tag": t, title: `tag as ${t} (key ${t[0] === "r" && t === "review" ? "v" : t[0]})`,
      onclick: () => tagIds([p.id], [t]).then(() => route()).catch(showError) }, t)),
    el("input", { id: "image-free-tag", placeholder: "your own tag", maxlength: "40" }),
    el("button", { type: "button", onclick: () => {
      const text = document.getElementById("image-free-tag").value.trim();
      if (text) tagIds([p.id], [text]).then(() => route()).catch(showError);
    } }, "tag")) : null;
  const parts = [el("div", { class: "image-top" }, el("div", { class: "pics" }, ...pics), el("div", {}, dl, tagging))];
  if (f && f.representative_id) {
    parts.push(el("h3", { text: "it duplicates this kept image" }), el("div", { class: "pairs" },
      el("div", { class: "pair" }, thumb(p.id, "this image"), listThumb(f.representative_id, f.representative_id, [f.representative_id]))));
  }
  if (f && f.duplicates.length) {
    parts.push(el("h3", { text: `removed as its near-duplicates (${f.duplicates_total})` }),
      el("div", { class: "grid", id: "image-duplicates" }, ...f.duplicates.map((d) => listThumb(d, d, f.duplicates))));
  }
  if (p.neighbours.length) {
    const ids = p.neighbours.map((nb) => nb.id);
    parts.push(el("h3", { text: "nearest neighbours (cosine similarity of the embeddings)" }),
      el("div", { class: "grid", id: "image-neighbours" }, ...p.neighbours.map((nb) =>
        listThumb(nb.id, `${nb.id} · ${nb.class ?? ""} · ${nb.reason}${nb.similarity == null ? "" : ` · ${nb.similarity.toFixed(3)}`}`, ids))));
  }
  box.replaceChildren(...parts);
}

function updateImageNav() {
  const nav = T.nav;
  const pos = document.getElementById("image-position");
  const total = nav ? (nav.ids ? nav.ids.length : nav.total) : 1;
  const at = nav ? nav.pos : 0;
  pos.textContent = nav ? `${(at + 1).toLocaleString()} of ${total.toLocaleString()} (${nav.from})` : "";
  document.getElementById("image-prev").disabled = !nav || at <= 0;
  document.getElementById("image-next").disabled = !nav || at >= total - 1;
}

async function stepImage(delta) {
  const nav = T.nav;
  if (!nav) return;
  const total = nav.ids ? nav.ids.length : nav.total;
  const pos = nav.pos + delta;
  if (pos < 0 || pos >= total) return;
  let id;
  const split = new URLSearchParams(hashParts().params).get("split") || "train";
  if (nav.ids) id = nav.ids[pos];
  else {
    const q = new URLSearchParams(nav.query);
    q.set("offset", pos); q.set("limit", 1);
    const page = await api(`/api/items?${q}`);
    if (!page.items.length) return;
    id = page.items[0].id;
  }
  nav.pos = pos;
  location.hash = `#image?split=${split}&id=${encodeURIComponent(id)}`;
}

function setupImageView() {
  document.getElementById("image-prev").addEventListener("click", () => stepImage(-1).catch(showError));
  document.getElementById("image-next").addEventListener("click", () => stepImage(1).catch(showError));
  document.getElementById("image-back").addEventListener("click", () => { location.hash = `#${T.nav?.from || "grid"}`; });
  document.addEventListener("keydown", (ev) => {
    if (ev.target.closest("input, select, textarea")) return;
    if (hashParts().name === "grid") {  // pages of the grid with the arrow keys
      const button = { ArrowRight: "grid-next", ArrowLeft: "grid-prev" }[ev.key];
      if (button && !document.getElementById(button).disabled) document.getElementById(button).click();
      return;
    }
    if (hashParts().name !== "image") return;
    const id = T.loaded.image?.id;
    if (ev.key === "ArrowLeft") stepImage(-1).catch(showError);
    else if (ev.key === "ArrowRight") stepImage(1).catch(showError);
    else if (ev.key === "Escape") location.hash = `#${T.nav?.from || "grid"}`;
    else if (id && T.loaded.image.split === "train" && { k: 1, x: 1, v: 1 }[ev.key]) {
      const tag = { k: "keep", x: "remove", v: "review" }[ev.key];
      tagIds([id], [tag]).then(() => route()).catch(showError);
    }
  });
}

// --- diagnostics and reduction, drawn as the report draws them ---------------------------------
async function sectionsView(area) {
  const box = document.getElementById(`sections-${area}`);
  let answer;
  try { answer = await api(`/api/sections?area=${area}`); } catch (err) { answer = { sections: [], error: err }; }
  const parts = [];
  if (answer.error) parts.push(el("p", { class: "error", text: String(answer.error.message || answer.error) }));
  for (const sec of answer.sections) {
    const head = el("h2", { text: sec.heading }, sec.paper ? el("small", { class: "muted", text: ` (${sec.paper})` }) : null);
    const body = [head];
    if (sec.missing) {
      body.push(el("p", { class: "muted", text: `Not computed: run thresher diagnose RUN --only ${sec.missing}` }));
    } else {
      if (sec.note) body.push(el("p", { class: "note", text: sec.note }));
      sec.figures.forEach((alt, i) => body.push(el("img", { class: "figure", alt,
        src: `/api/sections/figure?area=${area}&section=${encodeURIComponent(sec.id)}&index=${i}` })));
      const tables = sec.tables.map((t) => el("div", { class: "table-box" }, el("h4", { text: t.caption }),
        el("div", { class: "scroll" }, table(t.rows[0], t.rows.slice(1)))));
      if (tables.length) body.push(el("div", { class: "cols" }, ...tables));
    }
    parts.push(el("section", { class: "report-section", id: `sec-${area}-${sec.id}` }, ...body));
  }
  box.replaceChildren(...parts);
  // the raw files stay one click away; open when there is nothing else to show
  document.getElementById(`files-${area}-box`).open = !answer.sections.length;
  await areaView(area);
  T.loaded[`${area}Sections`] = answer.sections.map((s) => s.id);
}
views.diagnose = () => sectionsView("diagnose");
views.reduce = () => sectionsView("reduce");

// --- routing -----------------------------------------------------------------------------------
function hashParts() {
  const raw = (location.hash || "#overview").slice(1);
  const [name, query] = raw.split("?", 2);
  return { name, params: new URLSearchParams(query || "") };
}

async function route() {
  const { name, params } = hashParts();
  const view = views[name] ? name : "overview";
  for (const s of document.querySelectorAll(".view")) s.hidden = s.id !== `view-${view}`;
  const tab = view === "image" ? (T.nav?.from || "grid") : view;
  for (const a of document.querySelectorAll("#tabs a")) a.classList.toggle("active", a.dataset.view === tab);
  showError(null);
  try { await views[view](params); } catch (err) { showError(err); }
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
  document.getElementById("export-apply-tags").addEventListener("change", updateExportLink);
  setupGrid();
  setupImageView();
  document.getElementById("cloud-lines").addEventListener("change", (e) => cloudViewer && cloudViewer.setLines(e.target.checked));
  route();
});
