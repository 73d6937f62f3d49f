// Small helpers shared by the pages: DOM building, number formats, a
// JSON-to-YAML writer for specs and SVG line charts. No framework.
'use strict';

const DASH = '\u2014'; // shown while a figure is unknown

// el builds an element: attrs sets properties (class, id, href, data-*,
// on* handlers); children are nodes or strings (set as text, never HTML).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k.startsWith('data-') || k === 'title' || k === 'colspan' || k === 'for') e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

// field is a figure with a stable data-field name (the tests read them).
function field(name, text, cls) {
  return el('span', { 'data-field': name, class: cls }, text);
}

function known(v) { return v !== undefined && v !== null; }

function num(v) {
  if (!known(v) || Number.isNaN(v)) return DASH;
  return Math.round(v).toLocaleString('en-US');
}

function rate(v) {
  if (!known(v)) return DASH;
  return v >= 100 ? num(v) : (Math.round(v * 10) / 10).toLocaleString('en-US');
}

function bytes(v) {
  if (!known(v)) return DASH;
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? Math.round(v) : v.toFixed(1)) + ' ' + units[i];
}

function ms(v) {
  if (!known(v)) return DASH;
  if (v < 1000) return v + ' ms';
  return seconds(v / 1000);
}

function seconds(s) {
  if (!known(s)) return DASH;
  s = Math.round(s);
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
  return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
}

function when(t) {
  if (!t || t.startsWith('0001-')) return DASH;
  const d = new Date(t);
  return d.toLocaleString('en-GB', { hour12: false });
}

function percent(done, total) {
  if (!total) return '';
  return Math.min(100, Math.floor(done * 100 / total)) + '%';
}

// progress is "done / estimated (pct)" with a bar.
function progress(name, done, total) {
  const pct = total ? Math.min(100, done * 100 / total) : 0;
  const bar = el('span', { class: 'bar' }, el('span', { class: 'fill' }));
  bar.firstChild.style.width = pct + '%';
  return el('span', { class: 'progress' }, bar,
    field(name, known(done) ? num(done) + ' / ' + num(total) : DASH), ' ', percent(done, total));
}

// toYAML writes a JSON value as YAML (block style; strings quoted when
// YAML would read them as something else). Spec keys are the YAML keys.
function toYAML(v, indent) {
  indent = indent || '';
  if (Array.isArray(v)) {
    if (v.length === 0) return ' []';
    return v.map(x => '\n' + indent + '-' + (isScalar(x) ? ' ' + scalar(x) : toYAML(x, indent + '  ').replace(/^\n\s*/, ' '))).join('');
  }
  if (v && typeof v === 'object') {
    const keys = Object.keys(v);
    if (keys.length === 0) return ' {}';
    return keys.map(k => '\n' + indent + scalar(k) + ':' + (isScalar(v[k]) ? ' ' + scalar(v[k]) : toYAML(v[k], indent + '  '))).join('');
  }
  return ' ' + scalar(v);
}

function isScalar(v) { return v === null || typeof v !== 'object'; }

function scalar(v) {
  if (v === null) return 'null';
  if (typeof v !== 'string') return String(v);
  if (v === '' || /^[\s\-?:,\[\]{}#&*!|>'"%@`]|[:#]\s|\s$|^(true|false|yes|no|on|off|null|~)$|^[+-]?[\d.]/i.test(v) || /[\n\t]/.test(v)) {
    return JSON.stringify(v);
  }
  return v;
}

function specYAML(spec) { return toYAML(spec).replace(/^\n/, '') + '\n'; }

// lineChart draws values (null: a gap) as an SVG polyline with its
// latest value and maximum; width and height are the viewBox's.
function lineChart(title, points, value, fmt, name) {
  const W = 560, H = 120, P = 4;
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('class', 'chart');
  svg.setAttribute('data-chart', name);
  const vals = points.map(value);
  const max = Math.max(1, ...vals.filter(known));
  const n = Math.max(1, vals.length - 1);
  let d = '', pen = false;
  vals.forEach((v, i) => {
    if (!known(v)) { pen = false; return; }
    const x = P + (W - 2 * P) * i / n, y = H - P - (H - 2 * P) * v / max;
    d += (pen ? 'L' : 'M') + x.toFixed(1) + ' ' + y.toFixed(1);
    pen = true;
  });
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', d || 'M0 0');
  path.setAttribute('class', 'line');
  svg.append(path);
  const last = [...vals].reverse().find(known);
  return el('figure', { class: 'chartbox' },
    el('figcaption', {}, title + ': ', el('b', {}, known(last) ? fmt(last) : DASH), el('small', {}, ' max ' + fmt(max) + ', last hour')),
    svg);
}
