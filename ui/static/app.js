// The dashboard: hash routes, one render function per page. Each page
// gets an AbortController; leaving the page aborts its requests, its
// changes stream and its timers. Pages that show data follow the
// database's changes feed and refresh, debounced, when it moves.

import { h, replace, table, bytes, when, short, json, debounce } from './dom.js';
import { api, raw, seg, follow, token, setToken, AuthError } from './api.js';

const main = document.getElementById('main');
const flashBox = document.getElementById('flash');
const logoutBtn = document.getElementById('logout');

// refreshMs is the delay between a change arriving and the page reloading
// what it shows: a burst of changes costs one reload.
const refreshMs = 250;
// pollMs is how often pages without a feed (peers, sync state) reload.
const pollMs = 3000;

let page = null; // {signal} of the page on screen

// ---- plumbing ----

function flash(msg, kind = 'error') {
  replace(flashBox, msg);
  flashBox.className = kind;
  flashBox.hidden = false;
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => { flashBox.hidden = true; }, kind === 'error' ? 8000 : 3000);
}

// failed handles an error of the page or of an action: a 401 asks for the
// token, anything else is shown.
function failed(e) {
  if (e.name === 'AbortError') return; // the page was left
  if (e instanceof AuthError) { showLogin(); return; }
  flash(e.message || String(e));
}

// action wraps an event handler: errors are shown, never thrown away.
function action(f) {
  return (ev) => {
    if (ev && ev.preventDefault) ev.preventDefault();
    Promise.resolve().then(() => f(ev)).catch(failed);
  };
}

// every runs f each ms until signal (the page's) aborts.
function every(ms, f, signal) {
  const id = setInterval(() => { f().catch(failed); }, ms);
  signal.addEventListener('abort', () => clearInterval(id));
}

// live calls f (debounced) for each change of db after since until signal
// (the page's) aborts; filter, when given, picks the changes that matter.
function live(db, since, f, signal, filter) {
  const later = debounce(() => { if (!signal.aborted) f().catch(failed); }, refreshMs);
  follow(db, since, (c) => { if (!filter || filter(c)) later(c); }, signal, () => showLogin());
}

// watcher follows db's changes once for a page whose parts each refresh
// on them: it answers watch(f, filter), which calls f (debounced) on the
// changes filter accepts, until signal aborts.
function watcher(db, since, signal) {
  const subs = [];
  follow(db, since, (c) => { for (const s of subs) s(c); }, signal, () => showLogin());
  return (f, filter) => {
    const later = debounce(() => { if (!signal.aborted) f().catch(failed); }, refreshMs);
    subs.push((c) => { if (!filter || filter(c)) later(); });
  };
}

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

const dbHref = (db, ...rest) => '#/db/' + [db, ...rest].map(seg).join('/');

// ---- routing ----

function route() {
  if (page) page.ctl.abort();
  const ctl = new AbortController();
  page = { ctl, signal: ctl.signal };
  logoutBtn.hidden = !token();
  let parts = [];
  try {
    parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  } catch { /* a malformed escape: show the databases */ }
  let render;
  if (parts[0] === 'peers') render = renderPeers;
  else if (parts[0] === 'db' && parts[1]) {
    const [db, what, ...rest] = parts.slice(1);
    if (what === 'doc' && rest.length) render = (signal) => renderDoc(db, rest.join('/'), signal);
    else if (what === 'new') render = () => renderNewDoc(db);
    else render = (signal) => renderDB(db, what || 'docs', signal);
  } else render = renderDBs;
  replace(main, h('p', { class: 'muted' }, 'Loading…'));
  // Every page is given its signal: it must not read page later, when
  // page may already be the next one.
  render(ctl.signal).catch((e) => {
    if (page.ctl !== ctl) return;
    if (e instanceof AuthError) { showLogin(); return; }
    replace(main, h('p', { class: 'error', id: 'page-error' }, e.message || String(e)));
  });
}

// showLogin replaces the page with the login form. The page's other
// requests and streams get their 401 too: the form is shown once.
function showLogin() {
  if (page && page.login) return;
  if (page) page.ctl.abort();
  const ctl = new AbortController();
  page = { ctl, signal: ctl.signal, login: true };
  logoutBtn.hidden = true;
  const input = h('input', { id: 'login-token', type: 'password', autocomplete: 'current-password', required: true, autofocus: true });
  const note = h('p', { class: 'error', id: 'login-error' });
  replace(main, h('form', { id: 'login', class: 'card narrow', onsubmit: action(async () => {
    setToken(input.value);
    try {
      await api('GET', '/');
    } catch (e) {
      setToken('');
      if (e instanceof AuthError) { replace(note, 'That token was refused.'); return; }
      throw e;
    }
    showNodeID();
    route();
  }) },
  h('h1', null, 'Log in'),
  h('p', null, 'This barrel asks for its HTTP token (--http-token). It is kept for this browser tab only.'),
  h('label', { for: 'login-token' }, 'Token '), input, ' ',
  h('button', { type: 'submit', id: 'login-submit' }, 'Log in'),
  note));
  input.focus();
}

async function showNodeID() {
  try {
    const info = await api('GET', '/');
    const el = document.getElementById('node-id');
    replace(el, short(info.peer_id, 16), ' · ', info.version);
    el.title = info.peer_id;
  } catch { /* the page itself reports it */ }
}

// ---- databases ----

async function renderDBs(signal) {
  const name = h('input', { id: 'create-db-name', placeholder: 'new database', required: true, pattern: '[^/]+' });
  const rows = h('tbody');
  replace(main,
    h('h1', null, 'Databases'),
    h('form', { id: 'create-db', class: 'inline', onsubmit: action(async () => {
      await api('PUT', '/dbs/' + seg(name.value));
      flash(`Created ${name.value}`, 'ok');
      name.value = '';
      await load();
    }) }, name, h('button', { type: 'submit' }, 'Create')),
    h('table', { id: 'db-table' },
      h('thead', null, h('tr', null, ['name', 'documents', 'update seq', 'revisions', 'tombstones', 'on disk', 'last compaction', ''].map((t, i) =>
        h('th', { class: i >= 1 && i <= 5 ? 'num' : null }, t)))),
      rows));
  async function load() {
    const names = await api('GET', '/dbs', undefined, signal);
    const infos = await Promise.all(names.map((n) => api('GET', '/dbs/' + seg(n), undefined, signal).catch((e) => ({ name: n, error: e.message }))));
    replace(rows, infos.length ? infos.map(dbRow) : h('tr', null, h('td', { colspan: 8, class: 'muted' }, 'No databases yet.')));
  }
  function dbRow(d) {
    if (d.error) return h('tr', null, h('td', null, d.name), h('td', { colspan: 7, class: 'error' }, d.error));
    return h('tr', { 'data-db': d.name },
      h('td', null, h('a', { href: dbHref(d.name) }, d.name)),
      h('td', { class: 'num' }, d.doc_count),
      h('td', { class: 'num' }, d.update_seq),
      h('td', { class: 'num' }, d.revisions),
      h('td', { class: 'num' }, d.tombstones),
      h('td', { class: 'num' }, bytes(d.disk_bytes)),
      h('td', null, d.last_compaction ? when(d.last_compaction.at) : 'never'),
      h('td', null, h('button', { class: 'danger', onclick: action(async () => {
        if (!confirm(`Drop database ${d.name} and all its documents on this node?`)) return;
        await api('DELETE', '/dbs/' + seg(d.name));
        flash(`Dropped ${d.name}`, 'ok');
        await load();
      }) }, 'Drop')));
  }
  await load();
  every(pollMs, load, signal);
}

// ---- one database ----

const tabs = [['docs', 'Documents'], ['query', 'Query'], ['changes', 'Changes'], ['settings', 'Replication, ACL, compaction']];

function dbHeader(db, current) {
  return [
    h('p', { class: 'crumbs' }, h('a', { href: '#/dbs' }, 'Databases'), ' / ', h('a', { href: dbHref(db) }, db)),
    h('nav', { class: 'tabs' }, tabs.map(([k, t]) => h('a', { href: dbHref(db, k), class: k === current ? 'current' : null }, t))),
  ];
}

async function renderDB(db, tab, signal) {
  const info = await api('GET', '/dbs/' + seg(db), undefined, signal);
  const body = h('section', { id: 'tab-' + tab });
  const counts = h('span', { class: 'muted small', id: 'db-counts' });
  const showCounts = (i) => replace(counts, `${i.doc_count} document${i.doc_count === 1 ? '' : 's'} · seq ${i.update_seq} · ${bytes(i.disk_bytes)}`);
  showCounts(info);
  replace(main, h('h1', null, db, ' ', counts), dbHeader(db, tab), body);
  const watch = watcher(db, info.update_seq, signal);
  watch(async () => showCounts(await api('GET', '/dbs/' + seg(db), undefined, signal)));
  switch (tab) {
    case 'query': return renderQuery(db, body, signal, watch);
    case 'changes': return renderChanges(db, info, body, signal);
    case 'settings': return renderSettings(db, info, body, signal);
    default: return renderDocs(db, body, signal, watch);
  }
}

const listLimit = 25;

async function renderDocs(db, body, signal, watch) {
  const prefix = h('input', { id: 'doc-prefix', placeholder: 'id prefix' });
  const list = h('div', { id: 'doc-list' });
  const pages = []; // start_after of the pages before this one
  let start = '';
  replace(body,
    h('div', { class: 'inline' }, prefix, ' ', h('a', { class: 'button', id: 'new-doc', href: dbHref(db, 'new') }, 'New document')),
    list);
  prefix.addEventListener('input', debounce(() => { pages.length = 0; start = ''; load().catch(failed); }, refreshMs));
  async function load() {
    const q = new URLSearchParams({ limit: listLimit });
    if (prefix.value) q.set('prefix', prefix.value);
    if (start) q.set('start_after', start);
    const p = await api('GET', `/dbs/${seg(db)}/docs?${q}`, undefined, signal);
    const rows = p.docs.map((d) => h('tr', { 'data-id': d.id },
      h('td', null, h('a', { href: dbHref(db, 'doc', d.id) }, d.id)),
      h('td', { class: 'mono', title: d.rev }, short(d.rev)),
      h('td', null, d.deleted ? 'deleted' : '')));
    replace(list,
      table({ id: 'doc-table' }, ['id', 'revision', ''], rows.length ? rows : h('tr', null, h('td', { colspan: 3, class: 'muted' }, 'No documents.'))),
      h('div', { class: 'pager' },
        h('button', { id: 'prev-page', disabled: pages.length === 0, onclick: action(() => { start = pages.pop(); return load(); }) }, '← Previous'),
        ' ',
        h('button', { id: 'next-page', disabled: !p.next, onclick: action(() => { pages.push(start); start = p.next; return load(); }) }, 'Next →')));
  }
  await load();
  watch(load);
}

// ---- one document ----

// reservedFields are the fields the API adds to a document; an edit sends
// the body without them (and _rev as its base).
const reservedFields = ['_id', '_conflicts', '_revs', '_attachments', '_deleted'];

function editable(doc) {
  const out = {};
  for (const [k, v] of Object.entries(doc)) if (!reservedFields.includes(k)) out[k] = v;
  return out;
}

// pointerTokens splits a JSON pointer (RFC 6901).
function pointerTokens(p) {
  return p.split('/').slice(1).map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function pointerOf(tokens) {
  return tokens.map((t) => '/' + String(t).replace(/~/g, '~0').replace(/\//g, '~1')).join('');
}

// setPointer sets (or, with remove, deletes) the value at pointer p in v.
function setPointer(v, p, value, remove) {
  const ts = pointerTokens(p);
  let cur = v;
  for (const t of ts.slice(0, -1)) {
    if (cur[t] === null || typeof cur[t] !== 'object') cur[t] = {};
    cur = cur[t];
  }
  const last = ts[ts.length - 1];
  if (remove) {
    if (Array.isArray(cur)) cur.splice(Number(last), 1);
    else delete cur[last];
  } else cur[last] = value;
}

// leaves lists [pointer, value] for every scalar (and empty container) of v.
function leaves(v, tokens = [], out = []) {
  if (v !== null && typeof v === 'object' && Object.keys(v).length > 0) {
    for (const [k, x] of Object.entries(v)) leaves(x, [...tokens, k], out);
  } else out.push([pointerOf(tokens), v]);
  return out;
}

async function renderDoc(db, id, signal) {
  const path = `/dbs/${seg(db)}/docs/${seg(id)}`;
  const info = await api('GET', '/dbs/' + seg(db), undefined, signal);
  const head = h('div');
  const conflicts = h('section', { id: 'doc-conflicts' });
  const jsonView = h('pre', { id: 'doc-json', class: 'json' });
  const paths = h('div', { id: 'doc-paths' });
  const atts = h('section', { id: 'doc-attachments' });
  const revs = h('div', { id: 'doc-revs' });
  const editor = h('textarea', { id: 'doc-editor', rows: 14, spellcheck: 'false' });
  const editNote = h('p', { class: 'muted', id: 'doc-edit-note' });
  let doc = null;
  let dirty = false;
  editor.addEventListener('input', () => { dirty = true; });

  replace(main,
    h('p', { class: 'crumbs' }, h('a', { href: '#/dbs' }, 'Databases'), ' / ', h('a', { href: dbHref(db) }, db), ' / ', id),
    head, conflicts,
    h('div', { class: 'cols' },
      h('section', null, h('h2', null, 'Document'), jsonView, h('h2', null, 'Paths'), paths),
      h('section', null,
        h('h2', null, 'Edit'), editor, editNote,
        h('div', { class: 'inline' },
          h('button', { id: 'doc-save', onclick: action(save) }, 'Save'), ' ',
          h('button', { id: 'doc-reload', onclick: action(() => { dirty = false; return load(); }) }, 'Discard changes'), ' ',
          h('button', { id: 'doc-delete', class: 'danger', onclick: action(remove) }, 'Delete')),
        atts)),
    h('h2', null, 'Revisions'), revs);

  async function save() {
    let body;
    try { body = JSON.parse(editor.value); } catch (e) { throw new Error('The document is not valid JSON: ' + e.message); }
    const res = await api('PUT', path, body);
    dirty = false;
    flash(`Saved ${id} at ${short(res.rev)}`, 'ok');
    await load();
  }

  async function remove() {
    if (!confirm(`Delete document ${id}?`)) return;
    await api('DELETE', `${path}?rev=${encodeURIComponent(doc._rev)}`);
    flash(`Deleted ${id}`, 'ok');
    go(dbHref(db));
  }

  async function load() {
    try {
      doc = await api('GET', `${path}?conflicts=true`, undefined, signal);
    } catch (e) {
      if (e.status === 404) {
        replace(head, h('h1', null, id), h('p', { class: 'muted', id: 'doc-missing' }, e.message));
        return;
      }
      throw e;
    }
    const hist = await api('GET', `${path}/_history`, undefined, signal).catch(() => ({ history: [] }));
    replace(head, h('h1', null, id, ' ', h('span', { class: 'mono small muted', title: doc._rev }, short(doc._rev, 20))));
    jsonView.textContent = json(doc);
    const body = editable(doc);
    replace(paths, table({ class: 'paths' }, ['path', 'value'],
      leaves(editable(Object.fromEntries(Object.entries(body).filter(([k]) => k !== '_rev')))).map(([p, v]) =>
        h('tr', null, h('td', { class: 'mono' }, p), h('td', { class: 'mono' }, JSON.stringify(v))))));
    if (!dirty) editor.value = json(body);
    replace(editNote, dirty ? 'You have unsaved edits; the document shown on the left is the latest. Saving merges your edit with changes made since you opened it.' : '');
    renderConflicts();
    renderAttachments();
    replace(revs, table({ class: 'revs' }, ['revision', 'time', 'author', 'seq', 'ops', 'parents'],
      (hist.history || []).map((r) => h('tr', { class: r.compacted ? 'muted' : null },
        h('td', { class: 'mono', title: r.rev }, short(r.rev), r.compacted ? ' (compacted)' : ''),
        h('td', null, when(r.time)),
        h('td', { class: 'mono', title: r.author || '' }, short(r.author || '')),
        h('td', { class: 'num' }, r.seq),
        h('td', { class: 'num' }, r.ops),
        h('td', { class: 'mono' }, (r.parents || []).map((p) => short(p, 8)).join(' '))))));
  }

  function renderConflicts() {
    const cs = doc._conflicts || [];
    if (!cs.length) { replace(conflicts); conflicts.className = ''; return; }
    conflicts.className = 'card warn';
    replace(conflicts,
      h('h2', null, cs.length === 1 ? '1 conflict' : `${cs.length} conflicts`),
      h('p', null, 'Concurrent edits: the document shows the winning value; these lost. A later edit that saw both resolves them.'),
      table({ id: 'conflict-table' }, ['path', 'losing value', 'revision', ''],
        cs.map((c) => h('tr', { 'data-path': c.path },
          h('td', { class: 'mono' }, c.path),
          h('td', { class: 'mono' }, c.deleted ? '(deleted)' : JSON.stringify(c.value)),
          h('td', { class: 'mono', title: c.rev }, short(c.rev)),
          h('td', null, h('button', { onclick: action(async () => {
            const body = editable(doc);
            setPointer(body, c.path, c.value, c.deleted);
            await api('PUT', path, body);
            flash(`Kept the value of ${c.path} from ${short(c.rev)}`, 'ok');
            await load();
          }) }, 'Use this value'))))));
  }

  function renderAttachments() {
    const list = Object.entries(doc._attachments || {});
    const file = h('input', { type: 'file', id: 'attach-file' });
    replace(atts, h('h2', null, 'Attachments'),
      list.length ? table({ id: 'attach-table' }, ['name', 'type', 'size', ''], list.map(([name, a]) => h('tr', null,
        h('td', null, name), h('td', null, a.content_type || ''), h('td', { class: 'num' }, bytes(a.length)),
        h('td', null, h('button', { onclick: action(() => download(name)) }, 'Download'))))) : h('p', { class: 'muted' }, 'None.'),
      h('div', { class: 'inline' }, file, ' ', h('button', { id: 'attach-upload', onclick: action(async () => {
        const f = file.files[0];
        if (!f) throw new Error('Choose a file first.');
        await raw('PUT', `${path}/_attachments/${seg(f.name)}?rev=${encodeURIComponent(doc._rev)}`, f, f.type || 'application/octet-stream');
        flash(`Attached ${f.name}`, 'ok');
        await load();
      }) }, 'Upload')));
  }

  // download fetches an attachment with the token and saves it: a plain
  // link could not send the Authorization header.
  async function download(name) {
    const resp = await raw('GET', `${path}/_attachments/${seg(name)}`);
    const url = URL.createObjectURL(await resp.blob());
    const a = h('a', { href: url, download: name });
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  await load();
  live(db, info.update_seq, load, signal, (c) => c.id === id);
}

async function renderNewDoc(db) {
  const id = h('input', { id: 'new-doc-id', required: true, value: newID() });
  const editor = h('textarea', { id: 'doc-editor', rows: 14, spellcheck: 'false', value: '{\n  \n}' });
  replace(main,
    h('p', { class: 'crumbs' }, h('a', { href: '#/dbs' }, 'Databases'), ' / ', h('a', { href: dbHref(db) }, db), ' / new'),
    h('h1', null, 'New document'),
    h('form', { id: 'new-doc', class: 'card', onsubmit: action(async () => {
      let body;
      try { body = JSON.parse(editor.value); } catch (e) { throw new Error('The document is not valid JSON: ' + e.message); }
      await api('PUT', `/dbs/${seg(db)}/docs/${seg(id.value)}`, body);
      flash(`Created ${id.value}`, 'ok');
      go(dbHref(db, 'doc', id.value));
    }) },
    h('label', { for: 'new-doc-id' }, 'id '), id,
    h('label', { for: 'doc-editor' }, 'JSON object'), editor,
    h('button', { type: 'submit', id: 'doc-save' }, 'Save')));
}

function newID() {
  const b = new Uint8Array(8);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

// ---- query ----

const lastQuery = new Map(); // db -> query text, for the tab's lifetime
const exampleQuery = '{\n  "where": [{"path": "/type", "op": "==", "value": "note"}],\n  "limit": 50\n}';

async function renderQuery(db, body, signal, watch) {
  const text = h('textarea', { id: 'query-text', rows: 6, spellcheck: 'false', value: lastQuery.get(db) || exampleQuery });
  const liveBox = h('input', { type: 'checkbox', id: 'query-live', checked: true });
  const status = h('span', { id: 'query-status', class: 'muted' });
  const results = h('div', { id: 'query-results' });
  let current = null; // the query last run, with its cursor
  replace(body,
    h('form', { id: 'query-form', onsubmit: action(() => run(null)) },
      h('p', { class: 'muted' }, 'The body of POST /dbs/', db, '/query: where [{path, op, value}] with op one of == != < <= > >= prefix exists; order_by, desc, limit, cursor.'),
      text,
      h('div', { class: 'inline' },
        h('button', { type: 'submit', id: 'query-run' }, 'Run'), ' ',
        h('label', null, liveBox, ' live: rerun when the database changes'), ' ', status)),
    results);

  async function run(cursor) {
    let q;
    try { q = JSON.parse(text.value); } catch (e) { throw new Error('The query is not valid JSON: ' + e.message); }
    lastQuery.set(db, text.value);
    if (cursor) q.cursor = cursor;
    current = q;
    await refresh();
  }

  async function refresh() {
    if (!current) return;
    const res = await api('POST', `/dbs/${seg(db)}/query`, current, signal);
    replace(status, `${res.docs.length} document${res.docs.length === 1 ? '' : 's'} · ${new Date().toLocaleTimeString()}`);
    replace(results,
      table({ id: 'query-table' }, ['id', 'revision', 'document'], res.docs.map((d) => h('tr', { 'data-id': d._id },
        h('td', null, h('a', { href: dbHref(db, 'doc', d._id) }, d._id)),
        h('td', { class: 'mono', title: d._rev }, short(d._rev)),
        h('td', { class: 'mono' }, short(JSON.stringify(editable(Object.fromEntries(Object.entries(d).filter(([k]) => k !== '_rev')))), 200))))),
      res.cursor ? h('button', { id: 'query-next', onclick: action(() => run(res.cursor)) }, 'Next page →') : null);
  }

  if (lastQuery.has(db)) await run(null);
  watch(refresh, () => liveBox.checked);
}

// ---- changes ----

const changesShown = 50;
const changesKept = 500;

async function renderChanges(db, info, body, signal) {
  const rows = h('tbody', { id: 'changes-rows' });
  const count = h('span', { class: 'muted' }, 'following…');
  replace(body, h('p', null, 'The latest changes of this node\'s feed, newest first, as they arrive. ', count),
    h('table', { id: 'changes-table' }, h('thead', null, h('tr', null, ['seq', 'document', 'revision', ''].map((t, i) => h('th', { class: i === 0 ? 'num' : null }, t)))), rows));
  const since = Math.max(0, info.update_seq - changesShown);
  follow(db, since, (c) => {
    rows.prepend(h('tr', { 'data-seq': c.seq, 'data-id': c.id },
      h('td', { class: 'num' }, c.seq),
      h('td', null, h('a', { href: dbHref(db, 'doc', c.id) }, c.id)),
      h('td', { class: 'mono', title: c.rev }, short(c.rev)),
      h('td', null, c.deleted ? 'deleted' : '')));
    while (rows.children.length > changesKept) rows.lastChild.remove();
    replace(count, `up to seq ${c.seq}`);
  }, signal, () => showLogin());
}

// ---- replication, ACL, compaction ----

async function renderSettings(db, info, body, signal) {
  const repl = h('section', { id: 'replication', class: 'card' });
  const acl = h('section', { id: 'acl', class: 'card' });
  const compact = h('section', { id: 'compaction', class: 'card' });
  replace(body, repl, acl, compact);
  await Promise.all([renderReplication(db, repl, signal), renderACL(db, acl, signal), renderCompaction(db, info, compact)]);
}

function syncTable(rows, withPeer) {
  const heads = [withPeer ? 'peer' : 'database', 'running', 'last sync', 'checkpoint', 'lag', 'last pulled', 'last error'];
  return table({ class: 'sync' }, heads, rows.map((s) => h('tr', { 'data-peer': s.peer || null, 'data-db': s.db },
    withPeer ? h('td', { class: 'mono', title: s.peer }, short(s.peer, 16)) : h('td', null, h('a', { href: dbHref(s.db, 'settings') }, s.db)),
    h('td', null, s.running ? 'yes' : 'no'),
    h('td', null, when(s.last_sync)),
    h('td', { class: 'num' }, s.checkpoint),
    h('td', { class: 'num' + (s.lag > 0 ? ' behind' : '') }, s.lag),
    h('td', { class: 'num' }, s.last_pulled),
    h('td', { class: 'error' }, s.last_error || ''))));
}

async function renderReplication(db, box, signal) {
  const url = `/dbs/${seg(db)}/replication`;
  const st = await api('GET', url, undefined, signal);
  const off = h('input', { type: 'checkbox', id: 'repl-off', checked: !!st.setting.off });
  const prefix = h('input', { id: 'repl-prefix', value: st.setting.id_prefix || '', placeholder: 'all ids' });
  const where = h('textarea', { id: 'repl-where', rows: 3, spellcheck: 'false', value: st.setting.where ? json(st.setting.where) : '', placeholder: '[{"path": "/shared", "op": "==", "value": true}]' });
  const peers = h('div', { id: 'repl-peers' });
  const connectors = h('div');
  replace(box, h('h2', null, 'Replication'),
    h('form', { id: 'repl-form', onsubmit: action(async () => {
      const body = { off: off.checked, id_prefix: prefix.value };
      if (where.value.trim()) {
        try { body.where = JSON.parse(where.value); } catch (e) { throw new Error('where is not valid JSON: ' + e.message); }
      }
      show(await api('PUT', url, body));
      flash('Replication setting saved', 'ok');
    }) },
    h('label', null, off, ' off (do not replicate this database)'),
    h('label', { for: 'repl-prefix' }, 'only ids starting with'), prefix,
    h('label', { for: 'repl-where' }, 'only documents matching (where, JSON)'), where,
    h('button', { type: 'submit' }, 'Save')),
    h('h3', null, 'Peers'), peers, connectors);
  function show(s) {
    replace(peers, s.peers.length ? syncTable(s.peers, true) : h('p', { class: 'muted' }, 'No peer has synced this database yet.'));
    replace(connectors, s.connectors ? [h('h3', null, 'CouchDB connectors'), h('pre', { class: 'json' }, json(s.connectors))] : null);
  }
  show(st);
  every(pollMs, async () => show(await api('GET', url, undefined, signal)), signal);
}

async function renderACL(db, box, signal) {
  const url = `/dbs/${seg(db)}/_acl`;
  const a = await api('GET', url, undefined, signal);
  const summary = h('dl');
  const editor = h('textarea', { id: 'acl-editor', rows: 8, spellcheck: 'false' });
  function show(a) {
    replace(summary, ['owner', 'admins', 'readers', 'writers'].map((k) => [h('dt', null, k),
      h('dd', { class: 'mono' }, Array.isArray(a[k]) ? (a[k].length ? a[k].join(', ') : '(none)') : (a[k] || '(none)'))]));
    editor.value = json({ owner: a.owner, admins: a.admins, readers: a.readers, writers: a.writers });
  }
  replace(box, h('h2', null, 'Access control'), summary,
    h('form', { id: 'acl-form', onsubmit: action(async () => {
      let body;
      try { body = JSON.parse(editor.value); } catch (e) { throw new Error('The ACL is not valid JSON: ' + e.message); }
      show(await api('PUT', url, body));
      flash('ACL saved', 'ok');
    }) }, h('label', { for: 'acl-editor' }, 'Lists of peer ids; readers and writers may be "*" (anyone)'), editor,
    h('button', { type: 'submit' }, 'Save ACL')));
  show(a);
}

async function renderCompaction(db, info, box) {
  const keepRevs = h('input', { id: 'keep-revisions', type: 'number', min: 0, placeholder: 'configured' });
  const keepFor = h('input', { id: 'keep-for', placeholder: 'configured, e.g. 720h' });
  const tombFor = h('input', { id: 'tombstones-for', placeholder: 'configured, e.g. 24h' });
  const result = h('div', { id: 'compact-result' });
  const showStats = (c) => table({ class: 'stats' }, ['documents', 'revisions folded', 'tombstones purged', 'before', 'after', 'took', 'at'],
    [h('tr', null, h('td', { class: 'num' }, c.docs), h('td', { class: 'num' }, c.revisions_folded), h('td', { class: 'num' }, c.tombstones_purged),
      h('td', { class: 'num' }, bytes(c.bytes_before)), h('td', { class: 'num' }, bytes(c.bytes_after)),
      h('td', { class: 'num' }, (c.took_ns / 1e6).toFixed(1) + ' ms'), h('td', null, when(c.at)))]);
  replace(box, h('h2', null, 'Compaction'),
    h('p', null, 'Last run: ', info.last_compaction ? when(info.last_compaction.at) : 'never'),
    info.last_compaction ? showStats(info.last_compaction) : null,
    h('form', { id: 'compact-form', class: 'inline', onsubmit: action(async () => {
      const body = {};
      if (keepRevs.value !== '') body.keep_revisions = Number(keepRevs.value);
      if (keepFor.value) body.keep_for = keepFor.value;
      if (tombFor.value) body.tombstones_for = tombFor.value;
      replace(result, 'Compacting…');
      replace(result, h('h3', null, 'Result'), showStats(await api('POST', `/dbs/${seg(db)}/_compact`, body)));
      flash('Compaction done', 'ok');
    }) },
    h('label', null, 'keep revisions ', keepRevs), ' ', h('label', null, 'keep for ', keepFor), ' ', h('label', null, 'tombstones for ', tombFor), ' ',
    h('button', { type: 'submit', id: 'compact-run' }, 'Compact now'), ' ',
    h('button', { type: 'button', id: 'compact-blobs', onclick: action(async () => {
      const r = await api('POST', `/dbs/${seg(db)}/blobs/compact`);
      replace(result, h('p', null, `Attachments: reclaimed ${r.blobs} blobs (${bytes(r.bytes)}), ${r.uploads} unfinished uploads.`));
    }) }, 'Reclaim attachment space')),
    result);
}

// ---- peers ----

async function renderPeers(signal) {
  const self = h('section', { id: 'self', class: 'card' });
  const list = h('div', { id: 'peers-list' });
  const addr = h('input', { id: 'connect-addr', placeholder: '/ip4/192.0.2.1/tcp/4001/p2p/12D3Koo…', size: 60, required: true });
  replace(main, h('h1', null, 'Peers'), self,
    h('form', { id: 'connect-form', class: 'inline', onsubmit: action(async () => {
      const r = await api('POST', '/peers', { addr: addr.value });
      flash(`Connected to ${short(r.id, 16)}`, 'ok');
      addr.value = '';
      await load();
    }) }, h('label', { for: 'connect-addr' }, 'Connect to '), addr, ' ', h('button', { type: 'submit' }, 'Connect')),
    list);
  async function load() {
    const [info, ps] = await Promise.all([api('GET', '/', undefined, signal), api('GET', '/peers', undefined, signal)]);
    replace(self, h('h2', null, 'This node'),
      h('dl', null,
        h('dt', null, 'peer id'), h('dd', { class: 'mono' }, info.peer_id),
        h('dt', null, 'version'), h('dd', null, info.version),
        h('dt', null, 'addresses'), h('dd', { class: 'mono' }, (info.addresses || []).map((a) => h('div', null, a))),
        h('dt', null, 'components'), h('dd', null, (ps.components || []).map((c) =>
          h('span', { class: 'badge ' + c.state, title: c.error || '' }, c.name, ': ', c.state))),
        info.store ? [h('dt', null, 'store'), h('dd', { class: 'error' }, info.store.advice)] : null));
    replace(list, ps.peers.length ? ps.peers.map((p) => h('section', { class: 'card peer', 'data-peer': p.id },
      h('h2', { class: 'mono' }, p.id),
      h('div', { class: 'mono small' }, (p.addresses || []).map((a) => h('div', null, a))),
      p.dbs && p.dbs.length ? syncTable(p.dbs, false) : h('p', { class: 'muted' }, 'No database synced with this peer yet.')))
      : h('p', { class: 'muted', id: 'no-peers' }, 'Not connected to any peer.'));
  }
  await load();
  every(pollMs, load, signal);
}

// ---- start ----

logoutBtn.addEventListener('click', () => { setToken(''); route(); });
window.addEventListener('hashchange', route);
showNodeID();
route();
