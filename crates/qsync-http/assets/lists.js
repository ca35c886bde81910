// QSync web UI, /assets/lists.js: the sections that are lists of the daemon's things.
// Devices (Reply::Devices), questions waiting for an answer (POST /rest/questions/ID/
// answer), conflicts (the three ways to settle one, POST /rest/resolve), the versions
// kept (newest first, each with Restore: POST /rest/command `restore`) and the installed
// apps (read-only), with their "nothing here" lines.
//
// It reads the page's state from app.js (only inside functions: app.js, which imports
// this module, is evaluated after it).

import { $, enc, clean, el, button, api, syncList, bytes, clock, nsTime } from './api.js';
import { state, act, scheduleRefresh } from './app.js';
import { taskName, inFolder } from './folders.js';

/** The most versions read and listed; `qsync versions` lists them all. */
export const MAX_VERSIONS = 100;

/** A device's name: the event's, else the devices list's, else its id's start. */
export function deviceName(id, given) {
  if (given) return given;
  if (id && id === state.device) return 'this device';
  const known = state.devices.find((d) => d.device === id);
  return known ? known.name : String(id || '?').slice(0, 9);
}

// ==== Devices.
/** The linked devices: name, fingerprint (the id's first four groups, as the CLI shows
 * it), whether connected, where last reached. */
export function renderDevices() {
  const make = (d) => el('li', { class: 'device', 'data-device': d.device });
  syncList($('devices'), state.devices, (d) => d.device, make, (li, d) => li.replaceChildren(
    el('p', {}, el('span', { class: 'name', text: d.name }), ' ',
      el('span', { class: 'fingerprint muted', text: d.device.slice(0, 19) })),
    el('p', {},
      el('span', { class: `connected ${d.connected ? 'yes' : 'no'}`,
        text: d.connected ? 'connected' : 'not connected' }),
      d.paused && ' · paused',
      d.address && ' · ', d.address && el('span', { class: 'address', text: d.address }))));
  $('devices-empty').hidden = state.devices.length > 0;
}

// ==== Questions.
/** A question's <li>: made once, so that what the person types stays across refreshes. */
function makeQuestion(q) {
  const li = el('li', { class: 'question', 'data-id': q.id, 'data-flag': q.flag },
    el('p', { class: 'context', text: q.context }));
  const send = (b, text) => act(b, async () => {
    await api('POST', `/rest/questions/${enc(q.id)}/answer`, { text });
    li.remove();
    renderEmpties();
  });
  const refuse = button('refuse', 'Refuse', (b) => send(b, '')); // an empty answer refuses
  if (q.flag === 'CONFIRMSEND' || q.flag === 'CONFIRMSENSITIVE') { // "yes" goes on
    refuse.textContent = 'No';
    li.append(el('div', { class: 'actions' },
      button('answer-yes', 'Yes', (b) => send(b, 'yes')), refuse));
    return li;
  }
  // CHOOSELINKPATH: code + " " + folder; CONFIRMJOIN: the code; another flag: free text.
  const known = q.flag === 'CHOOSELINKPATH' || q.flag === 'CONFIRMJOIN';
  const field = (cls, placeholder) => el('input', { class: cls, type: 'text', required: true,
    autocomplete: 'off', spellcheck: 'false', placeholder });
  const code = field(known ? 'answer-code' : 'answer-text', known ? '1234-5678' : '');
  const folder = q.flag === 'CHOOSELINKPATH' ? field('answer-folder', '/home/me/Shared') : null;
  const accept = el('button', { type: 'submit', class: 'answer', text: 'Accept' });
  const form = el('form', {},
    el('label', {}, known ? 'Code shown on the other device' : 'Answer', code),
    folder && el('label', {}, 'Folder here', folder),
    el('div', { class: 'actions' }, accept, refuse));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    send(accept, folder ? `${code.value.trim()} ${folder.value.trim()}` : code.value.trim());
  });
  li.append(form);
  return li;
}

export function renderQuestions(questions) {
  syncList($('questions'), questions, (q) => q.id, makeQuestion);
}

// ==== Conflicts.
/** A conflict's <li>: the two versions, and the three ways to settle it. */
function makeConflict(c) {
  // "by laptop, 1.2 kB, 3/2/2025, 12:03:04" (times are nanoseconds since the epoch)
  const about = (device, size, ns) => [device && `by ${device}`,
    typeof size === 'number' && bytes(size), ns && nsTime(ns)]
    .filter(Boolean).join(', ');
  const here = about(c.original_device, c.original_size, c.original_mtime_ns);
  const resolve = (keep) => (b) => act(b, async () => {
    // The copy's absolute path: its task's folder + its path in the task.
    const root = (state.tasks.find((t) => t.task === c.task) || { root: '' }).root;
    await api('POST', '/rest/resolve', { path: inFolder(root, c.copy), keep });
    li.remove();
    renderEmpties();
  });
  const li = el('li', { class: 'conflict', 'data-task': c.task },
    el('p', {}, el('strong', { class: 'path', text: c.original || c.copy }),
      ` in ${taskName(c.task)}`),
    el('p', { class: 'muted' }, `This: the file there now (${here || 'gone'}).`),
    el('p', { class: 'muted' }, 'Other: the copy ', el('span', { class: 'path', text: c.copy }),
      ` (${about(c.copy_device, c.copy_size, c.copy_mtime_ns)}).`),
    el('div', { class: 'actions' }, button('keep-this', 'Keep this', resolve('this')),
      button('keep-other', 'Keep other', resolve('other')),
      button('keep-both', 'Keep both', resolve('both'))));
  return li;
}

export function renderConflicts(conflicts) {
  syncList($('conflicts'), conflicts, (c) => `${c.task}\n${c.copy}`, makeConflict);
}

/** The "nothing here" lines of the questions and conflicts, shown when their list is empty. */
export function renderEmpties() {
  for (const name of ['questions', 'conflicts']) {
    $(`${name}-empty`).hidden = $(name).children.length > 0;
  }
  $('conflicts').hidden = $('conflicts').children.length === 0;
}

// ==== Versions.
/** Why a version was kept (VersionInfo's `why`), for a person. */
const WHY = { deleted: 'deleted', replaced: 'replaced', edited: 'edited',
  'restored-over': 'restored over' };

/** A version's <li>: made once (a version does not change), its folder's name kept current. */
function makeVersion(v) {
  const when = nsTime(v.kept_ns);
  const status = el('p', { class: 'version-status', 'aria-live': 'polite' });
  const restore = button('restore', 'Restore', (b) => act(b, async () => {
    // The path it was at, absolute: its task's folder + its path in the task.
    const task = state.tasks.find((t) => t.task === v.task);
    if (!task) throw new Error(`${clean(v.path)} was in a folder no longer synced here.`);
    status.textContent = '';
    await api('POST', '/rest/command',
      { command: 'restore', path: inFolder(task.root, v.path), version: v.id });
    status.textContent = `Restored at ${clock(new Date())}: it syncs as a new change.`;
    scheduleRefresh(true);
  }));
  restore.setAttribute('aria-label', clean(`Restore ${v.path} as kept ${when}`));
  return el('li', { class: 'version', 'data-id': String(v.id), 'data-task': v.task },
    el('p', {}, el('strong', { class: 'path', text: v.path }), ' in ',
      el('span', { class: 'task' })),
    el('p', { class: 'muted' },
      el('span', { class: 'why', text: WHY[v.why] || String(v.why) }),
      `, kept ${when} · ${bytes(v.size)}`,
      v.device && ' · by ', v.device && el('span', { class: 'who', text: v.device })),
    el('div', { class: 'actions' }, restore),
    status);
}

/** The versions kept (Reply::Versions lists them oldest first): the newest first, at
 * most MAX_VERSIONS. */
export function renderVersions() {
  if (!state.versions) return; // not read yet
  const newest = [...state.versions]
    .sort((a, b) => (b.kept_ns - a.kept_ns) || (b.id - a.id));
  const shown = newest.slice(0, MAX_VERSIONS);
  syncList($('versions'), shown, (v) => `${v.task}\n${v.id}`, makeVersion, (li, v) => {
    li.querySelector('.task').textContent = clean(taskName(v.task));
  });
  $('versions-empty').hidden = newest.length > 0;
  const total = Math.max(state.versionsTotal || 0, newest.length);
  $('versions-more').hidden = total <= MAX_VERSIONS;
  $('versions-more').replaceChildren(`The newest ${MAX_VERSIONS} of ${total} are `
    + 'listed here; ', el('code', {}, 'qsync versions'), ' lists them all.');
}

// ==== Apps.
/** The installed apps (Reply::Apps): name, kind, data folder, and its synced folder. */
export function renderApps() {
  if (!state.apps) return; // not read yet
  const make = (a) => el('li', { class: 'app', 'data-name': a.name });
  syncList($('apps'), state.apps, (a) => a.name, make, (li, a) => li.replaceChildren(...[
    el('p', {}, el('strong', { class: 'name', text: a.name }), ' ',
      el('span', { class: 'kind', text: a.kind })),
    el('p', { class: 'muted' }, 'Data folder: ',
      el('span', { class: 'path', text: a.data_folder })),
    a.task && el('p', { class: 'muted' }, 'Synced as the folder ',
      el('span', { class: 'task', text: taskName(a.task) })),
  ].filter(Boolean)));
  $('apps-empty').hidden = state.apps.length > 0;
}
