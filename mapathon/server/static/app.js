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
    $("me-roles").textContent = me.roles === "mapper" ? "" :
      "(" + me.roles.split(",").map((r) => t("role." + r.trim())).join(", ") + ")";
  }
  showOdk();
  showTask();
}

// ODK Collect's settings as a QR code, for the signed-in volunteer (mapathon/server/routes/odk.py)
async function showOdk() {
  $("odk").hidden = true;
  if (!me) return;
  try {
    const s = await api("GET", "/odk/settings", null, headers());
    if (!s.forms.length) return;  // no survey form made yet ('mapathon survey form')
    $("odk-qr").innerHTML = s.svg;  // an SVG made by the server (segno), no script in it
    $("odk-url").textContent = s.server_url;
    $("odk-pw").textContent = s.password;
    $("odk").hidden = false;
  } catch (e) { /* no survey on this server: nothing to show */ }
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
  st.textContent = stateLabel(p.state);
  st.style.borderColor = (STATES[p.state] || STATES.READY).color;
  $("t-villages").textContent = "";
  const who = [];
  if (p.locked_by) who.push(t(p.state === "LOCKED_FOR_VALIDATION" ? "msg.validating_by" : "msg.mapping_by", { name: p.locked_by }));
  if (p.mapped_by) who.push(t("msg.mapped_by", { name: p.mapped_by }));
  if (p.validated_by) who.push(t("msg.validated_by", { name: p.validated_by }));
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

async function signIn(ev, asNew) {
  if (ev) ev.preventDefault();
  $("name-choice").hidden = true;
  const body = { name: $("name").value };
  if (asNew) body.new = true;
  let r;
  try {
    r = await api("POST", "/api/join", body, headers());
  } catch (e) {
    say(e.message, "error");
    // a name close to a volunteer's: are they that volunteer, or someone new?
    if (e.data && e.data.suggestion) offerNameChoice(e.data.suggestion);
    return;
  }
  localStorage.setItem("mapathon.session", r.token);
  me = r;
  showMe();
  say(t("msg.welcome", { name: r.name }), "ok");
}

function offerNameChoice(suggestion) {
  const same = $("choice-same");
  same.textContent = t("page.i_am", { name: suggestion });
  same.onclick = () => { $("name").value = suggestion; signIn(null); };
  $("choice-new").onclick = () => signIn(null, true);
  $("name-choice").hidden = false;
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
  say(t("msg.sending_josm"));
  try {
    for (const u of urls) {
      await fetch(u, { mode: "no-cors" });
      await new Promise((r) => setTimeout(r, 300));
    }
    say(t("msg.sent_josm"), "ok");
  } catch (e) {
    say(t("msg.josm_silent"), "error");
  }
}

async function upload() {
  const f = $("file").files[0];
  if (!f) { say(t("msg.choose_file"), "error"); return; }
  if (room.info.max_upload_bytes && f.size > room.info.max_upload_bytes) {
    say(t("msg.too_large"), "error");
    return;
  }
  const r = await call("POST", "/api/tasks/" + selected + "/upload?filename=" + encodeURIComponent(f.name), f);
  if (!r) return;
  const c = r[0];
  say(c.already_submitted ? t("msg.already_handed") : t("msg.received", { file: c.file, n: c.objects }), "ok");
  $("file").value = "";
  $("file-name").textContent = "";
}

function wire() {
  $("signin").addEventListener("submit", signIn);
  $("signout").addEventListener("click", () => {
    localStorage.removeItem("mapathon.session"); me = null; showMe(); say(t("msg.signed_out"));
  });
  $("next").addEventListener("click", async () => {
    if (!me) { say(t("msg.type_name"), "error"); $("name").focus(); return; }
    const v = $("village").value;
    const task = await call("POST", "/api/claim-next", v ? { village: v } : {});
    if (task) {
      await afterChange(task, t("msg.yours_next", { id: task.id }));
      const layer = room.layers[task.id];
      if (layer) room.map.flyToBounds(layer.getBounds(), { maxZoom: 14, duration: 0.5 });
    }
  });
  const act = (btn, path, body, text, zoom) => $(btn).addEventListener("click", async () => {
    const task = await call("POST", "/api/tasks/" + selected + path, body);
    await afterChange(task, t(text));
    if (task && zoom && room.layers[task.id]) room.map.flyToBounds(room.layers[task.id].getBounds(), { maxZoom: 14, duration: 0.5 });
  });
  act("claim", "/claim", null, "msg.yours", true);
  act("validate-claim", "/claim", null, "msg.validating");
  act("done", "/done", {}, "msg.done");
  act("release", "/release", {}, "msg.released");
  act("badimagery", "/badimagery", {}, "msg.bad");
  act("accept", "/validate", { accept: true }, "msg.accepted");
  act("reject", "/validate", { accept: false }, "msg.rejected");
  $("josm").addEventListener("click", openJosm);
  $("upload").addEventListener("click", upload);
  $("file").addEventListener("change", () => { $("file-name").textContent = $("file").files[0] ? $("file").files[0].name : ""; });
  const org = (btn, path, text) => $(btn).addEventListener("click", async () => {
    if (selected === null) { say(t("msg.select_first"), "error"); return; }
    const r = await call("POST", "/api/organizer/tasks/" + selected + path, {});
    if (r) { await refreshStates(room, restyle); showTask(); say(t(text), "ok"); }
  });
  org("org-reset", "/reset", "msg.org_reset");
  org("org-release", "/release", "msg.org_released");
  org("org-split", "/split", "msg.org_split");
  $("org-grant").addEventListener("click", async () => {
    const r = await call("POST", "/api/organizer/validators", { name: $("org-name").value });
    if (r) say(t("msg.granted", { name: r.name }), "ok");
  });
  $("org-free").addEventListener("click", async () => {
    const r = await call("POST", "/api/organizer/free-name", { name: $("org-name").value });
    if (r) say(t("msg.freed", { name: r.name, n: r.signed_out }), "ok");
  });
}

async function start() {
  await loadWords();
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

start().catch((e) => say(t("msg.unreachable", { error: e.message }), "error"));
