// sora-actors console, the parts beyond videos: the caller's plan and usage, the operator's
// announcement and maintenance notice (everyone), and the admin section (ADMIN users only:
// statistics, users, licences, activity log, run-time settings). Loaded before app.js;
// these functions use its `state`, `$` and `api` when they are called.
"use strict";

const LOG_PAGE_SIZE = 20;
const SVG = "http://www.w3.org/2000/svg";

function isAdmin() {
  return state.user?.role === "ADMIN";
}

/** Elements with text, without ever parsing HTML from the server. */
function el(tag, text, attributes = {}) {
  const node = document.createElement(tag);
  if (text != null) node.textContent = String(text);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  return node;
}

function button(label, onClick, className = "ghost") {
  const node = el("button", label, { type: "button", class: className });
  node.addEventListener("click", onClick);
  return node;
}

/** An admin API that another release adds may be missing here: say so, plainly. */
function adminFailure(target, failure) {
  let text = failure.message;
  if (failure.status === 404 && failure.code === "NOT_FOUND") {
    text = "This part of the admin API is not available on this server yet.";
  } else if (Array.isArray(failure.details) && failure.details.length > 1) {
    text = failure.details.map((problem) => `${problem.field}: ${problem.message}`).join("; ");
  }
  $(target).textContent = text;
}

// ---------------------------------------------------------------- everyone

/** The role decides whether the admin section exists (login's answer may not carry it). */
async function loadProfile() {
  try {
    const { data } = await api("GET", "/api/auth/me");
    if (!state.user) return;
    state.user = { ...state.user, role: data.role };
    localStorage.setItem(USER_KEY, JSON.stringify(state.user));
    showView();
  } catch {
    // the task list reports connection problems already
  }
}

/** The operator's announcement and maintenance notice (no login needed to read them). */
async function loadPublicConfig() {
  try {
    const { data } = await api("GET", "/api/config/public");
    const announcement = $("#announcement");
    announcement.textContent = data.announcement || "";
    announcement.hidden = !data.announcement;
    const maintenance = $("#maintenance-banner");
    maintenance.textContent = data.maintenance?.enabled
      ? data.maintenance.message || "The service is under maintenance: new videos cannot be started right now."
      : "";
    maintenance.hidden = !data.maintenance?.enabled;
  } catch {
    // an older server without it: nothing to show
  }
}

function words(key) {
  return key.replace(/([a-z0-9])([A-Z])/g, "$1 $2").replace(/_/g, " ").toLowerCase();
}

function shown(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "object") {
    if ("used" in value && "limit" in value) return `${value.used} of ${value.limit ?? "∞"}`;
    return Object.entries(value).map(([k, v]) => `${words(k)}: ${shown(v)}`).join(", ");
  }
  return String(value);
}

/** The caller's plan and what is used of it: whatever fields the server sends. */
async function loadPlan() {
  const card = $("#plan");
  try {
    const { data } = await api("GET", "/api/license/info");
    $("#plan-name").textContent = data.plan?.name || data.plan || data.type || "—";
    const usage = data.usage && typeof data.usage === "object" ? data.usage : {};
    const rows = Object.entries(usage).map(([key, value]) => {
      const row = el("div", null, { "data-usage": key });
      row.append(el("dt", words(key)), el("dd", shown(value)));
      return row;
    });
    $("#plan-usage").replaceChildren(...rows);
    card.hidden = false;
  } catch {
    card.hidden = true; // no plan information on this server (yet)
  }
}

// ---------------------------------------------------------------- admin: navigation

function initAdmin() {
  for (const tab of document.querySelectorAll("#views button")) {
    tab.addEventListener("click", () => {
      state.view = tab.dataset.view;
      showView();
      if (state.view === "admin") openSection(state.adminSection);
    });
  }
  for (const tab of document.querySelectorAll(".admin-tabs button")) {
    tab.addEventListener("click", () => openSection(tab.dataset.section));
  }
  $("#stats-refresh").addEventListener("click", loadStatistics);
  $("#users-search").addEventListener("submit", (event) => {
    event.preventDefault();
    loadUsers();
  });
  $("#license-form").addEventListener("submit", generateLicences);
  $("#new-keys-done").addEventListener("click", () => {
    $("#new-keys-text").textContent = "";
    $("#new-keys").hidden = true;
  });
  $("#logs-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    state.logsPage = 1;
    loadLogs();
  });
  $("#logs-prev").addEventListener("click", () => { state.logsPage -= 1; loadLogs(); });
  $("#logs-next").addEventListener("click", () => { state.logsPage += 1; loadLogs(); });
  $("#config-form").addEventListener("submit", saveConfig);
}

const SECTION_LOADERS = {
  stats: () => loadStatistics(),
  users: () => loadUsers(),
  licenses: () => loadLicences(),
  logs: () => loadLogs(),
  config: () => loadConfig(),
};

function openSection(name) {
  state.adminSection = name;
  for (const tab of document.querySelectorAll(".admin-tabs button")) {
    tab.setAttribute("aria-selected", String(tab.dataset.section === name));
  }
  for (const section of document.querySelectorAll(".admin-section")) {
    section.hidden = section.dataset.section !== name;
  }
  SECTION_LOADERS[name]();
}

// ---------------------------------------------------------------- admin: statistics

function bytesText(bytes) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

function figure(name, label, value) {
  const box = el("div", null, { class: "figure", "data-figure": name });
  box.append(el("div", value, { class: "value" }), el("div", label, { class: "label" }));
  return box;
}

/** A small bar chart as inline SVG: bars of `a` with `b` stacked on top (optional). */
function barChart(name, title, bars) {
  const width = 300;
  const height = 110;
  const base = 92;
  const top = Math.max(1, ...bars.map((bar) => bar.a + (bar.b || 0)));
  const step = width / Math.max(1, bars.length);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", title);
  const rect = (x, y, w, h, className, tip) => {
    const node = document.createElementNS(SVG, "rect");
    for (const [key, value] of Object.entries({ x, y, width: w, height: h, class: className })) {
      node.setAttribute(key, String(value));
    }
    const hint = document.createElementNS(SVG, "title");
    hint.textContent = tip;
    node.append(hint);
    return node;
  };
  bars.forEach((bar, index) => {
    const x = index * step + step * 0.15;
    const w = Math.max(1, step * 0.7);
    const ha = (bar.a / top) * (base - 8);
    const hb = ((bar.b || 0) / top) * (base - 8);
    const group = document.createElementNS(SVG, "g");
    group.setAttribute("class", "bar");
    group.dataset.label = bar.label;
    group.dataset.value = String(bar.a + (bar.b || 0));
    group.append(rect(x, base - ha, w, ha, "bar-a", `${bar.label}: ${bar.a}`));
    if (bar.b) group.append(rect(x, base - ha - hb, w, hb, "bar-b", `${bar.label}: ${bar.b}`));
    svg.append(group);
  });
  const axis = document.createElementNS(SVG, "line");
  for (const [key, value] of Object.entries({ x1: 0, x2: width, y1: base, y2: base, class: "axis" })) {
    axis.setAttribute(key, String(value));
  }
  svg.append(axis);
  const box = el("figure", null, { class: "chart", "data-chart": name });
  box.append(el("h3", title), svg);
  return box;
}

/** Counts by name as horizontal bars in inline SVG: name, bar, figure on one line each. */
function rankChart(name, title, counts) {
  const entries = Object.entries(counts);
  const width = 300;
  const row = 18;
  const labelWidth = 92;
  const top = Math.max(1, ...entries.map(([, value]) => value));
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${Math.max(row, entries.length * row)}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", title);
  entries.forEach(([label, value], index) => {
    const y = index * row;
    const group = document.createElementNS(SVG, "g");
    group.setAttribute("class", "bar");
    group.dataset.label = label;
    group.dataset.value = String(value);
    const text = (x, content, anchor) => {
      const node = document.createElementNS(SVG, "text");
      node.setAttribute("x", String(x));
      node.setAttribute("y", String(y + 12));
      if (anchor) node.setAttribute("text-anchor", anchor);
      node.textContent = content;
      return node;
    };
    const bar = document.createElementNS(SVG, "rect");
    const span = width - labelWidth - 34;
    for (const [key, attr] of Object.entries({
      x: labelWidth, y: y + 3, height: row - 6, width: Math.max(value ? 2 : 0, (value / top) * span), class: "bar-a",
    })) {
      bar.setAttribute(key, String(attr));
    }
    group.append(text(0, label.toLowerCase()), bar, text(width, String(value), "end"));
    svg.append(group);
  });
  const box = el("figure", null, { class: "chart", "data-chart": name });
  box.append(el("h3", title), svg);
  return box;
}

async function loadStatistics() {
  $("#stats-error").textContent = "";
  try {
    const { data } = await api("GET", "/api/admin/statistics");
    const { users, tasks, upstream, videos, licenses } = data;
    $("#stats-figures").replaceChildren(
      figure("users-total", "users", users.total),
      figure("users-active24h", "active in 24 h", users.active24h),
      figure("users-active7d", "active in 7 days", users.active7d),
      figure("tasks-total", "tasks", tasks.total),
      figure("upstream-jobs", "upstream jobs", upstream.jobs),
      figure("upstream-failure", "upstream failure rate", `${(upstream.failureRate * 100).toFixed(1)}%`),
      figure("videos-stored", "videos stored", videos.stored),
      figure("videos-bytes", "stored bytes", bytesText(videos.bytes)),
      figure("licenses-total", "licences", licenses.total),
    );
    const day = (date) => date.slice(5);
    $("#stats-charts").replaceChildren(
      barChart("new-users", "New users per day (30 days)", users.newPerDay.map((d) => ({ label: day(d.date), a: d.count }))),
      barChart(
        "tasks-per-day",
        "Tasks per day (failed on top)",
        tasks.perDay.map((d) => ({ label: day(d.date), a: d.created - d.failed, b: d.failed })),
      ),
      rankChart("tasks-by-status", "Tasks by status", tasks.byStatus),
      rankChart("licenses-by-state", "Licences by state", licenses.byState),
      rankChart("licenses-by-type", "Licences by type", licenses.byType),
    );
    $("#stats-generated").textContent = `as of ${when(data.generatedAt)}`;
  } catch (failure) {
    adminFailure("#stats-error", failure);
  }
}

// ---------------------------------------------------------------- admin: users

async function changeUser(call, errorTarget) {
  try {
    await call();
    await loadUsers();
  } catch (failure) {
    adminFailure(errorTarget, failure);
  }
}

function userRow(user) {
  const row = el("tr", null, { "data-user-id": user.id });
  const who = el("td");
  who.append(el("strong", user.username), el("br"), el("small", user.email || ""));
  const role = el("select", null, { "aria-label": `Role of ${user.username}` });
  for (const name of ["USER", "ADMIN"]) role.append(el("option", name, { value: name }));
  role.value = user.role;
  const path = `/api/admin/users/${encodeURIComponent(user.id)}`;
  role.addEventListener("change", () => changeUser(() => api("PUT", path, { role: role.value }), "#users-error"));
  const roleCell = el("td");
  roleCell.append(role);
  const actions = el("td");
  // Banned and deactivated are separate flags (either one refuses the account).
  actions.append(
    user.banned
      ? button("Unban", () => changeUser(() => api("POST", `${path}/ban`, { banned: false }), "#users-error"))
      : button("Ban", () => changeUser(() => api("POST", `${path}/ban`, { banned: true }), "#users-error"), "ghost danger"),
    user.isActive
      ? button("Deactivate", () => changeUser(() => api("PUT", path, { isActive: false }), "#users-error"))
      : button("Activate", () => changeUser(() => api("PUT", path, { isActive: true }), "#users-error")),
  );
  row.append(
    who,
    roleCell,
    el("td", user.banned ? "banned" : user.isActive ? "active" : "inactive"),
    el("td", user.taskCount ?? "—"),
    el("td", when(user.lastLogin) || "never"),
    actions,
  );
  return row;
}

async function loadUsers() {
  $("#users-error").textContent = "";
  const query = new URLSearchParams({ page: "1", pageSize: "50" });
  const q = $("#users-search [name=q]").value.trim();
  if (q) query.set("q", q);
  try {
    const { data } = await api("GET", `/api/admin/users?${query}`);
    $("#users-table tbody").replaceChildren(...data.items.map(userRow));
  } catch (failure) {
    $("#users-table tbody").replaceChildren();
    adminFailure("#users-error", failure);
  }
}

// ---------------------------------------------------------------- admin: licences

function licenceState(licence) {
  if (licence.isActive === false) return "revoked";
  if (licence.expiresAt && new Date(licence.expiresAt) <= new Date()) return "expired";
  if (!licence.userId) return "unused";
  return "active";
}

function licenceRow(licence) {
  const row = el("tr", null, { "data-license-id": licence.id });
  const stateName = licenceState(licence);
  const key = el("td");
  key.append(el("code", licence.licenseKey || "—"));
  const actions = el("td");
  if (stateName !== "revoked") {
    actions.append(
      button("Revoke", async () => {
        try {
          await api("POST", `/api/admin/licenses/${encodeURIComponent(licence.id)}/revoke`);
          await loadLicences();
        } catch (failure) {
          adminFailure("#licenses-error", failure);
        }
      }, "ghost danger"),
    );
  }
  row.append(
    key,
    el("td", licence.type),
    el("td", licence.user?.username || licence.userId || "—"),
    el("td", when(licence.expiresAt) || "never"),
    el("td", stateName),
    actions,
  );
  return row;
}

async function loadLicences() {
  $("#licenses-error").textContent = "";
  try {
    const { data } = await api("GET", "/api/admin/licenses?page=1&pageSize=50");
    $("#licenses-table tbody").replaceChildren(...data.items.map(licenceRow));
  } catch (failure) {
    $("#licenses-table tbody").replaceChildren();
    adminFailure("#licenses-error", failure);
  }
}

/** Generate keys and show them once: the server keeps only their hashes. */
async function generateLicences(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const body = { type: form.type.value };
  if (form.durationDays.value) body.durationDays = Number(form.durationDays.value);
  const count = Number(form.count.value || 1);
  if (count > 1) body.count = count;
  $("#licenses-error").textContent = "";
  try {
    const { data } = await api("POST", "/api/admin/license/generate", body);
    const keys = data.licenseKeys || (data.licenseKey ? [data.licenseKey] : []);
    $("#new-keys-text").textContent = keys.join("\n");
    $("#new-keys").hidden = keys.length === 0;
    await loadLicences();
  } catch (failure) {
    adminFailure("#licenses-error", failure);
  }
}

// ---------------------------------------------------------------- admin: activity log

function logRow(entry) {
  const row = el("tr", null, { "data-action": entry.action });
  const details = entry.details == null ? "" : JSON.stringify(entry.details);
  row.append(
    el("td", when(entry.createdAt)),
    el("td", entry.action),
    el("td", entry.user?.username || entry.userId || "—"),
    el("td", details),
    el("td", entry.ip || ""),
  );
  return row;
}

async function loadLogs() {
  $("#logs-error").textContent = "";
  const form = $("#logs-filter");
  const query = new URLSearchParams({ page: String(state.logsPage), pageSize: String(LOG_PAGE_SIZE) });
  for (const name of ["action", "userId"]) {
    const value = form[name].value.trim();
    if (value) query.set(name, value);
  }
  for (const name of ["from", "to"]) {
    if (form[name].value) query.set(name, new Date(form[name].value).toISOString());
  }
  try {
    const { data } = await api("GET", `/api/admin/logs?${query}`);
    $("#logs-table tbody").replaceChildren(...data.items.map(logRow));
    const pages = Math.max(1, Math.ceil(data.total / LOG_PAGE_SIZE));
    $("#logs-info").textContent = `Page ${data.page} of ${pages} · ${data.total} entries`;
    $("#logs-prev").disabled = data.page <= 1;
    $("#logs-next").disabled = data.page >= pages;
  } catch (failure) {
    adminFailure("#logs-error", failure);
  }
}

// ---------------------------------------------------------------- admin: settings

function fillConfig(config) {
  const form = $("#config-form");
  form.registrationOpen.checked = config.registrationOpen;
  form.maintenance.checked = config.maintenance.enabled;
  form.maintenanceMessage.value = config.maintenance.message || "";
  form.defaultPlan.value = config.defaultPlan;
  form.announcement.value = config.announcement || "";
}

async function loadConfig() {
  $("#config-error").textContent = "";
  try {
    const { data } = await api("GET", "/api/admin/config");
    fillConfig(data);
  } catch (failure) {
    adminFailure("#config-error", failure);
  }
}

async function saveConfig(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const body = {
    registrationOpen: form.registrationOpen.checked,
    maintenance: { enabled: form.maintenance.checked, message: form.maintenanceMessage.value.trim() },
    defaultPlan: form.defaultPlan.value.trim(),
    announcement: form.announcement.value.trim() || null,
  };
  const status = $("#config-error");
  status.textContent = "";
  $("#config-save").disabled = true;
  try {
    const { data, message } = await api("PUT", "/api/admin/config", body);
    fillConfig(data);
    status.textContent = message || "Saved.";
    status.dataset.kind = "ok";
    loadPublicConfig();
  } catch (failure) {
    status.dataset.kind = "error";
    adminFailure("#config-error", failure);
  } finally {
    $("#config-save").disabled = false;
  }
}
