// QSync web UI, /assets/api.js: what every part of the page uses and that knows nothing of
// the daemon's state. The one JSON call to the HTTP API (api(), with the session's page
// token, pageToken(), on every call), the error area, and the page's small tools: el()
// and button() to make elements, clean() for text from elsewhere, syncList() to keep a
// list in place, and words and numbers for people. It imports nothing.
//
// Text from the daemon only ever goes into the page as text (el() uses textContent and
// text nodes, through clean()), never as HTML.

export const $ = (id) => document.getElementById(id);
export const enc = encodeURIComponent;

/** Text from elsewhere (a device's name, a path a peer sent) as the page may show it:
 * control characters and the invisible ones that reorder or hide text (a name could
 * otherwise fake the fingerprint shown next to it) appear escaped, as the CLI shows them
 * (qsync-control's `printable`). */
const HIDDEN = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/g;
export function clean(text) {
  return String(text).replace(HIDDEN, (c) => `\\u{${c.charCodeAt(0).toString(16)}}`);
}

/** The session's page token: handed over once in the address's fragment by the login,
 * then kept in this origin's storage (another port of this host cannot read it, unlike
 * the cookie), and sent with every call. Read once, when the page starts: the page keeps
 * the token it started with. */
let token = null;
export function pageToken() {
  if (token === null) {
    token = ''; // if the storage refuses (the error is shown), calls go without one
    const given = new URLSearchParams(window.location.hash.slice(1)).get('csrf');
    if (given) {
      window.localStorage.setItem('qsync-csrf', given);
      window.history.replaceState(null, '', '/');
    }
    token = window.localStorage.getItem('qsync-csrf') || '';
  }
  return token;
}

/** An element: el('li', {class: 'x', 'data-task': id, text: '...'}, child, 'text', ...).
 * Children: nodes, and strings (as text nodes); anything else ('', null, false, 0: what
 * `x && 'text'` gives when x is not there) is skipped. */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = clean(value);
    else if (key.includes('-') || key === 'spellcheck') node.setAttribute(key, value);
    else node[key] = value; // type, placeholder, required, hidden, ...
  }
  node.append(...children
    .filter((c) => c instanceof Node || (typeof c === 'string' && c))
    .map((c) => (typeof c === 'string' ? clean(c) : c)));
  return node;
}

/** A plain button (not a form's submit) that runs `click`. */
export function button(cls, text, click) {
  const b = el('button', { type: 'button', class: cls, text });
  b.addEventListener('click', () => click(b));
  return b;
}

/** One JSON call; a failure is an Error whose message is the server's. */
export async function api(method, path, body) {
  const init = { method, credentials: 'same-origin',
    headers: { Accept: 'application/json', 'X-CSRF-Token': pageToken() } };
  if (method !== 'GET') {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body || {});
  }
  const response = await fetch(path, init).catch((e) => {
    throw new Error(`Cannot reach QSync's web server (${e.message}): is the QSync daemon running?`);
  });
  if (response.status === 401) {
    window.location.assign('/login'); // the session ended
    throw new Error('The session ended: log in again.');
  }
  const data = await response.json().catch(() => null); // not JSON: the status says enough
  if (response.status === 403 && data && data.error && data.error.kind === 'csrf') {
    window.location.assign('/login'); // this page has no token of the session: log in again
    throw new Error('Log in again.');
  }
  if (!response.ok) {
    // {"error": {"kind": ..., "message": ...}}
    throw new Error((data && data.error && data.error.message)
      || `${response.status} ${response.statusText}`);
  }
  return data;
}

/** The error area. `from` is 'refresh' or 'action': a good refresh clears only its own. */
let errorFrom = null;
export function showError(message, from) {
  $('error').textContent = message;
  $('error').hidden = $('error-dismiss').hidden = false;
  errorFrom = from;
}
export function clearError(from) {
  if (from && errorFrom !== from) return;
  $('error').textContent = '';
  $('error').hidden = $('error-dismiss').hidden = true;
  errorFrom = null;
}

/** Lists kept in place: a refresh updates the <li> it already has for an item (so a
 * half-typed answer, an open link form or the keyboard focus survives), adds new ones
 * and drops those gone. */
export function syncList(list, items, keyOf, make, update) {
  const old = new Map([...list.children].map((li) => [li.dataset.key, li]));
  items.forEach((item, i) => {
    const key = keyOf(item);
    let li = old.get(key);
    old.delete(key);
    if (!li) (li = make(item)).dataset.key = key;
    if (update) update(li, item);
    if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
  });
  for (const li of old.values()) li.remove();
}

// ==== Words and numbers for people.
export function bytes(n) {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

export function clock(date) {
  return [date.getHours(), date.getMinutes(), date.getSeconds()]
    .map((n) => String(n).padStart(2, '0')).join(':');
}

/** A time the daemon gives in nanoseconds since the Unix epoch, in the person's words. */
export function nsTime(ns) {
  return new Date(ns / 1e6).toLocaleString();
}
