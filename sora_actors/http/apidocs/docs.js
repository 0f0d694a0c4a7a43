// Renders /openapi.json: operations, parameters, request and response schemas, error codes.
// Plain DOM code, nothing loaded from elsewhere (these machines have no internet).
"use strict";

const METHODS = ["get", "post", "put", "patch", "delete"];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function refName(ref) {
  return ref.split("/").pop();
}

function resolve(doc, schema) {
  if (schema && schema.$ref) {
    const target = doc.components && doc.components.schemas && doc.components.schemas[refName(schema.$ref)];
    return target || {};
  }
  return schema || {};
}

function typeLabel(doc, schema) {
  if (!schema) return "any";
  if (schema.$ref) return refName(schema.$ref);
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  for (const key of ["anyOf", "oneOf", "allOf"]) {
    if (schema[key]) return schema[key].map((s) => typeLabel(doc, s)).join(key === "allOf" ? " & " : " | ");
  }
  if (schema.type === "array") return typeLabel(doc, schema.items) + "[]";
  let label = schema.type || "any";
  if (schema.format) label += " (" + schema.format + ")";
  return label;
}

function constraints(schema) {
  const notes = [];
  const pairs = [["minLength", "min length"], ["maxLength", "max length"], ["minimum", "≥"], ["maximum", "≤"], ["pattern", "pattern"]];
  for (const [key, label] of pairs) if (schema[key] !== undefined) notes.push(label + " " + schema[key]);
  if (schema.default !== undefined && schema.default !== null) notes.push("default " + JSON.stringify(schema.default));
  if (schema.description) notes.push(schema.description);
  return notes.join("; ");
}

// A schema as a nested list; `seen` stops recursion through self-referencing models.
function renderSchema(doc, schema, seen = new Set()) {
  const resolved = resolve(doc, schema);
  const name = schema && schema.$ref ? refName(schema.$ref) : null;
  if (name && seen.has(name)) return el("span", { class: "type" }, name + " (see above)");
  const nextSeen = new Set(seen);
  if (name) nextSeen.add(name);
  const variants = resolved.anyOf || resolved.oneOf;
  if (variants) {
    const objects = variants.filter((v) => resolve(doc, v).properties);
    if (objects.length === 1) return renderSchema(doc, objects[0], nextSeen);
  }
  if (resolved.type === "array" && resolved.items) {
    return el("div", {}, el("span", { class: "type" }, "array of " + typeLabel(doc, resolved.items)), renderSchema(doc, resolved.items, nextSeen));
  }
  if (!resolved.properties) {
    return el("span", { class: "type" }, typeLabel(doc, resolved));
  }
  const required = new Set(resolved.required || []);
  const list = el("ul", { class: "schema" });
  for (const [prop, sub] of Object.entries(resolved.properties)) {
    const target = resolve(doc, sub);
    const nested = target.properties || (target.type === "array" && resolve(doc, target.items).properties) || (target.anyOf || []).some((v) => resolve(doc, v).properties);
    list.append(el("li", {},
      el("span", { class: "name" }, prop),
      required.has(prop) ? el("span", { class: "req" }, " *") : null,
      ": ", el("span", { class: "type" }, typeLabel(doc, sub)),
      constraints(sub) ? el("span", { class: "note" }, " — " + constraints(sub)) : null,
      nested ? renderSchema(doc, sub, nextSeen) : null));
  }
  if (resolved.additionalProperties === false) list.append(el("li", { class: "note" }, "(no other fields)"));
  return list;
}

function renderParameters(doc, parameters) {
  if (!parameters || !parameters.length) return null;
  const rows = parameters.map((p) => el("tr", {},
    el("td", {}, el("code", {}, p.name), p.required ? el("span", { class: "req" }, " *") : null),
    el("td", {}, p.in),
    el("td", { class: "type" }, typeLabel(doc, p.schema)),
    el("td", { class: "note" }, [p.description, constraints(p.schema || {})].filter(Boolean).join("; "))));
  return [el("h4", {}, "Parameters"), el("table", {}, el("tr", {}, el("th", {}, "name"), el("th", {}, "in"), el("th", {}, "type"), el("th", {}, "notes")), rows)];
}

function renderBody(doc, body) {
  if (!body) return null;
  const parts = [el("h4", {}, "Request body" + (body.required ? " (required)" : ""))];
  for (const [type, media] of Object.entries(body.content || {})) {
    parts.push(el("div", {}, el("code", {}, type)), renderSchema(doc, media.schema));
  }
  return parts;
}

function renderResponses(doc, responses) {
  const rows = [];
  for (const [status, response] of Object.entries(responses || {})) {
    const media = Object.entries(response.content || {});
    const body = media.map(([type, m]) => el("div", {}, el("code", {}, type), " ", renderSchema(doc, m.schema)));
    const codes = response["x-error-codes"];
    const headers = Object.keys(response.headers || {});
    rows.push(el("tr", {},
      el("td", { class: "status s" + status[0] }, status),
      el("td", {},
        codes ? el("div", { class: "codes" }, "error.code: ", codes.map((c) => el("code", {}, c))) : el("div", {}, response.description || ""),
        headers.length ? el("div", { class: "note" }, "headers: " + headers.join(", ")) : null,
        codes ? null : body)));
  }
  return [el("h4", {}, "Responses"), el("table", {}, rows)];
}

function anchor(method, path) {
  return (method + path).replace(/[^A-Za-z0-9]+/g, "-");
}

function render(doc) {
  document.getElementById("title").textContent = doc.info.title + " " + doc.info.version;
  document.title = doc.info.title + " API";
  const content = document.getElementById("content");
  const toc = document.getElementById("toc");
  content.replaceChildren();
  if (doc.info.description) content.append(el("pre", { class: "description" }, doc.info.description));
  const schemes = (doc.components && doc.components.securitySchemes) || {};
  for (const [name, scheme] of Object.entries(schemes)) {
    content.append(el("p", {}, el("span", { class: "lock" }, name), " ", scheme.type + " " + (scheme.scheme || "") + (scheme.bearerFormat ? " (" + scheme.bearerFormat + ")" : "")));
  }
  content.append(el("p", {}, "Every error response carries the error envelope: ", renderSchema(doc, { $ref: "#/components/schemas/ErrorEnvelope" })));
  let group = null;
  for (const path of Object.keys(doc.paths).sort()) {
    const section = path.split("/").slice(0, 3).join("/");
    if (section !== group) {
      group = section;
      content.append(el("h2", {}, section));
    }
    for (const method of METHODS) {
      const op = doc.paths[path][method];
      if (!op) continue;
      const id = anchor(method, path);
      toc.append(el("a", { href: "#" + id }, el("span", { class: "method " + method }, method.toUpperCase()), path));
      content.append(el("section", { class: "op", id },
        el("h3", {}, el("span", { class: "method " + method }, method.toUpperCase()), el("code", {}, path),
          op.security && op.security.length ? el("span", { class: "lock" }, "bearer token") : null),
        op.summary ? el("p", {}, op.summary) : null,
        op.description ? el("p", { class: "note" }, op.description) : null,
        renderParameters(doc, op.parameters),
        renderBody(doc, op.requestBody),
        renderResponses(doc, op.responses)));
    }
  }
}

fetch("/openapi.json")
  .then((response) => {
    if (!response.ok) throw new Error("HTTP " + response.status);
    return response.json();
  })
  .then(render)
  .catch((error) => {
    document.getElementById("status").textContent = "Could not load /openapi.json: " + error.message;
  });
