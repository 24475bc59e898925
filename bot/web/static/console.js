/*
 * Shared by the agent console and the admin dashboard: API calls with the API key, sign-in,
 * DOM building (textContent only: no text from the server is ever parsed as HTML) and formats.
 */
"use strict";

const Deskbot = (() => {
  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  /** A client for one API key, kept in sessionStorage under storageKey. */
  class Client {
    constructor(storageKey) {
      this.storageKey = storageKey;
      this.key = sessionStorage.getItem(storageKey) || "";
      this.onUnauthorized = () => {};
    }

    save(key) {
      this.key = key;
      if (key) sessionStorage.setItem(this.storageKey, key);
      else sessionStorage.removeItem(this.storageKey);
    }

    async request(method, path, body) {
      const headers = { Accept: "application/json", Authorization: `Bearer ${this.key}` };
      let payload = body;
      if (body !== undefined && !(body instanceof FormData)) {
        headers["Content-Type"] = "application/json";
        payload = JSON.stringify(body);
      }
      let res;
      try {
        res = await fetch(path, { method, headers, body: payload });
      } catch (err) {
        throw new ApiError(0, "network", "Network problem: the server did not answer.");
      }
      const raw = await res.text();
      let data = null;
      try { data = raw ? JSON.parse(raw) : null; } catch (err) { data = null; }
      if (!res.ok) {
        const e = (data && data.error) || {};
        const error = new ApiError(res.status, e.code || `http_${res.status}`,
          e.message || `${res.status} ${res.statusText}`);
        if (res.status === 401) this.onUnauthorized(error);
        throw error;
      }
      return data;
    }

    get(path) { return this.request("GET", path); }
    post(path, body) { return this.request("POST", path, body === undefined ? {} : body); }

    async blob(path) {
      const res = await fetch(path, { headers: { Authorization: `Bearer ${this.key}` } });
      if (!res.ok) throw new ApiError(res.status, `http_${res.status}`, res.statusText);
      return res.blob();
    }

    /** An EventSource on path, opened with a single-use ticket from POST path/ticket
     *  (EventSource cannot send headers, and the key must never appear in a URL). */
    events(path, handlers, onReconnect) {
      let source = null;
      let retryMs = 1000;
      let timer = null;
      let stopped = false;
      const open = async () => {
        if (stopped) return;
        let ticket;
        try {
          ticket = (await this.request("POST", `${path}/ticket`)).ticket;
        } catch (err) {
          clearTimeout(timer);
          timer = setTimeout(open, retryMs);
          retryMs = Math.min(retryMs * 2, 30000);
          return;
        }
        if (stopped) return;
        const sep = path.includes("?") ? "&" : "?";
        source = new EventSource(`${path}${sep}ticket=${encodeURIComponent(ticket)}`);
        source.addEventListener("open", () => { retryMs = 1000; live(true); onReconnect(); });
        for (const [name, fn] of Object.entries(handlers)) {
          source.addEventListener(name, (ev) => {
            let data = null;
            try { data = JSON.parse(ev.data); } catch (err) { return; }
            fn(data);
          });
        }
        source.addEventListener("error", () => {
          live(false);
          if (source.readyState === EventSource.CLOSED) {   // refused: retry with back-off
            source.close();
            clearTimeout(timer);
            timer = setTimeout(open, retryMs);
            retryMs = Math.min(retryMs * 2, 30000);
          }
        });
      };
      const live = (on) => {
        const dot = document.getElementById("live");
        if (!dot) return;
        dot.classList.toggle("on", on);
        dot.textContent = on ? "live" : "reconnecting…";
      };
      open();
      return () => { stopped = true; clearTimeout(timer); if (source) source.close(); };
    }
  }

  /** Build an element: el("li", {class: "x", text: "..."}, [children]). */
  function el(tag, attrs = {}, children = []) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = String(v);
      else if (k === "class") node.className = v;
      else if (k === "value") node.value = String(v);
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k in node && typeof v !== "string") node[k] = v;
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  function pct(x) {
    return typeof x === "number" && isFinite(x) ? `${(x * 100).toFixed(1)}%` : "–";
  }

  function num(x, digits = 2) {
    return typeof x === "number" && isFinite(x) ? x.toFixed(digits) : "–";
  }

  function when(iso) {
    if (!iso) return "–";
    const d = new Date(iso);
    return isNaN(d) ? String(iso) : d.toLocaleString();
  }

  function ago(iso) {
    const d = new Date(iso);
    if (!iso || isNaN(d)) return "";
    const s = Math.max(0, Math.round((Date.now() - d.getTime()) / 1000));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m`;
    if (s < 86400) return `${Math.floor(s / 3600)}h`;
    return `${Math.floor(s / 86400)}d`;
  }

  /** A polite status line: announce(text) for screen readers and sighted users alike. */
  function announce(text, isError = false) {
    const box = document.getElementById("flash");
    if (!box) return;
    box.textContent = text;
    box.classList.toggle("error", isError);
    clearTimeout(announce.timer);
    announce.timer = setTimeout(() => { box.textContent = ""; }, isError ? 10000 : 4000);
  }

  /**
   * Sign-in: a form with an API key; on success call onReady(me). needRole "admin" refuses agent keys.
   * The key lives in sessionStorage: it is gone when the tab closes.
   */
  function signIn(client, needRole, onReady) {
    const form = document.getElementById("signin");
    const app = document.getElementById("app");
    const error = document.getElementById("signin-error");
    const input = document.getElementById("signin-key");
    const who = document.getElementById("who");

    const show = (signedIn) => {
      form.hidden = signedIn;
      app.hidden = !signedIn;
      document.getElementById("signout").hidden = !signedIn;
      if (!signedIn) input.focus();
    };

    const check = async (key) => {
      client.save(key);
      try {
        const me = await client.get("/api/v1/agent/me");
        if (needRole === "admin" && me.role !== "admin") {
          throw new ApiError(403, "forbidden", "This key belongs to an agent; the dashboard needs an admin key.");
        }
        who.textContent = `${me.name} (${me.role})`;
        show(true);
        onReady(me);
      } catch (err) {
        client.save("");
        error.textContent = err.status === 401 ? "That API key is not valid." : err.message;
        show(false);
      }
    };

    client.onUnauthorized = () => {
      client.save("");
      error.textContent = "Your API key is no longer valid; sign in again.";
      show(false);
    };

    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      error.textContent = "";
      const key = input.value.trim();
      if (key) check(key);
    });
    document.getElementById("signout").addEventListener("click", () => {
      client.save("");
      location.reload();
    });

    if (client.key) check(client.key);
    else show(false);
  }

  return { ApiError, Client, el, pct, num, when, ago, announce, signIn };
})();
