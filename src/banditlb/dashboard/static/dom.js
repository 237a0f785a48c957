// DOM and formatting helpers. Text always goes in through textContent: data is never markup.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** "label: value" in a row of facts. */
export function fact(label, value) {
  return el("span", {}, el("span", { class: "muted", text: `${label}: ` }), el("b", { text: value }));
}

export function sessionOption(session) {
  return el("option", { value: session.id,
    text: `${session.name} (#${session.id}, ${session.runs} runs)` });
}

/** GET a JSON document; throws an Error carrying the server's message on a non-2xx answer. */
export async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  let doc = null;
  try { doc = await response.json(); } catch { doc = null; }
  if (!response.ok) {
    throw new Error((doc && doc.error) || `${url} answered ${response.status}`);
  }
  return doc;
}

export function showError(where, error) {
  where.replaceChildren(el("div", { class: "error", text: String(error.message || error) }));
}

export function num(value, digits = 0) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return Number(value).toLocaleString("en-US", {
    minimumFractionDigits: digits, maximumFractionDigits: digits,
  });
}

export function when(unixSeconds) {
  if (!unixSeconds) return "–";
  const d = new Date(unixSeconds * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function portOf(upstream) {
  const port = Number(String(upstream).split(":").pop());
  return Number.isInteger(port) ? port : null;
}

export function queryParam(name) {
  return new URLSearchParams(window.location.search).get(name);
}

export function setQueryParam(name, value) {
  const url = new URL(window.location.href);
  if (value === null || value === undefined) url.searchParams.delete(name);
  else url.searchParams.set(name, value);
  window.history.replaceState(null, "", url);
}
