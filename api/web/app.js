// lampgw dashboard: one card per lamp, kept up to date by the event
// stream (GET api/events); commands go to POST api/lamps/{id}/set. Plain
// JavaScript, no build step, nothing from other origins. URLs are
// relative, so the page also works behind a proxy under a sub-path.
"use strict";
(() => {
  const WINDOW = 5 * 60 * 1000; // the chart's span
  const HOLD = 3000; // a slider just touched is not moved by reports
  const lamps = new Map(); // id -> lamp
  const list = document.getElementById("lamps");
  const template = document.getElementById("lamp-card");
  const conn = document.getElementById("conn");
  const empty = document.getElementById("empty");

  function card(id) {
    let l = lamps.get(id);
    if (l) return l;
    const el = template.content.firstElementChild.cloneNode(true);
    const q = (sel) => el.querySelector(sel);
    el.dataset.lamp = id;
    l = { id, el, q, data: { id, reported: {}, desired: {}, brightness_max: 1023, online: false, last_seen: null },
      points: [], touched: 0, rid: "", acks: new Map() };
    const slider = q(".slider");
    slider.id = "brightness-" + id;
    q(".slider-label").htmlFor = slider.id;
    q(".slider-value").htmlFor = slider.id;
    slider.addEventListener("input", () => {
      l.touched = Date.now();
      q(".slider-value").value = slider.value;
    });
    slider.addEventListener("change", () => {
      l.touched = Date.now();
      send(l, { brightness: Number(slider.value) });
    });
    q(".manual").addEventListener("change", (e) => send(l, { mode: e.target.checked ? "manual" : "auto" }));
    lamps.set(id, l);
    const after = [...list.children].find((c) => c.dataset.lamp > id);
    list.insertBefore(el, after || null);
    empty.hidden = true;
    return l;
  }

  function remove(id) {
    const l = lamps.get(id);
    if (!l) return;
    l.el.remove();
    lamps.delete(id);
    empty.hidden = lamps.size > 0;
  }

  function render(l) {
    const d = l.data, r = d.reported || {}, q = l.q;
    const name = d.name || d.id;
    q(".name").textContent = name;
    q(".id").textContent = d.name ? d.id : "";
    const avail = q(".avail");
    avail.textContent = d.online ? "online" : "offline";
    avail.className = "avail " + (d.online ? "online" : "offline");
    l.el.classList.toggle("offline", !d.online);
    const max = d.brightness_max || 1023;
    const b = typeof r.brightness === "number" ? r.brightness : null;
    q(".reported-brightness").textContent = b === null ? "–" : String(b);
    q(".of").textContent = " / " + max;
    q(".fill").style.width = (b === null ? 0 : Math.min(100, (100 * b) / max)) + "%";
    const slider = q(".slider");
    slider.max = String(max);
    if (Date.now() - l.touched > HOLD) {
      const want = d.desired && typeof d.desired.brightness === "number" ? d.desired.brightness : b;
      if (want !== null) slider.value = String(want);
      q(".slider-value").value = slider.value;
    }
    q(".ambient").textContent = r.ambient === undefined ? "–" : String(r.ambient);
    q(".manual").checked = r.mode === "manual";
    q(".chart").setAttribute("aria-label", `Brightness and ambient light of ${name} over the last 5 minutes`);
    seen(l);
    draw(l);
  }

  function seen(l) {
    const t = l.q(".last-seen");
    if (!l.data.last_seen) {
      t.textContent = "never";
      return;
    }
    const at = new Date(l.data.last_seen);
    const s = Math.max(0, Math.round((Date.now() - at) / 1000));
    t.dateTime = at.toISOString();
    t.title = at.toLocaleString();
    t.textContent = s < 60 ? `${s} s ago` : s < 3600 ? `${Math.floor(s / 60)} min ago` : at.toLocaleString();
  }

  function record(l, state, time) {
    const t = time ? Date.parse(time) : Date.now();
    if (typeof state.brightness === "number" || typeof state.ambient === "number") {
      l.points.push({ t, b: state.brightness, a: state.ambient });
    }
    while (l.points.length > 1 && l.points[1].t < Date.now() - WINDOW) l.points.shift();
  }

  function color(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
  }

  function draw(l) {
    const c = l.q(".chart");
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth || 320, h = c.clientHeight || 90;
    if (c.width !== Math.round(w * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const now = Date.now(), t0 = now - WINDOW;
    const top = { b: l.data.brightness_max || 1023, a: Math.max(1023, ...l.points.map((p) => p.a || 0)) };
    for (const [k, css] of [["a", "--ambient"], ["b", "--brightness"]]) {
      g.strokeStyle = color(css);
      g.lineWidth = 2;
      g.beginPath();
      let y = null;
      for (const p of l.points) {
        if (typeof p[k] !== "number") continue;
        const x = Math.max(0, ((p.t - t0) / WINDOW) * w);
        const ny = h - 2 - (p[k] / top[k]) * (h - 4);
        if (y === null) g.moveTo(x, ny);
        else g.lineTo(x, y); // a reading holds until the next one
        g.lineTo(x, ny);
        y = ny;
      }
      if (y === null) continue;
      g.lineTo(w, y);
      g.stroke();
      // The latest reading as a dot, so that a new lamp shows one too.
      g.fillStyle = g.strokeStyle;
      g.beginPath();
      g.arc(w - 3, y, 3, 0, 2 * Math.PI);
      g.fill();
    }
  }

  function progress(l, text, kind) {
    const p = l.q(".progress");
    p.textContent = text;
    p.className = "progress" + (kind ? " " + kind : "");
  }

  function kindOf(status) {
    if (status === "confirmed") return "ok";
    if (status === "rejected" || status === "unconfirmed" || status === "expired") return "bad";
    return "";
  }

  function describe(body) {
    return Object.entries(body).map(([k, v]) => `${k} ${v}`).join(", ");
  }

  async function send(l, body) {
    progress(l, `${describe(body)}: sending…`);
    try {
      const r = await fetch(`api/lamps/${encodeURIComponent(l.id)}/set`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      const d = await r.json().catch(() => ({}));
      if (d.status) {
        progress(l, `${describe(body)}: ${d.status}${d.error ? " (" + d.error + ")" : ""}`, kindOf(d.status));
      } else {
        progress(l, `${describe(body)}: ${d.error || r.status + " " + r.statusText}`, "bad");
      }
    } catch (e) {
      progress(l, `${describe(body)}: ${e.message}`, "bad");
    }
  }

  // Acks of every command with a rid, the dashboard's and other apps',
  // as they happen: queued, written, confirmed...
  function onAck(a) {
    const l = lamps.get(a.id);
    if (!l) return;
    if (a.rid !== l.rid) {
      l.rid = a.rid;
      l.acks.clear();
    }
    if (a.status === "rejected" && !a.key) {
      progress(l, `command rejected: ${a.error}`, "bad");
      return;
    }
    l.acks.set(a.key, a);
    const parts = [...l.acks.values()].map((x) => `${x.key} ${JSON.stringify(x.value)}: ${x.status}`);
    progress(l, parts.join(", "), kindOf(a.status));
  }

  function onLamps(data) {
    const ids = new Set();
    for (const d of data.lamps) {
      ids.add(d.id);
      const l = card(d.id);
      l.data = d;
      record(l, d.reported || {}, d.last_seen);
      render(l);
    }
    for (const id of [...lamps.keys()]) if (!ids.has(id)) remove(id);
    empty.hidden = lamps.size > 0;
  }

  function on(es, name, f) {
    es.addEventListener(name, (e) => {
      try {
        f(JSON.parse(e.data));
      } catch (err) {
        console.error(name, err);
      }
    });
  }

  function connect() {
    const es = new EventSource("api/events");
    es.onopen = () => {
      conn.textContent = "live";
      conn.className = "live";
    };
    es.onerror = () => {
      conn.className = "";
      conn.textContent = es.readyState === EventSource.CLOSED ? "disconnected: reload the page" : "reconnecting…";
    };
    on(es, "lamps", onLamps);
    on(es, "state", (ev) => {
      const l = card(ev.id);
      l.data.reported = ev.state;
      l.data.last_seen = ev.time;
      l.data.desired = {};
      record(l, ev.state, ev.time);
      render(l);
    });
    on(es, "availability", (ev) => {
      const l = card(ev.id);
      l.data.online = ev.online;
      if (ev.online) l.data.last_seen = ev.time;
      render(l);
    });
    on(es, "removed", (ev) => remove(ev.id));
    on(es, "ack", onAck);
    on(es, "refused", (ev) => {
      const l = lamps.get(ev.id);
      if (l) progress(l, `command refused: ${ev.error}`, "bad");
    });
  }

  // Reports that change nothing make no event; refresh "last seen" and
  // the charts' time axis from time to time.
  setInterval(() => {
    for (const l of lamps.values()) {
      seen(l);
      draw(l);
    }
  }, 1000);
  setInterval(async () => {
    try {
      const r = await fetch("api/lamps");
      if (!r.ok) return;
      for (const d of (await r.json()).lamps) {
        const l = lamps.get(d.id);
        if (l) l.data.last_seen = d.last_seen;
      }
    } catch (e) {
      // the event stream reports connection trouble
    }
  }, 30000);
  connect();
})();
