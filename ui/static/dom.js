// DOM helpers. Data only ever reaches the page as text nodes or attribute
// values, never as markup: the dashboard never assigns HTML strings.

// h builds an element: h('a', {href: '#/x', class: 'y'}, 'text', child).
// Attributes starting with "on" are event listeners; null and false
// attributes are left out; children are nodes, strings (as text) or arrays.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// replace puts children in place of el's content.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// table builds a table from column titles and rows of cells. A column
// whose first cell is numeric (class num) gets a right-aligned title too.
export function table(attrs, heads, rows) {
  const first = Array.isArray(rows) ? rows[0] : rows;
  const num = (i) => first instanceof Element && first.children[i] && first.children[i].classList.contains('num');
  return h('table', attrs,
    h('thead', null, h('tr', null, heads.map((t, i) => h('th', { class: num(i) ? 'num' : null }, t)))),
    h('tbody', null, rows));
}

// bytes formats a byte count for people.
export function bytes(n) {
  if (typeof n !== 'number') return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? String(n) : n.toFixed(1)) + ' ' + units[i];
}

// when formats an RFC 3339 time, or says never.
export function when(t) {
  if (!t || t.startsWith('0001-')) return 'never';
  const d = new Date(t);
  return isNaN(d) ? t : d.toLocaleString();
}

// short abbreviates a revision or peer id.
export function short(s, n = 12) {
  s = String(s ?? '');
  return s.length > n + 1 ? s.slice(0, n) + '…' : s;
}

// json is v as indented JSON text.
export function json(v) {
  return JSON.stringify(v, null, 2);
}

// debounce returns f delayed until ms have passed without another call.
export function debounce(f, ms) {
  let timer = 0;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => f(...args), ms);
  };
}
