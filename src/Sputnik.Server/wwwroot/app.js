// Sputnik chat: talks to the server's own OpenAI-compatible API (/v1/chat/completions, streaming) and keeps
// history through /api/conversations (SQLite on the server). Markdown: marked → DOMPurify → highlight.js.
"use strict";
const $ = (id) => document.getElementById(id);
const state = { conversation: null, messages: [], controller: null, models: [] };
const settingsKeys = ["model", "system", "temperature", "top-p", "max-tokens", "api-key", "deepthink", "budget"];
// Prompts the bundled arithmetic model answers; any chat model can answer them too.
const EXAMPLES = ["What is 347 * 28?", "What is 1234 + 5678?", "What is 123 - 456?"];

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

async function api(method, path, body) {
  const r = await fetch(path, { method, headers: headers(), body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.status === 204) return null;
  const j = await r.json().catch(() => null);
  if (!r.ok) throw new Error(j && j.error ? j.error.message : `${r.status} ${r.statusText}`);
  return j;
}

// ---- Rendering model output -------------------------------------------------------------------------------------
// Model output is untrusted (a prompt can make a model write anything): it may not run script, load anything from
// another origin (an image URL would carry chat text to whoever owns it), or put controls on the page. DOMPurify
// removes script and event handlers; these options and the hook below remove the rest, and the page's CSP
// (img-src 'self' data:) stops whatever would still get through.
const FORBIDDEN_TAGS = ["form", "input", "button", "textarea", "select", "option", "optgroup", "fieldset", "legend", "label",
  "datalist", "output", "dialog", "style", "link", "meta", "base", "iframe", "frame", "object", "embed", "video", "audio",
  "source", "track", "picture"];
// Raw SVG from the model too (it can reference URLs in many ways); KaTeX's own SVG is kept.
const MODEL_HTML = { FORBID_TAGS: [...FORBIDDEN_TAGS, "svg"], FORBID_ATTR: ["style", "srcset", "action", "formaction", "ping", "background", "poster"], ALLOW_DATA_ATTR: false };
// KaTeX's own output (rendered with trust off, so no links or raw HTML) needs its style attributes.
const MATH_HTML = { ...MODEL_HTML, FORBID_TAGS: FORBIDDEN_TAGS, FORBID_ATTR: MODEL_HTML.FORBID_ATTR.filter((a) => a !== "style") };

const isInlineImage = (src) => /^data:image\/(png|gif|jpeg|webp|avif);/i.test(src || "");

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.nodeName === "IMG" && !isInlineImage(node.getAttribute("src"))) {
    // Marked here, replaced by a note in renderMarkdown: the image is never requested.
    node.setAttribute("title", "image not loaded: " + (node.getAttribute("src") || ""));
    node.removeAttribute("src");
  }
  if (node.nodeName === "A" && node.hasAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  } else if (node.hasAttribute && (node.hasAttribute("href") || node.hasAttribute("xlink:href"))) {
    node.removeAttribute("href"); // SVG <image>/<use> would fetch it
    node.removeAttribute("xlink:href");
  }
});

// Math ($$…$$, \[…\], \(…\), $…$) is cut out before marked sees it (marked would eat the backslashes), and put back
// as KaTeX's HTML into text nodes of the sanitized result, so it can never land inside an attribute.
const MATH = /\$\$([\s\S]+?)\$\$|\\\[([\s\S]+?)\\\]|\\\(([\s\S]+?)\\\)|\$([^\s$](?:[^$\n]*?[^\s$])?)\$/g;
const MARK = /\uE000(\d+)\uE001/g; // private-use characters: a model cannot type a placeholder by accident

function renderMarkdown(text) {
  const math = [];
  // Code spans and fences keep their dollars.
  const source = (text || "").replace(/[\uE000\uE001]/g, "");
  const protectedText = source.split(/(```[\s\S]*?(?:```|$)|`[^`\n]*`)/).map((part, i) => i % 2 ? part : part.replace(MATH, (m, d1, d2, i1, i2) => {
    const display = d1 !== undefined || d2 !== undefined;
    const tex = d1 ?? d2 ?? i1 ?? i2;
    let html;
    try { html = katex.renderToString(tex, { displayMode: display, throwOnError: false, trust: false }); } catch { html = null; }
    if (html === null) return m;
    math.push(html);
    return `\uE000${math.length - 1}\uE001`;
  })).join("");
  const div = document.createElement("div");
  div.innerHTML = DOMPurify.sanitize(marked.parse(protectedText), MODEL_HTML);
  if (math.length) insertMath(div, math);
  div.querySelectorAll("img:not([src])").forEach((img) => {
    const note = document.createElement("span");
    note.className = "blocked-image";
    note.title = img.title;
    note.textContent = `[image${img.alt ? ": " + img.alt : ""} — not loaded]`;
    img.replaceWith(note);
  });
  div.querySelectorAll("pre code").forEach((el) => hljs.highlightElement(el));
  return div;
}

function insertMath(root, math) {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const texts = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) if (n.data.includes("\uE000")) texts.push(n);
  for (const node of texts) {
    const frag = document.createDocumentFragment();
    let last = 0;
    for (const m of node.data.matchAll(MARK)) {
      frag.append(node.data.slice(last, m.index));
      const html = math[Number(m[1])];
      if (html === undefined) frag.append(m[0]);
      else {
        const span = document.createElement("span");
        span.innerHTML = DOMPurify.sanitize(html, MATH_HTML);
        frag.append(...span.childNodes);
      }
      last = m.index + m[0].length;
    }
    frag.append(node.data.slice(last));
    node.replaceWith(frag);
  }
}

// ---- Settings and the model --------------------------------------------------------------------------------------
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

function currentModel() {
  return state.models.find((m) => m.id === $("model").value) || state.models[0] || null;
}

/** The context a request must fit in (prompt + completion); null when the server does not say. */
function contextLength() {
  const m = currentModel();
  if (!m) return null;
  return m.context_length ?? (m.meta && (m.meta.n_ctx ?? m.meta.context_length)) ?? null;
}

async function loadModels() {
  const models = await api("GET", "/v1/models");
  state.models = models.data || [];
  const sel = $("model");
  // The saved choice is applied here: the list is empty when the settings load.
  const current = sel.value || JSON.parse(localStorage.getItem("sputnik.settings") || "{}").model;
  sel.innerHTML = "";
  for (const m of state.models) {
    const o = document.createElement("option");
    o.value = o.textContent = m.id;
    sel.appendChild(o);
  }
  if (current && state.models.some((m) => m.id === current)) sel.value = current;
  // A picker only when there is a choice; one model is just its name.
  sel.hidden = state.models.length < 2;
  $("model-name").hidden = !sel.hidden;
  showModel();
}

function showModel() {
  const m = currentModel();
  $("model-name").textContent = m ? m.id : "no model";
  const facts = [];
  const ctx = contextLength();
  const params = m && m.meta && (m.meta.n_params ?? m.meta.parameters);
  if (params) facts.push(formatCount(params) + " parameters");
  if (ctx) facts.push(`${ctx}-token context`);
  if (m && m.meta && m.meta.thinking) facts.push("thinking");
  $("model-facts").textContent = facts.join(" · ");
  $("max-tokens").placeholder = ctx ? `auto (fills the ${ctx}-token context)` : "auto";
  $("max-tokens").max = ctx || "";
  // A model without a thinking mode has nothing for DeepThink to turn on.
  const thinks = !(m && m.meta && m.meta.thinking === false);
  $("deepthink").disabled = $("budget").disabled = !thinks;
  $("deepthink").parentElement.title = thinks ? "" : "this model has no thinking mode";
  if (!state.messages.length) renderAll();
}

function formatCount(n) {
  if (n >= 1e9) return (n / 1e9).toFixed(1) + " B";
  if (n >= 1e6) return (n / 1e6).toFixed(1) + " M";
  if (n >= 1e3) return (n / 1e3).toFixed(0) + " K";
  return String(n);
}

/**
 * Tokens the chat prompt will take: the messages' own tokens (the server's tokenizer) plus an allowance for what the
 * chat template adds around each message. Without /tokenize, UTF-8 bytes (no tokenizer makes more tokens than bytes).
 * The model is named: a server with several models answers 400 to a /tokenize that does not say which.
 */
async function estimatePromptTokens(history) {
  const text = history.map((m) => m.content).join("\n");
  let tokens;
  try { tokens = (await api("POST", "/tokenize", { content: text, model: $("model").value || undefined })).tokens.length; } catch { tokens = new TextEncoder().encode(text).length; }
  return tokens + 8 * history.length + 16;
}

/**
 * max_tokens and the thinking budget for a request: what the user set, never more than the room the context has left
 * after the prompt; unset, the whole room, with the thinking stopped early enough to leave room for an answer.
 */
function sizeRequest(promptTokens) {
  const ctx = contextLength();
  const asked = Number($("max-tokens").value) || null;
  const askedBudget = $("budget").value === "" ? null : Number($("budget").value);
  if (!ctx) return { maxTokens: asked ?? undefined, budget: askedBudget ?? undefined };
  const room = ctx - promptTokens;
  if (room < 1) {
    throw new Error(`About ${promptTokens} tokens of chat do not fit the model's ${ctx}-token context` +
      (state.messages.length ? ": start a new chat, or shorten the message." : ": shorten the message."));
  }
  const maxTokens = Math.min(asked ?? room, room);
  // Thinking stops early enough to leave room for an answer, whatever budget was asked for.
  const thinkingRoom = Math.max(0, maxTokens - Math.min(64, Math.ceil(maxTokens / 8)));
  const budget = Math.min(askedBudget ?? thinkingRoom, thinkingRoom);
  const note = asked && asked > room ? `max tokens ${asked} → ${room} to fit the ${ctx}-token context` : null;
  return { maxTokens, budget, note };
}

// ---- Status and errors (neither changes the composer's size) -----------------------------------------------------
function setStatus(text) {
  $("status").textContent = text;
  $("status").title = text;
}

function showError(message) {
  $("error-text").textContent = message;
  $("error").hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error-text").textContent = "";
}

// ---- Conversations -------------------------------------------------------------------------------------------------
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
    del.setAttribute("aria-label", "Delete " + c.title);
    del.onclick = async (e) => {
      e.stopPropagation();
      try {
        await api("DELETE", "/api/conversations/" + c.id);
        if (state.conversation && state.conversation.id === c.id) newChat();
        await loadConversations();
      } catch (err) { showError(err.message); }
    };
    li.append(span, del);
    li.onclick = () => { closeSidebar(); openConversation(c.id).catch((err) => showError(err.message)); };
    ul.appendChild(li);
  }
}

async function openConversation(id) {
  const c = await api("GET", "/api/conversations/" + id);
  state.conversation = c;
  state.messages = c.messages;
  clearError();
  renderAll();
  await loadConversations();
}

function newChat() {
  state.conversation = null;
  state.messages = [];
  clearError();
  closeSidebar();
  renderAll();
  loadConversations().catch((err) => showError(err.message));
  $("input").focus();
}

function renderAll() {
  const box = $("messages");
  box.innerHTML = "";
  if (!state.messages.length) box.appendChild(emptyState());
  state.messages.forEach((m, i) => box.appendChild(renderMessage(m, i === state.messages.length - 1)));
  box.scrollTop = box.scrollHeight;
}

function emptyState() {
  const m = currentModel();
  const ctx = contextLength();
  const div = document.createElement("div");
  div.className = "empty";
  const h = document.createElement("h1");
  h.textContent = m ? `Chat with ${m.id}` : "Sputnik Chat";
  const p = document.createElement("p");
  p.textContent = "A model running on this machine's CPU, served by Sputnik's OpenAI-compatible API. " +
    "With DeepThink on, its reasoning shows in a panel above the answer; chats are kept on the server." +
    (ctx ? ` The model reads at most ${ctx} tokens, question and answer together.` : "");
  const ex = document.createElement("div");
  ex.className = "examples";
  for (const text of EXAMPLES) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    b.onclick = () => submit(text);
    ex.appendChild(b);
  }
  div.append(h, p, ex);
  return div;
}

function thinkingPanel(reasoning, seconds, live) {
  const d = document.createElement("details");
  d.className = "thinking";
  d.open = live;
  const s = document.createElement("summary");
  s.textContent = live ? "Thinking…" : `Thought for ${formatSeconds(seconds)}`;
  const body = document.createElement("div");
  body.className = "reasoning";
  body.textContent = reasoning;
  d.append(s, body);
  return d;
}

function formatSeconds(seconds) {
  if (seconds == null) return "? s";
  return seconds < 0.1 ? "< 0.1 s" : `${seconds.toFixed(1)} s`; // a fast model's thinking can arrive in one read
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
  if (info.finish_reason === "length") parts.push("stopped at max tokens");
  if (info.cost != null) parts.push(`$${info.cost.toPrecision(2)}`);
  if (info.energy_j != null) parts.push(`${info.energy_j.toFixed(1)} J`);
  const span = document.createElement("span");
  span.textContent = parts.join(" · ");
  const copy = document.createElement("button");
  copy.textContent = "Copy";
  copy.onclick = () => navigator.clipboard.writeText(m.content);
  if (parts.length) meta.append(span);
  meta.append(copy);
  if (isLast) {
    const regen = document.createElement("button");
    regen.textContent = "Regenerate";
    regen.onclick = () => regenerate().catch((err) => showError(err.message));
    meta.appendChild(regen);
  }
  return meta;
}

async function ensureConversation(firstText) {
  if (state.conversation) return state.conversation;
  state.conversation = await api("POST", "/api/conversations", { title: firstText.slice(0, 60) });
  loadConversations().catch((err) => showError(err.message));
  return state.conversation;
}

async function send(text) {
  // Sized before anything is saved: a message that cannot fit stays in the text box, out of the conversation.
  const size = await sizeFor([...state.messages, { role: "user", content: text }]);
  const c = await ensureConversation(text);
  const saved = await api("POST", `/api/conversations/${c.id}/messages`, { role: "user", content: text });
  state.messages.push(saved);
  renderAll();
  await generate(size);
}

async function regenerate() {
  if (state.controller) return;
  const last = state.messages[state.messages.length - 1];
  if (!last || last.role !== "assistant") return;
  const size = await sizeFor(state.messages.slice(0, -1));
  await api("DELETE", `/api/conversations/${state.conversation.id}/messages/${last.id}`);
  state.messages.pop();
  renderAll();
  await generate(size);
}

/** The messages sent to the model: the system prompt, if any, then the conversation. */
function chatHistory(messages) {
  const history = [];
  const system = $("system").value.trim();
  if (system) history.push({ role: "system", content: system });
  for (const m of messages) history.push({ role: m.role, content: m.content });
  return history;
}

async function sizeFor(messages) {
  try { return sizeRequest(await estimatePromptTokens(chatHistory(messages))); } catch (e) { e.beforeSaving = true; throw e; }
}

// ---- Generation --------------------------------------------------------------------------------------------------
async function generate(size) {
  const history = chatHistory(state.messages);
  const deep = $("deepthink").checked;
  const body = {
    model: $("model").value || undefined,
    messages: history,
    stream: true,
    stream_options: { include_usage: true },
    temperature: Number($("temperature").value),
    top_p: Number($("top-p").value),
    max_tokens: size.maxTokens,
    thinking: deep && !$("deepthink").disabled ? { type: "enabled", budget_tokens: size.budget } : { type: "disabled" },
  };

  const view = document.createElement("div");
  view.className = "msg assistant";
  const panel = thinkingPanel("", null, true);
  panel.hidden = true;
  const out = document.createElement("div");
  out.className = "body";
  view.append(panel, out);
  $("messages").appendChild(view);

  let content = "", reasoning = "", usage = null, timings = null, cost = null, finish = null, failed = null;
  const started = performance.now();
  let thinkStart = null, thinkEnd = null;
  const controller = new AbortController();
  state.controller = controller;
  $("send").hidden = true;
  $("stop").hidden = false;
  setStatus(size.note || "waiting…");
  const timer = setInterval(() => {
    if (thinkStart && !thinkEnd) panel.querySelector("summary").textContent = `Thinking… ${((performance.now() - thinkStart) / 1000).toFixed(1)} s`;
  }, 100);
  try {
    // X-Conversation-Id: a router in front of several servers (sputnik route, HAProxy) keeps a conversation on one replica.
    const h = state.conversation ? { ...headers(), "X-Conversation-Id": String(state.conversation.id) } : headers();
    const r = await fetch("/v1/chat/completions", { method: "POST", headers: h, body: JSON.stringify(body), signal: controller.signal });
    if (!r.ok) { const j = await r.json().catch(() => null); throw new Error(j && j.error ? j.error.message : `${r.status} ${r.statusText}`); }
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
          if (!size.note) setStatus("generating…");
        }
      }
      $("messages").scrollTop = $("messages").scrollHeight;
    }
  } catch (e) {
    if (e.name !== "AbortError") failed = e.message;
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
  renderAll();
  if (failed) { setStatus(""); showError(failed); } else setStatus(meta.tok_s ? `${meta.tok_s.toFixed(1)} tok/s` : "");
}

// ---- Wiring --------------------------------------------------------------------------------------------------------
function submit(text) {
  if (!text || state.controller) return;
  clearError();
  $("input").value = "";
  fitInput();
  send(text).catch((err) => {
    if (err.beforeSaving && !$("input").value) { $("input").value = text; fitInput(); }
    setStatus("");
    showError(err.message);
  });
}

/** The text box grows with its text up to its max-height (CSS), then scrolls. */
function fitInput() {
  const el = $("input");
  el.style.height = "";
  if (el.value) el.style.height = el.scrollHeight + 2 + "px"; // the placeholder's wrapping does not count
}

function openSidebar() {
  document.body.classList.add("sidebar-open");
  $("backdrop").hidden = false;
  $("menu").setAttribute("aria-expanded", "true");
}

function closeSidebar() {
  document.body.classList.remove("sidebar-open");
  $("backdrop").hidden = true;
  $("menu").setAttribute("aria-expanded", "false");
}

$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  submit($("input").value.trim());
});
$("input").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); $("composer").requestSubmit(); }
});
$("input").addEventListener("input", fitInput);
$("stop").onclick = () => state.controller && state.controller.abort();
$("new-chat").onclick = newChat;
$("new-chat-top").onclick = newChat;
$("menu").onclick = openSidebar;
$("close-sidebar").onclick = closeSidebar;
$("backdrop").onclick = closeSidebar;
$("error-close").onclick = clearError;
document.addEventListener("keydown", (e) => { if (e.key === "Escape") closeSidebar(); });
for (const k of settingsKeys) $(k).addEventListener("change", saveSettings);
$("model").addEventListener("change", showModel);
// With --api-key nothing loads until the key is entered.
$("api-key").addEventListener("change", () => { clearError(); loadModels().then(loadConversations).catch((e) => showError(e.message)); });
loadSettings();
renderAll();
loadModels().then(loadConversations).catch((e) => showError(e.message));
