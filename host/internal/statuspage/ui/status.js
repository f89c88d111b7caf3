// The status page: it polls the admin API (GET /status, /crashes and, when the
// listener serves it, /metrics) every few seconds and redraws its tables in
// place; nothing reloads the page. Every value is set as text (textContent),
// never as HTML: app names, errors and guest output are data, not markup.
"use strict";
const every = 2000;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function row(cells, attrs) {
  const tr = document.createElement("tr");
  for (const [k, v] of Object.entries(attrs || {})) tr.setAttribute(k, v);
  for (const c of cells) tr.appendChild(c);
  return tr;
}

function num(v, cls) { return el("td", v === undefined ? 0 : v, "num" + (cls ? " " + cls : "")); }

function fill(id, rows) {
  const tbody = document.querySelector("#" + id + " tbody");
  tbody.replaceChildren(...rows);
}

function drawApps(st) {
  const pools = st.pools || {};
  const names = Object.keys(pools).sort();
  fill("apps", names.map((name) => {
    const p = pools[name];
    return row([
      el("td", name), el("td", p.mode), num(p.workers), num(p.live, "live"), num(p.idle, "idle"), num(p.busy, "busy"),
      num(p.waiting, "waiting"), num(p.served, "served"), num(p.discarded, "failed"), num(p.recycled),
      num(p.start_failures), el("td", p.last_start_error || "", "err"),
    ], { "data-app": name });
  }));
  document.getElementById("summary").textContent =
    names.length + " app" + (names.length === 1 ? "" : "s") +
    (st.generation !== undefined ? ", config generation " + st.generation : "");
}

function drawCrashes(c) {
  let total = 0;
  for (const v of Object.values(c.total || {})) total += v;
  document.getElementById("crash-total").textContent = String(total);
  fill("crashes", (c.recent || []).map((x) => row([
    el("td", new Date(x.time).toLocaleTimeString()), el("td", x.app), num(x.instance || ""), el("td", x.kind),
    el("td", x.reason || ""), el("td", x.error || "", "err"),
  ], { "data-app": x.app })));
}

function drawUpstreams(st) {
  const rows = [];
  const ups = st.upstreams || {};
  for (const group of Object.keys(ups).sort()) {
    for (const s of ups[group]) {
      rows.push(row([el("td", group), el("td", s.url), el("td", s.up ? "up" : "down", s.up ? "good" : "bad"),
        num(s.active), num(s.weight)]));
    }
  }
  fill("upstreams", rows);
  const cache = st.cache || {};
  document.getElementById("cache-entries").textContent = String(cache.entries || 0);
  document.getElementById("cache-bytes").textContent = String(cache.bytes || 0);
}

// counters keeps the cache and limit series of a Prometheus text exposition.
function counters(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (line === "" || line[0] === "#") continue;
    const i = line.lastIndexOf(" ");
    const name = line.slice(0, i);
    if (/^wasmsrv_(cache|limit|filter|rate)|_reject/.test(name)) out.push([name, line.slice(i + 1)]);
  }
  return out;
}

async function getJSON(path) {
  const r = await fetch(path, { credentials: "same-origin", cache: "no-store" });
  if (r.status === 401) {
    location.reload(); // the session ended: the login form
    throw new Error("logged out");
  }
  if (!r.ok) throw new Error(path + ": " + r.status);
  return r.json();
}

let metrics = true;

async function refresh() {
  const state = document.getElementById("state");
  try {
    const [st, crashes] = await Promise.all([getJSON("/status"), getJSON("/crashes")]);
    drawApps(st);
    drawCrashes(crashes);
    drawUpstreams(st);
    if (metrics) {
      const r = await fetch("/metrics", { credentials: "same-origin", cache: "no-store" });
      if (r.ok) {
        fill("counters", counters(await r.text()).map(([k, v]) => row([el("td", k), num(v)])));
      } else {
        metrics = false;
        document.getElementById("counters-note").textContent = "this listener serves no /metrics";
      }
    }
    document.getElementById("updated").textContent = new Date().toLocaleTimeString();
    state.textContent = "";
  } catch (e) {
    state.textContent = String(e.message || e);
  }
}

document.getElementById("logout").addEventListener("click", async () => {
  await fetch("/ui/logout", { method: "POST", credentials: "same-origin", headers: { "Wasmsrv-Admin": "1" } });
  location.reload();
});

refresh();
setInterval(refresh, every);
