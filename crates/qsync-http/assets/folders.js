// QSync web UI, /assets/folders.js: the Folders section. Each synced folder (a task of
// Reply::Tasks) as an <li class="folder" data-task=ID> with its state (paused, syncing
// with its progress from `transfer` events, out of sync and why, in sync), its Pause /
// Resume and Remove buttons and its "Link a device" form (POST /rest/link, the code to
// show, then the `link_ended` event); the "Add a folder" form; and the task helpers the
// other sections use (taskName, inFolder).
//
// It reads the page's state from app.js (only inside functions: app.js, which imports
// this module, is evaluated after it).

import { $, enc, clean, el, button, api, showError, syncList, bytes } from './api.js';
import { state, act } from './app.js';

/** A task's name, for a line about it (the start of its id when it is not known). */
export function taskName(id) {
  const task = state.tasks.find((t) => t.task === id);
  return task ? task.name : String(id).slice(0, 9);
}

/** The absolute path of `rel` (a path in a task, with '/') under the task's folder `root`. */
export function inFolder(root, rel) {
  const sep = root.includes('\\') && !root.includes('/') ? '\\' : '/';
  return root.replace(/[\\/]+$/, '') + sep + rel;
}

/** The transfers of a task now: the last status's, and the fresher `transfer` events. */
function transfersOf(taskId) {
  const byPath = new Map();
  for (const t of (state.status && state.status.transfers) || []) {
    if (t.task === taskId) byPath.set(t.path, t);
  }
  for (const [key, entry] of state.live) {
    if (Date.now() - entry.seen > 3000) state.live.delete(key); // finished, or stalled
    else if (entry.info.task === taskId) byPath.set(entry.info.path, entry.info);
  }
  return [...byPath.values()];
}

/** "42% · 12.3 MB/s" (a patch's bytes are not the file's: patches count in the rate only). */
function progressText(transfers) {
  let [done, size, rate] = [0, 0, 0];
  for (const t of transfers) {
    rate += t.rate;
    if (!t.patch) { done += t.done; size += t.size; }
  }
  const parts = [];
  if (size > 0) parts.push(`${Math.floor((done * 100) / size)}%`);
  parts.push(`${bytes(rate)}/s`);
  if (transfers.length > 1) parts.push(`${transfers.length} files`);
  return parts.join(' · ');
}

/** A task's state: paused, else syncing (a transfer), else out of sync, else in sync. */
function taskState(task) {
  if (task.paused) return { name: 'paused', progress: '' };
  const moving = transfersOf(task.task);
  if (moving.length) return { name: 'syncing', progress: progressText(moving) };
  const n = (state.outOfSync.get(task.task) || []).length;
  if (n) return { name: 'out of sync', progress: `${n} item${n === 1 ? '' : 's'}` };
  return { name: 'in sync', progress: '' };
}

/** The <li> of a new task: its parts, its buttons and its (hidden) link form. */
function makeFolder(task) {
  const id = task.task;
  const address = el('input', { class: 'link-address', type: 'text', placeholder: 'host:port',
    required: true, autocomplete: 'off', spellcheck: 'false' });
  const nearby = el('select', { class: 'link-nearby' });
  // A device picked among the nearby ones must be the one that answers there (mDNS is
  // only a claim: the link proves the device's key); typing an address drops that.
  nearby.addEventListener('change', () => {
    const picked = nearby.selectedOptions[0];
    if (!nearby.value || !picked) return;
    address.value = nearby.value;
    address.dataset.expect = picked.dataset.device;
  });
  address.addEventListener('input', () => { delete address.dataset.expect; });
  const form = el('form', { class: 'link-form', hidden: true },
    el('label', {}, 'Address of the other device', address),
    el('label', {}, 'Nearby devices', nearby),
    el('button', { type: 'submit', class: 'link-go', text: 'Link' }));
  form.addEventListener('submit', (e) => { e.preventDefault(); startLink(li, id); });
  const link = button('link', 'Link a device', () => {
    form.hidden = !form.hidden;
    link.setAttribute('aria-expanded', String(!form.hidden));
    if (!form.hidden) { address.focus(); loadDiscovered(); }
  });
  link.setAttribute('aria-expanded', 'false');
  const remove = button('remove', 'Remove', (b) => {
    const now = state.tasks.find((t) => t.task === id) || task;
    if (window.confirm(`Stop syncing “${now.name}” on this device?\n\n`
      + `No file is touched: the folder ${now.root} stays as it is.`)) {
      act(b, () => api('DELETE', `/rest/tasks/${enc(id)}`, {}));
    }
  });
  const li = el('li', { class: 'folder', 'data-task': id },
    el('div', { class: 'folder-head' }, el('h3', { class: 'name' }),
      el('span', { class: 'state' }), el('span', { class: 'progress' })),
    el('p', { class: 'root' }),
    el('p', { class: 'muted' }, 'Linked devices: ', el('span', { class: 'devices' })),
    el('details', { class: 'why', hidden: true },
      el('summary', { text: 'What is not in sync, and why' }), el('ul')),
    el('div', { class: 'actions' }, link, remove),
    form,
    el('div', { class: 'link-box' },
      el('p', { class: 'link-status', 'aria-live': 'polite' }),
      el('p', { class: 'link-hint', 'aria-live': 'polite', hidden: true,
        text: 'On the other device, answer the link question with this code and the folder' }),
      el('strong', { class: 'link-code', 'aria-live': 'polite' })));
  return li;
}

/** Bring a task's <li> up to date. */
function updateFolder(li, task) {
  const part = (selector) => li.querySelector(selector);
  part('.name').textContent = clean(task.name);
  part('.root').textContent = clean(task.root);
  part('.devices').textContent = String(task.devices);
  const now = taskState(task);
  part('.state').textContent = now.name;
  part('.state').className = `state state-${now.name.replace(/ /g, '-')}`;
  part('.progress').textContent = now.progress;
  part('.progress').hidden = !now.progress;
  // What is not in sync: redrawn only when it changed, so an open <details> stays open.
  const items = now.name === 'out of sync' ? state.outOfSync.get(task.task) : [];
  const why = part('.why');
  why.hidden = items.length === 0;
  if (why.dataset.items !== JSON.stringify(items)) {
    why.dataset.items = JSON.stringify(items);
    why.querySelector('ul').replaceChildren(...items.map((item) => el('li', {},
      el('span', { class: 'path', text: item.path || '(the whole folder)' }),
      `: ${String(item.why).replace(/_/g, ' ')}`, // NotInSyncWhy, snake_case
      item.device && ` (${item.device})`,
      item.seconds && `, for ${item.seconds} s`,
      item.detail && `. ${item.detail}`)));
  }
  // Exactly one of Pause / Resume, swapped when the state turns (keeping the focus).
  const want = task.paused ? 'resume' : 'pause';
  const old = part('button.pause, button.resume');
  if (!old || !old.classList.contains(want)) {
    const fresh = button(want, task.paused ? 'Resume' : 'Pause',
      (b) => act(b, () => api('POST', `/rest/tasks/${enc(task.task)}/${want}`, {})));
    const focused = old && old === document.activeElement;
    if (old) old.replaceWith(fresh); else part('.actions').prepend(fresh);
    if (focused) fresh.focus();
  }
  updateNearby(part('.link-nearby'));
}

export function renderFolders() {
  syncList($('folders'), state.tasks, (t) => t.task, makeFolder, updateFolder);
  $('folders-empty').hidden = state.tasks.length > 0;
}

/** The "Add a folder" form: POST /rest/tasks. */
export function setupAddFolder() {
  $('add-folder-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const path = $('add-folder-path').value.trim();
    const name = $('add-folder-name').value.trim() || null;
    act($('add-folder'), async () => {
      await api('POST', '/rest/tasks', { path, name, folder_type: $('add-folder-type').value });
      $('add-folder-path').value = $('add-folder-name').value = '';
    });
  });
}

// ==== Linking a folder with another device.
/** The nearby devices (mDNS), for the link forms' choice. */
export async function loadDiscovered() {
  try {
    state.discovered = (await api('GET', '/rest/discovered')).devices || [];
  } catch (e) {
    showError(e.message, 'action'); // not cleared by the next good refresh
  }
  for (const select of document.querySelectorAll('.link-nearby')) updateNearby(select);
}

/** A link form's choice of nearby devices, one option per address; rebuilt only when the
 * list changed (not under the person's hand). */
function updateNearby(select) {
  const key = JSON.stringify(state.discovered);
  if (select.dataset.key === key) return;
  select.dataset.key = key;
  const none = state.discovered.length ? 'Choose one to fill the address…' : 'None found here';
  const options = [el('option', { value: '', text: none })];
  for (const d of state.discovered) {
    for (const address of d.addresses) {
      const label = `${d.name} (${d.device.slice(0, 19)})${d.linked ? ', linked' : ''}: ${address}`;
      options.push(el('option', { value: address, text: label, 'data-device': d.device }));
    }
  }
  select.replaceChildren(...options);
}

/** POST /rest/link: answered with Reply::LinkCode {device, fingerprint, code} as soon as
 * the other device answered; how the link ends comes later, as a `link_ended` event. */
async function startLink(li, taskId) {
  const input = li.querySelector('.link-address');
  const address = input.value.trim();
  const expect = input.dataset.expect || null;
  const [status, hint, code] = ['.link-status', '.link-hint', '.link-code']
    .map((selector) => li.querySelector(selector));
  code.textContent = '';
  hint.hidden = true;
  status.textContent = `Reaching ${address}…`;
  li.dataset.linking = '1';
  await act(li.querySelector('.link-go'), async () => {
    const reply = await api('POST', '/rest/link', { task: taskId, address, expect })
      .catch((e) => { status.textContent = ''; delete li.dataset.linking; throw e; });
    if (reply.reply === 'link_code') {
      status.textContent = `The device that answered is ${clean(reply.fingerprint)}. `
        + 'Waiting for its person…';
      hint.hidden = false;
      code.textContent = reply.code;
    } else { // it ended at once (Reply::Linked)
      status.textContent = `Linked with ${clean(reply.name || 'the other device')}.`;
      delete li.dataset.linking;
    }
  });
}

/** The `link_ended` event: its outcome where the code was shown. */
export function linkEnded(ev) {
  const li = [...$('folders').children].find((x) => x.dataset.task === ev.task);
  if (!li || !li.dataset.linking) return; // not a link this page started: the feed has it
  delete li.dataset.linking;
  li.querySelector('.link-code').textContent = '';
  li.querySelector('.link-hint').hidden = true;
  li.querySelector('.link-status').textContent = ev.ok
    ? `Linked: ${ev.message}` : `The link did not happen: ${ev.message}`;
  if (ev.ok) li.querySelector('.link-form').hidden = true;
}
