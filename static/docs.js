// Renders /openapi.json as a readable page. Written for this server; no library, no CDN.
"use strict";

(function () {
  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  };

  let spec = null;

  const resolve = (schema) => {
    if (schema && schema.$ref) {
      const name = schema.$ref.split("/").pop();
      return { name, schema: spec.components.schemas[name] };
    }
    return { name: null, schema: schema || {} };
  };

  const typeText = (schema) => {
    const { name, schema: s } = resolve(schema);
    if (name) return name;
    if (s.oneOf) return s.oneOf.map(typeText).join(" | ");
    if (s.type === "array") return "array of " + typeText(s.items);
    let text = s.type || "any";
    if (s.format) text += " (" + s.format + ")";
    if (s.enum) text += " one of " + s.enum.join(", ");
    return text;
  };

  const rules = (s) => {
    const out = [];
    if (s.minimum !== undefined) out.push("≥ " + s.minimum);
    if (s.maximum !== undefined) out.push("≤ " + s.maximum);
    if (s.maxLength !== undefined) out.push("max " + s.maxLength + " chars");
    if (s.default !== undefined) out.push("default " + JSON.stringify(s.default));
    if (s.example !== undefined) out.push("e.g. " + JSON.stringify(s.example));
    return out.join("; ");
  };

  // A schema as a nested list of properties (refs expanded once per level, no cycles here).
  const schemaBlock = (schema, depth) => {
    const { name, schema: s } = resolve(schema);
    const box = el("div", { class: "schema" });
    if (name) box.append(el("div", { class: "muted" }, name));
    if (s.type === "array") {
      box.append(el("div", {}, "array of:"), schemaBlock(s.items, depth + 1));
      return box;
    }
    if (!s.properties) {
      box.append(el("div", {}, typeText(s), s.description ? " — " + s.description : ""));
      return box;
    }
    const table = el("table", {}, el("tr", {}, el("th", {}, "field"), el("th", {}, "type"), el("th", {}, "notes")));
    const required = new Set(s.required || []);
    for (const [field, prop] of Object.entries(s.properties)) {
      const inner = resolve(prop.type === "array" ? prop.items : prop);
      const notes = el("td", {}, [prop.description, rules(prop)].filter(Boolean).join(" — "));
      if (inner.name && depth < 3) notes.append(schemaBlock({ $ref: "#/components/schemas/" + inner.name }, depth + 1));
      table.append(el("tr", {}, el("td", {}, el("code", {}, field), required.has(field) ? " *" : ""), el("td", {}, typeText(prop)), notes));
    }
    box.append(table);
    return box;
  };

  const operation = (path, method, op) => {
    const id = (method + path).replace(/[^a-z0-9]+/gi, "-");
    const section = el("section", { class: "op", id },
      el("h2", {}, el("span", { class: "method " + method }, method), el("code", { class: "path" }, path)),
      el("p", {}, op.summary || ""));
    if (op.security) {
      const ways = op.security.map((req) => Object.keys(req).map((k) => {
        const scheme = spec.components.securitySchemes[k];
        return scheme.type === "http" ? "Authorization: Bearer" : scheme.name;
      }).join(" + "));
      section.append(el("p", { class: "muted" }, "Authentication: " + ways.join(", or ")));
    }
    if (op.parameters && op.parameters.length) {
      const table = el("table", {}, el("tr", {}, el("th", {}, "parameter"), el("th", {}, "in"), el("th", {}, "type"), el("th", {}, "notes")));
      for (const p of op.parameters) {
        const s = p.schema || {};
        table.append(el("tr", {}, el("td", {}, el("code", {}, p.name), p.required ? " *" : ""), el("td", {}, p.in),
          el("td", {}, typeText(s)), el("td", {}, [p.description, rules(s)].filter(Boolean).join(" — "))));
      }
      section.append(el("h3", {}, "Parameters"), table);
    }
    if (op.requestBody) {
      section.append(el("h3", {}, "Request body"));
      for (const [type, media] of Object.entries(op.requestBody.content)) {
        section.append(el("div", { class: "muted" }, type), schemaBlock(media.schema, 0));
      }
    }
    section.append(el("h3", {}, "Responses"));
    for (const [status, response] of Object.entries(op.responses || {})) {
      const row = el("div", {}, el("strong", {}, status), " ", response.description || "");
      for (const [type, media] of Object.entries(response.content || {})) {
        row.append(el("div", { class: "muted" }, type));
        if (media.schema) row.append(schemaBlock(media.schema, 0));
      }
      section.append(row);
    }
    return section;
  };

  fetch("/openapi.json").then((r) => r.json()).then((doc) => {
    spec = doc;
    document.getElementById("title").textContent = doc.info.title + " " + doc.info.version;
    document.getElementById("description").textContent = doc.info.description || "";
    const main = document.getElementById("endpoints");
    main.textContent = "";
    const toc = el("ul");
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const section = operation(path, method, op);
        main.append(section);
        toc.append(el("li", {}, el("a", { href: "#" + section.id }, method.toUpperCase() + " " + path)));
      }
    }
    document.getElementById("toc").append(toc);
  }).catch((error) => {
    document.getElementById("endpoints").textContent = "Could not load /openapi.json: " + error;
  });
})();
