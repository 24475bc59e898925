/*
 * Admin dashboard: metrics and charts over time, model versions (activate / roll back), the
 * confusion matrix of the active intent model, training runs with live progress, file import and
 * the messages the bot was least sure about, and the API keys (revoke).
 */
"use strict";

(() => {
  const { Client, el, pct, num, when, announce, signIn } = Deskbot;
  const client = new Client("deskbot.adminKey");
  const KINDS = ["intent", "index", "generator"];
  const ACTIVE_RUN = new Set(["queued", "running"]);
  let runsTimer = null;
  let confusionUrl = null;
  let finishedRuns = new Set();

  // ---- metrics -------------------------------------------------------------------------

  async function loadMetrics() {
    const days = document.getElementById("days").value;
    let data;
    try {
      data = await client.get(`/api/v1/admin/metrics?days=${encodeURIComponent(days)}`);
    } catch (err) {
      document.getElementById("kpis").replaceChildren(el("p", { class: "error-text", text: err.message }));
      return;
    }
    const s = data.summary || {};
    const lat = s.latency_ms || {};
    const kpi = (label, value) => el("div", { class: "kpi" }, [el("span", { text: label }), el("strong", { text: value })]);
    document.getElementById("kpis").replaceChildren(
      kpi("Messages", String(s.messages ?? "–")),
      kpi("Automation rate", pct(s.automation_rate)),
      kpi("Approval rate", pct(s.approval_rate)),
      kpi("Edit rate", pct(s.edit_rate)),
      kpi("Reject rate", pct(s.reject_rate)),
      kpi("Hand-off rate", pct(s.handoff_rate)),
      kpi("CSAT (1–5)", num(s.csat)),
      kpi("Latency p50 / p95", lat.p50 === undefined ? "–" : `${Math.round(lat.p50)} / ${Math.round(lat.p95)} ms`),
    );
    const top = (s.top_intents || []).slice(0, 8).map(([intent, count]) => `${intent} ${count}`).join(" · ");
    document.getElementById("top-intents").textContent = top ? `Top intents: ${top}` : "";

    const daily = data.daily || [];
    const labels = daily.map((d) => d.date);
    const col = (key) => daily.map((d) => (typeof d[key] === "number" ? d[key] : null));
    document.getElementById("charts").replaceChildren(
      Charts.lineChart({
        id: "chart-rates", title: "Automation, approval and hand-off rate", labels, min: 0, max: 1,
        format: (v) => `${Math.round(v * 100)}%`,
        series: [
          { name: "automation", color: "#2456d6", values: col("automation_rate") },
          { name: "approval", color: "#1d7a35", values: col("approval_rate") },
          { name: "hand-off", color: "#c2410c", values: col("handoff_rate") },
        ],
      }),
      Charts.lineChart({
        id: "chart-csat", title: "Customer satisfaction (CSAT, 1–5)", labels, min: 1, max: 5,
        format: (v) => v.toFixed(1),
        series: [{ name: "CSAT", color: "#7c3aed", values: col("csat") }],
      }),
      Charts.lineChart({
        id: "chart-latency", title: "Reply latency p50 (ms)", labels, min: 0,
        format: (v) => String(Math.round(v)),
        series: [{ name: "p50 ms", color: "#0f766e", values: col("latency_p50_ms") }],
      }),
      Charts.lineChart({
        id: "chart-messages", title: "Messages per day", labels, min: 0,
        format: (v) => String(Math.round(v)),
        series: [{ name: "messages", color: "#475569", values: col("messages") }],
      }),
    );
  }

  // ---- models --------------------------------------------------------------------------

  function metricsList(metrics) {
    const entries = Object.entries(metrics || {}).filter(([, v]) => typeof v === "number" || typeof v === "string");
    if (!entries.length) return el("span", { class: "muted", text: "–" });
    return el("ul", { class: "metrics-list" }, entries.slice(0, 8).map(([k, v]) =>
      el("li", {}, [el("span", { class: "muted", text: `${k} ` }), typeof v !== "number" ? v : Number.isInteger(v) ? String(v) : num(v, 3)])));
  }

  async function loadModels() {
    const box = document.getElementById("models");
    let active = null;
    try {
      const lists = await Promise.all(KINDS.map((kind) => client.get(`/api/v1/admin/models?kind=${kind}`)));
      const tables = KINDS.map((kind, i) => {
        const models = lists[i].models || [];
        const current = models.find((m) => m.status === "active");
        if (kind === "intent") active = current || null;
        const rows = models.map((m) => {
          const older = current && new Date(m.created_at) < new Date(current.created_at);
          const action = m.status === "active" ? el("span", { class: "muted", text: "in use" })
            : el("button", { type: "button", class: older ? "" : "primary",
              "aria-label": `${older ? "Roll back to" : "Activate"} ${kind} ${m.version}`,
              text: older ? "Roll back" : "Activate", onclick: () => activate(kind, m.version) });
          const reasons = m.report && (m.report.reasons || m.report.decision);
          return el("tr", { "data-kind": kind, "data-version": m.version }, [
            el("td", {}, [el("strong", { text: m.version })]),
            el("td", {}, [el("span", { class: `badge ${m.status}`, text: m.status })]),
            el("td", {}, [metricsList(m.metrics),
              reasons ? el("div", { class: "muted", text: Array.isArray(reasons) ? reasons.join("; ") : String(reasons) }) : null]),
            el("td", { text: when(m.created_at) }),
            el("td", { text: m.activated_at ? when(m.activated_at) : "–" }),
            el("td", {}, [action]),
          ]);
        });
        return el("div", { class: "model-kind" }, [
          el("h3", { text: `${kind} (${models.length})` }),
          models.length ? el("table", { class: "models-table", "aria-label": `${kind} model versions` }, [
            el("thead", {}, [el("tr", {}, ["version", "status", "metrics", "created", "activated", ""].map((t) => el("th", { text: t })))]),
            el("tbody", {}, rows),
          ]) : el("p", { class: "muted", text: "No versions yet." }),
        ]);
      });
      box.replaceChildren(...tables);
    } catch (err) {
      box.replaceChildren(el("p", { class: "error-text", text: `Could not load models: ${err.message}` }));
    }
    await loadConfusion(active);
  }

  async function activate(kind, version) {
    try {
      await client.post(`/api/v1/admin/models/${encodeURIComponent(kind)}/${encodeURIComponent(version)}/activate`);
      announce(`${kind} ${version} is now active.`);
    } catch (err) {
      announce(`Could not activate ${kind} ${version}: ${err.message}`, true);
    }
    await loadModels();
  }

  async function loadConfusion(active) {
    const box = document.getElementById("confusion");
    if (!active) {
      box.replaceChildren(el("p", { class: "muted", text: "No active intent model yet." }));
      return;
    }
    try {
      // <img> cannot send the API key, so fetch the picture and show it from a blob: URL.
      const blob = await client.blob(`/api/v1/admin/models/intent/${encodeURIComponent(active.version)}/confusion.png`);
      if (confusionUrl) URL.revokeObjectURL(confusionUrl);
      confusionUrl = URL.createObjectURL(blob);
      box.replaceChildren(el("img", { src: confusionUrl, alt: `Confusion matrix of intent model ${active.version} on its test set` }));
    } catch (err) {
      box.replaceChildren(el("p", { class: "muted", text: err.status === 404
        ? `Intent model ${active.version} has no confusion matrix.` : `Could not load it: ${err.message}` }));
    }
  }

  // ---- training runs and import ---------------------------------------------------------

  async function loadRuns() {
    clearTimeout(runsTimer);
    let runs = [];
    try {
      runs = (await client.get("/api/v1/admin/training-runs")).runs || [];
    } catch (err) {
      document.getElementById("runs").replaceChildren(el("p", { class: "error-text", text: err.message }));
    }
    renderRuns(runs);
    // Finished runs may have produced a model version: refresh those once.
    const justFinished = runs.filter((r) => !ACTIVE_RUN.has(r.status) && !finishedRuns.has(r.id));
    const first = finishedRuns.size === 0;
    justFinished.forEach((r) => finishedRuns.add(r.id));
    if (justFinished.length && !first) { loadModels(); loadMetrics(); }
    const busy = runs.some((r) => ACTIVE_RUN.has(r.status));
    runsTimer = setTimeout(loadRuns, busy ? 1500 : 15000);
  }

  function renderRuns(runs) {
    const box = document.getElementById("runs");
    if (!runs.length) { box.replaceChildren(el("p", { class: "muted", text: "No runs yet." })); return; }
    box.replaceChildren(el("table", { "aria-label": "Training runs" }, [
      el("thead", {}, [el("tr", {}, ["#", "kind", "status", "progress", "message", "started", ""].map((t) => el("th", { text: t })))]),
      el("tbody", {}, runs.slice(0, 20).map((r) => el("tr", { "data-run": String(r.id) }, [
        el("td", { text: String(r.id) }),
        el("td", { text: r.kind }),
        el("td", {}, [el("span", { class: `badge ${r.status}`, text: r.status })]),
        el("td", {}, [el("progress", { max: "1", value: String(r.progress || 0),
          "aria-label": `run ${r.id} progress` }), ` ${Math.round((r.progress || 0) * 100)}%`]),
        el("td", { text: r.message || "" }),
        el("td", { text: when(r.started_at || r.created_at) }),
        el("td", {}, [ACTIVE_RUN.has(r.status)
          ? el("button", { type: "button", class: "danger", text: "Cancel", onclick: () => cancelRun(r.id) }) : null]),
      ]))),
    ]));
  }

  async function cancelRun(id) {
    try {
      await client.post(`/api/v1/admin/training-runs/${id}/cancel`);
      announce(`Run ${id} cancelled.`);
    } catch (err) {
      announce(`Could not cancel run ${id}: ${err.message}`, true);
    }
    loadRuns();
  }

  document.getElementById("train-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const kind = document.getElementById("train-kind").value;
    const raw = document.getElementById("train-params").value.trim();
    let params;
    if (raw) {
      try {
        params = JSON.parse(raw);
        if (typeof params !== "object" || Array.isArray(params) || params === null) throw new Error("not an object");
      } catch (err) {
        announce("Parameters must be a JSON object, e.g. {\"epochs\": 3}.", true);
        return;
      }
    }
    try {
      const run = await client.post("/api/v1/admin/training-runs", params ? { kind, params } : { kind });
      announce(`Training run ${run.id} (${kind}) started.`);
    } catch (err) {
      announce(`Could not start training: ${err.message}`, true);
    }
    loadRuns();
  });

  document.getElementById("import-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const input = document.getElementById("import-file");
    if (!input.files.length) return;
    const form = new FormData();
    form.append("file", input.files[0]);
    try {
      const run = await client.request("POST", "/api/v1/admin/import", form);
      announce(`Import of ${input.files[0].name} started (run ${run.id}).`);
      input.value = "";
    } catch (err) {
      announce(`Import refused: ${err.message}`, true);
    }
    loadRuns();
  });

  // ---- uncertain messages ----------------------------------------------------------------

  async function loadUncertain() {
    const box = document.getElementById("uncertain");
    try {
      const { messages } = await client.get("/api/v1/admin/uncertain?limit=20");
      if (!messages.length) { box.replaceChildren(el("p", { class: "muted", text: "Nothing yet." })); return; }
      box.replaceChildren(el("table", { "aria-label": "Least certain messages" }, [
        el("thead", {}, [el("tr", {}, ["conversation", "message", "intent", "confidence", "verdict"].map((t) => el("th", { text: t })))]),
        el("tbody", {}, messages.map((m) => el("tr", {}, [
          el("td", { text: `#${m.conversation_id}` }),
          el("td", { text: m.text }),
          el("td", { text: m.intent || "–" }),
          el("td", { text: pct(m.confidence) }),
          el("td", { text: m.verdict || "–" }),
        ]))),
      ]));
    } catch (err) {
      box.replaceChildren(el("p", { class: "error-text", text: err.message }));
    }
  }

  // ---- API keys ------------------------------------------------------------------------

  async function loadKeys() {
    const box = document.getElementById("api-keys");
    try {
      const keys = (await client.get("/api/v1/admin/api-keys")).api_keys;
      if (!keys.length) { box.replaceChildren(el("p", { class: "muted", text: "No keys." })); return; }
      box.replaceChildren(el("table", { "aria-label": "Agent and admin keys" }, [
        el("thead", {}, [el("tr", {}, ["name", "role", "prefix", "status", "last used", "expires", ""].map((t) => el("th", { text: t })))]),
        el("tbody", {}, keys.map((k) => el("tr", { "data-key-id": String(k.id) }, [
          el("td", { text: k.name }),
          el("td", { text: k.role }),
          el("td", {}, [el("code", { text: k.prefix })]),
          el("td", {}, [el("span", { class: `badge ${k.status}`, text: k.status })]),
          el("td", { text: k.last_used_at ? when(k.last_used_at) : "–" }),
          el("td", { text: k.expires_at ? when(k.expires_at) : "never" }),
          el("td", {}, [k.status === "revoked" ? null : el("button", { type: "button",
            "aria-label": `Revoke the key of ${k.name} (${k.prefix})`, text: "Revoke", onclick: () => revokeKey(k) })]),
        ]))),
      ]));
    } catch (err) {
      box.replaceChildren(el("p", { class: "error-text", text: err.message }));
    }
  }

  async function revokeKey(k) {
    if (!window.confirm(`Revoke the ${k.role} key of ${k.name} (${k.prefix})?`)) return;
    try {
      await client.post(`/api/v1/admin/api-keys/${k.id}/revoke`);
      announce(`The key of ${k.name} is revoked.`);
    } catch (err) {
      announce(`Could not revoke the key: ${err.message}`, true);
    }
    await loadKeys();
  }

  document.getElementById("days").addEventListener("change", loadMetrics);

  signIn(client, "admin", () => {
    loadMetrics();
    loadModels();
    loadRuns();
    loadUncertain();
    loadKeys();
    setInterval(loadMetrics, 60000);
  });
})();
