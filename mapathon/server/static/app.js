// The volunteers' page: sign in, pick a square, map it in JOSM or iD, hand in the file, mark it done.
"use strict";

const $ = (id) => document.getElementById(id);
let me = null;          // {name, roles, validator, organizer}
let selected = null;    // task id
let room = null;        // from makeMap()
let busy = false;

function session() { return localStorage.getItem("mapathon.session"); }
function headers() {
  const h = {};
  if (session()) h["X-Session"] = session();
  const tok = $("org-token").value.trim();
  if (tok) h["X-Organizer-Token"] = tok;
  return h;
}

function say(text, kind) {
  const m = $("msg");
  m.textContent = text || "";
  m.className = kind || "";
}

async function call(method, path, body) {
  if (busy) return null;
  busy = true;
  document.body.classList.add("busy");
  try {
    return await api(method, path, body, headers());
  } catch (e) {
    if (e.status === 401) { localStorage.removeItem("mapathon.session"); me = null; showMe(); }
    say(e.message, "error");
    return null;
  } finally {
    busy = false;
    document.body.classList.remove("busy");
  }
}

function showMe() {
  $("signin").hidden = !!me;
  $("whoami").hidden = !me;
  if (me) {
    $("me-name").textContent = me.name;
    $("me-roles").textContent = me.roles === "mapper" ? "" : "(" + me.roles + ")";
  }
  showTask();
}

function same(a, b) { return !!a && !!b && a.toLowerCase() === b.toLowerCase(); }

function restyle(id) {
  const layer = room.layers[id];
  const p = room.props[id];
  if (!layer || !p) return;
  const mine = me && same(p.locked_by, me.name);
  const st = taskStyle(p.state, mine || id === selected);
  if (id === selected) { st.color = "#000"; st.weight = 3; }
  layer.setStyle(st);
  if (mine || id === selected) layer.bringToFront();
}

function showTask() {
  const p = selected !== null && room ? room.props[selected] : null;
  $("task").hidden = !p;
  $("hint").hidden = !!p;
  if (!p) return;
  $("t-id").textContent = p.id;
  $("t-key").textContent = p.key;
  const st = $("t-state");
  st.textContent = (STATES[p.state] || { label: p.state }).label;
  st.style.borderColor = (STATES[p.state] || STATES.READY).color;
  $("t-villages").textContent = "";
  const who = [];
  if (p.locked_by) who.push((p.state === "LOCKED_FOR_VALIDATION" ? "validating: " : "mapping: ") + p.locked_by);
  if (p.mapped_by) who.push("mapped by " + p.mapped_by);
  if (p.validated_by) who.push("validated by " + p.validated_by);
  $("t-people").textContent = who.join(" · ");
  const mineMapping = me && p.state === "LOCKED_FOR_MAPPING" && same(p.locked_by, me.name);
  const mineValidating = me && p.state === "LOCKED_FOR_VALIDATION" && same(p.locked_by, me.name);
  const canValidate = me && me.validator && !same(p.mapped_by, me.name);
  $("claim").hidden = !(me && (p.state === "READY" || p.state === "INVALIDATED"));
  $("validate-claim").hidden = !(p.state === "MAPPED" && canValidate);
  $("mine").hidden = !mineMapping;
  $("validating").hidden = !(mineValidating || (p.state === "MAPPED" && canValidate));
  if (mineMapping || mineValidating) loadEditors(p.id);
}

async function loadEditors(id) {
  const r = await api("GET", "/api/tasks/" + id + "/editors").catch(() => null);
  if (!r || selected !== id) return;
  $("josm").dataset.urls = JSON.stringify(r.josm.map((j) => j.url));
  $("ide").href = r.id || "#";
}

async function select(id) {
  selected = id;
  for (const k of Object.keys(room.layers)) restyle(Number(k));
  showTask();
  say("");
}

async function afterChange(task, text) {
  if (!task) return;
  await refreshStates(room, restyle);
  if (task.id !== undefined) selected = task.id;
  for (const k of Object.keys(room.layers)) restyle(Number(k));
  showTask();
  say(text, "ok");
}

async function signIn(ev) {
  ev.preventDefault();
  const r = await call("POST", "/api/join", { name: $("name").value });
  if (!r) return;
  localStorage.setItem("mapathon.session", r.token);
  me = r;
  showMe();
  say("Welcome, " + r.name + "! Click a square or ask for a task.", "ok");
}

async function loadMe() {
  if (!session()) { showMe(); return; }
  try {
    me = await api("GET", "/api/me", null, headers());
  } catch (e) {
    me = null;
    if (e.status === 401) localStorage.removeItem("mapathon.session");
  }
  showMe();
  if (me && me.holding && me.holding.length) select(me.holding[0]);
}

async function openJosm() {
  const urls = JSON.parse($("josm").dataset.urls || "[]");
  say("Sending the task to JOSM…");
  try {
    for (const u of urls) {
      await fetch(u, { mode: "no-cors" });
      await new Promise((r) => setTimeout(r, 300));
    }
    say("Sent to JOSM. If nothing happened: start JOSM and enable Preferences › Remote Control.", "ok");
  } catch (e) {
    say("JOSM is not answering: start JOSM and enable Preferences › Remote Control.", "error");
  }
}

async function upload() {
  const f = $("file").files[0];
  if (!f) { say("Choose the .osm file you saved from JOSM first.", "error"); return; }
  if (room.info.max_upload_bytes && f.size > room.info.max_upload_bytes) {
    say("This file is too large to send here; give it to the organizer on a USB stick.", "error");
    return;
  }
  const r = await call("POST", "/api/tasks/" + selected + "/upload?filename=" + encodeURIComponent(f.name), f);
  if (!r) return;
  const c = r[0];
  say(c.already_submitted ? "This file was already handed in." :
      "Thank you! " + c.file + " received (" + c.objects + " objects). Now mark the task as done.", "ok");
  $("file").value = "";
}

function wire() {
  $("signin").addEventListener("submit", signIn);
  $("signout").addEventListener("click", () => {
    localStorage.removeItem("mapathon.session"); me = null; showMe(); say("Signed out.");
  });
  $("next").addEventListener("click", async () => {
    if (!me) { say("Type your name first.", "error"); $("name").focus(); return; }
    const v = $("village").value;
    const t = await call("POST", "/api/claim-next", v ? { village: v } : {});
    if (t) {
      await afterChange(t, "Task " + t.id + " is yours for 2 hours. Open it in JOSM.");
      const layer = room.layers[t.id];
      if (layer) room.map.flyToBounds(layer.getBounds(), { maxZoom: 14, duration: 0.5 });
    }
  });
  const act = (btn, path, body, text, zoom) => $(btn).addEventListener("click", async () => {
    const t = await call("POST", "/api/tasks/" + selected + path, body);
    await afterChange(t, text);
    if (t && zoom && room.layers[t.id]) room.map.flyToBounds(room.layers[t.id].getBounds(), { maxZoom: 14, duration: 0.5 });
  });
  act("claim", "/claim", null, "The task is yours for 2 hours. Open it in JOSM.", true);
  act("validate-claim", "/claim", null, "You are validating this task.");
  act("done", "/done", {}, "Marked as done. Thank you! Ask for another task.");
  act("release", "/release", {}, "Task given back.");
  act("badimagery", "/badimagery", {}, "Marked as bad imagery.");
  act("accept", "/validate", { accept: true }, "Validated.");
  act("reject", "/validate", { accept: false }, "Sent back for more mapping.");
  $("josm").addEventListener("click", openJosm);
  $("upload").addEventListener("click", upload);
  const org = (btn, path, text) => $(btn).addEventListener("click", async () => {
    if (selected === null) { say("Select a task first.", "error"); return; }
    const r = await call("POST", "/api/organizer/tasks/" + selected + path, {});
    if (r) { await refreshStates(room, restyle); showTask(); say(text, "ok"); }
  });
  org("org-reset", "/reset", "Task reset to READY.");
  org("org-release", "/release", "Lock released.");
  org("org-split", "/split", "Task split in four.");
  $("org-grant").addEventListener("click", async () => {
    const r = await call("POST", "/api/organizer/validators", { name: $("org-name").value });
    if (r) say(r.name + " is now " + r.roles + ".", "ok");
  });
  $("org-free").addEventListener("click", async () => {
    const r = await call("POST", "/api/organizer/free-name", { name: $("org-name").value });
    if (r) say(r.name + " can sign in again (" + r.signed_out + " sign-in(s) ended).", "ok");
  });
}

async function start() {
  fillLegend($("legend"));
  wire();
  room = await makeMap("map", { onClick: select });
  document.title = room.info.name + " — mapathon";
  $("title").textContent = room.info.name;
  for (const v of room.info.villages) {
    const o = el("option", v.name);
    o.value = v.name;
    $("village").append(o);
  }
  await loadMe();
  document.body.dataset.ready = "1";
  setInterval(async () => {
    try { if (await refreshStates(room, restyle)) showTask(); } catch (e) { /* server restarting: try later */ }
  }, 5000);
}

start().catch((e) => say("Cannot reach the room server: " + e.message, "error"));
