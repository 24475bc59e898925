/*
 * Agent console: a live queue of hand-offs and suggested replies; a conversation view with its
 * history and the pending suggestion (intent, confidence, grounding, sources) to approve, edit and
 * send, or reject with an intent correction; take over and hand back; write replies.
 */
"use strict";

(() => {
  const { Client, el, pct, num, when, ago, announce, signIn } = Deskbot;
  const client = new Client("deskbot.agentKey");
  const queueList = document.getElementById("queue-list");
  const queueCount = document.getElementById("queue-count");
  const queueEmpty = document.getElementById("queue-empty");
  const pane = document.getElementById("conversation");

  let me = null;
  let current = null;          // {conversation, messages, suggestions} of the open conversation
  let items = [];              // queue items
  const edits = new Map();     // suggestion id -> {text, intent} typed but not sent
  let replyDraft = "";         // the free-text reply being written
  let refreshTimer = null;

  // ---- queue ---------------------------------------------------------------------------

  async function refreshQueue() {
    try {
      const res = await client.get("/api/v1/agent/queue");
      items = res.items || [];
      renderQueue();
    } catch (err) {
      announce(`Could not load the queue: ${err.message}`, true);
    }
  }

  function renderQueue() {
    queueList.replaceChildren(...items.map((item) => {
      const last = item.last_message || {};
      const selected = current && current.conversation.id === item.conversation_id;
      const label = item.kind === "handoff" ? "hand-off" : "suggestion";
      const button = el("button", {
        type: "button",
        "aria-current": selected ? "true" : "false",
        "data-conversation": String(item.conversation_id),
        onclick: () => openConversation(item.conversation_id),
      }, [
        el("span", { class: `badge ${item.kind}`, text: label }), " ",
        el("strong", { text: `#${item.conversation_id}` }), " ",
        el("span", { class: "muted", text: `waiting ${ago(item.waiting_since)}` }),
        item.assigned_agent ? el("span", { class: "muted", text: ` · ${item.assigned_agent}` }) : null,
        el("span", { class: "snippet", text: last.text || "" }),
      ]);
      return el("li", {}, [button]);
    }));
    queueCount.textContent = `(${items.length})`;
    queueEmpty.hidden = items.length > 0;
  }

  // ---- conversation --------------------------------------------------------------------

  async function openConversation(id, { focus = true } = {}) {
    try {
      const data = await client.get(`/api/v1/agent/conversations/${id}`);
      if (!current || current.conversation.id !== id) { edits.clear(); replyDraft = ""; }
      current = data;
      renderConversation();
      renderQueue();
      if (focus) pane.focus();
    } catch (err) {
      announce(`Could not open conversation #${id}: ${err.message}`, true);
    }
  }

  function messageItem(m) {
    const who = m.role === "agent" && m.author ? `agent ${m.author}` : m.role;
    const meta = [who, when(m.created_at)];
    if (m.intent) meta.push(`intent ${m.intent}${typeof m.confidence === "number" ? ` (${pct(m.confidence)})` : ""}`);
    return el("li", { class: m.role, "data-id": String(m.id) }, [
      el("span", { class: "meta", text: meta.join(" · ") }),
      el("span", { class: "text", text: m.text }),
    ]);
  }

  function appendMessage(m) {
    if (!current || m.conversation_id !== current.conversation.id) return;
    if (current.messages.some((x) => x.id === m.id)) return;
    current.messages.push(m);
    const list = document.getElementById("history");
    if (list) {
      list.append(messageItem(m));
      list.lastElementChild.scrollIntoView({ block: "nearest" });
    }
  }

  function renderConversation() {
    const { conversation: c, messages, suggestions } = current;
    const mine = me && c.assigned_agent === me.name;
    const head = el("div", { class: "conv-head card" }, [
      el("h2", { id: "conv-title", text: `Conversation #${c.id}` }),
      el("span", { class: `badge ${c.status}`, text: c.status }),
      el("span", { class: "muted", text: `${c.channel} · started ${when(c.created_at)}` }),
      el("span", { class: "muted", text: c.assigned_agent ? `assigned to ${c.assigned_agent}` : "unassigned" }),
      mine && c.status === "handoff" ? null
        : el("button", { type: "button", id: "claim", onclick: claim, text: "Take over" }),
      c.status === "handoff"
        ? el("button", { type: "button", id: "handback", onclick: handBack, text: "Hand back to bot" }) : null,
    ]);

    const history = el("ol", { id: "history", class: "history", "aria-label": "Messages",
      "aria-live": "polite", "aria-relevant": "additions" }, messages.map(messageItem));
    const historyCard = el("section", { class: "card", "aria-labelledby": "history-title" }, [
      el("h3", { id: "history-title", text: "History" }), history,
    ]);

    const pending = (suggestions || []).filter((s) => s.status === "pending");
    const cards = pending.map(suggestionCard);

    const replyBox = el("textarea", { id: "reply-text", rows: "3", value: replyDraft,
      oninput: (ev) => { replyDraft = ev.target.value; } });
    const replyForm = el("form", { class: "card", id: "reply-form", "aria-labelledby": "reply-title",
      onsubmit: sendReply }, [
      el("h3", { id: "reply-title", text: "Write a reply" }),
      el("label", { for: "reply-text", class: "sr-only", text: "Reply to the customer" }),
      replyBox,
      el("div", { class: "actions" }, [el("button", { type: "submit", class: "primary", text: "Send reply" })]),
    ]);

    const focused = document.activeElement && pane.contains(document.activeElement)
      ? document.activeElement.id : "";
    pane.replaceChildren(head, historyCard, ...cards, replyForm);
    if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
    history.lastElementChild && history.lastElementChild.scrollIntoView({ block: "nearest" });
  }

  function suggestionCard(s) {
    const edit = edits.get(s.id) || { text: s.draft, intent: s.intent || "" };
    const textId = `draft-${s.id}`;
    const intentId = `intent-${s.id}`;
    const reasonId = `reason-${s.id}`;
    const intents = [...new Set([s.intent, ...(s.sources || []).map((x) => x.intent)].filter(Boolean))];

    const sendButton = el("button", { type: "button", class: "primary send-suggestion" });
    const textArea = el("textarea", { id: textId, rows: "5", value: edit.text, oninput: update });
    const intentInput = el("input", { id: intentId, list: `intents-${s.id}`, value: edit.intent,
      oninput: update });
    const reasonInput = el("input", { id: reasonId, placeholder: "optional" });

    function update() {
      edits.set(s.id, { text: textArea.value, intent: intentInput.value });
      const edited = textArea.value.trim() !== s.draft.trim();
      sendButton.textContent = edited ? "Send edited reply" : "Approve and send";
      sendButton.dataset.mode = edited ? "edit" : "approve";
    }
    update();
    sendButton.addEventListener("click", () => decide(s, sendButton.dataset.mode, textArea, intentInput));

    const sources = el("ol", { class: "sources" }, (s.sources || []).map((src) => el("li", {}, [
      el("div", { class: "q", text: src.question || "" }),
      el("div", { class: "muted", text: `score ${num(src.score)} · intent ${src.intent || "–"} · pair #${src.pair_id}` }),
      el("details", {}, [el("summary", { text: "Answer" }), el("div", { class: "a", text: src.answer || "" })]),
    ])));

    return el("section", { class: "card suggestion-card", "data-suggestion": String(s.id),
      "aria-labelledby": `sugg-title-${s.id}` }, [
      el("h3", { id: `sugg-title-${s.id}`, text: "Suggested reply" }),
      el("div", { class: "scores" }, [
        el("div", {}, [el("span", { class: "muted", text: "Intent" }), el("strong", { class: "intent", text: s.intent || "–" })]),
        el("div", {}, [el("span", { class: "muted", text: "Confidence" }), el("strong", { class: "confidence", text: pct(s.confidence) })]),
        el("div", {}, [el("span", { class: "muted", text: "Grounding" }), el("strong", { class: "grounding", text: num(s.grounding) })]),
      ]),
      el("label", { for: textId, text: "Reply (edit before sending if needed)" }),
      textArea,
      el("div", { class: "actions" }, [
        el("div", {}, [
          el("label", { for: intentId, text: "Intent (correct it if wrong)" }),
          intentInput,
          el("datalist", { id: `intents-${s.id}` }, intents.map((i) => el("option", { value: i }))),
        ]),
        sendButton,
        el("div", {}, [el("label", { for: reasonId, text: "Reject reason" }), reasonInput]),
        el("button", { type: "button", class: "danger reject-suggestion", text: "Reject",
          onclick: () => reject(s, intentInput, reasonInput) }),
      ]),
      el("h3", { text: `Sources (${(s.sources || []).length})` }),
      sources,
    ]);
  }

  function corrected(s, intentInput) {
    const value = intentInput.value.trim();
    return value && value !== s.intent ? value : undefined;
  }

  async function decide(s, mode, textArea, intentInput) {
    const intent = corrected(s, intentInput);
    const body = mode === "edit" ? { text: textArea.value.trim() } : {};
    if (intent) body.intent = intent;
    if (mode === "edit" && !body.text) { announce("The reply is empty.", true); return; }
    try {
      await client.post(`/api/v1/agent/suggestions/${s.id}/${mode}`, body);
      edits.delete(s.id);
      announce(mode === "edit" ? "Edited reply sent." : "Reply approved and sent.");
      await Promise.all([openConversation(s.conversation_id, { focus: false }), refreshQueue()]);
    } catch (err) {
      announce(`Not sent: ${err.message}`, true);
    }
  }

  async function reject(s, intentInput, reasonInput) {
    const body = {};
    const intent = corrected(s, intentInput);
    if (intent) body.intent = intent;
    if (reasonInput.value.trim()) body.reason = reasonInput.value.trim();
    try {
      await client.post(`/api/v1/agent/suggestions/${s.id}/reject`, body);
      edits.delete(s.id);
      announce("Suggestion rejected.");
      await Promise.all([openConversation(s.conversation_id, { focus: false }), refreshQueue()]);
    } catch (err) {
      announce(`Could not reject: ${err.message}`, true);
    }
  }

  async function claim() {
    const id = current.conversation.id;
    try {
      await client.post(`/api/v1/agent/conversations/${id}/claim`);
      announce(`You took over conversation #${id}.`);
      await Promise.all([openConversation(id, { focus: false }), refreshQueue()]);
      const box = document.getElementById("reply-text");
      if (box) box.focus();
    } catch (err) {
      announce(`Could not take over: ${err.message}`, true);
    }
  }

  async function handBack() {
    const id = current.conversation.id;
    try {
      await client.post(`/api/v1/agent/conversations/${id}/handback`);
      announce(`Conversation #${id} is back with the bot.`);
      await Promise.all([openConversation(id, { focus: false }), refreshQueue()]);
    } catch (err) {
      announce(`Could not hand back: ${err.message}`, true);
    }
  }

  async function sendReply(ev) {
    ev.preventDefault();
    const box = document.getElementById("reply-text");
    const text = box.value.trim();
    if (!text) return;
    const id = current.conversation.id;
    box.disabled = true;
    try {
      const res = await client.post(`/api/v1/agent/conversations/${id}/messages`, { text });
      replyDraft = "";
      box.value = "";
      appendMessage(res.message);
      announce("Reply sent.");
      await Promise.all([openConversation(id, { focus: false }), refreshQueue()]);
    } catch (err) {
      announce(`Not sent: ${err.message}`, true);
    } finally {
      const again = document.getElementById("reply-text");
      if (again) { again.disabled = false; again.focus(); }
    }
  }

  // ---- live ----------------------------------------------------------------------------

  function onQueue(event) {
    clearTimeout(refreshTimer);
    // Several changes often come together (message, suggestion, status): refresh once.
    refreshTimer = setTimeout(() => {
      refreshQueue();
      if (current && event && event.conversation_id === current.conversation.id) {
        openConversation(current.conversation.id, { focus: false });
      }
    }, 150);
  }

  signIn(client, "agent", (who) => {
    me = who;
    refreshQueue();
    client.events("/api/v1/agent/events", { queue: onQueue, message: appendMessage }, () => {
      refreshQueue();
      if (current) openConversation(current.conversation.id, { focus: false });
    });
    setInterval(renderQueue, 30000);   // keep "waiting 3m" current
  });
})();
