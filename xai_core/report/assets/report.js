// The attributions of report.html, drawn in the browser from report/data.js (window.XAI_REPORT,
// written by xai_core/report/html.py) and the per-image pixel scripts report/px/<key>.js
// (xai_core/report/thumbnails.py: the photos as JPEG, the maps as PNG). Plain JavaScript, no
// network: the page opens from file://, where scripts load but fetch and XHR do not.
//
// Each map arrives as an 8-bit grayscale PNG (value = min + v / 255 * (max - min)) and, per sign,
// where its colours saturate; it is coloured here with the run's colour tables exactly as
// xai_core.report.figures.render_map colours it (a 256-entry lookup per map and setting), so the
// sign, the overlay opacity and a shared scale can change without new files.
"use strict";
(function () {
  performance.mark("xai:script");
  const D = window.XAI_REPORT;
  const F = {};
  D.map_fields.forEach((name, i) => { F[name] = i; });
  const MAPS = D.maps;
  const IMAGES = D.images;
  const METRICS = D.metrics;
  const pixels = new Map(); // image index -> Promise of {photos: {path: URL}, maps: Map}
  const waiting = new Map(); // image key -> resolve function of its script
  const shared = new Map(); // "sign|group" -> combined scale
  const TABLES = {};
  for (const kind of Object.keys(D.colours)) {
    const hex = D.colours[kind];
    const table = new Uint8Array(hex.length / 2);
    for (let i = 0; i < table.length; i++) table[i] = parseInt(hex.substr(2 * i, 2), 16);
    TABLES[kind] = table;
  }
  const STEPS = D.colour_steps;

  // ------------------------------------------------------------------ helpers

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children) {
      if (child !== null && child !== undefined) {
        node.append(typeof child === "string" ? document.createTextNode(child) : child);
      }
    }
    return node;
  }

  // Three significant digits, as Python's "{:.3g}" (the figures' colour bar labels).
  function g3(x) {
    if (x === null || x === undefined || Number.isNaN(x)) return "n/a";
    if (x === 0) return "0";
    const e = Math.floor(Math.log10(Math.abs(x)));
    const strip = (s) => s.replace(/\.?0+(e|$)/, "$1");
    if (e < -4 || e >= 3) return strip(x.toExponential(2)).replace(/e([+-])(\d)$/, "e$10$2");
    return strip(x.toPrecision(3));
  }

  const p2 = (p) => (p === null || p === undefined ? "?" : Number(p).toFixed(2));

  // ------------------------------------------------------------------ state (kept in the URL hash)

  const DEFAULTS = {
    model: "", method: "", cls: "", q: "", sort: "", desc: "", min: "", max: "", failed: "",
    page: "0", per: String(D.page_size), overlay: "", sign: D.options.sign, scale: "map",
    alpha: String(D.options.overlay === "blended_heat_map" ? D.options.overlay_alpha : 1),
  };
  const state = Object.assign({}, DEFAULTS);
  function readHash() {
    const given = new URLSearchParams(location.hash.slice(1));
    for (const key of Object.keys(DEFAULTS)) if (given.has(key)) state[key] = given.get(key);
  }
  function writeHash() {
    const out = new URLSearchParams();
    for (const [key, value] of Object.entries(state)) if (value !== DEFAULTS[key]) out.set(key, value);
    const text = out.toString();
    history.replaceState(null, "", text ? "#" + text : location.pathname + location.search);
  }

  // ------------------------------------------------------------------ columns, filters, sorting

  const byImage = IMAGES.map(() => []);
  const columns = []; // {model, method, maps: []}
  const columnOf = new Map();
  MAPS.forEach((m, index) => {
    byImage[m[F.image]].push(index);
    const id = m[F.model] + "/" + m[F.method];
    if (!columnOf.has(id)) {
      columnOf.set(id, columns.length);
      columns.push({ model: m[F.model], method: m[F.method], maps: [] });
    }
    columns[columnOf.get(id)].maps.push(index);
  });
  columns.sort((a, b) => a.model - b.model || a.method - b.method);
  columns.forEach((c, i) => columnOf.set(c.model + "/" + c.method, i));
  const several = D.models.length > 1;
  const columnName = (c) => D.methods[c.method] + (several ? " (" + D.models[c.model].label + ")" : "");

  function shownColumns() {
    return columns.filter((c) => (state.model === "" || String(c.model) === state.model) &&
      (state.method === "" || String(c.method) === state.method));
  }

  // The value an image is sorted and filtered by: "name", or "<column>:<metric index | s>".
  function sortValue(image) {
    if (state.sort === "name") return IMAGES[image].key;
    const [col, what] = state.sort.split(":");
    const column = columns[Number(col)];
    if (!column) return null;
    for (const index of byImage[image]) {
      const m = MAPS[index];
      if (m[F.model] !== column.model || m[F.method] !== column.method) continue;
      const value = what === "s" ? m[F.seconds] : (m[F.metrics] || [])[Number(what)];
      return value === undefined ? null : value;
    }
    return null;
  }

  function failedIn(image, visible) {
    if (IMAGES[image].error) return true;
    return byImage[image].some((i) => MAPS[i][F.error] &&
      visible.has(columnOf.get(MAPS[i][F.model] + "/" + MAPS[i][F.method])));
  }

  function selectedImages(visible) {
    const query = state.q.trim().toLowerCase();
    const low = state.min === "" ? null : Number(state.min);
    const high = state.max === "" ? null : Number(state.max);
    const ranged = state.sort !== "" && state.sort !== "name" && (low !== null || high !== null);
    let chosen = [];
    for (let image = 0; image < IMAGES.length; image++) {
      const info = IMAGES[image];
      if (query && !info.key.toLowerCase().includes(query) &&
          !(info.src || "").toLowerCase().includes(query)) continue;
      if (state.cls !== "" && !info.classes.includes(Number(state.cls))) continue;
      if (state.failed && !failedIn(image, visible)) continue;
      if (ranged) {
        const value = sortValue(image);
        if (value === null || (low !== null && value < low) || (high !== null && value > high)) continue;
      }
      chosen.push(image);
    }
    if (state.sort !== "") {
      const values = new Map(chosen.map((i) => [i, sortValue(i)]));
      const sign = state.desc ? -1 : 1;
      chosen = chosen.slice().sort((a, b) => {
        const va = values.get(a);
        const vb = values.get(b);
        if (va === null || vb === null) return (va === null) - (vb === null) || a - b;
        if (va < vb) return -sign;
        if (va > vb) return sign;
        return a - b;
      });
    }
    return chosen;
  }

  // ------------------------------------------------------------------ colours

  function combined(indices, sign) {
    let signed = 0;
    let low = Infinity;
    let high = -Infinity;
    let lo = Infinity;
    let top = -Infinity;
    for (const index of indices) {
      const s = MAPS[index][F.scales];
      if (!s) continue;
      const [l, h, a, t, g] = s[sign];
      signed = signed || g;
      low = Math.min(low, l);
      high = Math.max(high, h);
      lo = Math.min(lo, a);
      top = Math.max(top, t);
    }
    if (low === Infinity) return null;
    if (signed) lo = -top;
    return [low, high, lo, top, signed];
  }

  // The scale a map is drawn with: its own, or the one shared by its column or its row.
  function scaleOf(index, visible) {
    const m = MAPS[index];
    if (state.scale === "map" || !m[F.scales]) return m[F.scales] && m[F.scales][state.sign];
    let group;
    let members;
    if (state.scale === "method") {
      group = "c" + columnOf.get(m[F.model] + "/" + m[F.method]);
      members = () => columns[columnOf.get(m[F.model] + "/" + m[F.method])].maps;
    } else {
      const cols = Array.from(visible).sort().join(",");
      group = "r" + m[F.image] + ":" + cols;
      members = () => byImage[m[F.image]].filter(
        (i) => visible.has(columnOf.get(MAPS[i][F.model] + "/" + MAPS[i][F.method])));
    }
    const key = state.sign + "|" + group;
    if (!shared.has(key)) shared.set(key, combined(members(), state.sign));
    return shared.get(key);
  }

  // As render_map: the shown part of a value (under the sign), its strength on the scale and
  // its position in the colour table.
  function shownPart(v) {
    if (state.sign === "positive") return Math.max(v, 0);
    if (state.sign === "negative") return Math.min(v, 0);
    if (state.sign === "absolute") return Math.abs(v);
    return v;
  }
  function strengthOf(v, scale) {
    const [, , lo, top, signed] = scale;
    if (signed) return Math.max(-1, Math.min(1, v / top));
    const w = state.sign === "negative" ? -v : v;
    return Math.max(0, Math.min(1, (w - lo) / (top - lo)));
  }
  function kindOf(scale) {
    if (scale[4]) return "signed";
    return state.sign === "all" ? "positive" : state.sign;
  }
  function colourAt(strength, scale, table) {
    const position = scale[4] ? (strength + 1) / 2 : strength;
    const entry = Math.min(STEPS - 1, Math.max(0, Math.floor(position * STEPS)));
    return [table[3 * entry], table[3 * entry + 1], table[3 * entry + 2]];
  }

  // RGBA of each of the 256 gray levels of a map: its colour (map view) or the layer that,
  // drawn over the photo, gives the run's overlay (blended heat map, masked image, alpha
  // scaling) at the chosen opacity.
  function lookup(index, scale, onPhoto) {
    const m = MAPS[index];
    const table = TABLES[kindOf(scale)];
    const alpha = Number(state.alpha);
    const out = new Uint8ClampedArray(256 * 4);
    for (let g = 0; g < 256; g++) {
      const v = shownPart(m[F.min] + (g / 255) * (m[F.max] - m[F.min]));
      const s = strengthOf(v, scale);
      let rgb = colourAt(s, scale, table);
      let a = 1;
      if (onPhoto) {
        if (D.options.overlay === "masked_image") { rgb = [0, 0, 0]; a = (1 - Math.abs(s)) * alpha; }
        else if (D.options.overlay === "alpha_scaling") { rgb = [255, 255, 255]; a = (1 - Math.abs(s)) * alpha; }
        else a = alpha * Math.sqrt(Math.abs(s));
      }
      out.set([rgb[0], rgb[1], rgb[2], Math.round(255 * a)], 4 * g);
    }
    return out;
  }

  function keyBar(index, scale) {
    const table = TABLES[kindOf(scale)];
    const [low, high, , , signed] = scale;
    const stops = [];
    for (let i = 0; i <= 16; i++) {
      const v = low + (i / 16) * (high - low);
      const [r, g, b] = colourAt(strengthOf(v, scale), scale, table);
      stops.push(`rgb(${r},${g},${b}) ${(100 * i) / 16}%`);
    }
    const bar = el("div", { class: "cbar", title: state.scale === "map" ? "this map's range" :
      "range shared by every map of its " + (state.scale === "method" ? "column" : "row"),
      "data-low": low, "data-high": high },
      el("span", { class: "lo", text: g3(low) }), el("span", { class: "hi", text: g3(high) }));
    bar.style.background = `linear-gradient(to right,${stops.join(",")})`;
    if (signed && low < 0 && high > 0) {
      const at = (100 * -low) / (high - low);
      const zero = el("span", { class: "zero", text: at >= 35 && at <= 65 ? "0" : "" });
      zero.style.left = at.toFixed(1) + "%";
      bar.append(zero);
    }
    return bar;
  }

  // ------------------------------------------------------------------ pixels

  window.XAI_PIXELS = function (content) {
    const done = waiting.get(content.key);
    if (done) { waiting.delete(content.key); done(content); }
  };

  // A map's 8-bit levels: the PNG decoded by the browser and read back from a canvas (a data:
  // URL, unlike a file:// image, leaves the canvas readable).
  function decode(png) {
    const picture = new Image();
    picture.src = "data:image/png;base64," + png;
    return picture.decode().then(() => {
      const canvas = document.createElement("canvas");
      canvas.width = picture.naturalWidth;
      canvas.height = picture.naturalHeight;
      const context = canvas.getContext("2d", { willReadFrequently: true });
      context.drawImage(picture, 0, 0);
      const rgba = context.getImageData(0, 0, canvas.width, canvas.height).data;
      const gray = new Uint8Array(canvas.width * canvas.height);
      for (let i = 0; i < gray.length; i++) gray[i] = rgba[4 * i];
      return { gray, width: canvas.width, height: canvas.height };
    });
  }

  function load(image) {
    if (!pixels.has(image)) {
      const key = IMAGES[image].key;
      const src = "report/px/" + key.split("/").map(encodeURIComponent).join("/") + ".js";
      pixels.set(image, new Promise((resolve, reject) => {
        waiting.set(key, (content) => {
          const files = Object.keys(content.maps);
          Promise.all(files.map((f) => decode(content.maps[f].png))).then((decoded) => {
            const photos = {};
            for (const [rel, jpeg] of Object.entries(content.photos)) photos[rel] = "data:image/jpeg;base64," + jpeg;
            resolve({ photos, maps: new Map(files.map((f, i) => [f, decoded[i]])) });
          }, reject);
        });
        const script = el("script", { src });
        script.onerror = () => { waiting.delete(key); reject(new Error(src + " did not load")); };
        document.head.append(script);
      }));
    }
    return pixels.get(image);
  }

  // Everything of one row once its script is in: photos, then maps.
  function fill(row, image, data, visible) {
    row.querySelectorAll("img[data-photo]").forEach((img) => { img.src = data.photos[img.dataset.photo] || ""; });
    row.querySelectorAll("canvas.map").forEach((canvas) => {
      const index = Number(canvas.closest(".cell").dataset.map);
      const mine = data.maps.get(MAPS[index][F.file]);
      if (mine) paint(canvas, index, mine, visible);
    });
  }

  function paint(canvas, index, data, visible) {
    const scale = scaleOf(index, visible);
    const onPhoto = canvas.classList.contains("on-photo");
    canvas.width = data.width;
    canvas.height = data.height;
    const colours = lookup(index, scale, onPhoto);
    const context = canvas.getContext("2d");
    const picture = context.createImageData(data.width, data.height);
    const out = picture.data;
    for (let i = 0; i < data.gray.length; i++) {
      const at = 4 * data.gray[i];
      out[4 * i] = colours[at];
      out[4 * i + 1] = colours[at + 1];
      out[4 * i + 2] = colours[at + 2];
      out[4 * i + 3] = colours[at + 3];
    }
    context.putImageData(picture, 0, 0);
    canvas.dataset.painted = state.sign + "/" + state.scale + "/" + (onPhoto ? "photo" : "map");
    const key = canvas.closest(".cell").querySelector(".cbar");
    key.replaceWith(keyBar(index, scale));
  }

  // ------------------------------------------------------------------ the grid

  function caption(image) {
    const info = IMAGES[image];
    const parts = [el("b", { text: info.key })];
    if (info.src && info.src !== info.key) parts.push(el("br"), el("small", { text: info.src }));
    info.models.forEach((m, model) => {
      if (!m) return;
      if (state.model !== "" && String(model) !== state.model) return;
      const box = el("div", { class: "model" });
      if (several) box.append(el("b", { text: D.models[model].label }));
      for (const target of m.targets) box.append(el("div", { text: "target: " + target }));
      if (m.pred) box.append(el("div", { text: `predicted: ${m.pred[0]} (${p2(m.pred[1])})` }));
      if (m.top5 && m.top5.length) {
        box.append(el("div", { text: "top 5:" }),
          el("ol", {}, ...m.top5.map(([label, p]) => el("li", { text: `${label} (${p2(p)})` }))));
      }
      parts.push(box);
    });
    return el("div", { class: "cap" }, ...parts);
  }

  function photoCell(image) {
    const info = IMAGES[image];
    const first = info.models.find((m, model) => m && m.photo &&
      (state.model === "" || String(model) === state.model)) || info.models.find((m) => m && m.photo);
    if (!first) {
      return el("td", { class: "photo failed" }, caption(image),
        el("div", { class: "err", text: "input failed: " + (info.error || "no input image was written") }));
    }
    return el("td", { class: "photo" },
      el("a", { href: first.photo }, el("img", { "data-photo": first.photo, alt: "input " + info.key })),
      caption(image));
  }

  function mapCell(index, severalTargets, onPhoto) {
    const m = MAPS[index];
    const info = IMAGES[m[F.image]];
    const cell = el("div", { class: "cell", "data-map": index });
    if (severalTargets && m[F.target]) cell.append(el("div", { class: "cap", text: "target: " + m[F.target] }));
    if (m[F.error]) {
      cell.append(el("div", { class: "err", text: "failed: " + m[F.error] }));
      return cell;
    }
    const photo = info.models[m[F.model]];
    const canvas = el("canvas", { class: "map" + (onPhoto && photo && photo.photo ? " on-photo" : ""),
      role: "img", "aria-label": `${D.methods[m[F.method]]} map of ${info.key}` });
    canvas.width = m[F.size][0];
    canvas.height = m[F.size][1];
    const stack = el("div", { class: "stack" });
    if (onPhoto && photo && photo.photo) stack.append(el("img", { "data-photo": photo.photo, alt: "" }));
    stack.append(canvas);
    cell.append(el("a", { href: m[F.figure] || m[F.file] }, stack), el("div", { class: "cbar" }));
    const facts = [m[F.seconds] === null ? null : `${Number(m[F.seconds]).toFixed(2)} s`];
    METRICS.forEach((metric, k) => {
      const values = m[F.metrics];
      if (!values || values[k] === undefined) return;
      const arrow = { true: " ↑", false: " ↓" }[String(D.directions[metric])] || "";
      facts.push(`${metric}${arrow}: ${g3(values[k])}`);
    });
    cell.append(el("div", { class: "cap" }, ...facts.filter((f) => f !== null).flatMap(
      (f, i) => (i ? [el("br"), f] : [f]))));
    return cell;
  }

  let generation = 0;

  function render() {
    const started = performance.now();
    const run = ++generation;
    writeHash();
    const shown = shownColumns();
    const visible = new Set(shown.map((c) => columnOf.get(c.model + "/" + c.method)));
    const chosen = selectedImages(visible);
    const per = Math.max(1, Number(state.per) || D.page_size);
    const pages = Math.max(1, Math.ceil(chosen.length / per));
    const page = Math.min(Math.max(0, Number(state.page) || 0), pages - 1);
    const onPage = chosen.slice(page * per, (page + 1) * per);
    const onPhoto = Boolean(state.overlay);
    const loading = onPage.map(load); // the scripts load while the grid is built

    const head = el("tr", {}, el("th", { class: "photo", text: "image" }),
      ...shown.map((c) => el("th", {}, D.methods[c.method],
        several ? el("br") : null, several ? el("small", { text: D.models[c.model].label }) : null)));
    const rows = onPage.map((image) => {
      const row = el("tr", { class: "photo-row", "data-key": IMAGES[image].key }, photoCell(image));
      const failedInput = Boolean(IMAGES[image].error);
      for (const c of shown) {
        const mine = byImage[image].filter((i) => MAPS[i][F.model] === c.model && MAPS[i][F.method] === c.method);
        if (failedInput || !mine.length) {
          row.append(el("td", { class: failedInput ? "failed" : null }));
          continue;
        }
        const targets = new Set(byImage[image].filter((i) => MAPS[i][F.model] === c.model).map((i) => MAPS[i][F.target]));
        const td = el("td", { class: mine.every((i) => MAPS[i][F.error]) ? "failed" : null,
          "data-method": D.methods[c.method], "data-model": D.models[c.model].label },
          ...mine.map((i) => mapCell(i, targets.size > 1, onPhoto)));
        row.append(td);
      }
      return row;
    });
    const grid = document.getElementById("grid");
    grid.replaceChildren(el("table", { class: "grid" }, head, ...rows));
    performance.mark("xai:grid");
    document.getElementById("shown").textContent = chosen.length
      ? `images ${page * per + 1}–${page * per + onPage.length} of ${chosen.length}` +
        (chosen.length < IMAGES.length ? ` (of ${IMAGES.length} in the run)` : "") +
        `; ${shown.length} of ${columns.length} column(s)`
      : `no image matches (of ${IMAGES.length})`;
    pager(pages, page);
    document.body.dataset.ready = "";
    // An image whose script is missing says so in its cells (and on the console); the others
    // are drawn all the same.
    Promise.all(onPage.map((image, n) => loading[n].then((data) => {
      if (run === generation) fill(rows[n], image, data, visible);
    }, (error) => {
      console.error(String(error));
      rows[n].querySelectorAll("canvas.map").forEach((canvas) => {
        canvas.closest(".cell").append(el("div", { class: "err",
          text: "thumbnail missing: `xai report RUN_DIR` makes it again" }));
      });
    }))).then(() => {
      if (run !== generation) return;
      document.body.dataset.ready = "1";
      window.XAI_RENDER_MS = performance.now() - started;
      window.XAI_READY_AT = performance.now();
    }, (error) => { console.error(String(error)); });
  }

  function pager(pages, page) {
    for (const nav of document.querySelectorAll(".pager")) {
      const buttons = [];
      const go = (to, text) => el("button", { type: "button", disabled: to === page || to < 0 || to >= pages,
        onclick: () => { state.page = String(to); render(); } }, text);
      buttons.push(go(page - 1, "‹ previous"));
      const near = new Set([0, pages - 1, page - 2, page - 1, page, page + 1, page + 2]);
      let last = -1;
      for (let i = 0; i < pages; i++) {
        if (!near.has(i)) continue;
        if (i > last + 1) buttons.push(el("span", { text: "…" }));
        const b = go(i, String(i + 1));
        if (i === page) b.classList.add("current");
        buttons.push(b);
        last = i;
      }
      buttons.push(go(page + 1, "next ›"));
      nav.replaceChildren(...buttons);
    }
  }

  // ------------------------------------------------------------------ controls

  function select(name, label, options) {
    const box = el("select", { id: "f-" + name, name, onchange: (e) => { state[name] = e.target.value; state.page = "0"; render(); } },
      ...options.map(([value, text]) => el("option", { value, text, selected: String(value) === state[name] })));
    return el("label", {}, label + " ", box);
  }

  function controls() {
    const sorts = [["", "input order"], ["name", "image name"]];
    columns.forEach((c, i) => {
      METRICS.forEach((metric, k) => {
        if (c.maps.some((m) => (MAPS[m][F.metrics] || [])[k] !== undefined && (MAPS[m][F.metrics] || [])[k] !== null)) {
          const arrow = { true: " ↑", false: " ↓" }[String(D.directions[metric])] || "";
          sorts.push([`${i}:${k}`, `${metric}${arrow} of ${columnName(c)}`]);
        }
      });
      sorts.push([`${i}:s`, `seconds of ${columnName(c)}`]);
    });
    const input = (name, attrs) => el("input", Object.assign({ id: "f-" + name, name, value: state[name],
      oninput: (e) => { state[name] = e.target.value; state.page = "0"; render(); } }, attrs));
    const check = (name, text) => el("label", {}, el("input", { type: "checkbox", id: "f-" + name, checked: Boolean(state[name]),
      onchange: (e) => { state[name] = e.target.checked ? "1" : ""; render(); } }), " " + text);
    const filters = el("div", { class: "row" },
      el("label", {}, "search ", input("q", { type: "search", placeholder: "image name", size: 14 })),
      several ? select("model", "model", [["", "all models"], ...D.models.map((m, i) => [String(i), m.label])]) : null,
      select("method", "method", [["", "all methods"], ...D.methods.map((m, i) => [String(i), m])]),
      D.classes.length ? select("cls", "class", [["", "any class"], ...D.classes.map((c, i) => [String(i), c])]) : null,
      check("failed", "failed only"));
    const sorting = el("div", { class: "row" },
      select("sort", "sort by", sorts), check("desc", "descending"),
      el("label", { title: "keep images whose sort value lies in this range" }, "value from ",
        input("min", { type: "number", step: "any", size: 6 }), " to ", input("max", { type: "number", step: "any", size: 6 })),
      select("per", "per page", [["25", "25"], ["50", "50"], ["100", "100"], ["200", "200"]]));
    const drawing = el("div", { class: "row" },
      check("overlay", "show overlays on the photo"),
      el("label", {}, "opacity ", el("input", { type: "range", id: "f-alpha", min: 0, max: 1, step: 0.05, value: state.alpha,
        oninput: (e) => { state.alpha = e.target.value; repaint(); } })),
      select("sign", "sign", [["all", "both signs"], ["positive", "positive"], ["negative", "negative"], ["absolute", "absolute"]]),
      select("scale", "colour scale", [["map", "each map its own"], ["method", "shared per column"], ["image", "shared per row"]]));
    document.getElementById("controls").replaceChildren(filters, sorting, drawing,
      el("div", { class: "row" }, el("span", { id: "shown" }), el("span", { id: "readout", "aria-live": "polite" })));
  }

  // Opacity changes recolour the maps on the page, nothing else.
  function repaint() {
    writeHash();
    const visible = new Set(shownColumns().map((c) => columnOf.get(c.model + "/" + c.method)));
    document.querySelectorAll("#grid canvas.map").forEach((canvas) => {
      const index = Number(canvas.closest(".cell").dataset.map);
      load(MAPS[index][F.image]).then((data) => {
        const mine = data.maps.get(MAPS[index][F.file]);
        if (mine) paint(canvas, index, mine, visible);
      });
    });
  }

  // The map's value under the pointer, from its 8-bit levels.
  function readout(event) {
    const canvas = event.target;
    const out = document.getElementById("readout");
    if (!(canvas instanceof HTMLCanvasElement) || !canvas.classList.contains("map")) return;
    const index = Number(canvas.closest(".cell").dataset.map);
    const m = MAPS[index];
    const box = canvas.getBoundingClientRect();
    const x = Math.min(canvas.width - 1, Math.floor(((event.clientX - box.left) / box.width) * canvas.width));
    const y = Math.min(canvas.height - 1, Math.floor(((event.clientY - box.top) / box.height) * canvas.height));
    const pending = pixels.get(m[F.image]);
    if (!pending) return;
    pending.then((data) => {
      const mine = data.maps.get(m[F.file]);
      if (!mine) return;
      const level = mine.gray[y * mine.width + x];
      const value = m[F.min] + (level / 255) * (m[F.max] - m[F.min]);
      out.textContent = `${D.methods[m[F.method]]}${several ? " (" + D.models[m[F.model]].label + ")" : ""} on ` +
        `${IMAGES[m[F.image]].key} at (${x}, ${y}): ${g3(value)}`;
      canvas.title = g3(value);
    });
  }

  readHash();
  controls();
  const grid = document.getElementById("grid");
  grid.addEventListener("mousemove", readout);
  grid.addEventListener("mouseleave", () => { document.getElementById("readout").textContent = ""; });
  render();
})();
