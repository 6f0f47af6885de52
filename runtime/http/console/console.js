// tailor console: five pages over the public HTTP API. No build step, no libraries.
"use strict";

const KEY = "tailor.console.key"; // session storage: this tab only, gone when it closes
const LINT_DELAY_MS = 300;
const state = { page: "overview", rules: null, ruleset: null, sort: { key: "slot", dir: 1 }, scratch: null };

// --- helpers ---

class ApiError extends Error {
  constructor(status, message, errors) {
    super(message);
    this.status = status;
    this.errors = errors || [];
  }
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name === "html") node.innerHTML = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function percent(value, digits = 1) {
  return value === null || value === undefined ? "–" : `${(value * 100).toFixed(digits)}%`;
}

function number(value, digits = 3) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
}

async function api(path, options = {}) {
  const headers = {};
  const key = sessionStorage.getItem(KEY);
  if (key) headers.authorization = `Bearer ${key}`;
  if (options.body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(path, {
    method: options.method || (options.body !== undefined ? "POST" : "GET"),
    headers,
    body: options.body !== undefined ? JSON.stringify(options.body) : undefined,
  });
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json() : await response.text();
  if (response.status === 401) {
    askForKey(key ? "That key was refused." : "");
    throw new ApiError(401, "the API key is required");
  }
  if (!response.ok) throw new ApiError(response.status, (data && data.detail) || String(data), data && data.errors);
  return data;
}

function showError(error) {
  const box = document.getElementById("page-error");
  if (error && error.status === 401) return;
  box.textContent = error ? `${error.message}` : "";
  box.hidden = !error;
}

// --- the rules language, highlighted ---

const KEYWORDS = new Set(
  ("rule when then show in priority cap per and or not default segment experiment arms seed model content " +
    "holdout test given expect ruleset is missing present true false share phase from file inputs").split(" "),
);
const TOKEN = /(#[^\n]*)|("(?:[^"\\\n]|\\.)*"?)|(\b\d+(?:\.\d+)?(?:ms|s|m|h|d|w|%)?\b)|([A-Za-z_][A-Za-z0-9_.]*)|(\s+|.)/g;

function highlight(text) {
  let html = "";
  for (const match of text.matchAll(TOKEN)) {
    const [token, comment, string, num, word] = match;
    const safe = escapeHtml(token);
    if (comment) html += `<span class="tok-com">${safe}</span>`;
    else if (string) html += `<span class="tok-str">${safe}</span>`;
    else if (num) html += `<span class="tok-num">${safe}</span>`;
    else if (word && KEYWORDS.has(word)) html += `<span class="tok-kw">${safe}</span>`;
    else html += safe;
  }
  return html;
}

// The rule's text with each predicate the decision judged marked true, false, unknown or unread.
function drawTrace(source, predicates) {
  const ranges = [];
  const unplaced = [];
  for (const p of predicates) {
    const at = source.indexOf(p.text);
    if (at >= 0 && !ranges.some((r) => at < r.end && at + p.text.length > r.start)) {
      ranges.push({ start: at, end: at + p.text.length, p });
    } else {
      unplaced.push(p);
    }
  }
  ranges.sort((a, b) => a.start - b.start);
  let html = "";
  let at = 0;
  for (const r of ranges) {
    html += highlight(source.slice(at, r.start));
    html +=
      `<mark class="truth-${r.p.truth}" title="${escapeHtml(r.p.truth)}: ${escapeHtml(r.p.shown)}">` +
      `${highlight(source.slice(r.start, r.end))}</mark><span class="value">(${escapeHtml(r.p.shown)})</span>`;
    at = r.end;
  }
  html += highlight(source.slice(at));
  return { html, unplaced };
}

// --- authentication ---

function askForKey(message) {
  const form = document.getElementById("key-form");
  form.hidden = false;
  document.getElementById("main").hidden = true;
  document.getElementById("key-message").textContent = message || "";
  document.getElementById("key-input").focus();
}

function setupKey() {
  const form = document.getElementById("key-form");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = document.getElementById("key-input").value.trim();
    if (!value) return;
    sessionStorage.setItem(KEY, value);
    document.getElementById("key-input").value = "";
    form.hidden = true;
    document.getElementById("main").hidden = false;
    document.getElementById("forget-key").hidden = false;
    show(state.page);
  });
  const forget = document.getElementById("forget-key");
  forget.hidden = !sessionStorage.getItem(KEY);
  forget.addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    location.reload();
  });
}

// --- navigation ---

const PAGES = {
  overview: loadOverview,
  rules: loadRules,
  try: loadTry,
  playground: loadPlayground,
  experiments: loadExperiments,
};

async function show(page) {
  if (!(page in PAGES)) page = "overview";
  state.page = page;
  delete document.body.dataset.loaded;
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.page === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  for (const section of document.querySelectorAll(".page")) section.hidden = section.id !== `page-${page}`;
  showError(null);
  try {
    state.ruleset = await api("/v1/ruleset");
    document.getElementById("ruleset-title").textContent = `${state.ruleset.name} ${state.ruleset.version}`;
    await PAGES[page]();
    document.body.dataset.loaded = page;
  } catch (error) {
    showError(error);
  }
}

// --- 1. overview ---

async function loadOverview() {
  const status = state.ruleset;
  const [ready, metrics, models] = await Promise.all([
    fetch("/readyz").then((r) => r.json()),
    fetch("/metrics").then((r) => r.text()),
    api("/v1/models").catch((e) => ({ error: e.message, models: [] })),
  ]);
  const parsed = parseMetrics(metrics);
  const card = document.getElementById("overview-ruleset");
  card.replaceChildren(
    el("h3", { text: "Served ruleset" }),
    el("p", {}, el("strong", { text: status.name }), ` version ${status.version}`),
    el("p", { class: "muted" }, `loaded ${new Date(status.loaded_at).toLocaleString()} · ${status.rules.length} rules in `,
      `${status.files.length} files (${status.files.join(", ")})`),
  );
  const degraded = parsed.degraded;
  const totalDecisions = parsed.decisions;
  const health = document.getElementById("overview-health");
  health.replaceChildren(
    el("h3", { text: "Health" }),
    el("p", {}, "Store and ruleset: ", el("span", { class: ready.status === "ready" ? "ok" : "error", text: ready.status || ready.detail })),
    el("p", {}, "Models: ", ...(models.models || []).map((m) => el("span", { class: `badge ${bandClass(m.band)}`, text: `${m.name}: drift ${m.band}` })),
      models.error ? el("span", { class: "error", text: models.error }) : null,
      (models.models || []).length === 0 && !models.error ? "none declared" : null),
    el("p", {}, `Decisions timed: ${totalDecisions}. Degraded: `,
      Object.keys(degraded).length ? Object.entries(degraded).map(([reason, n]) => `${reason} ${n}`).join(", ") : "none"),
  );
  const errorCard = document.getElementById("overview-error");
  errorCard.replaceChildren(el("h3", { text: "Last reload" }));
  if (!status.last_error) {
    errorCard.append(el("p", { class: "ok", text: "The newest edit compiled: no reload error." }));
  } else {
    errorCard.append(el("p", { class: "error", text: "The newest edit did not compile; the last good version keeps serving." }));
    for (const diagnostic of status.last_error) errorCard.append(el("pre", { class: "diagnostics", text: await excerpt(diagnostic) }));
  }
  const history = document.getElementById("overview-history");
  const rollback = el("button", { type: "button", id: "rollback", disabled: status.previous.length === 0, text: "Roll back to the previous version" });
  const message = el("p", { id: "rollback-message", role: "status" });
  rollback.addEventListener("click", async () => {
    try {
      const after = await api("/v1/ruleset/rollback", { method: "POST" });
      message.textContent = `Now serving ${after.version}.`;
      message.className = "ok";
      state.ruleset = after;
      document.getElementById("ruleset-title").textContent = `${after.name} ${after.version}`;
    } catch (error) {
      message.textContent = `Rollback refused: ${error.message}`;
      message.className = "error";
    }
  });
  history.replaceChildren(
    el("h3", { text: "Reload history" }),
    el("table", {},
      el("thead", {}, el("tr", {}, el("th", { text: "Version" }), el("th", { text: "Loaded" }), el("th", { text: "" }))),
      el("tbody", {},
        el("tr", {}, el("td", { text: status.version }), el("td", { text: new Date(status.loaded_at).toLocaleString() }), el("td", { text: "serving" })),
        status.previous.map((old) => el("tr", {}, el("td", { text: old.version }), el("td", { text: new Date(old.loaded_at).toLocaleString() }), el("td", { text: "kept for rollback" }))),
      )),
    el("p", { class: "muted", text: `Reloads since the process started: ${Object.entries(parsed.reloads).map(([outcome, n]) => `${outcome} ${n}`).join(", ") || "none"}.` }),
    el("p", {}, rollback), message,
  );
  const latency = document.getElementById("overview-latency");
  latency.replaceChildren(el("h3", { text: "Decision latency by stage" }), el("p", { class: "chart-note", text: "Decisions per latency bucket, since the process started (from /metrics)." }));
  const row = el("div", { class: "grid" });
  for (const [stage, buckets] of Object.entries(parsed.stages)) row.append(histogram(stage, buckets));
  latency.append(row);
}

function bandClass(band) {
  return { ok: "good", none: "plain", warn: "warn", alert: "bad" }[band] || "plain";
}

async function excerpt(d) {
  let text = `${d.file}:${d.line}:${d.column}: ${d.severity}: ${d.message}`;
  try {
    const file = await api(`/v1/files/${encodeURIComponent(d.file).replace(/%2F/g, "/")}`);
    const line = file.text.split("\n")[d.line - 1];
    if (line !== undefined) {
      const width = d.end_line === d.line && d.end_column ? Math.max(1, d.end_column - d.column) : 1;
      const gutter = " ".repeat(String(d.line).length);
      text += `\n${gutter} |\n${d.line} | ${line}\n${gutter} | ${" ".repeat(Math.max(0, d.column - 1))}${"^".repeat(width)}`;
    }
  } catch (error) {
    /* the file is gone: the message alone */
  }
  if (d.hint) text += `\n  = ${d.hint}`;
  return text;
}

function parseMetrics(text) {
  const stages = {};
  const degraded = {};
  const reloads = {};
  let decisions = 0;
  for (const line of text.split("\n")) {
    let m = line.match(/^tailor_decision_seconds_bucket\{(.*)\} ([0-9.e+-]+)$/);
    if (m) {
      const labels = Object.fromEntries([...m[1].matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
      (stages[labels.stage] ||= []).push([labels.le, Number(m[2])]);
      if (labels.stage === "total" && labels.le === "+Inf") decisions = Number(m[2]);
      continue;
    }
    m = line.match(/^tailor_degraded_decisions_total\{reason="(\w+)"\} ([0-9.e+-]+)$/);
    if (m && Number(m[2]) > 0) degraded[m[1]] = Number(m[2]);
    m = line.match(/^tailor_reloads_total\{outcome="(\w+)"\} ([0-9.e+-]+)$/);
    if (m) reloads[m[1]] = Number(m[2]);
  }
  return { stages, degraded, reloads, decisions };
}

function histogram(stage, cumulative) {
  const counts = cumulative.map(([le, n], i) => [le, n - (i ? cumulative[i - 1][1] : 0)]);
  const max = Math.max(1, ...counts.map(([, n]) => n));
  const width = 300;
  const height = 120;
  const bar = width / counts.length;
  const svg = svgEl("svg", { width, height: height + 30, role: "img", "aria-label": `${stage} latency histogram` });
  counts.forEach(([le, n], i) => {
    const h = (n / max) * height;
    svg.append(svgEl("rect", { x: i * bar + 1, y: height - h, width: bar - 2, height: h, fill: "#0b57d0" }, svgEl("title", {}, `≤ ${le} s: ${n}`)));
    if (i % 3 === 0) svg.append(svgEl("text", { x: i * bar, y: height + 14 }, le === "+Inf" ? "∞" : `${Number(le) * 1000}`));
  });
  svg.append(svgEl("text", { x: 0, y: height + 28 }, "ms, bucket upper bounds"));
  return el("figure", {}, el("figcaption", {}, el("strong", { text: stage })), svg);
}

function svgEl(tag, attrs, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

// --- 2. rules ---

const COLUMNS = [
  ["name", "Rule"], ["slot", "Slot"], ["priority", "Priority", true], ["cap", "Cap"],
  ["candidates", "Candidates", true], ["wins", "Wins", true], ["impressions", "Impressions", true],
  ["clicks", "Clicks", true], ["ctr", "CTR (95% interval)", true], ["findings", "Health"],
];

async function loadRules() {
  state.rules = await api("/v1/rules");
  const filter = document.getElementById("slot-filter");
  const slots = [...new Set(state.rules.rules.map((r) => r.slot))].sort();
  const chosen = filter.value;
  filter.replaceChildren(el("option", { value: "", text: "every slot" }), ...slots.map((s) => el("option", { value: s, text: s })));
  filter.value = slots.includes(chosen) ? chosen : "";
  drawRules();
}

function drawRules() {
  const board = state.rules;
  const slot = document.getElementById("slot-filter").value;
  const { key, dir } = state.sort;
  const rows = board.rules.filter((r) => !slot || r.slot === slot);
  const value = (r) => (key === "findings" ? r.findings.length : r[key] ?? -1);
  rows.sort((a, b) => (value(a) < value(b) ? -dir : value(a) > value(b) ? dir : a.priority < b.priority ? 1 : -1));
  const maxHigh = Math.max(0.05, ...rows.map((r) => r.ctr_high || 0));
  const head = document.querySelector("#rules-table thead tr");
  head.replaceChildren(
    ...COLUMNS.map(([name, label, numeric]) => {
      const th = el("th", { scope: "col", class: numeric ? "num" : null, "aria-sort": key === name ? (dir > 0 ? "ascending" : "descending") : "none" });
      th.append(el("button", { type: "button", text: label, onclick: () => { state.sort = { key: name, dir: key === name ? -dir : 1 }; drawRules(); } }));
      return th;
    }),
  );
  const body = document.querySelector("#rules-table tbody");
  body.replaceChildren(
    ...rows.map((r) =>
      el("tr", { "data-rule": r.name },
        el("td", {}, el("strong", { text: r.name }), el("div", { class: "muted", text: `${r.file}:${r.line}` }), el("pre", { class: "source", html: highlight(r.source) })),
        el("td", { text: r.slot }),
        el("td", { class: "num", text: r.priority }),
        el("td", { text: r.cap || "–" }),
        el("td", { class: "num", text: r.candidates }),
        el("td", { class: "num", text: r.wins }),
        el("td", { class: "num", text: r.impressions }),
        el("td", { class: "num", text: r.clicks }),
        el("td", { class: "num" }, ctrBar(r, maxHigh)),
        el("td", {}, r.findings.length ? r.findings.map((f) => el("span", { class: `badge ${f.advice === "retire" ? "bad" : "warn"}`, title: `${f.message} — ${f.action}`, text: f.finding.replace(/_/g, " ") })) : el("span", { class: "badge good", text: "healthy" })),
      ),
    ),
  );
  document.getElementById("rules-summary").textContent =
    `${rows.length} of ${board.rules.length} rules; counts from ${board.replayed} recent logged decisions of this version, impressions and clicks from the KPIs.`;
}

function ctrBar(r, max) {
  const width = 120;
  const x = (v) => 4 + (v / max) * (width - 8);
  const label = r.ctr === null ? "no impressions yet" : `CTR ${percent(r.ctr)} (95% interval ${percent(r.ctr_low)} to ${percent(r.ctr_high)})`;
  const svg = svgEl("svg", { width, height: 18, role: "img", "aria-label": label }, svgEl("title", {}, label));
  if (r.ctr !== null) {
    svg.append(svgEl("rect", { x: 4, y: 4, width: Math.max(1, x(r.ctr) - 4), height: 10, fill: "#6b9bea" }));
    svg.append(svgEl("line", { x1: x(r.ctr_low), x2: x(r.ctr_high), y1: 9, y2: 9, stroke: "#1b1f24", "stroke-width": 1.5 }));
    for (const v of [r.ctr_low, r.ctr_high]) svg.append(svgEl("line", { x1: x(v), x2: x(v), y1: 4, y2: 14, stroke: "#1b1f24", "stroke-width": 1.5 }));
  }
  return el("div", {}, el("span", { text: r.ctr === null ? "–" : percent(r.ctr) }), el("br"), svg);
}

// --- 3. try a user ---

function pairs(text) {
  const out = {};
  for (const line of text.split("\n")) {
    const at = line.indexOf("=");
    if (at < 1) continue;
    const name = line.slice(0, at).trim();
    const raw = line.slice(at + 1).trim();
    try {
      out[name] = JSON.parse(raw);
    } catch {
      out[name] = raw;
    }
  }
  return out;
}

async function loadTry() {
  if (!state.rules) state.rules = await api("/v1/rules");
  document.getElementById("try-scratch").disabled = state.scratch === null;
}

async function runTry() {
  const request = {
    user_id: document.getElementById("try-user").value.trim(),
    context: pairs(document.getElementById("try-context").value),
    features: pairs(document.getElementById("try-features").value),
  };
  const slots = document.getElementById("try-slots").value.split(",").map((s) => s.trim()).filter(Boolean);
  if (slots.length) request.slots = slots;
  const scratch = document.getElementById("try-scratch").checked && state.scratch !== null;
  const body = { request };
  if (scratch) Object.assign(body, state.scratch);
  const out = document.getElementById("try-result");
  out.replaceChildren(el("p", { class: "muted", text: "Deciding…" }));
  let answer;
  try {
    answer = await api("/v1/trace", { body });
  } catch (error) {
    out.replaceChildren(el("p", { class: "error", role: "alert", text: error.message }), ...error.errors.map((e) => el("pre", { class: "diagnostics", text: e })));
    return;
  }
  const sources = scratch ? scratchSources(state.scratch.text) : Object.fromEntries((state.rules?.rules || []).map((r) => [r.name, r.source]));
  const predicates = {};
  for (const p of answer.predicates) (predicates[p.rule] ||= []).push(p);
  const decision = el("table", { class: "decision", id: "decision" },
    el("caption", { class: "muted", text: `${scratch ? "The playground's version" : "Served version"} ${answer.ruleset.version}${answer.degraded ? " · degraded: the store did not answer in time" : ""}` }),
    el("thead", {}, el("tr", {}, el("th", { text: "Slot" }), el("th", { text: "Shows" }), el("th", { text: "Chosen by" }))),
    el("tbody", {}, Object.entries(answer.slots).map(([slot, d]) =>
      el("tr", { "data-slot": slot, "data-content": d ? d.content : "" },
        el("td", { text: slot }), el("td", { text: d ? d.content : "nothing" }), el("td", { text: d ? d.rule || "the default" : "–" })))),
  );
  const traces = Object.values(answer.explain.slots).map((trace) =>
    el("div", { class: "card trace" },
      el("h3", { text: `${trace.slot}: ${trace.decision ? trace.decision.content : "nothing"} (${trace.served})` }),
      trace.candidates.map((c) => {
        const drawn = drawTrace(sources[c.rule] || `rule ${c.rule}`, predicates[c.rule] || []);
        return el("div", { "data-candidate": c.rule },
          el("h4", {}, `${c.rule} `, el("span", { class: `badge ${c.won ? "good" : c.outcome === "capped" ? "warn" : "plain"}`, text: c.outcome }), el("span", { class: "muted", text: ` ${c.reason}` })),
          el("pre", { class: "source", html: drawn.html }),
          drawn.unplaced.length ? el("div", { class: "chips" }, drawn.unplaced.map((p) => el("mark", { class: `truth-${p.truth}`, title: p.truth, text: `${p.shown} ` }))) : null,
        );
      }),
      trace.outranked ? el("p", { class: "muted", text: `${trace.outranked} lower-ranked rules were not looked at.` }) : null,
    ),
  );
  out.replaceChildren(decision, el("p", { class: "legend" }, el("mark", { class: "truth-true", text: "true" }), " ", el("mark", { class: "truth-false", text: "false" }), " ", el("mark", { class: "truth-unknown", text: "unknown" }), " ", el("mark", { class: "truth-unread", text: "not read" })), ...traces);
}

function scratchSources(text) {
  const found = {};
  const blocks = text.split(/\n(?=\S)/);
  for (const block of blocks) {
    const m = block.match(/^rule\s+([A-Za-z_][A-Za-z0-9_]*)/);
    if (m) found[m[1]] = block.replace(/\s+$/, "");
  }
  return found;
}

async function showStored() {
  const user = document.getElementById("try-user").value.trim();
  const box = document.getElementById("try-stored-out");
  box.hidden = false;
  try {
    const data = await api(`/v1/users/${encodeURIComponent(user)}/export`);
    const attributes = data.store?.profile || data.profile || {};
    const use = el("button", { type: "button", class: "secondary", text: "Use the profile as feature overrides" });
    use.addEventListener("click", () => {
      document.getElementById("try-features").value = Object.entries(attributes).map(([k, v]) => `user.${k}=${JSON.stringify(v)}`).join("\n");
    });
    box.replaceChildren(el("h3", { text: `Stored about ${user}` }), el("pre", { class: "source", text: JSON.stringify(data.store ?? data, null, 2).slice(0, 4000) }), use);
  } catch (error) {
    box.replaceChildren(el("p", { class: "error", text: error.message }));
  }
}

// --- 4. playground ---

let lintTimer = null;
let lintRun = 0;

async function loadPlayground() {
  const select = document.getElementById("play-file");
  if (!select.options.length) {
    select.replaceChildren(...state.ruleset.files.map((f) => el("option", { value: f, text: f })));
  }
  const editor = document.getElementById("editor");
  if (!editor.value) await loadLiveFile();
}

async function loadLiveFile() {
  const name = document.getElementById("play-file").value;
  const file = await api(`/v1/files/${encodeURIComponent(name).replace(/%2F/g, "/")}`);
  document.getElementById("editor").value = file.text;
  scheduleLint(0);
}

function scheduleLint(delay = LINT_DELAY_MS) {
  clearTimeout(lintTimer);
  lintTimer = setTimeout(lint, delay);
}

async function lint() {
  const run = ++lintRun;
  const text = document.getElementById("editor").value;
  const file = document.getElementById("play-file").value;
  const status = document.getElementById("lint-status");
  try {
    const answer = await api("/v1/lint", { body: { text, file } });
    if (run !== lintRun) return; // a newer edit is being checked
    const errors = answer.diagnostics.filter((d) => d.severity === "error").length;
    const warnings = answer.diagnostics.filter((d) => d.severity === "warning").length;
    status.textContent = errors || warnings ? `${errors} error(s), ${warnings} warning(s)` : "No problems.";
    status.className = errors ? "error" : "ok";
    document.getElementById("lint-output").textContent = answer.diagnostics.some((d) => d.severity !== "note") ? answer.text : "";
    state.scratch = errors ? null : { text, file };
  } catch (error) {
    if (run === lintRun) {
      status.textContent = error.message;
      status.className = "error";
    }
  }
}

async function formatScratch() {
  const editor = document.getElementById("editor");
  try {
    const answer = await api("/v1/fmt", { body: { text: editor.value, file: document.getElementById("play-file").value } });
    editor.value = answer.text;
    scheduleLint(0);
  } catch (error) {
    document.getElementById("lint-status").textContent = `Cannot format: ${error.message}`;
    document.getElementById("lint-output").textContent = error.errors.join("\n\n");
  }
}

async function decideScratch() {
  await lint();
  if (state.scratch === null) return;
  location.hash = "#try";
  await show("try");
  document.getElementById("try-scratch").checked = true;
  await runTry();
}

async function diffScratch() {
  const out = document.getElementById("diff-output");
  out.replaceChildren(el("p", { class: "muted", text: "Replaying recent logged traffic…" }));
  try {
    const diff = await api("/v1/scratch/diff", { body: { text: document.getElementById("editor").value, file: document.getElementById("play-file").value } });
    out.replaceChildren(
      el("div", { class: "card", id: "diff-summary" },
        el("h3", { text: "Diff against live" }),
        el("p", {}, el("strong", { text: `${diff.changed} of ${diff.decisions}` }), ` recent logged decisions change (${percent(diff.changed_share)}).`,
          diff.not_replayable.decisions ? ` ${diff.not_replayable.decisions} could not be replayed.` : ""),
        el("table", {},
          el("thead", {}, el("tr", {}, el("th", { text: "Slot" }), el("th", { text: "From" }), el("th", { text: "To" }), el("th", { class: "num", text: "Decisions" }), el("th", { text: "Users, for example" }))),
          el("tbody", {}, diff.slots.flatMap((s) => s.transitions.map((t) =>
            el("tr", {}, el("td", { text: s.slot }), el("td", { text: `${t.from.content} (${t.from.rule})` }), el("td", { text: `${t.to.content} (${t.to.rule})` }), el("td", { class: "num", text: t.count }), el("td", { text: t.users.join(", ") })))))),
        (diff.notes || []).map((n) => el("p", { class: "muted", text: n })),
      ),
    );
  } catch (error) {
    out.replaceChildren(el("p", { class: "error", role: "alert", text: error.message }), ...error.errors.map((e) => el("pre", { class: "diagnostics", text: e })));
  }
}

// --- 5. experiments and models ---

async function loadExperiments() {
  const [listed, models] = await Promise.all([api("/v1/experiments"), api("/v1/models")]);
  const box = document.getElementById("experiments-list");
  box.replaceChildren();
  if (!listed.experiments.length) box.append(el("p", { class: "muted", text: "The served rules declare no experiment." }));
  for (const info of listed.experiments) {
    const report = await api(`/v1/experiments/${encodeURIComponent(info.name)}`);
    const srm = report.result.srm;
    const ctr = report.result.comparisons.filter((c) => c.metric === "ctr");
    box.append(
      el("div", { class: "card", "data-experiment": info.name },
        el("h3", { text: `${info.name}: ${info.arms.join(" vs ")} (slots ${info.slots.join(", ")})` }),
        el("table", {},
          el("thead", {}, el("tr", {}, ...["Arm", "Weight", "Users", "Impressions", "Clicks", "CTR (95% interval)"].map((h) => el("th", { text: h })))),
          el("tbody", {}, report.result.arms.map((a, i) => el("tr", {},
            el("td", { text: a.arm }), el("td", { text: percent(info.weights[i], 0) }), el("td", { class: "num", text: a.users }),
            el("td", { class: "num", text: a.impressions }), el("td", { class: "num", text: a.clicks }),
            el("td", { text: `${percent(a.ctr.value)} (${percent(a.ctr.low)} to ${percent(a.ctr.high)})` }))))),
        ctr.map((c) => el("p", {}, `Lift of ${c.arm} over ${c.control} in CTR (always-valid interval): `,
          el("strong", { text: `${percent(c.sequential.expected)} (${percent(c.sequential.low)} to ${percent(c.sequential.high)})` }))),
        el("p", {}, "Sample-ratio mismatch: ", srm.flagged
          ? el("span", { class: "badge bad", text: `flagged (p = ${number(srm.p_value, 4)})` })
          : el("span", { class: "badge good", text: `none (p = ${srm.p_value === null ? "–" : number(srm.p_value, 4)})` })),
        el("ul", {}, report.conclusions.map((c) => el("li", { text: c }))),
        liftChart(report.over_time),
      ),
    );
  }
  const histories = await Promise.all(models.models.map((m) =>
    api(`/v1/models/${encodeURIComponent(m.name)}/drift/history`).catch((e) => ({ error: e.message, points: [] }))));
  const modelsBox = document.getElementById("models-list");
  modelsBox.replaceChildren();
  if (!models.models.length) modelsBox.append(el("p", { class: "muted", text: "The served rules declare no model." }));
  models.models.forEach((m, i) => {
    modelsBox.append(
      el("div", { class: "card", "data-model": m.name },
        el("h3", {}, `${m.name} `, el("span", { class: `badge ${bandClass(m.band)}`, text: `drift: ${m.band}` })),
        el("p", { class: "muted", text: `${m.file} · version ${m.version} · trained ${m.trained_at || "–"} · training AUC ${number(m.training_auc)}` }),
        el("p", { text: `Scored live: ${m.scored}. PSI ${number(m.psi)}, JS ${number(m.js)}, live AUC ${number(m.auc)}, calibration error ${number(m.calibration_error)} (${m.impressions} impressions, ${m.clicks} clicks).` }),
        el("div", { class: "grid" }, psiChart(histories[i]), calibrationChart(m.calibration)),
      ),
    );
  });
}

function liftChart(points) {
  const width = 520;
  const height = 160;
  const figure = el("figure", {}, el("figcaption", { class: "chart-note", text: "Lift over the control by day (cumulative), with its interval" }));
  if (!points.length) {
    figure.append(el("p", { class: "muted", text: "No days with results yet." }));
    return figure;
  }
  const days = [...new Set(points.map((p) => p.day))];
  const values = points.flatMap((p) => [p.low, p.high, p.expected]).filter((v) => v !== null && Number.isFinite(v));
  const lo = Math.min(0, ...values);
  const hi = Math.max(0, ...values);
  const y = (v) => 10 + (1 - (v - lo) / (hi - lo || 1)) * (height - 30);
  const x = (day) => 40 + (days.indexOf(day) + 0.5) * ((width - 50) / days.length);
  const svg = svgEl("svg", { width, height, role: "img", "aria-label": "lift over time" });
  svg.append(svgEl("line", { x1: 40, x2: width, y1: y(0), y2: y(0), stroke: "#7a8494", "stroke-dasharray": "4 3" }));
  svg.append(svgEl("text", { x: 0, y: y(0) + 4 }, "0%"));
  svg.append(svgEl("text", { x: 0, y: y(hi) + 4 }, percent(hi, 0)));
  for (const p of points) {
    if (p.expected === null) continue;
    const cx = x(p.day);
    if (p.low !== null && p.high !== null && Number.isFinite(p.low) && Number.isFinite(p.high)) {
      svg.append(svgEl("line", { x1: cx, x2: cx, y1: y(p.low), y2: y(p.high), stroke: "#0b57d0", "stroke-width": 2 }));
    }
    svg.append(svgEl("circle", { cx, cy: y(p.expected), r: 4, fill: "#0b57d0" }, svgEl("title", {}, `${p.day} ${p.arm}: ${percent(p.expected)}`)));
  }
  days.forEach((d) => svg.append(svgEl("text", { x: x(d) - 30, y: height - 4 }, d)));
  figure.append(svg);
  return figure;
}

// The server's drift history of a model (GET /v1/models/{name}/drift/history): PSI by time, oldest first.
function psiChart(history) {
  const width = 300;
  const height = 120;
  const every = history.interval_seconds;
  const caption = every ? `PSI over time (a point every ${every} s, kept by this server process); 0.1 watch, 0.25 drift` : "PSI over time";
  const figure = el("figure", {}, el("figcaption", { class: "chart-note", text: caption }));
  const samples = history.points.filter((p) => p.psi !== null).map((p) => [Date.parse(p.at), p.psi, p]);
  if (history.error) {
    figure.append(el("p", { class: "error", text: history.error }));
    return figure;
  }
  if (!history.points.length) {
    figure.append(el("p", { class: "muted", text: `No history yet: the first point comes after ${Math.ceil(history.next_in_seconds)} s.` }));
    return figure;
  }
  if (!samples.length) {
    const last = history.points[history.points.length - 1];
    figure.append(el("p", { class: "muted", text: `No PSI yet: ${last.scored} live scores so far, too few to compare (${history.points.length} points).` }));
    return figure;
  }
  const max = Math.max(0.3, ...samples.map(([, v]) => v));
  const first = samples[0][0];
  const span = Math.max(1, samples[samples.length - 1][0] - first);
  const y = (v) => 5 + (1 - v / max) * (height - 25);
  const x = (t) => 30 + ((t - first) / span) * (width - 40);
  const svg = svgEl("svg", { width, height, role: "img", "aria-label": "PSI over time" });
  let labelled = -Infinity;
  for (const [level, color] of [[0.1, "#8a6a00"], [0.25, "#b3261e"], [max, "#7a8494"]]) {
    svg.append(svgEl("line", { x1: 30, x2: width, y1: y(level), y2: y(level), stroke: color, "stroke-dasharray": "4 3" }));
    if (Math.abs(y(level) - labelled) > 12) svg.append(svgEl("text", { x: 0, y: y(level) + 4 }, Number(level.toFixed(2))));
    labelled = Math.abs(y(level) - labelled) > 12 ? y(level) : labelled;
  }
  const clock = (t) => new Date(t).toISOString().slice(11, span < 600_000 ? 19 : 16); // seconds on a short history
  svg.append(svgEl("text", { x: 30, y: height - 4 }, clock(first)));
  if (samples.length > 1) svg.append(svgEl("text", { x: width - 40, y: height - 4 }, clock(samples[samples.length - 1][0])));
  svg.append(svgEl("polyline", { points: samples.map(([t, v]) => `${x(t)},${y(v)}`).join(" "), fill: "none", stroke: "#0b57d0", "stroke-width": 2 }));
  for (const [t, v, p] of samples) {
    svg.append(svgEl("circle", { cx: x(t), cy: y(v), r: 3, fill: "#0b57d0" }, svgEl("title", {}, `${p.at}: PSI ${number(v)}, JS ${number(p.js)}, ${p.scored} live scores`)));
  }
  figure.append(svg);
  return figure;
}

function calibrationChart(deciles) {
  const size = 160;
  const figure = el("figure", {}, el("figcaption", { class: "chart-note", text: "Calibration: observed CTR against predicted, per decile" }));
  const known = deciles.filter((d) => d.predicted !== null && d.observed !== null);
  const max = Math.max(0.05, ...known.flatMap((d) => [d.predicted, d.observed]));
  const s = (v) => 20 + (v / max) * (size - 30);
  const svg = svgEl("svg", { width: size + 10, height: size, role: "img", "aria-label": "calibration by decile" });
  svg.append(svgEl("line", { x1: s(0), y1: size - s(0), x2: s(max), y2: size - s(max), stroke: "#7a8494", "stroke-dasharray": "4 3" }));
  for (const d of known) svg.append(svgEl("circle", { cx: s(d.predicted), cy: size - s(d.observed), r: 4, fill: "#0b57d0" }, svgEl("title", {}, `decile ${d.decile}: predicted ${percent(d.predicted)}, observed ${percent(d.observed)}`)));
  if (!known.length) svg.append(svgEl("text", { x: 20, y: size / 2 }, "no impressions on scored decisions yet"));
  figure.append(svg);
  return figure;
}

// --- start ---

document.addEventListener("DOMContentLoaded", () => {
  setupKey();
  document.getElementById("slot-filter").addEventListener("change", drawRules);
  document.getElementById("try-form").addEventListener("submit", (event) => {
    event.preventDefault();
    runTry();
  });
  document.getElementById("try-stored").addEventListener("click", showStored);
  document.getElementById("editor").addEventListener("input", () => scheduleLint());
  document.getElementById("play-load").addEventListener("click", () => loadLiveFile().catch(showError));
  document.getElementById("play-file").addEventListener("change", () => loadLiveFile().catch(showError));
  document.getElementById("play-format").addEventListener("click", formatScratch);
  document.getElementById("play-decide").addEventListener("click", decideScratch);
  document.getElementById("play-diff").addEventListener("click", diffScratch);
  document.getElementById("refresh").addEventListener("click", () => show(state.page));
  window.addEventListener("hashchange", () => show(location.hash.slice(1)));
  show(location.hash.slice(1) || "overview");
});
