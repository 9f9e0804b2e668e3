// nmt explorer: the leaderboard, the charts and the sentence explorer of one self-contained page.
// Reads the JSON in #nmt-data (written by nmt/explore/page.py) and draws everything as HTML and
// SVG; no library, no network.
"use strict";
// The payload (nmt/explore/page.py): base64 of deflate([u32 JSON length][JSON][binary tail]);
// {"$bin": [offset, length]} in the JSON points into the binary tail.
async function nmtLoad() {
  const text = document.getElementById("nmt-data").textContent.trim();
  const raw = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  const stream = new Blob([raw]).stream().pipeThrough(new DecompressionStream("deflate"));
  const buf = new Uint8Array(await new Response(stream).arrayBuffer());
  const n = new DataView(buf.buffer).getUint32(0, true);
  const data = JSON.parse(new TextDecoder().decode(buf.subarray(4, 4 + n)));
  const tail = buf.subarray(4 + n);
  return [data, tail];
}
nmtLoad().then(([DATA, TAIL]) => {
  const SVGNS = "http://www.w3.org/2000/svg";
  const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#17becf"];
  const app = document.getElementById("app");
  app.replaceChildren();
  const tip = el("div", { id: "tip" });
  document.body.appendChild(tip);

  // --- helpers -------------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const c of children) if (c != null) node.append(c);
    return node;
  }
  function svg(tag, attrs, parent) {
    const node = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = v;
      else node.setAttribute(k, v);
    }
    if (parent) parent.appendChild(node);
    return node;
  }
  // One colour per system name on every chart, in the order the page first names them.
  const colorIndex = new Map();
  function colorOf(name) {
    if (!colorIndex.has(name)) colorIndex.set(name, colorIndex.size);
    return COLORS[colorIndex.get(name) % COLORS.length];
  }
  (DATA.leaderboard ? DATA.leaderboard.rows : []).forEach((r) => colorOf(r.system));
  function fmt(v, d) { return v == null || Number.isNaN(v) ? "" : Number(v).toFixed(d); }
  function showTip(ev, text) {
    tip.textContent = text;
    tip.style.display = "block";
    tip.style.left = ev.clientX + 12 + "px";
    tip.style.top = ev.clientY + 12 + "px";
  }
  function hideTip() { tip.style.display = "none"; }
  function bytesOf(ref) { return TAIL.subarray(ref.$bin[0], ref.$bin[0] + ref.$bin[1]); }

  // --- leaderboard ---------------------------------------------------------------------------
  function leaderboard(lb) {
    const table = el("table", { class: "lb", id: "leaderboard" });
    const head = el("tr");
    const body = el("tbody");
    let sortKey = null, sortDir = 1;
    lb.columns.forEach((col) => {
      const th = el("th", { "data-key": col.key, class: col.decimals == null ? "text" : "",
        title: col.help || "" , text: col.label });
      th.addEventListener("click", () => {
        sortDir = sortKey === col.key ? -sortDir : (col.decimals == null ? 1 : -1);
        sortKey = col.key;
        head.querySelectorAll("th").forEach((h) => h.classList.remove("sorted-asc", "sorted-desc"));
        th.classList.add(sortDir > 0 ? "sorted-asc" : "sorted-desc");
        draw();
      });
      head.appendChild(th);
    });
    function cell(row, col) {
      const v = row[col.key];
      const td = el("td", { class: col.decimals == null ? "text" : "" });
      if (col.key === "system" && row.details) {
        td.appendChild(el("a", { href: "#" + row.details, text: v }));
      } else td.textContent = col.decimals == null ? (v == null ? "" : String(v)) : fmt(v, col.decimals);
      if (col.mark && row.worse) td.append(" *");
      if (col.ci && row[col.ci[0]] != null) {
        td.appendChild(el("span", { class: "ci",
          text: ` [${fmt(row[col.ci[0]], col.decimals)}, ${fmt(row[col.ci[1]], col.decimals)}]` }));
      }
      return td;
    }
    function draw() {
      const rows = lb.rows.slice();
      if (sortKey) {
        const col = lb.columns.find((c) => c.key === sortKey);
        rows.sort((a, b) => {
          const x = a[sortKey], y = b[sortKey];
          if (x == null && y == null) return 0;
          if (x == null) return 1;
          if (y == null) return -1;
          return (col.decimals == null ? String(x).localeCompare(String(y)) : x - y) * sortDir;
        });
      }
      body.replaceChildren(...rows.map((row) => {
        const tr = el("tr", { "data-system": row.system, class: row.best ? "best" : "" });
        lb.columns.forEach((col) => tr.appendChild(cell(row, col)));
        return tr;
      }));
    }
    table.append(el("thead", {}, head), body);
    draw();
    return table;
  }

  // --- charts --------------------------------------------------------------------------------
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }
  function chart(spec) {
    const box = el("div", { class: "chart", "data-chart": spec.id });
    box.appendChild(el("div", { class: "title", text: spec.title }));
    const W = spec.width || 620, H = spec.height || 300, L = 52, R = 12, T = 10, B = 46;
    const s = svg("svg", { width: W, height: H });
    const legend = el("div", { class: "legend" });
    box.append(s, legend);
    const hidden = new Set();
    const names = [...new Set(spec.series.map((ser) => ser.name))];  // seeds share a name
    names.forEach((name) => {
      const ser = { name };
      const item = el("span", { "data-series": ser.name },
        el("i", { style: `background:${colorOf(ser.name)}` }), ser.name);
      item.addEventListener("click", () => {
        hidden.has(ser.name) ? hidden.delete(ser.name) : hidden.add(ser.name);
        item.classList.toggle("off", hidden.has(ser.name));
        draw();
      });
      legend.appendChild(item);
    });
    function draw() {
      s.replaceChildren();
      const shown = spec.series.filter((ser) => !hidden.has(ser.name));
      const cats = spec.categories;
      const ys = shown.flatMap((ser) => ser.points.map((p) => p[1])).filter((v) => v != null);
      const yMax = niceMax(Math.max(0, ...ys)), yMin = -niceMax(Math.max(0, ...ys.map((v) => -v)));
      const yLow = Math.min(...ys, 0) < 0 ? yMin : 0;
      let xMin = 0, xMax = 1;
      if (!cats) {
        const xs = spec.series.flatMap((ser) => ser.points.map((p) => p[0]));
        xMin = Math.min(0, ...xs); xMax = Math.max(1, ...xs);
      }
      const pw = W - L - R, ph = H - T - B;
      const band = cats ? pw / cats.length : 0;
      const X = (x) => cats ? L + band * (x + 0.5) : L + (pw * (x - xMin)) / (xMax - xMin || 1);
      const Y = (y) => T + ph - (ph * (y - yLow)) / (yMax - yLow);
      for (let i = 0; i <= 5; i++) {
        const v = yLow + ((yMax - yLow) * i) / 5;
        svg("line", { x1: L, x2: L + pw, y1: Y(v), y2: Y(v), stroke: "#eee" }, s);
        svg("text", { x: L - 4, y: Y(v) + 4, "text-anchor": "end", text: fmt(v, yMax - yLow < 5 ? 2 : 0) }, s);
      }
      if (cats) {
        cats.forEach((c, i) => svg("text", { x: X(i), y: T + ph + 14, "text-anchor": "middle", text: c }, s));
      } else {
        for (let i = 0; i <= 5; i++) {
          const v = xMin + ((xMax - xMin) * i) / 5;
          svg("text", { x: X(v), y: T + ph + 14, "text-anchor": "middle", text: fmt(v, 0) }, s);
        }
      }
      svg("line", { x1: L, x2: L + pw, y1: Y(0), y2: Y(0), stroke: "#888" }, s);
      svg("line", { x1: L, x2: L, y1: T, y2: T + ph, stroke: "#888" }, s);
      svg("text", { x: L + pw / 2, y: H - 6, "text-anchor": "middle", text: spec.xlabel || "" }, s);
      svg("text", { x: 12, y: T + ph / 2, "text-anchor": "middle",
        transform: `rotate(-90 12 ${T + ph / 2})`, text: spec.ylabel || "" }, s);
      const shownNames = names.filter((n) => !hidden.has(n));
      spec.series.forEach((ser) => {
        if (hidden.has(ser.name)) return;
        const pts = ser.points.filter((p) => p[1] != null);
        const label = (p) => `${ser.name}\n${spec.xlabel}: ${cats ? cats[p[0]] : fmt(p[0], 0)}\n${spec.ylabel}: ${fmt(p[1], 2)}`;
        if (spec.kind === "bar") {
          const n = shownNames.length, w = (band * 0.8) / n, j = shownNames.indexOf(ser.name);
          pts.forEach((p) => {
            const r = svg("rect", { x: X(p[0]) - band * 0.4 + j * w, y: Math.min(Y(p[1]), Y(0)),
              width: Math.max(1, w - 1), height: Math.abs(Y(0) - Y(p[1])), fill: colorOf(ser.name), class: "pt" }, s);
            r.addEventListener("mousemove", (ev) => showTip(ev, label(p)));
            r.addEventListener("mouseleave", hideTip);
          });
          return;
        }
        if (pts.length > 1) {
          svg("path", { d: pts.map((p, i) => `${i ? "L" : "M"}${X(p[0])},${Y(p[1])}`).join(""),
            fill: "none", stroke: colorOf(ser.name), "stroke-width": 1.8,
            "stroke-dasharray": ser.dashed ? "5 3" : "" }, s);
        }
        pts.forEach((p) => {
          const c = svg("circle", { cx: X(p[0]), cy: Y(p[1]), r: 3.5, fill: colorOf(ser.name), class: "pt" }, s);
          c.addEventListener("mousemove", (ev) => showTip(ev, label(p)));
          c.addEventListener("mouseleave", hideTip);
        });
      });
    }
    draw();
    return box;
  }

  // --- attention matrices --------------------------------------------------------------------
  const blobs = new Map();
  function blob(sys, key) {
    const id = sys.name + "\u0000" + key;
    if (!blobs.has(id)) blobs.set(id, bytesOf(sys[key]));
    return blobs.get(id);
  }
  // The displayed matrix of one system: row and column labels, the word each column belongs to
  // (the source word index shared by all systems), weights (rows x cols) and the links.
  function hypMatrix(sys, i, words, layer, head) {
    const e = sys.sentences[i];
    const T = e.tgt.pieces.length, S = e.src.pieces.length;
    const bytes = blob(sys, "att");
    const w = new Float32Array(T * S);
    const heads = sys.arch === "transformer" ? sys.heads : 1;
    const picked = sys.arch === "transformer" ? (head === "avg" ? [...Array(heads).keys()] : [head]) : [0];
    for (const h of picked) {
      const off = e.off + (sys.arch === "transformer" ? (layer * heads + h) * T * S : 0);
      for (let k = 0; k < T * S; k++) w[k] += bytes[off + k] / DATA.explorer.levels / picked.length;
    }
    if (!words) {
      return { rows: e.tgt.pieces, cols: e.src.pieces, colWord: e.src.ids, w, T, S };
    }
    const nT = e.tgt.words.length, nS = e.src.words.length;
    const out = new Float32Array(nT * nS), count = new Float32Array(nT);
    for (let t = 0; t < T; t++) count[e.tgt.ids[t]] += 1;
    for (let t = 0; t < T; t++) {
      for (let c = 0; c < S; c++) {
        out[e.tgt.ids[t] * nS + e.src.ids[c]] += w[t * S + c] / count[e.tgt.ids[t]];
      }
    }
    return { rows: e.tgt.words, cols: e.src.words, colWord: [...Array(nS).keys()], w: out, T: nT, S: nS };
  }
  function goldMatrix(sys, i) {
    const e = sys.gold[i];
    if (!e) return null;
    const X = DATA.explorer;
    const rows = X.references[i].split(/\s+/).filter(Boolean);
    const cols = X.sources[i].split(/\s+/).filter(Boolean);
    const T = rows.length, S = cols.length, bytes = blob(sys, "gatt");
    const w = new Float32Array(T * S);
    for (let k = 0; k < T * S; k++) w[k] = bytes[e.off + k] / X.levels;
    return { rows, cols, colWord: [...Array(S).keys()], w, T, S, links: e.links, aer: e.aer,
      sure: X.gold.sure[i], possible: X.gold.possible[i] };
  }
  // Source words (column word ids) row r attends to: the argmax and every other column with at
  // least half of the row's largest weight, except the source end marker </s> (the last column),
  // which collects the weight of "nothing to align" and would be marked on every row.
  function argmaxCol(m, r) {
    let max = 0, best = -1;
    for (let c = 0; c < m.S; c++) if (m.w[r * m.S + c] > max) { max = m.w[r * m.S + c]; best = c; }
    return best;
  }
  function attended(m, r) {
    const best = argmaxCol(m, r), out = new Set();
    if (best < 0) return out;
    const max = m.w[r * m.S + best];
    out.add(m.colWord[best]);
    const end = m.cols[m.S - 1] === "</s>" ? m.S - 1 : m.S;
    for (let c = 0; c < end; c++) if (m.w[r * m.S + c] >= 0.5 * max) out.add(m.colWord[c]);
    return out;
  }
  function argmaxWord(m, r) {
    const best = argmaxCol(m, r);
    return best < 0 ? null : m.colWord[best];
  }

  function heatmap(m, sysIndex, onHover) {
    const longest = (xs) => Math.max(3, ...xs.map((x) => x.length));
    const cell = Math.max(9, Math.min(18, Math.floor(560 / Math.max(m.S, m.T))));
    const left = Math.min(200, 8 * longest(m.rows) + 10), top = Math.min(150, 6.5 * longest(m.cols) + 12);
    const s = svg("svg", { class: "heat", width: left + cell * m.S + 0.6 * top, height: top + cell * m.T + 4,
      "data-system": sysIndex });
    const g = svg("g", { transform: `translate(${left},${top})` }, s);
    for (let t = 0; t < m.T; t++) {
      svg("rect", { x: -left, y: t * cell, width: left + cell * m.S, height: cell, fill: "none",
        class: "row", "data-row": t }, g);
      for (let c = 0; c < m.S; c++) {
        const v = m.w[t * m.S + c];
        if (v < 0.01) continue;
        const r = svg("rect", { x: c * cell, y: t * cell, width: cell, height: cell,
          fill: "#2166ac", "fill-opacity": Math.min(1, v).toFixed(3) }, g);
        r.addEventListener("mousemove", (ev) => showTip(ev, `${m.rows[t]} \u2192 ${m.cols[c]}: ${fmt(v, 3)}`));
        r.addEventListener("mouseleave", hideTip);
      }
    }
    for (let c = 0; c < m.S; c++) {
      svg("rect", { x: c * cell, y: 0, width: cell, height: cell * m.T, fill: "none", class: "col",
        "data-word": m.colWord[c] }, g);
    }
    svg("rect", { x: 0, y: 0, width: cell * m.S, height: cell * m.T, fill: "none", stroke: "#bbb" }, g);
    if (m.sure) {  // gold: sure links as solid squares, possible as dashed; model links as dots
      const box = (pairs, dash) => pairs.forEach(([sw, tw]) => svg("rect", { x: sw * cell + 1.5,
        y: tw * cell + 1.5, width: cell - 3, height: cell - 3, fill: "none", stroke: "#111",
        "stroke-width": 1.5, "stroke-dasharray": dash, class: dash ? "possible" : "sure" }, g));
      box(m.sure, "");
      box(m.possible, "2 2");
      m.links.forEach(([sw, tw]) => svg("circle", { cx: (sw + 0.5) * cell, cy: (tw + 0.5) * cell,
        r: Math.max(2, cell / 5), fill: "#e67e22", class: "link" }, g));
    }
    m.cols.forEach((label, c) => svg("text", { class: "src", "data-word": m.colWord[c],
      transform: `translate(${c * cell + cell / 2 + 4},-4) rotate(-60)`, text: label }, g));
    m.rows.forEach((label, t) => {
      const txt = svg("text", { class: "tgt", "data-row": t, x: -4, y: t * cell + cell / 2 + 4,
        "text-anchor": "end", text: label }, g);
      txt.addEventListener("mouseenter", () => onHover(sysIndex, t));
    });
    return s;
  }

  // --- sentence explorer ---------------------------------------------------------------------
  function explorer(X) {
    const state = { sent: 0, words: true, view: "hyp", layer: {}, head: {}, hover: null };
    X.systems.forEach((sys, k) => {
      if (sys.arch === "transformer") { state.layer[k] = sys.layers - 1; state.head[k] = "avg"; }
    });
    const root = el("div", { class: "explorer" });
    const picker = el("div", { class: "picker" });
    const main = el("div", { class: "sentence" });
    root.append(picker, main);
    const num = el("input", { type: "number", min: 1, max: X.sources.length, value: 1, id: "sent-number" });
    const search = el("input", { type: "search", placeholder: "search source, reference, hypotheses", id: "sent-search" });
    const order = el("select", { id: "sent-order" },
      el("option", { value: "number", text: "in order" }),
      ...(X.spread.some((v) => v != null) ? [el("option", { value: "spread", text: "most disagreement first (chrF spread)" })] : []),
      ...(X.gold ? [el("option", { value: "aer", text: "worst mean AER first" })] : []));
    const list = el("ol", { id: "sent-list" });
    picker.append(el("label", { text: "sentence number" }), num, search, order, list);
    num.addEventListener("change", () => select(Math.max(1, Math.min(X.sources.length, +num.value || 1)) - 1));
    search.addEventListener("input", fillList);
    order.addEventListener("change", fillList);
    const meanAer = X.sources.map((_, i) => {
      const v = X.systems.map((s) => s.gold && s.gold[i] ? s.gold[i].aer : null).filter((x) => x != null);
      return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
    });

    function fillList() {
      const q = search.value.trim().toLowerCase();
      let idx = [...X.sources.keys()];
      if (q) {
        idx = idx.filter((i) => X.sources[i].toLowerCase().includes(q)
          || (X.references && X.references[i].toLowerCase().includes(q))
          || X.systems.some((s) => s.sentences[i].hyp.toLowerCase().includes(q)));
      }
      const key = order.value === "spread" ? X.spread : order.value === "aer" ? meanAer : null;
      if (key) idx.sort((a, b) => (key[b] ?? -1) - (key[a] ?? -1));
      list.replaceChildren(...idx.slice(0, 300).map((i) => {
        const extra = key && key[i] != null ? ` (${fmt(key[i], order.value === "aer" ? 3 : 1)})` : "";
        const li = el("li", { "data-sentence": i, class: i === state.sent ? "current" : "" },
          el("b", { text: `${i + 1}${extra}` }), X.sources[i].slice(0, 90));
        li.addEventListener("click", () => select(i));
        return li;
      }));
      if (idx.length > 300) list.appendChild(el("li", { text: `… ${idx.length - 300} more: refine the search` }));
    }
    function select(i) {
      state.sent = i;
      state.hover = null;
      num.value = i + 1;
      list.querySelectorAll("li").forEach((li) => li.classList.toggle("current", +li.dataset.sentence === i));
      drawSentence();
    }
    function matrix(k) {
      const sys = X.systems[k];
      return state.view === "gold" ? goldMatrix(sys, state.sent)
        : hypMatrix(sys, state.sent, state.words, state.layer[k], state.head[k]);
    }
    let shown = [];  // [svg, matrix] per system
    function onHover(k, r) {
      state.hover = { sys: k, row: r, words: attended(shown[k][1], r) };
      highlight();
    }
    // The hovered target word's attended source words, in every heatmap: in the gold view all
    // systems share the target words, so each shows its own row r; otherwise every system marks
    // the same source words and the rows of its own output whose largest weight is on one of them.
    function highlight() {
      const h = state.hover;
      shown.forEach(([s, m], k) => {
        if (!s) return;
        let words = new Set(), rows = new Set();
        if (h) {
          if (state.view === "gold" || k === h.sys) {
            if (h.row < m.T) { words = state.view === "gold" ? attended(m, h.row) : h.words; rows.add(h.row); }
          } else {
            words = h.words;
            for (let t = 0; t < m.T; t++) if (words.has(argmaxWord(m, t))) rows.add(t);
          }
        }
        s.querySelectorAll("text.src").forEach((n) => n.classList.toggle("hl", words.has(+n.dataset.word)));
        s.querySelectorAll("rect.col").forEach((n) => n.classList.toggle("colhl", words.has(+n.dataset.word)));
        s.querySelectorAll("text.tgt").forEach((n) => n.classList.toggle("hl", rows.has(+n.dataset.row)));
        s.querySelectorAll("rect.row").forEach((n) => n.classList.toggle("rowhl", rows.has(+n.dataset.row)));
      });
    }
    const texts = el("div", { class: "texts" });
    const controls = el("div", { class: "controls" });
    const cards = el("div", { class: "cards", id: "cards" });
    main.append(texts, controls, cards);
    const wordsBox = el("input", { type: "checkbox", id: "merge-words", checked: "" });
    wordsBox.addEventListener("change", () => { state.words = wordsBox.checked; drawSentence(); });
    controls.append(el("label", {}, wordsBox, " merge subwords into words"));
    if (X.gold) {
      const view = el("select", { id: "view" },
        el("option", { value: "hyp", text: "attention on each system's translation" }),
        el("option", { value: "gold", text: "attention on the reference, gold links" }));
      view.addEventListener("change", () => { state.view = view.value; drawSentence(); });
      controls.append(el("label", {}, "view ", view));
      controls.append(el("span", { class: "muted",
        text: "gold: solid square = sure link, dashed = possible; orange dot = the model's link" }));
    }

    function drawSentence() {
      const i = state.sent;
      texts.replaceChildren(
        el("div", {}, el("span", { class: "lab", text: `source ${i + 1}` }), X.sources[i]),
        X.references ? el("div", {}, el("span", { class: "lab", text: "reference" }), X.references[i]) : null);
      wordsBox.disabled = state.view === "gold";
      shown = [];
      cards.replaceChildren(...X.systems.map((sys, k) => {
        const e = sys.sentences[i];
        const card = el("div", { class: "card", "data-system": k });
        card.appendChild(el("div", { class: "name", text: sys.name }));
        card.appendChild(el("div", { class: "hyp", text: e.hyp || "(empty)" }));
        const sc = [];
        if (e.chrf != null) sc.push(`chrF ${fmt(e.chrf, 1)}`, `BLEU ${fmt(e.bleu, 1)}`);
        if (state.view === "gold" && sys.gold && sys.gold[i]) sc.push(`AER ${fmt(sys.gold[i].aer, 3)} (${sys.method})`);
        if (sc.length) card.appendChild(el("div", { class: "scores", text: sc.join(" · ") }));
        if (sys.arch === "transformer" && state.view !== "gold") {
          const layer = el("select", { class: "layer" }, ...[...Array(sys.layers).keys()].map((l) =>
            el("option", { value: l, text: `layer ${l + 1}` })));
          layer.value = state.layer[k];
          const head = el("select", { class: "head" }, el("option", { value: "avg", text: "head average" }),
            ...[...Array(sys.heads).keys()].map((h) => el("option", { value: h, text: `head ${h + 1}` })));
          head.value = state.head[k];
          layer.addEventListener("change", () => { state.layer[k] = +layer.value; drawSentence(); });
          head.addEventListener("change", () => {
            state.head[k] = head.value === "avg" ? "avg" : +head.value; drawSentence();
          });
          card.appendChild(el("div", {}, layer, " ", head));
        }
        const m = matrix(k);
        if (!m) {
          card.appendChild(el("div", { class: "muted", text: "no word-level attention: the pieces do not spell the gold words" }));
          shown.push([null, null]);
          return card;
        }
        const s = heatmap(m, k, onHover);
        shown.push([s, m]);
        card.appendChild(s);
        return card;
      }));
      highlight();
    }
    fillList();
    select(0);
    return root;
  }

  // --- the page ------------------------------------------------------------------------------
  // One run's details, folded: the leaderboard's link to it (#run-k) unfolds it.
  function details(d) {
    const box = el("details", { id: d.id, class: "details" });
    box.appendChild(el("summary", { text: d.title }));
    if (d.links) box.appendChild(el("div", {}, ...d.links.map((l) => el("a", { href: l.href, text: l.text, style: "margin-right:12px" }))));
    const kv = el("table", { class: "kv" });
    for (const [k, v] of Object.entries(d.metrics || {})) kv.appendChild(el("tr", {}, el("td", { text: k }), el("td", { text: String(v) })));
    box.appendChild(kv);
    if (d.chart) box.appendChild(chart(d.chart));
    if (d.config) box.appendChild(el("pre", { class: "config", text: d.config }));
    return box;
  }
  function openHash() {
    const target = location.hash && document.getElementById(location.hash.slice(1));
    if (target && target.tagName === "DETAILS") { target.open = true; target.scrollIntoView(); }
  }
  window.addEventListener("hashchange", openHash);

  app.appendChild(el("h1", { text: DATA.title || "nmt" }));
  if (DATA.subtitle) app.appendChild(el("div", { class: "muted", text: DATA.subtitle }));
  const nav = el("nav");
  app.appendChild(nav);
  function section(id, title, ...content) {
    nav.appendChild(el("a", { href: "#" + id, text: title }));
    app.appendChild(el("h2", { id, text: title }));
    content.forEach((c) => app.appendChild(c));
  }
  if (DATA.leaderboard) {
    section("sec-leaderboard", "Leaderboard", leaderboard(DATA.leaderboard),
      ...(DATA.leaderboard.notes || []).map((n) => el("p", { class: "muted", text: n })));
  }
  if (DATA.charts && DATA.charts.length) section("sec-charts", "Figures", el("div", { class: "charts" }, ...DATA.charts.map(chart)));
  if (DATA.explorer) section("sec-explorer", "Sentence explorer", explorer(DATA.explorer));
  if (DATA.details && DATA.details.length) section("sec-details", "Runs", ...DATA.details.map(details));
  openHash();
  window.nmtReady = true;
}).catch((err) => {
  document.getElementById("app").textContent = "This page could not be read: " + err;
  throw err;
});
