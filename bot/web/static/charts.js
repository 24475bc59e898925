/*
 * Tiny SVG line charts for the admin dashboard (no library). Each chart is a <figure> with an
 * accessible name and its numbers in a table under "Show data".
 */
"use strict";

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const W = 480, H = 200, PAD = { l: 46, r: 12, t: 10, b: 26 };

  function svg(tag, attrs = {}, text) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /**
   * lineChart({id, title, labels: ["2024-05-01", ...], series: [{name, color, values: [n|null]}],
   *            min, max, format: (n) => "text"})
   */
  function lineChart({ id, title, labels, series, min, max, format = String }) {
    const { el } = Deskbot;
    const all = series.flatMap((s) => s.values).filter((v) => typeof v === "number" && isFinite(v));
    let lo = min !== undefined ? min : Math.min(0, ...all);
    // Without a fixed top, round up to a multiple of 4 so the 5 grid labels are whole numbers.
    let hi = max !== undefined ? max : Math.max(4, Math.ceil((Math.max(0, ...all) * 1.1) / 4) * 4);
    if (!(hi > lo)) hi = lo + 1;
    const n = labels.length;
    const x = (i) => PAD.l + (n <= 1 ? (W - PAD.l - PAD.r) / 2 : (i * (W - PAD.l - PAD.r)) / (n - 1));
    const y = (v) => PAD.t + (1 - (v - lo) / (hi - lo)) * (H - PAD.t - PAD.b);

    const last = series.map((s) => {
      const vals = s.values.filter((v) => typeof v === "number");
      return `${s.name} ${vals.length ? format(vals[vals.length - 1]) : "no data"}`;
    }).join(", ");
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img",
      "aria-label": `${title}, ${n} days; latest: ${last}` });

    for (let k = 0; k <= 4; k++) {             // grid and y labels
      const v = lo + ((hi - lo) * k) / 4;
      root.append(svg("line", { x1: PAD.l, x2: W - PAD.r, y1: y(v), y2: y(v), stroke: "#e4e7eb" }));
      root.append(svg("text", { x: PAD.l - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 11,
        fill: "#5b6470" }, format(v)));
    }
    const step = Math.max(1, Math.ceil(n / 6));  // x labels: at most ~6
    labels.forEach((label, i) => {
      if (i % step && i !== n - 1) return;
      root.append(svg("text", { x: x(i), y: H - 8, "text-anchor": "middle", "font-size": 11,
        fill: "#5b6470" }, String(label).slice(5)));
    });

    for (const s of series) {
      let d = "";
      let pen = false;
      s.values.forEach((v, i) => {
        if (typeof v !== "number" || !isFinite(v)) { pen = false; return; }
        d += `${pen ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
        pen = true;
      });
      if (d) root.append(svg("path", { d, fill: "none", stroke: s.color, "stroke-width": 2.2,
        "class": "series", "data-series": s.name }));
      s.values.forEach((v, i) => {
        if (typeof v !== "number" || !isFinite(v)) return;
        const dot = svg("circle", { cx: x(i), cy: y(v), r: 3, fill: s.color });
        dot.append(svg("title", {}, `${s.name} ${labels[i]}: ${format(v)}`));
        root.append(dot);
      });
    }
    if (!all.length) {
      root.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", fill: "#5b6470" },
        "no data in this period"));
    }

    const legend = el("div", { class: "legend" }, series.map((s) => {
      const swatch = el("i");
      swatch.style.background = s.color;
      return el("span", {}, [swatch, s.name]);
    }));
    const table = el("table", {}, [
      el("thead", {}, [el("tr", {}, [el("th", { text: "date" }), ...series.map((s) => el("th", { text: s.name }))])]),
      el("tbody", {}, labels.map((label, i) => el("tr", {}, [
        el("td", { text: label }),
        ...series.map((s) => el("td", { text: typeof s.values[i] === "number" ? format(s.values[i]) : "–" })),
      ]))),
    ]);
    return el("div", { class: "chart", id }, [
      el("figure", {}, [el("figcaption", { text: title }), root, legend]),
      el("details", {}, [el("summary", { text: "Show data" }), table]),
    ]);
  }

  return { lineChart };
})();
