// Shared by the volunteers' page and the progress board: colours, the map, API calls.
"use strict";

// STATES (label, color, fill of each task state) comes from /static/states.js, made by mapathon.render.palette.

// The pages' words come from the server (/api/i18n, made from mapathon/i18n.py), in the language the
// page asks for (?lang=fr) or else the room's. Names typed by people are only ever set as text.
let WORDS = {};
let LANG = "en";

function t(key, fields) {
  const s = WORDS[key] !== undefined ? WORDS[key] : key;
  fields = fields || {};
  return s.replace(/\{(\w+)\}/g, (m, k) => (k in fields ? String(fields[k]) : m));  // one pass: names stay as typed
}

function stateLabel(state) {
  const k = "state." + state;
  return WORDS[k] !== undefined ? WORDS[k] : (STATES[state] || { label: state }).label;
}

async function loadWords() {
  const asked = new URLSearchParams(location.search).get("lang");
  const r = await api("GET", "/api/i18n" + (asked ? "?lang=" + encodeURIComponent(asked) : ""));
  WORDS = r.words;
  LANG = r.lang;
  document.documentElement.lang = LANG;
  for (const e of document.querySelectorAll("[data-i18n]")) e.textContent = t(e.dataset.i18n);
  for (const e of document.querySelectorAll("[data-i18n-placeholder]")) e.placeholder = t(e.dataset.i18nPlaceholder);
  for (const e of document.querySelectorAll("[data-i18n-label]")) e.setAttribute("aria-label", t(e.dataset.i18nLabel));
  const other = r.langs.find((l) => l !== LANG);
  const sw = document.getElementById("lang-switch");
  if (sw && other) {
    sw.href = "?lang=" + other;
    sw.textContent = t("page.language");
    sw.hidden = false;
  }
  const board = document.getElementById("board-link");
  if (board) board.href = "/board?lang=" + LANG;
}

async function api(method, path, body, headers) {
  const opts = { method, headers: Object.assign({ "X-Lang": LANG }, headers || {}) };
  if (body !== undefined && body !== null) {
    if (body instanceof Blob) {
      opts.body = body;
      opts.headers["Content-Type"] = "application/octet-stream";
    } else {
      opts.body = JSON.stringify(body);
      opts.headers["Content-Type"] = "application/json";
    }
  }
  const r = await fetch(path, opts);
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  if (!r.ok) {
    let msg = data && data.detail ? data.detail : r.status + " " + r.statusText;
    if (Array.isArray(msg)) msg = msg.map((d) => d.msg).join("; ");
    const err = new Error(msg);
    err.status = r.status;
    err.data = data;
    throw err;
  }
  return data;
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

// Text made safe for the few places where Leaflet only takes HTML.
function escapeHtml(text) {
  const d = document.createElement("div");
  d.textContent = String(text);
  return d.innerHTML;
}

function taskStyle(state, mine) {
  const s = STATES[state] || STATES.READY;
  return {
    color: mine ? "#d35400" : "#555",
    weight: mine ? 4 : 1,
    fillColor: s.color,
    fillOpacity: s.fill,
  };
}

// A Leaflet map with the project's imagery (when cached), village outlines and names, and the task grid.
async function makeMap(divId, opts) {
  opts = opts || {};
  const info = await api("GET", "/api/project");
  const map = L.map(divId, { zoomSnap: 0.25, attributionControl: true });
  const b = info.bounds;
  map.fitBounds([[b[1], b[0]], [b[3], b[2]]]);
  if (info.imagery && info.imagery.length) {
    const src = info.imagery[0];
    const url = src.tiles[0];
    L.tileLayer(url, { maxZoom: 20, maxNativeZoom: src.maxzoom || 19, minNativeZoom: src.minzoom || 0,
      attribution: escapeHtml(src.attribution || src.name) }).addTo(map);  // Leaflet sets it as HTML
    // photos of annotated atlas pages (mapathon scan), over the background imagery
    const scans = info.imagery.find((s) => s !== src && s.tiles[0].includes("/tiles/scans/"));
    if (scans) L.tileLayer(scans.tiles[0], { maxZoom: 20, maxNativeZoom: scans.maxzoom || 19,
      minNativeZoom: scans.minzoom || 0, attribution: escapeHtml(scans.attribution || scans.name) }).addTo(map);
  }
  const villages = await api("GET", "/api/villages");
  L.geoJSON(villages, {
    interactive: false,
    style: (f) => f.properties.kind === "aoi"
      ? { color: "#222", weight: 2, fill: false, dashArray: "6 4" }
      : { color: "#8e44ad", weight: 2, fill: false, dashArray: "3 3" },
  }).addTo(map);
  for (const v of info.villages) {
    if (v.lat === null || v.lon === null) continue;
    // a DOM node, not a string: Leaflet would set a string as HTML
    L.marker([v.lat, v.lon], { opacity: 0, interactive: false, keyboard: false })
      .bindTooltip(el("span", v.name), { permanent: true, direction: "center", className: "village-label" })
      .addTo(map);
  }
  const layers = {};
  const grid = L.geoJSON(null, {
    style: (f) => Object.assign(taskStyle(f.properties.state, false), { className: "task task-" + f.properties.id }),
    onEachFeature: (f, layer) => {
      layers[f.properties.id] = layer;
      if (opts.onClick) layer.on("click", () => opts.onClick(f.properties.id));
    },
  }).addTo(map);
  const state = { map, info, grid, layers, props: {}, version: null };
  await reloadTasks(state);
  return state;
}

async function reloadTasks(state) {
  const fc = await api("GET", "/api/tasks");
  state.grid.clearLayers();
  for (const k of Object.keys(state.layers)) delete state.layers[k];
  state.props = {};
  for (const f of fc.features) state.props[f.properties.id] = f.properties;
  state.grid.addData(fc);
  state.version = fc.version;
}

// Poll compact states; returns true when something changed.
async function refreshStates(state, restyle) {
  const r = await api("GET", "/api/states" + (state.version !== null ? "?since=" + state.version : ""));
  if (r.unchanged) return false;
  const ids = new Set(r.tasks.map((t) => t[0]));
  const same = ids.size === Object.keys(state.props).length && r.tasks.every((t) => state.props[t[0]]);
  if (!same) {
    await reloadTasks(state);
  } else {
    for (const [id, key, st, locked, mapped, validated] of r.tasks) {
      Object.assign(state.props[id], { state: st, locked_by: locked, mapped_by: mapped, validated_by: validated });
    }
    state.version = r.version;
  }
  for (const id of Object.keys(state.layers)) restyle(Number(id));
  return true;
}

function fillLegend(ul) {
  for (const [k, s] of Object.entries(STATES)) {
    const li = el("li");
    const sw = el("span", "", "swatch");
    sw.style.background = s.color;
    li.append(sw, el("span", stateLabel(k)));
    ul.append(li);
  }
}
