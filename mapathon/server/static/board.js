// The progress board for the projector: refreshes itself every 15 seconds.
"use strict";

const REFRESH_MS = 15000;
let room = null;

function bar(pctMapped, pctValidated) {
  const outer = el("div", null, "bar");
  const m = el("div", null, "bar-mapped");
  m.style.width = pctMapped + "%";
  const v = el("div", null, "bar-validated");
  v.style.width = pctValidated + "%";
  outer.append(m, v);
  return outer;
}

async function refresh() {
  const st = await api("GET", "/api/status");
  document.getElementById("title").textContent = st.project;
  document.title = st.project + " — " + t("board.title");
  document.getElementById("mapped-pct").textContent = st.overall.mapped_pct.toFixed(0);
  document.getElementById("validated-pct").textContent = st.overall.validated_pct.toFixed(0);
  document.getElementById("active").textContent = st.overall.states.LOCKED_FOR_MAPPING;
  const tbody = document.querySelector("#villages tbody");
  tbody.replaceChildren();
  const rows = st.villages.length ? st.villages : [st.overall];
  for (const v of rows) {
    const tr = el("tr");
    tr.append(el("th", v === st.overall ? t("board.all") : v.name === st.outside ? t("outside") : v.name));
    const td = el("td", null, "barcell");
    td.append(bar(v.mapped_pct, v.validated_pct));
    tr.append(td, el("td", v.mapped_pct.toFixed(0) + "%", "num"));
    tbody.append(tr);
  }
  const ol = document.getElementById("leaders");
  ol.replaceChildren();
  for (const p of st.board.slice(0, 12)) {
    const li = el("li");
    li.append(el("span", p.name, "who"),
      el("span", t("board.n_mapped", { n: p.mapped }) + (p.validated ? " · " + t("board.n_validated", { n: p.validated }) : ""), "what"));
    ol.append(li);
  }
  if (!st.board.length) ol.append(el("li", t("board.first"), "empty"));
  document.getElementById("updated").textContent = t("board.updated", { time: new Date().toLocaleTimeString(LANG) });
  if (room) await refreshStates(room, (id) => {
    const layer = room.layers[id];
    if (layer) layer.setStyle(taskStyle(room.props[id].state, false));
  });
}

async function start() {
  await loadWords();
  fillLegend(document.getElementById("legend"));
  room = await makeMap("map");
  room.map.zoomControl.remove();
  await refresh();
  document.body.dataset.ready = "1";
  setInterval(() => refresh().catch(() => {}), REFRESH_MS);
}

start().catch((e) => { document.getElementById("updated").textContent = t("board.unreachable", { error: e.message }); });
