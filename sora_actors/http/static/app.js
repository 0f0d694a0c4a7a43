// sora-actors console: log in, submit prompts, watch tasks live over /ws, play results.
// Plain browser JavaScript, no build step: the backend serves this file as it is.
"use strict";

const TOKEN_KEY = "sora.console.token";
const USER_KEY = "sora.console.user";
const TERMINAL = new Set(["COMPLETED", "FAILED", "CANCELLED"]);
const PAGE_SIZE = 10;
const MAX_RECONNECTS = 10;

const state = {
  token: null,
  user: null,
  tasks: new Map(), // videoId -> task (REST shape, kept current by WebSocket events)
  page: 1,
  total: 0,
  status: "",
  socket: null,
  reconnects: 0,
  reconnectTimer: null,
  view: "videos", // or "admin" (ADMIN users only)
  adminSection: "stats",
  logsPage: 1,
};

const $ = (selector, root = document) => root.querySelector(selector);

// ---------------------------------------------------------------- REST

class ApiFailure extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Call the API; resolve to the envelope, or throw ApiFailure carrying its `message`. */
async function api(method, path, body) {
  const headers = {};
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  let payload;
  if (body instanceof FormData) {
    payload = body; // the browser sets the multipart boundary
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body: payload });
  } catch {
    throw new ApiFailure(0, "NETWORK", "Cannot reach the server. Check that it is running.");
  }
  let doc = null;
  try {
    doc = await response.json();
  } catch {
    // not JSON: fall through to the generic message
  }
  if (!response.ok || !doc || doc.success === false) {
    const message = doc?.message || doc?.error?.message || `Request failed (HTTP ${response.status}).`;
    const failure = new ApiFailure(response.status, doc?.error?.code || "HTTP_ERROR", message);
    failure.details = doc?.error?.details;
    if (response.status === 401 && state.token && !path.startsWith("/api/auth/")) {
      logout(`Your session has ended: ${message}`);
    }
    throw failure;
  }
  return doc;
}

// ---------------------------------------------------------------- notices

function notify(message, { kind = "error", action = null } = {}) {
  const box = $("#notice");
  box.dataset.kind = kind;
  $("#notice-text").textContent = message;
  const button = $("#notice-action");
  button.hidden = !action;
  if (action) {
    button.textContent = action.label;
    button.onclick = () => {
      clearNotice();
      action.run();
    };
  }
  box.hidden = false;
}

function clearNotice() {
  $("#notice").hidden = true;
}

// ---------------------------------------------------------------- session

function showView() {
  const signedIn = Boolean(state.token);
  const admin = signedIn && isAdmin();
  if (!admin) state.view = "videos";
  $("#auth-view").hidden = signedIn;
  $("#app-view").hidden = !signedIn || state.view !== "videos";
  $("#admin-view").hidden = !admin || state.view !== "admin";
  $("#views").hidden = !admin;
  for (const button of document.querySelectorAll("#views button")) {
    button.setAttribute("aria-pressed", String(button.dataset.view === state.view));
  }
  $("#session").hidden = !signedIn;
  $("#who").textContent = state.user ? state.user.username : "";
}

function setAuthMode(mode) {
  for (const tab of document.querySelectorAll(".tabs button")) {
    tab.setAttribute("aria-selected", String(tab.dataset.tab === mode));
  }
  $("#auth-form").dataset.mode = mode;
  $(".register-only").hidden = mode !== "register";
  $("#auth-submit").textContent = mode === "register" ? "Create account" : "Log in";
  $("#auth-form [name=password]").autocomplete = mode === "register" ? "new-password" : "current-password";
  $("#auth-error").textContent = "";
}

async function onAuthSubmit(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const username = form.username.value.trim();
  const password = form.password.value;
  const email = form.email.value.trim();
  const submit = $("#auth-submit");
  $("#auth-error").textContent = "";
  submit.disabled = true;
  try {
    if (form.dataset.mode === "register") {
      await api("POST", "/api/auth/register", email ? { username, email, password } : { username, password });
    }
    const { data } = await api("POST", "/api/auth/login", { username, password });
    form.reset();
    startSession(data.token, data.user);
  } catch (failure) {
    $("#auth-error").textContent = failure.message;
  } finally {
    submit.disabled = false;
  }
}

function startSession(token, user) {
  state.token = token;
  state.user = user;
  localStorage.setItem(TOKEN_KEY, token);
  localStorage.setItem(USER_KEY, JSON.stringify(user));
  clearNotice();
  showView();
  state.page = 1;
  loadTasks();
  loadKeys();
  state.reconnects = 0;
  connect();
  if (!user.role) loadProfile();
  loadPlan();
  loadPublicConfig();
}

function logout(message) {
  state.token = null;
  state.user = null;
  localStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(USER_KEY);
  clearTimeout(state.reconnectTimer);
  const socket = state.socket;
  state.socket = null;
  if (socket) socket.close(1000, "logout");
  state.tasks.clear();
  $("#tasks").replaceChildren();
  state.view = "videos";
  $("#plan").hidden = true;
  $("#keys").replaceChildren();
  $("#new-key").hidden = true;
  $("#new-key-value").textContent = "";
  showView();
  if (message) notify(message);
}

/** A token from an earlier visit is used only if the server still accepts it. */
async function resumeSession() {
  const token = localStorage.getItem(TOKEN_KEY);
  if (!token) return showView();
  state.token = token;
  try {
    const { data } = await api("GET", "/api/auth/me");
    startSession(token, { id: data.id, username: data.username, email: data.email, role: data.role });
  } catch (failure) {
    logout(failure.status === 401 ? null : failure.message);
  }
}

// ---------------------------------------------------------------- tasks

async function loadTasks() {
  const query = new URLSearchParams({ page: String(state.page), pageSize: String(PAGE_SIZE) });
  if (state.status) query.set("status", state.status);
  try {
    const { data } = await api("GET", `/api/video/tasks?${query}`);
    state.total = data.total;
    const fresh = new Map();
    for (const task of data.tasks) fresh.set(task.videoId, newer(state.tasks.get(task.videoId), task));
    state.tasks = fresh;
    renderList();
  } catch (failure) {
    if (state.token) notify(failure.message);
  }
  loadStats();
}

async function loadStats() {
  try {
    const { data } = await api("GET", "/api/video/stats");
    const parts = [`${data.total} total`];
    for (const key of ["processing", "queued", "completed", "failed", "cancelled"]) {
      if (data[key]) parts.push(`${data[key]} ${key}`);
    }
    $("#stats").textContent = parts.join(" · ");
  } catch {
    $("#stats").textContent = "";
  }
}

/** Of two views of one task, the later one (by seq when both carry it). */
function newer(known, incoming) {
  if (!known) return incoming;
  if (known.seq != null && incoming.seq != null && incoming.seq < known.seq) return known;
  return { ...known, ...incoming };
}

function sortedTasks() {
  return [...state.tasks.values()].sort((a, b) => String(b.createdAt).localeCompare(String(a.createdAt)));
}

function renderList() {
  const list = $("#tasks");
  const items = sortedTasks().map((task) => renderTask(task));
  list.replaceChildren(...items);
  $("#empty").hidden = items.length > 0;
  const pages = Math.max(1, Math.ceil(state.total / PAGE_SIZE));
  $("#pager").hidden = pages <= 1;
  $("#page-info").textContent = `Page ${state.page} of ${pages}`;
  $("#prev").disabled = state.page <= 1;
  $("#next").disabled = state.page >= pages;
}

function taskElement(videoId) {
  return document.querySelector(`.task[data-video-id="${CSS.escape(videoId)}"]`);
}

/** Create or update the list item of a task; returns it. */
function renderTask(task) {
  let item = taskElement(task.videoId);
  if (!item) {
    item = $("#task-template").content.firstElementChild.cloneNode(true);
    item.dataset.videoId = task.videoId;
    wireTask(item);
  }
  const status = task.status;
  const progress = status === "COMPLETED" ? 100 : Math.max(0, Math.min(100, task.progress || 0));
  item.dataset.status = status;
  $(".badge", item).textContent = status;
  $(".prompt", item).textContent = task.prompt || "";
  const bar = $(".progress", item);
  bar.setAttribute("aria-valuenow", String(progress));
  bar.title = `${progress}%`;
  $(".bar", bar).style.width = `${progress}%`;

  const meta = [task.model, task.size, task.duration ? `${task.duration}s` : null, when(task.createdAt)];
  if (status === "PROCESSING") meta.unshift(`${progress}%`);
  if (task.remixedFromVideoId) meta.push("remix");
  const metaLine = $(".meta", item);
  metaLine.textContent = meta.filter(Boolean).join(" · ");
  metaLine.title = `${task.videoId}${task.externalVideoId ? `\nupstream: ${task.externalVideoId}` : ""}`;

  const error = status === "FAILED" ? task.errorMessage || task.errorCode || "The video could not be made." : "";
  $(".task-error", item).textContent = error;
  $("[data-action=play]", item).hidden = status !== "COMPLETED";
  $("[data-action=remix]", item).hidden = status !== "COMPLETED";
  $("[data-action=cancel]", item).hidden = TERMINAL.has(status);
  if (status !== "COMPLETED") $(".remix-form", item).hidden = true;
  return item;
}

function when(iso) {
  if (!iso) return null;
  const date = new Date(iso);
  const sameDay = date.toDateString() === new Date().toDateString();
  return sameDay
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : date.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

function wireTask(item) {
  const videoId = () => item.dataset.videoId;
  const cancel = $("[data-action=cancel]", item);
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      const { data } = await api("POST", `/api/video/tasks/${encodeURIComponent(videoId())}/cancel`);
      applyTask(data);
    } catch (failure) {
      notify(failure.message);
    } finally {
      cancel.disabled = false;
    }
  });
  $("[data-action=remix]", item).addEventListener("click", () => {
    const form = $(".remix-form", item);
    form.hidden = !form.hidden;
    if (!form.hidden) form.prompt.focus();
  });
  $("[data-action=remix-close]", item).addEventListener("click", () => {
    $(".remix-form", item).hidden = true;
  });
  $(".remix-form", item).addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const prompt = form.prompt.value.trim();
    if (!prompt) return;
    try {
      const { data } = await api("POST", `/api/video/tasks/${encodeURIComponent(videoId())}/remix`, { prompt });
      form.reset();
      form.hidden = true;
      applyTask(data);
    } catch (failure) {
      notify(failure.message);
    }
  });
  $("[data-action=play]", item).addEventListener("click", () => play(item));
  const video = $("video", item);
  video.addEventListener("error", () => {
    // A signed URL may have expired: fetch a fresh one once, then give up loudly.
    if (video.dataset.retried) return notify("This video could not be played.");
    video.dataset.retried = "1";
    play(item, true);
  });
}

async function play(item, fresh = false) {
  const task = state.tasks.get(item.dataset.videoId);
  const video = $("video", item);
  const player = $(".player", item);
  const toggle = $("[data-action=play]", item);
  if (!fresh && !player.hidden) {
    video.pause();
    player.hidden = true;
    toggle.textContent = "Play";
    return;
  }
  let url = fresh ? null : task?.videoUrl;
  if (!url) {
    try {
      const { data } = await api("GET", `/api/video/tasks/${encodeURIComponent(item.dataset.videoId)}/content`);
      url = data.url;
    } catch (failure) {
      return notify(failure.message);
    }
  }
  if (task?.thumbnailUrl) video.poster = task.thumbnailUrl;
  player.hidden = false;
  toggle.textContent = "Hide";
  if (video.getAttribute("src") !== url) video.src = url;
  video.play().catch(() => {
    // Autoplay may be refused; the controls are there to start it by hand.
  });
}

/** A full task view (REST answer or taskStatus snapshot): merge it and render it. */
function applyTask(task) {
  const known = state.tasks.get(task.videoId);
  const merged = newer(known, task);
  state.tasks.set(task.videoId, merged);
  if (!known) {
    if (state.page !== 1 || (state.status && state.status !== merged.status)) {
      state.tasks.delete(task.videoId); // not on the page being looked at
      return;
    }
    state.total += 1;
    renderList();
  } else {
    renderTask(merged);
  }
  if (known?.status !== merged.status) loadStats();
}

/** A partial event (taskProgress, taskCompleted, taskFailed): merge the fields it carries. */
async function applyEvent(change) {
  const known = state.tasks.get(change.videoId);
  if (!known) {
    // A task started elsewhere (another tab, the CLI): fetch its full view once.
    try {
      const { data } = await api("GET", `/api/video/tasks/${encodeURIComponent(change.videoId)}`);
      applyTask(data);
    } catch {
      // gone or not ours: nothing to show
    }
    return;
  }
  const update = {};
  for (const [key, value] of Object.entries(change)) if (value !== undefined) update[key] = value;
  if (update.progress != null && update.status !== "COMPLETED") {
    update.progress = Math.max(known.progress || 0, update.progress); // never backwards
  }
  applyTask(update);
}

// ---------------------------------------------------------------- WebSocket

function setLive(mode, label) {
  const live = $("#live");
  live.dataset.state = mode;
  live.textContent = label || mode;
}

let messageCounter = 0;

function send(socket, type, payload) {
  messageCounter += 1;
  socket.send(JSON.stringify({ type, id: `console-${messageCounter}`, timestamp: Date.now(), payload }));
}

function connect() {
  if (!state.token) return;
  clearTimeout(state.reconnectTimer);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws`);
  state.socket = socket;
  setLive("connecting", "connecting…");
  socket.addEventListener("open", () => send(socket, "auth", { token: state.token }));
  socket.addEventListener("message", (event) => {
    if (state.socket === socket) onMessage(socket, JSON.parse(event.data));
  });
  socket.addEventListener("close", () => {
    if (state.socket !== socket) return; // replaced or logged out
    state.socket = null;
    reconnectLater();
  });
}

/** Exponential backoff with jitter, at most MAX_RECONNECTS tries, then a button. */
function reconnectLater() {
  if (!state.token) return;
  if (state.reconnects >= MAX_RECONNECTS) {
    setLive("offline");
    notify("Live updates stopped: the server cannot be reached.", {
      action: { label: "Reconnect", run: () => { state.reconnects = 0; connect(); } },
    });
    return;
  }
  const delay = Math.min(30000, 500 * 2 ** state.reconnects) * (0.8 + Math.random() * 0.4);
  state.reconnects += 1;
  setLive("connecting", `reconnecting in ${Math.round(delay / 1000)}s`);
  state.reconnectTimer = setTimeout(connect, delay);
}

function onMessage(socket, message) {
  const payload = message.payload || {};
  switch (message.type) {
    case "authSuccess":
      send(socket, "subscribe_tasks", {});
      break;
    case "authFailed":
      logout(`Your session has ended: ${payload.error || "authentication failed"}`);
      break;
    case "subscribeTasksSuccess":
    case "subscribeSuccess":
      if (state.reconnects > 0) clearNotice();
      state.reconnects = 0;
      setLive("live");
      // Catch up on whatever changed while we were not subscribed (first load or a
      // reconnect); merging by seq keeps this from undoing newer events.
      loadTasks();
      break;
    case "taskStatus":
      applyTask({ ...payload, status: normalStatus(payload.status) });
      break;
    case "taskProgress":
      applyEvent({ ...payload, status: normalStatus(payload.status) });
      break;
    case "taskCompleted":
      applyEvent({
        videoId: payload.videoId,
        externalVideoId: payload.externalVideoId,
        seq: payload.seq,
        status: "COMPLETED",
        progress: 100,
        videoUrl: payload.result?.videoUrl,
        thumbnailUrl: payload.result?.thumbnailUrl,
      });
      break;
    case "taskCancelled":
      applyEvent({ videoId: payload.videoId, seq: payload.seq, status: "CANCELLED" });
      break;
    case "taskFailed":
      applyEvent({
        videoId: payload.videoId,
        externalVideoId: payload.externalVideoId,
        seq: payload.seq,
        status: normalStatus(payload.status) || "FAILED",
        errorCode: payload.error?.code,
        errorMessage: payload.error?.message,
      });
      break;
    case "error":
      notify(payload.message || payload.error?.message || payload.error || "The live connection reported an error.");
      break;
    default:
      break; // connected, heartbeat, and anything newer
  }
}

function normalStatus(status) {
  return status ? String(status).toUpperCase() : undefined;
}

// ---------------------------------------------------------------- new video

function readReference() {
  const input = $("#create-form [name=input_reference]");
  const file = input.files[0];
  const box = $("#reference");
  if (!file) {
    box.hidden = true;
    $("#reference-preview").removeAttribute("src");
    return;
  }
  const reader = new FileReader();
  reader.onload = () => {
    $("#reference-preview").src = reader.result;
    box.hidden = false;
  };
  reader.readAsDataURL(file);
}

async function onCreateSubmit(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const prompt = form.prompt.value.trim();
  $("#create-error").textContent = "";
  if (!prompt) {
    $("#create-error").textContent = "Describe the video you want first.";
    return;
  }
  const fields = { prompt, model: form.model.value, size: form.size.value, duration: Number(form.duration.value) };
  const file = form.input_reference.files[0];
  let body = fields;
  if (file) {
    // Multipart keeps the image binary (no base64 inflation); field names per the contract.
    body = new FormData();
    for (const [key, value] of Object.entries(fields)) body.append(key, String(value));
    body.append("input_reference", file, file.name);
  }
  const submit = $("#create-submit");
  submit.disabled = true;
  try {
    const { data } = await api("POST", "/api/video/tasks", body);
    form.prompt.value = "";
    form.input_reference.value = "";
    readReference();
    if (state.page !== 1 || state.status) {
      state.page = 1;
      state.status = "";
      $("#status-filter").value = "";
      await loadTasks();
    }
    applyTask(data);
    loadPlan(); // the new task counts against the plan
  } catch (failure) {
    $("#create-error").textContent = failure.message;
  } finally {
    submit.disabled = false;
  }
}

// ---------------------------------------------------------------- API keys

/** Keys are listed by prefix and last four characters; the whole key is shown once. */
async function loadKeys() {
  try {
    const { data } = await api("GET", "/api/auth/api-keys");
    renderKeys(data.keys);
  } catch (failure) {
    if (state.token) $("#key-error").textContent = failure.message;
  }
}

function renderKeys(keys) {
  const list = $("#keys");
  list.replaceChildren();
  for (const key of keys) {
    const item = document.createElement("li");
    item.className = "key";
    item.dataset.keyId = key.id;
    item.dataset.revoked = String(Boolean(key.revokedAt));
    const label = document.createElement("span");
    label.className = "key-label";
    label.textContent = `${key.name || "unnamed"} — ${key.prefix}…${key.last4}`;
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = key.revokedAt
      ? `revoked ${when(key.revokedAt)}`
      : `created ${when(key.createdAt)}, last used ${key.lastUsedAt ? when(key.lastUsedAt) : "never"}`;
    item.append(label, meta);
    if (!key.revokedAt) {
      const revoke = document.createElement("button");
      revoke.type = "button";
      revoke.className = "ghost danger";
      revoke.textContent = "Revoke";
      revoke.addEventListener("click", async () => {
        revoke.disabled = true;
        try {
          await api("DELETE", `/api/auth/api-keys/${encodeURIComponent(key.id)}`);
          await loadKeys();
        } catch (failure) {
          $("#key-error").textContent = failure.message;
          revoke.disabled = false;
        }
      });
      item.append(revoke);
    }
    list.append(item);
  }
  $("#keys-empty").hidden = keys.length > 0;
}

async function onKeySubmit(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const submit = $("#key-submit");
  $("#key-error").textContent = "";
  submit.disabled = true;
  try {
    const { data } = await api("POST", "/api/auth/api-keys", { name: form.name.value.trim() });
    form.reset();
    $("#new-key-value").textContent = data.key;
    $("#new-key").hidden = false;
    await loadKeys();
  } catch (failure) {
    $("#key-error").textContent = failure.message;
  } finally {
    submit.disabled = false;
  }
}

// ---------------------------------------------------------------- start

function init() {
  for (const tab of document.querySelectorAll(".tabs button")) {
    tab.addEventListener("click", () => setAuthMode(tab.dataset.tab));
  }
  setAuthMode("login");
  $("#auth-form").addEventListener("submit", onAuthSubmit);
  $("#logout").addEventListener("click", () => logout());
  $("#notice-close").addEventListener("click", clearNotice);
  $("#create-form").addEventListener("submit", onCreateSubmit);
  $("#create-form [name=input_reference]").addEventListener("change", readReference);
  $("#reference-clear").addEventListener("click", () => {
    $("#create-form [name=input_reference]").value = "";
    readReference();
  });
  $("#status-filter").addEventListener("change", (event) => {
    state.status = event.target.value;
    state.page = 1;
    loadTasks();
  });
  $("#refresh").addEventListener("click", loadTasks);
  initAdmin();
  loadPublicConfig();
  $("#prev").addEventListener("click", () => { state.page -= 1; loadTasks(); });
  $("#next").addEventListener("click", () => { state.page += 1; loadTasks(); });
  $("#key-form").addEventListener("submit", onKeySubmit);
  $("#relay-base").textContent = `${location.origin}/api/relay/v1`;
  // Back from sleep or offline: do not wait for the backoff timer.
  const wake = () => {
    if (state.token && !state.socket) {
      state.reconnects = 0;
      connect();
    }
  };
  window.addEventListener("online", wake);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) wake(); });
  resumeSession();
}

init();
