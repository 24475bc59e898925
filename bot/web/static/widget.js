/*
 * deskbot chat widget.
 *
 *   <script src="https://HOST/widget.js" data-title="Help" async></script>
 *
 * adds a chat launcher and panel to the page. Options (all optional), as data- attributes:
 *   data-api       base URL of the deskbot server (default: where widget.js came from)
 *   data-title     panel title                       (default "Chat with us")
 *   data-greeting  first line shown in the panel      (default a short hello)
 *   data-accent    CSS colour of the launcher/header  (default #2456d6)
 *   data-position  "right" or "left"                  (default "right")
 *   data-open      "true" opens the panel at load
 *
 * Everything lives in a shadow root, so the page's CSS cannot reach in and ours cannot leak out.
 * Text from the server or the customer is only ever set with textContent, never as HTML.
 */
(function () {
  "use strict";

  var script = document.currentScript;
  if (!script || window.__deskbotWidget) return;
  window.__deskbotWidget = true;

  var data = script.dataset;
  var API = (data.api || new URL(script.src, location.href).origin).replace(/\/+$/, "");
  var TITLE = data.title || "Chat with us";
  var GREETING = data.greeting || "Hi! Ask us anything and we'll answer right here.";
  var ACCENT = data.accent || "#2456d6";
  var LEFT = data.position === "left";
  var STORE_KEY = "deskbot.conversation:" + API;
  var RETRY_MAX_MS = 30000;

  var CSS = [
    ":host { all: initial; }",
    "* { box-sizing: border-box; }",
    ".root { position: fixed; bottom: 20px; " + (LEFT ? "left" : "right") + ": 20px; z-index: 2147483000;",
    "  font: 15px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; color: #1c1e21; }",
    ".launcher { width: 58px; height: 58px; border-radius: 50%; border: 0; cursor: pointer;",
    "  background: var(--accent); color: #fff; box-shadow: 0 4px 14px rgba(0,0,0,.25);",
    "  display: flex; align-items: center; justify-content: center; margin-left: auto; }",
    ".launcher svg { width: 28px; height: 28px; fill: currentColor; }",
    ".launcher:focus-visible, button:focus-visible, textarea:focus-visible {",
    "  outline: 3px solid #ffbf47; outline-offset: 2px; }",
    ".panel { width: min(370px, calc(100vw - 40px)); height: min(560px, calc(100vh - 110px));",
    "  background: #fff; border-radius: 14px; box-shadow: 0 8px 30px rgba(0,0,0,.28);",
    "  display: flex; flex-direction: column; overflow: hidden; margin-bottom: 12px; }",
    ".panel[hidden] { display: none; }",
    "header { background: var(--accent); color: #fff; padding: 12px 14px; display: flex;",
    "  align-items: center; gap: 8px; }",
    "header h2 { font-size: 16px; margin: 0; flex: 1; font-weight: 600; }",
    "header button { background: transparent; border: 0; color: #fff; font-size: 20px;",
    "  cursor: pointer; padding: 2px 6px; border-radius: 6px; }",
    ".log { flex: 1; overflow-y: auto; padding: 12px; margin: 0; list-style: none;",
    "  display: flex; flex-direction: column; gap: 8px; background: #f5f6f8; }",
    ".msg { max-width: 85%; padding: 8px 11px; border-radius: 12px; white-space: pre-wrap;",
    "  overflow-wrap: anywhere; }",
    ".msg.customer { align-self: flex-end; background: var(--accent); color: #fff;",
    "  border-bottom-right-radius: 4px; }",
    ".msg.bot, .msg.agent { align-self: flex-start; background: #fff; border: 1px solid #dde1e6;",
    "  border-bottom-left-radius: 4px; }",
    ".msg.agent { border-color: #9cc3a4; background: #f0faf2; }",
    ".msg.system, .notice { align-self: center; background: #fff8e1; color: #5d4a00;",
    "  border: 1px solid #f1dc8b; font-size: 13px; text-align: center; }",
    ".msg.pending { opacity: .7; }",
    ".msg.streaming .body::after { content: '\\2589'; animation: blink 1s steps(2) infinite; }",
    "@keyframes blink { 50% { opacity: 0; } }",
    ".who { display: block; font-size: 11px; font-weight: 600; color: #5b6470; margin-bottom: 2px; }",
    ".msg.customer .who { color: #e6ecff; }",
    ".fb { display: flex; gap: 4px; margin-top: 4px; align-items: center; font-size: 12px; color: #5b6470; }",
    ".fb button { border: 1px solid #cfd5dc; background: #fff; border-radius: 6px; cursor: pointer;",
    "  font-size: 13px; padding: 1px 6px; }",
    ".fb button[aria-pressed=true] { background: #e3ecff; border-color: var(--accent); }",
    ".fb button:disabled { cursor: default; }",
    ".typing { padding: 0 14px 6px; font-size: 13px; color: #5b6470; min-height: 1.4em; background: #f5f6f8; }",
    ".csat { padding: 8px 12px; border-top: 1px solid #e4e7eb; font-size: 13px; }",
    ".csat[hidden] { display: none; }",
    ".csat .stars { display: flex; gap: 4px; margin-top: 4px; }",
    ".csat button { flex: 1; border: 1px solid #cfd5dc; background: #fff; border-radius: 6px;",
    "  cursor: pointer; padding: 4px 0; }",
    ".quick { display: flex; flex-wrap: wrap; gap: 6px; align-self: flex-start; max-width: 95%; }",
    ".quick button { border: 1px solid var(--accent); color: var(--accent); background: #fff;",
    "  border-radius: 16px; padding: 4px 12px; font: inherit; font-size: 14px; cursor: pointer; }",
    ".quick button:hover { background: #eef3ff; }",
    ".error { color: #a4001d; font-size: 13px; padding: 0 12px; }",
    ".error:empty { display: none; }",
    "form { display: flex; gap: 8px; padding: 10px; border-top: 1px solid #e4e7eb; background: #fff; }",
    "textarea { flex: 1; resize: none; border: 1px solid #c3cad3; border-radius: 8px; padding: 8px;",
    "  font: inherit; height: 42px; max-height: 120px; }",
    "form button { background: var(--accent); color: #fff; border: 0; border-radius: 8px;",
    "  padding: 0 14px; font: inherit; font-weight: 600; cursor: pointer; }",
    "form button:disabled { opacity: .6; cursor: default; }",
    ".sr-only { position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px;",
    "  overflow: hidden; clip: rect(0,0,0,0); white-space: nowrap; border: 0; }",
  ].join("\n");

  var WHO = { customer: "You", bot: "Bot", agent: "Agent", system: "Notice" };

  // ---- DOM -------------------------------------------------------------------------------

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        if (k === "text") node.textContent = attrs[k];
        else if (k === "class") node.className = attrs[k];
        else if (k.slice(0, 2) === "on") node.addEventListener(k.slice(2), attrs[k]);
        else if (attrs[k] !== null && attrs[k] !== undefined && attrs[k] !== false) node.setAttribute(k, attrs[k]);
      });
    }
    (children || []).forEach(function (c) { if (c) node.appendChild(c); });
    return node;
  }

  var host = el("div", { id: "deskbot-widget" });
  var shadow = host.attachShadow({ mode: "open" });
  var style = document.createElement("style");
  style.textContent = CSS;
  shadow.appendChild(style);

  var log = el("ol", { class: "log", role: "log", "aria-live": "polite", "aria-relevant": "additions",
    "aria-label": "Conversation" });
  var typing = el("div", { class: "typing", role: "status", "aria-live": "polite" });
  var errorBox = el("div", { class: "error", role: "alert" });
  var input = el("textarea", { id: "deskbot-input", rows: "1", maxlength: "4000",
    placeholder: "Type your message…", autocomplete: "off" });
  var sendButton = el("button", { type: "submit", text: "Send" });
  var form = el("form", { "aria-label": "Send a message" }, [
    el("label", { for: "deskbot-input", class: "sr-only", text: "Your message" }), input, sendButton,
  ]);
  var csat = el("div", { class: "csat", hidden: "" });
  var closeButton = el("button", { type: "button", "aria-label": "Close chat", text: "\u00d7" });
  var titleId = "deskbot-title";
  var panel = el("section", { class: "panel", id: "deskbot-panel", role: "dialog",
    "aria-labelledby": titleId, hidden: "" }, [
    el("header", null, [el("h2", { id: titleId, text: TITLE }), closeButton]),
    log, typing, errorBox, csat, form,
  ]);
  var launcher = el("button", { class: "launcher", type: "button", "aria-label": "Open chat: " + TITLE,
    "aria-expanded": "false", "aria-controls": "deskbot-panel" });
  var SVG = "http://www.w3.org/2000/svg";
  var icon = document.createElementNS(SVG, "svg");
  icon.setAttribute("viewBox", "0 0 24 24");
  icon.setAttribute("aria-hidden", "true");
  var iconPath = document.createElementNS(SVG, "path");
  iconPath.setAttribute("d", "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z");
  icon.appendChild(iconPath);
  launcher.appendChild(icon);
  var root = el("div", { class: "root" }, [panel, launcher]);
  root.style.setProperty("--accent", ACCENT);
  shadow.appendChild(root);

  // ---- state ---------------------------------------------------------------------------

  var conv = loadConversation();      // {id, token} or null
  var status = "bot";
  var lastId = 0;                     // highest message id rendered
  var rendered = {};                  // message id -> <li>
  var streams = [];                   // [{replyTo, li, body}] bot replies being streamed
  var answered = {};                  // customer message id -> its reply rendered or its draft retracted
  var source = null;                  // EventSource
  var retryMs = 1000;
  var retryTimer = null;
  var started = false;                // history loaded and stream opened
  var csatDone = false;

  function loadConversation() {
    try {
      var saved = JSON.parse(localStorage.getItem(STORE_KEY) || "null");
      if (saved && typeof saved.id === "number" && typeof saved.token === "string") return saved;
    } catch (e) { /* storage blocked or corrupt: start fresh */ }
    return null;
  }

  function saveConversation(value) {
    conv = value;
    try {
      if (value) localStorage.setItem(STORE_KEY, JSON.stringify(value));
      else localStorage.removeItem(STORE_KEY);
    } catch (e) { /* private mode: the conversation lasts for this page only */ }
  }

  // ---- HTTP ----------------------------------------------------------------------------

  function ApiError(status, code, message) {
    this.status = status; this.code = code; this.message = message;
  }

  function api(method, path, body) {
    var headers = { "Accept": "application/json" };
    if (conv) headers["Authorization"] = "Bearer " + conv.token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(API + path, {
      method: method, headers: headers, mode: "cors", credentials: "omit",
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(function (res) {
      return res.text().then(function (raw) {
        var payload = null;
        try { payload = raw ? JSON.parse(raw) : null; } catch (e) { payload = null; }
        if (!res.ok) {
          var err = (payload && payload.error) || {};
          throw new ApiError(res.status, err.code || "http_" + res.status, err.message || res.statusText);
        }
        return payload;
      });
    });
  }

  function describe(err) {
    if (err instanceof ApiError) {
      if (err.status === 429) return "You're sending messages too fast. Please wait a moment.";
      return err.message || "The server answered with an error.";
    }
    return "Network problem: check your connection and try again.";
  }

  // ---- rendering -----------------------------------------------------------------------

  function scrollDown() { log.scrollTop = log.scrollHeight; }

  function bubble(role, text, extraClass) {
    var body = el("span", { class: "body", text: text });
    var li = el("li", { class: "msg " + role + (extraClass ? " " + extraClass : "") }, [
      el("span", { class: role === "system" ? "sr-only" : "who", text: WHO[role] || role }), body,
    ]);
    return { li: li, body: body };
  }

  function insertById(li, id) {
    var after = null;
    Object.keys(rendered).forEach(function (k) {
      var n = Number(k);
      if (n > id && (after === null || n < after)) after = n;
    });
    if (after !== null) log.insertBefore(li, rendered[after]);
    else {
      var firstLoose = log.querySelector(".msg.pending, .msg.streaming");
      log.insertBefore(li, firstLoose);
    }
  }

  function renderMessage(m) {
    if (!m || typeof m.id !== "number") return;
    if (m.role === "bot" && typeof m.reply_to === "number") {
      // The whole reply is here: its streamed draft goes, and late pieces are ignored.
      answered[m.reply_to] = true;
      dropStream(m.reply_to);
    }
    if (rendered[m.id]) return;
    if (conv && m.conversation_id !== undefined && m.conversation_id !== conv.id) return;
    var li;
    if (m.role === "customer") {
      // Our own message coming back from the server: adopt the optimistic bubble.
      var pending = log.querySelectorAll(".msg.customer.pending");
      for (var i = 0; i < pending.length; i++) {
        if (pending[i].querySelector(".body").textContent === m.text) { li = pending[i]; break; }
      }
      if (li) { li.classList.remove("pending"); li.remove(); }
    }
    if (m.role === "bot" && typeof m.reply_to !== "number" && streams.length) {
      streams.shift().li.remove();   // a reply that does not say what it answers: the oldest
    }
    if (!li) li = bubble(m.role, m.text).li;
    li.dataset.id = String(m.id);
    if ((m.role === "bot" || m.role === "agent") && !(m.quick_replies && m.quick_replies.length)) {
      li.appendChild(feedbackRow(m.id));
    }
    insertById(li, m.id);
    rendered[m.id] = li;
    if (m.id >= lastId) quickReplies(m);
    if (m.id > lastId) lastId = m.id;
    if (m.role === "bot" || m.role === "agent") setTyping(null);
    scrollDown();
  }

  // The newest message's quick replies, as buttons that send their label; older ones go.
  function quickReplies(m) {
    var old = log.querySelector(".quick");
    if (old) old.remove();
    if (m.role !== "bot" || !m.quick_replies || !m.quick_replies.length) return;
    var row = el("li", { class: "quick", role: "group", "aria-label": "Suggested replies" },
      m.quick_replies.map(function (label) {
        return el("button", { type: "button", text: label, onclick: function () {
          row.remove();
          send(label);
        } });
      }));
    log.appendChild(row);
    scrollDown();
  }

  function onToken(ev) {
    var d = parse(ev);
    if (!d || typeof d.text !== "string" || answered[d.reply_to]) return;
    var s = null;
    for (var i = 0; i < streams.length; i++) if (streams[i].replyTo === d.reply_to) s = streams[i];
    if (!s) {
      var b = bubble("bot", "", "streaming");
      b.li.setAttribute("aria-busy", "true");
      s = { replyTo: d.reply_to, li: b.li, body: b.body };
      streams.push(s);
      log.appendChild(b.li);
      setTyping(null);
    }
    s.body.textContent += d.text;
    scrollDown();
  }

  function dropStream(replyTo) {
    streams = streams.filter(function (s) {
      if (s.replyTo !== replyTo) return true;
      s.li.remove();
      return false;
    });
  }

  function feedbackRow(messageId) {
    // Words, not emoji: emoji fonts are missing on many systems.
    var up = el("button", { type: "button", "aria-label": "Helpful", "aria-pressed": "false", text: "Yes" });
    var down = el("button", { type: "button", "aria-label": "Not helpful", "aria-pressed": "false", text: "No" });
    var note = el("span", { "aria-live": "polite" });
    function rate(which, button) {
      up.disabled = down.disabled = true;
      button.setAttribute("aria-pressed", "true");
      api("POST", "/api/v1/messages/" + messageId + "/feedback", { rating: which }).then(function () {
        note.textContent = "Thanks for the feedback";
      }, function (err) {
        up.disabled = down.disabled = false;
        button.setAttribute("aria-pressed", "false");
        note.textContent = describe(err);
      });
    }
    up.addEventListener("click", function () { rate("up", up); });
    down.addEventListener("click", function () { rate("down", down); });
    return el("div", { class: "fb", role: "group", "aria-label": "Rate this answer" }, [
      el("span", { "aria-hidden": "true", text: "Helpful?" }), up, down, note]);
  }

  function notice(text) {
    var li = el("li", { class: "msg notice", text: text });
    log.appendChild(li);
    scrollDown();
  }

  function setTyping(who) {
    typing.textContent = who === "agent" ? "An agent is typing…" : who === "bot" ? "The bot is typing…" : "";
  }

  function setStatus(next) {
    if (!next || next === status) return;
    var previous = status;
    status = next;
    if (next === "handoff") {
      // The server usually posts its own notice as a system message; ours is the fallback.
      var systems = log.querySelectorAll(".msg.system");
      if (!systems.length || !/agent/i.test(systems[systems.length - 1].textContent)) {
        notice("An agent will reply soon.");
      }
    } else if (next === "closed" || (next === "bot" && previous === "handoff")) {
      if (next === "closed") notice("This conversation is closed. Thank you!");
      showCsat();
    }
  }

  function showCsat() {
    if (csatDone || !lastRatable()) return;
    csat.textContent = "";
    var q = el("div", { id: "deskbot-csat-q", text: "How would you rate this conversation?" });
    var stars = el("div", { class: "stars", role: "group", "aria-labelledby": "deskbot-csat-q" });
    [1, 2, 3, 4, 5].forEach(function (n) {
      stars.appendChild(el("button", { type: "button", "aria-label": n + " out of 5", text: String(n),
        onclick: function () { sendCsat(n); } }));
    });
    csat.appendChild(q);
    csat.appendChild(stars);
    csat.hidden = false;
  }

  function lastRatable() {
    var nodes = log.querySelectorAll(".msg.bot[data-id], .msg.agent[data-id]");
    return nodes.length ? Number(nodes[nodes.length - 1].dataset.id) : null;
  }

  function sendCsat(n) {
    var id = lastRatable();
    if (id === null) return;
    csat.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
    api("POST", "/api/v1/messages/" + id + "/feedback", { rating: n }).then(function () {
      csatDone = true;
      csat.textContent = "Thank you for rating us " + n + " out of 5.";
      csat.setAttribute("role", "status");
    }, function (err) {
      csat.querySelectorAll("button").forEach(function (b) { b.disabled = false; });
      errorBox.textContent = describe(err);
    });
  }

  // ---- live updates --------------------------------------------------------------------

  function parse(ev) {
    try { return JSON.parse(ev.data); } catch (e) { return null; }
  }

  function catchUp() {
    if (!conv) return Promise.resolve();
    return api("GET", "/api/v1/conversations/" + conv.id + "/messages?after=" + lastId).then(function (res) {
      (res.messages || []).forEach(renderMessage);
      setStatus(res.status);
    });
  }

  var ticketing = false;               // a stream ticket is being fetched

  function openStream() {
    // A single-use ticket opens the stream: EventSource cannot send headers, and the token
    // must never appear in a URL.
    if (!conv || source || ticketing) return;
    clearTimeout(retryTimer);
    ticketing = true;
    var id = conv.id;
    api("POST", "/api/v1/conversations/" + id + "/events/ticket").then(function (res) {
      ticketing = false;
      if (conv && conv.id === id && !source) connectStream(res.ticket);
    }, function (err) {
      ticketing = false;
      if (err instanceof ApiError && (err.status === 401 || err.status === 404 || err.status === 410)) {
        forget();
      } else {
        scheduleReconnect();
      }
    });
  }

  function connectStream(ticket) {
    var es = new EventSource(API + "/api/v1/conversations/" + conv.id + "/events?ticket=" +
      encodeURIComponent(ticket));
    source = es;
    es.addEventListener("open", function () {
      retryMs = 1000;
      // Anything sent while we were away (or between the history fetch and now).
      catchUp().catch(function () { /* the next reconnect tries again */ });
    });
    es.addEventListener("token", onToken);
    es.addEventListener("retract", function (ev) {
      // The draft failed its check: what streamed of it goes, and late pieces are ignored.
      var d = parse(ev);
      if (d && typeof d.reply_to === "number") { answered[d.reply_to] = true; dropStream(d.reply_to); }
    });
    es.addEventListener("message", function (ev) { renderMessage(parse(ev)); });
    es.addEventListener("status", function (ev) { var d = parse(ev); if (d) setStatus(d.status); });
    es.addEventListener("typing", function (ev) {
      var d = parse(ev);
      if (d) setTyping(d.on ? d.who : null);
    });
    es.addEventListener("error", function () {
      // The browser retries by itself after a dropped connection; a refused one (HTTP error,
      // server down at connect time) leaves the stream closed, so we retry with back-off.
      if (es.readyState === EventSource.CLOSED) {
        es.close();
        if (source === es) source = null;
        scheduleReconnect();
      }
    });
  }

  function scheduleReconnect() {
    clearTimeout(retryTimer);
    retryTimer = setTimeout(function () {
      catchUp().then(openStream, function (err) {
        if (err instanceof ApiError && (err.status === 401 || err.status === 403 || err.status === 404)) {
          forget();          // the conversation is gone (or the token revoked): start anew
          return;
        }
        scheduleReconnect();
      });
    }, retryMs);
    retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
  }

  function forget() {
    if (source) { source.close(); source = null; }
    saveConversation(null);
    started = false;
  }

  window.addEventListener("online", function () {
    if (conv && !source) { retryMs = 0; scheduleReconnect(); retryMs = 1000; }
  });

  function start() {
    // Load a stored conversation's history once, then follow it live.
    if (started || !conv) return Promise.resolve();
    started = true;
    return catchUp().then(openStream, function (err) {
      if (err instanceof ApiError && (err.status === 401 || err.status === 403 || err.status === 404 || err.status === 410)) {
        forget();
      } else {
        started = false;
        scheduleReconnect();
      }
    });
  }

  // ---- sending -------------------------------------------------------------------------

  function ensureConversation() {
    if (conv) return Promise.resolve(conv);
    return api("POST", "/api/v1/conversations", { meta: { page: location.href.slice(0, 500) } })
      .then(function (res) {
        saveConversation({ id: res.id, token: res.token });
        started = true;
        openStream();
        return conv;
      });
  }

  function send(text) {
    errorBox.textContent = "";
    var optimistic = bubble("customer", text, "pending").li;
    log.appendChild(optimistic);
    scrollDown();
    sendButton.disabled = true;
    setTyping("bot");
    return ensureConversation().then(function (c) {
      return api("POST", "/api/v1/conversations/" + c.id + "/messages", { text: text });
    }).then(function (res) {
      renderMessage(res.message);
      var reply = res.reply || {};
      if (reply.status !== "sent" && res.message) {
        answered[res.message.id] = true;   // nothing of an unsent draft reaches the customer
        dropStream(res.message.id);
      }
      if (reply.status === "sent" && reply.id !== null && reply.id !== undefined && reply.text !== null) {
        renderMessage({ id: reply.id, conversation_id: conv.id, role: "bot", text: reply.text,
          reply_to: res.message && res.message.id, quick_replies: reply.quick_replies || [] });
      } else if (reply.status === "handoff") {
        setTyping(null);
        if (reply.id !== null && reply.id !== undefined && reply.text) {
          // The server's own hand-off notice: show it instead of ours.
          renderMessage({ id: reply.id, conversation_id: conv.id, role: "system", text: reply.text });
          status = "handoff";
        } else {
          setStatus("handoff");
        }
      } else if (reply.status === "pending_review") {
        setTyping(null);
        if (status !== "handoff") notice("An agent is checking the answer; it will appear here shortly.");
      }
    }).catch(function (err) {
      setTyping(null);
      optimistic.remove();
      if (!input.value) input.value = text;
      errorBox.textContent = "Message not sent. " + describe(err);
      // Gone (closed) or expired: the next message starts a new conversation.
      if (err instanceof ApiError && (err.status === 401 || err.status === 404 || err.status === 410)) forget();
    }).then(function () {
      sendButton.disabled = false;
    });
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var text = input.value.trim();
    if (!text || sendButton.disabled) return;
    input.value = "";
    send(text);
    input.focus();
  });

  input.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      form.requestSubmit ? form.requestSubmit() : form.dispatchEvent(new Event("submit", { cancelable: true }));
    }
  });

  // ---- open / close --------------------------------------------------------------------

  var greeted = false;

  function openPanel() {
    panel.hidden = false;
    launcher.setAttribute("aria-expanded", "true");
    launcher.setAttribute("aria-label", "Close chat: " + TITLE);
    if (!greeted) {
      greeted = true;
      log.insertBefore(bubble("bot", GREETING, "greeting").li, log.firstChild);
    }
    start();
    input.focus();
  }

  function closePanel() {
    panel.hidden = true;
    launcher.setAttribute("aria-expanded", "false");
    launcher.setAttribute("aria-label", "Open chat: " + TITLE);
    launcher.focus();
  }

  launcher.addEventListener("click", function () { panel.hidden ? openPanel() : closePanel(); });
  closeButton.addEventListener("click", closePanel);
  panel.addEventListener("keydown", function (ev) { if (ev.key === "Escape") closePanel(); });

  function mount() {
    document.body.appendChild(host);
    // A returning customer gets their conversation (and its live replies) without opening.
    if (conv) start();
    if (data.open === "true") openPanel();
  }

  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);

  window.deskbot = { open: openPanel, close: closePanel, forget: forget };
})();
