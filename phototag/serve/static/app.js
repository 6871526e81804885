// The page: a few fetches of the /v1 API, rendered with DOM calls (no build step, no
// innerHTML of server data: tags and paths are the user's text and may hold markup).
"use strict";
const main = document.getElementById("main");
const statusLine = document.getElementById("status");

async function api(path, options = {}) {
  const resp = await fetch(path, { credentials: "same-origin", ...options });
  const body = await resp.json().catch(() => ({ error: resp.statusText }));
  if (!resp.ok) throw new Error(body.error || resp.statusText);
  return body;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function say(text) { statusLine.textContent = text; if (text) setTimeout(() => { if (statusLine.textContent === text) statusLine.textContent = ""; }, 4000); }

function grid(results) {
  if (!results.length) return el("p", { class: "muted" }, "No photos.");
  return el("div", { class: "grid" }, ...results.map(r =>
    el("a", { href: `#/photo/${r.id}`, class: "thumb", "data-id": r.id },
      el("img", { src: r.thumbnail, alt: r.path, loading: "lazy" }),
      el("div", { class: "cap" }, r.score !== undefined ? `${r.score.toFixed(3)} ` : "", r.path.split("/").pop()))));
}

async function showTags() {
  const { results } = await api("/v1/tags");
  main.replaceChildren(el("h1", {}, "Tags"), results.length ? el("table", { id: "tags" },
    el("tr", {}, el("th", {}, "tag"), el("th", {}, "path"), el("th", {}, "photos")),
    ...results.map(t => el("tr", {},
      el("td", {}, el("a", { href: `#/tag/${encodeURIComponent(t.path)}` }, t.tag)),
      el("td", { class: "muted" }, t.path), el("td", {}, t.count)))) : el("p", { class: "muted" }, "The index holds no tags yet: run 'phototag scan'."));
}

async function showTag(path) {
  const { results, total } = await api(`/v1/photos?tag=${encodeURIComponent(path)}`);
  main.replaceChildren(el("h1", {}, `${path} `, el("span", { class: "muted" }, `${total} photos`)), grid(results));
}

async function showSearch(q) {
  let found;
  try {
    found = (await api(`/v1/search?q=${encodeURIComponent(q)}`)).results;
  } catch (e) {
    // No open-vocabulary model: fall back to the tag of that name, and say why.
    say(e.message);
    found = (await api(`/v1/photos?tag=${encodeURIComponent(q)}`)).results;
  }
  main.replaceChildren(el("h1", {}, `“${q}”`), grid(found));
}

async function showPeople() {
  const { results } = await api("/v1/people");
  main.replaceChildren(el("h1", {}, "People"), results.length ? el("div", { class: "grid", id: "people" },
    ...results.map(p => el("a", { href: p.name ? `#/person/${encodeURIComponent(p.name)}` : "#/people", class: "person", "data-id": p.id },
      p.face !== null ? el("img", { src: `/v1/faces/${p.face}/thumbnail`, alt: p.label, loading: "lazy" }) : el("div", {}),
      el("div", { class: "cap" }, `${p.label} · ${p.photos} photos`))))
    : el("p", { class: "muted" }, "No faces yet: a default 'phototag scan' finds them; 'phototag people name ID NAME' names a person."));
}

async function showPerson(name) {
  const { results, total } = await api(`/v1/photos?person=${encodeURIComponent(name)}`);
  main.replaceChildren(el("h1", {}, `${name} `, el("span", { class: "muted" }, `${total} photos`)), grid(results));
}

async function showAlbums() {
  const { results } = await api("/v1/albums");
  main.replaceChildren(el("h1", {}, "Albums"), results.length ? el("table", {},
    el("tr", {}, el("th", {}, "album"), el("th", {}, "photos"), el("th", {}, "folder")),
    ...results.map(a => el("tr", {}, el("td", {}, a.name), el("td", {}, a.photos), el("td", { class: "muted" }, a.folder))))
    : el("p", { class: "muted" }, "No albums: 'phototag album --tag TAG' makes one."));
}

async function showDuplicates() {
  main.replaceChildren(el("h1", {}, "Duplicates"), el("p", { class: "muted" }, "Comparing…"));
  const { results } = await api("/v1/duplicates");
  main.replaceChildren(el("h1", {}, "Duplicates"),
    ...(results.length ? results.map(g => el("div", { class: "group" }, grid(g))) : [el("p", { class: "muted" }, "No duplicates found.")]));
}

async function showPhoto(id) {
  const p = await api(`/v1/photos/${id}`);
  const chips = el("ul", { class: "chips", id: "photo-tags" });
  const removed = new Set(p.corrections.filter(c => c.action === "remove").map(c => c.path));
  const shown = new Set();
  const chip = (model, tag, path, score) => {
    if (removed.has(path) || shown.has(path)) return;
    shown.add(path);
    chips.append(el("li", { class: model === "user" ? "chip user" : "chip", "data-path": path },
      `${tag} `, el("span", { class: "muted" }, score === null ? "yours" : score.toFixed(2)),
      el("button", { title: `remove ${path}`, "aria-label": `remove ${path}`, class: "remove",
        onclick: () => correct(id, "remove", path) }, "×")));
  };
  for (const c of p.corrections.filter(c => c.action === "add")) chip("user", c.path.split("/").pop(), c.path, null);
  for (const [model, cands] of Object.entries(p.tags)) for (const c of cands) chip(model, c.tag, c.path, c.score);
  const input = el("input", { id: "new-tag", placeholder: "add a tag", required: "" });
  const form = el("form", { id: "add-tag", onsubmit: ev => { ev.preventDefault(); correct(id, "add", input.value); } },
    input, el("button", { type: "submit" }, "Add"));
  main.replaceChildren(el("h1", {}, p.path),
    el("div", { class: "photo" }, el("img", { src: `/v1/photos/${id}/thumbnail?size=720`, alt: p.path }),
      el("div", {}, el("p", { class: "muted" }, `${p.width}×${p.height}, taken ${p.taken_at || "unknown"}`),
        chips, form)));
}

async function correct(id, action, tag) {
  try {
    const r = await api(`/v1/photos/${id}/tags`, { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ action, tag }) });
    say(`${action === "add" ? "added" : "removed"} ${r.path}`);
    await showPhoto(id);
  } catch (e) { say(e.message); }
}

async function route() {
  const [, view, ...rest] = location.hash.split("/");
  const arg = decodeURIComponent(rest.join("/"));
  try {
    if (view === "photo") await showPhoto(arg);
    else if (view === "tag") await showTag(arg);
    else if (view === "search") await showSearch(arg);
    else if (view === "albums") await showAlbums();
    else if (view === "people") await showPeople();
    else if (view === "person") await showPerson(arg);
    else if (view === "duplicates") await showDuplicates();
    else await showTags();
  } catch (e) {
    main.replaceChildren(el("p", { class: "error" }, e.message));
  }
}

document.getElementById("search-form").addEventListener("submit", ev => {
  ev.preventDefault();
  const q = document.getElementById("search").value.trim();
  if (q) location.hash = `#/search/${encodeURIComponent(q)}`;
});
window.addEventListener("hashchange", route);
route();
