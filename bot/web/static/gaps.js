/*
 * Knowledge gaps: topics of messages the bot did not answer well, largest first. Open one to
 * see its messages and the agents' replies; accept it as a new intent with an answer, merge it
 * into a known intent, or dismiss it. Accepting and merging queue the gated retraining.
 */
"use strict";

(() => {
  const { Client, el, num, when, announce, signIn } = Deskbot;
  const client = new Client("deskbot.adminKey");
  const ACTIVE_RUN = new Set(["queued", "running"]);
  let intents = [];
  let minExamples = 0;
  let current = null;
  let pollTimer = null;

  function trendText(t) {
    if (t.trend === null || t.trend === undefined) return t.previous ? "" : "new this period";
    const sign = t.trend > 0 ? "+" : "";
    return `${sign}${Math.round(t.trend * 100)}% (${t.previous} before)`;
  }

  function noveltyBadge(t) {
    const label = t.novelty === "new" ? "new" : "existing";
    const title = t.nearest_intent
      ? `nearest intent ${t.nearest_intent}, similarity ${num(t.similarity)}` : "no known intents";
    return el("span", { class: `badge ${label}`, title, text: label });
  }

  async function loadTopics() {
    clearTimeout(pollTimer);
    const status = document.getElementById("gap-status").value;
    const box = document.getElementById("topics");
    let data;
    try {
      data = await client.get(`/api/v1/admin/gaps?status=${encodeURIComponent(status)}`);
    } catch (err) {
      box.replaceChildren(el("p", { class: "error-text", text: err.message }));
      return;
    }
    intents = data.intents || [];
    minExamples = data.min_examples || 0;
    const run = data.last_run;
    document.getElementById("last-run").textContent = run
      ? `Last mining run #${run.id}: ${run.status}${run.finished_at ? `, ${when(run.finished_at)}` : ""}`
      : "Not mined yet.";
    if (run && ACTIVE_RUN.has(run.status)) pollTimer = setTimeout(loadTopics, 2000);
    const topics = data.topics || [];
    if (!topics.length) {
      box.replaceChildren(el("p", { class: "muted", text: status === "open" ? "No open topics." : `No ${status} topics.` }));
      return;
    }
    box.replaceChildren(el("table", { "aria-label": "Topics" }, [
      el("thead", {}, [el("tr", {}, ["topic", "messages", "trend", "kind", "nearest intent"].map((t) => el("th", { text: t })))]),
      el("tbody", {}, topics.map((t) => el("tr", { "data-topic": String(t.id), "aria-current": current === t.id ? "true" : "false" }, [
        el("td", {}, [el("button", { type: "button", text: t.name, "aria-label": `Open topic ${t.name}`, onclick: () => openTopic(t.id) })]),
        el("td", { text: String(t.size) }),
        el("td", { text: trendText(t) }),
        el("td", {}, [noveltyBadge(t)]),
        el("td", { text: t.nearest_intent ? `${t.nearest_intent} (${num(t.similarity)})` : "–" }),
      ]))),
    ]));
  }

  async function openTopic(id) {
    current = id;
    document.querySelectorAll("#topics tr[data-topic]").forEach((tr) =>
      tr.setAttribute("aria-current", tr.dataset.topic === String(id) ? "true" : "false"));
    const box = document.getElementById("detail");
    let t;
    try {
      t = await client.get(`/api/v1/admin/gaps/${encodeURIComponent(id)}`);
    } catch (err) {
      box.replaceChildren(el("p", { class: "error-text", text: err.message }));
      return;
    }
    document.getElementById("detail-title").textContent = `Topic: ${t.name}`;
    const reasons = Object.entries(t.reasons || {}).map(([k, v]) => `${k.replaceAll("_", " ")} ${v}`).join(" · ");
    const parts = [
      el("p", {}, [noveltyBadge(t), ` ${t.size} messages · ${trendText(t)}`]),
      el("p", { class: "muted", text: `Key phrases: ${(t.key_phrases || []).join(", ") || "–"}` }),
      el("p", { class: "muted", text: `Why mined: ${reasons || "–"}` }),
      el("h3", { text: "Representative messages" }),
      el("ol", { class: "examples" }, (t.examples || []).map((x) => el("li", { text: x }))),
      el("details", {}, [
        el("summary", { text: `All ${(t.messages || []).length} messages` }),
        el("ol", {}, (t.messages || []).map((m) => el("li", { text: m.text }))),
      ]),
    ];
    if (t.status !== "open") {
      parts.push(el("p", { class: "muted", text: `${t.status}${t.intent ? ` as ${t.intent}` : ""} by ${t.resolved_by || "–"}, ${when(t.resolved_at)}` }));
      box.replaceChildren(...parts);
      return;
    }
    parts.push(acceptForm(t), mergeForm(t),
      el("div", { class: "actions" }, [el("button", { type: "button", class: "danger", text: "Dismiss topic", onclick: () => dismiss(t) })]));
    box.replaceChildren(...parts);
  }

  function acceptForm(t) {
    const answers = t.answers || [];
    const answerBox = el("textarea", { id: "accept-answer", rows: "4", required: true });
    answerBox.value = answers.length ? answers[0].text : "";
    const choices = answers.map((a, i) => el("label", {}, [
      el("input", { type: "radio", name: "answer-choice", value: String(i), checked: i === 0,
        onchange: () => { answerBox.value = a.text; } }),
      el("span", { text: `${a.text} (given ${a.count}×)` }),
    ]));
    const needed = t.examples_needed || 0;
    const form = el("form", { class: "accept", "aria-labelledby": "accept-title" }, [
      el("h3", { id: "accept-title", text: "Accept as a new intent" }),
      needed > 0
        ? el("p", { class: "needed", text: `${needed} more example${needed === 1 ? "" : "s"} needed (a new intent needs ${t.min_examples || minExamples}).` })
        : el("p", { class: "muted", text: `${t.size} examples (at least ${t.min_examples || minExamples} needed).` }),
      el("label", { for: "accept-intent", text: "Intent name" }),
      el("input", { id: "accept-intent", required: true, value: t.name.replace(/[^A-Za-z0-9]+/g, "_").toLowerCase() }),
      choices.length ? el("fieldset", { class: "answers" }, [el("legend", { text: "Agents' replies" }), ...choices])
        : el("p", { class: "muted", text: "No agent has answered these messages yet: write the answer." }),
      el("label", { for: "accept-answer", text: "Answer" }),
      answerBox,
      el("div", { class: "actions" }, [el("button", { type: "submit", class: "primary", disabled: needed > 0, text: "Accept and retrain" })]),
    ]);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const intent = document.getElementById("accept-intent").value.trim();
      try {
        const done = await client.post(`/api/v1/admin/gaps/${t.id}/accept`, { intent, answer: answerBox.value });
        announce(`Topic accepted as ${intent}; retraining queued (run ${done.run ? done.run.id : "–"}).`);
        afterResolve();
      } catch (err) {
        announce(`Could not accept: ${err.message}`, true);
      }
    });
    return form;
  }

  function mergeForm(t) {
    const select = el("select", { id: "merge-intent" }, intents.map((name) =>
      el("option", { value: name, text: name, selected: name === t.nearest_intent })));
    const form = el("form", { class: "merge", "aria-labelledby": "merge-title" }, [
      el("h3", { id: "merge-title", text: "Merge into an existing intent" }),
      el("label", { for: "merge-intent", text: "Intent" }),
      select,
      el("div", { class: "actions" }, [el("button", { type: "submit", disabled: !intents.length, text: "Merge and retrain" })]),
    ]);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        await client.post(`/api/v1/admin/gaps/${t.id}/merge`, { intent: select.value });
        announce(`Topic merged into ${select.value}; retraining queued.`);
        afterResolve();
      } catch (err) {
        announce(`Could not merge: ${err.message}`, true);
      }
    });
    return form;
  }

  async function dismiss(t) {
    try {
      await client.post(`/api/v1/admin/gaps/${t.id}/dismiss`);
      announce(`Topic ${t.name} dismissed.`);
      afterResolve();
    } catch (err) {
      announce(`Could not dismiss: ${err.message}`, true);
    }
  }

  function afterResolve() {
    current = null;
    document.getElementById("detail-title").textContent = "Topic";
    document.getElementById("detail").replaceChildren(el("p", { class: "empty", text: "Open a topic to see its messages and act on it." }));
    loadTopics();
  }

  document.getElementById("mine").addEventListener("click", async () => {
    try {
      const run = await client.post("/api/v1/admin/gaps/mine");
      announce(`Mining started (run ${run.id}).`);
    } catch (err) {
      announce(`Could not start mining: ${err.message}`, true);
    }
    loadTopics();
  });
  document.getElementById("gap-status").addEventListener("change", () => { afterResolve(); });

  signIn(client, "admin", () => { loadTopics(); });
})();
