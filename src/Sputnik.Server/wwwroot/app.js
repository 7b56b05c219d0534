// Sputnik chat: talks to the server's own OpenAI-compatible API (/v1/chat/completions, streaming) and keeps
// history through /api/conversations (SQLite on the server). Markdown: marked → DOMPurify → highlight.js.
"use strict";
const $ = (id) => document.getElementById(id);
const state = { conversation: null, messages: [], controller: null };
const settingsKeys = ["model", "system", "temperature", "top-p", "max-tokens", "api-key", "deepthink", "budget"];

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

async function api(method, path, body) {
  const r = await fetch(path, { method, headers: headers(), body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.status === 204) return null;
  const j = await r.json();
  if (!r.ok) throw new Error(j.error ? j.error.message : r.statusText);
  return j;
}

// Math ($$…$$, \[…\], \(…\), $…$) is cut out before marked sees it (marked would eat the backslashes),
// rendered by KaTeX, and put back into marked's HTML; DOMPurify then cleans the whole thing.
const MATH = /\$\$([\s\S]+?)\$\$|\\\[([\s\S]+?)\\\]|\\\(([\s\S]+?)\\\)|\$([^\s$](?:[^$\n]*?[^\s$])?)\$/g;

function renderMarkdown(text) {
  const math = [];
  // Code spans and fences keep their dollars.
  const protectedText = (text || "").split(/(```[\s\S]*?(?:```|$)|`[^`\n]*`)/).map((part, i) => i % 2 ? part : part.replace(MATH, (m, d1, d2, i1, i2) => {
    const display = d1 !== undefined || d2 !== undefined;
    const tex = d1 ?? d2 ?? i1 ?? i2;
    let html;
    try { html = katex.renderToString(tex, { displayMode: display, throwOnError: false }); } catch { html = null; }
    if (html === null) return m;
    math.push(html);
    return `@@MATH${math.length - 1}@@`;
  })).join("");
  const html = marked.parse(protectedText).replace(/@@MATH(\d+)@@/g, (_, i) => math[Number(i)]);
  const div = document.createElement("div");
  div.innerHTML = DOMPurify.sanitize(html);
  div.querySelectorAll("pre code").forEach((el) => hljs.highlightElement(el));
  return div;
}

function loadSettings() {
  const saved = JSON.parse(localStorage.getItem("sputnik.settings") || "{}");
  for (const k of settingsKeys) {
    const el = $(k);
    if (!(k in saved)) continue;
    if (el.type === "checkbox") el.checked = saved[k]; else el.value = saved[k];
  }
}

function saveSettings() {
  const s = {};
  for (const k of settingsKeys) { const el = $(k); s[k] = el.type === "checkbox" ? el.checked : el.value; }
  localStorage.setItem("sputnik.settings", JSON.stringify(s));
}

async function loadModels() {
  try {
    const models = await api("GET", "/v1/models");
    const sel = $("model");
    const current = sel.value;
    sel.innerHTML = "";
    for (const m of models.data) {
      const o = document.createElement("option");
      o.value = o.textContent = m.id;
      sel.appendChild(o);
    }
    if (current) sel.value = current;
  } catch (e) { setStatus(e.message, true); }
}

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

async function loadConversations() {
  const list = await api("GET", "/api/conversations");
  const ul = $("conversations");
  ul.innerHTML = "";
  for (const c of list.data) {
    const li = document.createElement("li");
    li.dataset.id = c.id;
    if (state.conversation && state.conversation.id === c.id) li.classList.add("active");
    const span = document.createElement("span");
    span.textContent = c.title;
    const del = document.createElement("button");
    del.textContent = "×";
    del.title = "Delete";
    del.onclick = async (e) => {
      e.stopPropagation();
      await api("DELETE", "/api/conversations/" + c.id);
      if (state.conversation && state.conversation.id === c.id) newChat();
      loadConversations();
    };
    li.append(span, del);
    li.onclick = () => openConversation(c.id);
    ul.appendChild(li);
  }
}

async function openConversation(id) {
  const c = await api("GET", "/api/conversations/" + id);
  state.conversation = c;
  state.messages = c.messages;
  renderAll();
  loadConversations();
}

function newChat() {
  state.conversation = null;
  state.messages = [];
  renderAll();
  loadConversations();
  $("input").focus();
}

function renderAll() {
  const box = $("messages");
  box.innerHTML = "";
  state.messages.forEach((m, i) => box.appendChild(renderMessage(m, i === state.messages.length - 1)));
  box.scrollTop = box.scrollHeight;
}

function thinkingPanel(reasoning, seconds, live) {
  const d = document.createElement("details");
  d.className = "thinking";
  d.open = live;
  const s = document.createElement("summary");
  s.textContent = live ? "Thinking…" : `Thought for ${seconds != null ? seconds.toFixed(1) : "?"} s`;
  const body = document.createElement("div");
  body.className = "reasoning";
  body.textContent = reasoning;
  d.append(s, body);
  return d;
}

function renderMessage(m, isLast) {
  const div = document.createElement("div");
  div.className = "msg " + m.role;
  if (m.reasoning_content) div.appendChild(thinkingPanel(m.reasoning_content, m.meta && m.meta.thinking_s, false));
  const body = document.createElement("div");
  body.className = "body";
  if (m.role === "assistant") body.appendChild(renderMarkdown(m.content)); else body.textContent = m.content;
  div.appendChild(body);
  if (m.role === "assistant") div.appendChild(metaLine(m, isLast));
  return div;
}

function metaLine(m, isLast) {
  const meta = document.createElement("div");
  meta.className = "meta";
  const info = m.meta || {};
  const parts = [];
  if (info.tok_s != null) parts.push(`${info.tok_s.toFixed(1)} tok/s`);
  if (info.tokens != null) parts.push(`${info.tokens} tokens`);
  if (info.cost != null) parts.push(`$${info.cost.toPrecision(2)}`);
  if (info.energy_j != null) parts.push(`${info.energy_j.toFixed(1)} J`);
  const span = document.createElement("span");
  span.textContent = parts.join(" · ");
  const copy = document.createElement("button");
  copy.textContent = "Copy";
  copy.onclick = () => navigator.clipboard.writeText(m.content);
  meta.append(span, copy);
  if (isLast) {
    const regen = document.createElement("button");
    regen.textContent = "Regenerate";
    regen.onclick = regenerate;
    meta.appendChild(regen);
  }
  return meta;
}

async function ensureConversation(firstText) {
  if (state.conversation) return state.conversation;
  state.conversation = await api("POST", "/api/conversations", { title: firstText.slice(0, 60) });
  loadConversations();
  return state.conversation;
}

async function send(text) {
  const c = await ensureConversation(text);
  const saved = await api("POST", `/api/conversations/${c.id}/messages`, { role: "user", content: text });
  state.messages.push(saved);
  renderAll();
  await generate();
}

async function regenerate() {
  if (state.controller) return;
  const last = state.messages[state.messages.length - 1];
  if (!last || last.role !== "assistant") return;
  await api("DELETE", `/api/conversations/${state.conversation.id}/messages/${last.id}`);
  state.messages.pop();
  renderAll();
  await generate();
}

async function generate() {
  const history = [];
  const system = $("system").value.trim();
  if (system) history.push({ role: "system", content: system });
  for (const m of state.messages) history.push({ role: m.role, content: m.content });
  const deep = $("deepthink").checked;
  const body = {
    model: $("model").value || undefined,
    messages: history,
    stream: true,
    stream_options: { include_usage: true },
    temperature: Number($("temperature").value),
    top_p: Number($("top-p").value),
    max_tokens: Number($("max-tokens").value),
    thinking: deep ? { type: "enabled", budget_tokens: Number($("budget").value) || undefined } : { type: "disabled" },
  };

  const view = document.createElement("div");
  view.className = "msg assistant";
  const panel = thinkingPanel("", null, true);
  panel.hidden = true;
  const out = document.createElement("div");
  out.className = "body";
  view.append(panel, out);
  $("messages").appendChild(view);

  let content = "", reasoning = "", usage = null, timings = null, cost = null, finish = null;
  const started = performance.now();
  let thinkStart = null, thinkEnd = null;
  const controller = new AbortController();
  state.controller = controller;
  $("send").hidden = true;
  $("stop").hidden = false;
  setStatus("waiting…");
  const timer = setInterval(() => {
    if (thinkStart && !thinkEnd) panel.querySelector("summary").textContent = `Thinking… ${((performance.now() - thinkStart) / 1000).toFixed(1)} s`;
  }, 100);
  try {
    const r = await fetch("/v1/chat/completions", { method: "POST", headers: headers(), body: JSON.stringify(body), signal: controller.signal });
    if (!r.ok) { const j = await r.json(); throw new Error(j.error ? j.error.message : r.statusText); }
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let idx;
      while ((idx = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, idx);
        buf = buf.slice(idx + 2);
        for (const line of block.split("\n")) {
          if (!line.startsWith("data: ")) continue;
          const data = line.slice(6);
          if (data === "[DONE]") continue;
          const ev = JSON.parse(data);
          if (ev.error) throw new Error(ev.error.message);
          if (ev.usage) usage = ev.usage;
          if (ev.timings) timings = ev.timings;
          if (ev.cost) cost = ev.cost;
          const ch = ev.choices && ev.choices[0];
          if (!ch) continue;
          if (ch.finish_reason) finish = ch.finish_reason;
          const d = ch.delta || {};
          if (d.reasoning_content) {
            if (!thinkStart) thinkStart = performance.now();
            reasoning += d.reasoning_content;
            panel.hidden = false;
            panel.querySelector(".reasoning").textContent = reasoning;
          }
          if (d.content) {
            if (thinkStart && !thinkEnd) { thinkEnd = performance.now(); panel.open = false; }
            content += d.content;
            out.replaceChildren(renderMarkdown(content));
          }
          setStatus("generating…");
        }
      }
      $("messages").scrollTop = $("messages").scrollHeight;
    }
  } catch (e) {
    if (e.name !== "AbortError") setStatus(e.message, true);
  } finally {
    clearInterval(timer);
    state.controller = null;
    $("send").hidden = false;
    $("stop").hidden = true;
  }
  if (thinkStart && !thinkEnd) thinkEnd = performance.now();
  const meta = {
    tok_s: timings ? timings.predicted_per_second : null,
    tokens: usage ? usage.completion_tokens : null,
    cost: cost ? cost.total : null,
    energy_j: cost ? cost.energy_joules : null,
    thinking_s: thinkStart ? (thinkEnd - thinkStart) / 1000 : null,
    finish_reason: finish || "stopped",
    wall_s: (performance.now() - started) / 1000,
  };
  if (content || reasoning) {
    const saved = await api("POST", `/api/conversations/${state.conversation.id}/messages`,
      { role: "assistant", content, reasoning_content: reasoning || null, meta });
    state.messages.push(saved);
  }
  if (!$("status").classList.contains("error")) setStatus(meta.tok_s ? `${meta.tok_s.toFixed(1)} tok/s` : "");
  renderAll();
}

$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("input").value.trim();
  if (!text || state.controller) return;
  $("input").value = "";
  send(text).catch((err) => setStatus(err.message, true));
});
$("input").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); $("composer").requestSubmit(); }
});
$("stop").onclick = () => state.controller && state.controller.abort();
$("new-chat").onclick = newChat;
for (const k of settingsKeys) $(k).addEventListener("change", saveSettings);
loadSettings();
loadModels().then(loadConversations).catch((e) => setStatus(e.message, true));
