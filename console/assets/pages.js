// The three pages. Each returns { node, refresh }: node is built once
// (forms and editors keep what the user typed), refresh reloads the
// live figures and replaces only the parts that show them.
'use strict';

// adminButton is an action button: disabled, with the reason, for a
// read token (the API would answer 403 anyway, and shows it if forced).
function adminButton(label, id, action, cls) {
  const b = el('button', { type: 'button', id, class: 'admin ' + (cls || ''), onclick: () => act(b, action) }, label);
  if (!isAdmin()) {
    b.disabled = true;
    b.title = 'needs an admin token';
  }
  return b;
}

// act runs an action, shows its outcome and refreshes the page.
async function act(button, action) {
  button.disabled = true;
  try {
    const msg = await action();
    if (msg) flash(msg, 'ok');
    await App.refresh();
  } catch (e) {
    flash(e.message, 'error', e.problems);
  } finally {
    button.disabled = !isAdmin();
  }
}

function replace(container, ...children) {
  container.replaceChildren(...children.flat().filter(known));
}

function stateBadge(state) {
  return el('span', { class: 'badge state-' + (state || 'unknown') }, state || DASH);
}

function taskError(e) {
  if (!e) return DASH;
  return el('span', { class: 'error-text', title: e.message }, e.kind + ': ' + e.message);
}

function conflicts(t) {
  if (!t.two_way) return DASH;
  if (t.two_way.conflicts_error) return el('span', { class: 'error-text', title: t.two_way.conflicts_error }, 'unknown');
  return num((t.two_way.conflicts || []).reduce((s, c) => s + c.count, 0));
}

function verifyText(v) {
  if (!v) return DASH;
  if (v.failed && v.failed.length) return 'failed: ' + v.failed.join(', ');
  if (v.differences) return num(v.differences) + ' differences in ' + v.differing.join(', ');
  return 'equal (' + v.tables + ' tables, ' + when(v.at) + ')';
}

function slotWAL(t) { return t.slot ? bytes(t.slot.retained_wal_bytes) : DASH; }

// --- Tasks page (/ui/) -------------------------------------------------

function tasksPage() {
  const params = new URLSearchParams(location.search);
  let filter = params.get('state') || '';
  const counts = el('div', { class: 'counts', id: 'counts' });
  const select = el('select', { id: 'state-filter', onchange: () => { filter = select.value; setQuery(filter); App.refresh(); } },
    ['', 'running', 'retrying', 'paused', 'failed', 'pending', 'released'].map(s => el('option', { value: s, selected: s === filter }, s || 'all states')));
  const body = el('tbody', { id: 'task-rows' });
  const table = el('table', { class: 'grid', id: 'tasks' },
    el('thead', {}, el('tr', {}, ['Task', 'Phase', 'State', 'Latency', 'Rows/s', 'Rows applied', 'Full sync', 'Retained WAL', 'Last error', 'Conflicts', 'Verification'].map(h => el('th', {}, h)))),
    body);
  const create = createPanel();
  const node = el('section', {},
    el('div', { class: 'toolbar' }, el('h1', {}, 'Tasks'), counts, el('label', {}, 'Show ', select),
      adminButton('New task', 'new-task', async () => { create.hidden = !create.hidden; })),
    create, table);

  async function refresh() {
    const tasks = (await API.tasks()) || [];
    const by = s => tasks.filter(t => t.state === s).length;
    replace(counts, ['running', 'failed', 'paused'].map(s =>
      el('a', { href: '?state=' + s, class: 'count state-' + s, 'data-count': s }, el('b', {}, String(by(s))), ' ' + s)),
    el('span', { class: 'count' }, el('b', {}, String(tasks.length)), ' total'));
    const shown = tasks.filter(t => !filter || t.state === filter);
    replace(body, shown.length ? shown.map(taskRow) :
      el('tr', {}, el('td', { colspan: 11, class: 'empty' }, tasks.length ? 'no task in this state' : 'no tasks yet')));
  }
  return { node, refresh };
}

function setQuery(state) {
  history.replaceState(null, '', state ? '?state=' + state : location.pathname);
}

function taskRow(t) {
  return el('tr', { 'data-task': t.name },
    el('td', {}, el('a', { href: '/ui/tasks/' + encodeURIComponent(t.name) }, t.name)),
    el('td', {}, field('phase', t.phase)),
    el('td', {}, stateBadge(t.state)),
    el('td', {}, field('latency', ms(t.latency_ms))),
    el('td', {}, field('rps', rate(t.throughput_rps))),
    el('td', {}, field('rows-applied', num(t.rows_applied))),
    el('td', {}, t.full && t.full.rows_estimated ? progress('full', t.full.rows_done, t.full.rows_estimated) : DASH),
    el('td', {}, field('retained-wal', slotWAL(t))),
    el('td', { class: 'err' }, taskError(t.last_error)),
    el('td', {}, conflicts(t)),
    el('td', {}, verifyText(t.verify)));
}

// createPanel: paste a spec, run the precheck, tick the warnings to
// ignore, create.
function createPanel() {
  const text = el('textarea', { id: 'create-yaml', rows: 14, spellcheck: false, placeholder: 'name: orders\nsource: { dsn: "postgres://..." }\ndestination: { type: postgres, dsn: "postgres://..." }\nobjects:\n  - schema: public' });
  const report = el('div', { id: 'precheck-report' });
  const ignored = () => [...report.querySelectorAll('input[data-ignore]:checked')].map(i => i.dataset.ignore);
  const showReport = r => replace(report, precheckList(r.checks || [], ignored()),
    el('p', { class: r.passed ? 'ok-text' : 'error-text', id: 'precheck-verdict' }, r.passed ? 'Nothing blocks: the task can be created.' : 'Something blocks: fix it, or tick the warnings to ignore.'));
  const panel = el('section', { class: 'panel', id: 'create-panel', hidden: true },
    el('h2', {}, 'New task from YAML'), text,
    el('div', { class: 'actions' },
      adminButton('Run precheck', 'precheck', async () => { showReport(await API.precheck(text.value, ignored())); }),
      adminButton('Create', 'create', async () => {
        let st;
        try {
          st = await API.create(text.value, ignored());
        } catch (e) {
          // What blocks goes where the ignore boxes are.
          if (e.problems.length) showReport({ checks: e.problems, passed: false });
          throw e;
        }
        panel.hidden = true;
        text.value = '';
        replace(report);
        return 'Task ' + st.name + ' created.';
      }, 'primary')),
    report);
  return panel;
}

// precheckList shows each check with its result, message and fix; with
// ignored (the ids ticked), a warning has a box to ignore it by its id.
function precheckList(checks, ignored) {
  return el('ul', { class: 'checks' }, checks.map(c => {
    const result = c.result || 'failure';
    const box = ignored && result === 'warning' && c.check
      ? el('label', { class: 'ignore' }, el('input', { type: 'checkbox', 'data-ignore': c.check, checked: ignored.includes(c.check) }), ' ignore')
      : null;
    return el('li', { class: 'check result-' + result, 'data-check': c.check },
      el('span', { class: 'badge result-' + result }, result), ' ', el('code', {}, c.check || DASH), ' ', c.message,
      c.fix ? el('div', { class: 'fix' }, 'Fix: ', c.fix) : null, box);
  }));
}

// --- Task page (/ui/tasks/NAME) -----------------------------------------

function taskPage(name) {
  const summary = el('div', { class: 'cards', id: 'summary' });
  const charts = el('div', { class: 'charts', id: 'charts' });
  const tables = el('tbody', { id: 'table-rows' });
  const errors = el('div', { id: 'errors' });
  const extra = el('div', { id: 'extra' });
  const spec = el('pre', { id: 'spec', class: 'yaml' });
  const editor = el('textarea', { id: 'update-yaml', rows: 16, spellcheck: false });
  const updatePanel = el('section', { class: 'panel', id: 'update-panel', hidden: true },
    el('h2', {}, 'Update ' + name),
    el('p', {}, 'Objects, retry, alerts, throttle and verify can change; secrets are shown masked: write them again or use ${env:NAME} references.'),
    editor,
    el('div', { class: 'actions' }, adminButton('Save', 'update-save', async () => {
      await API.update(name, editor.value);
      updatePanel.hidden = true;
      return 'Task ' + name + ' updated.';
    }, 'primary')));
  const confirmBox = el('div', { class: 'panel danger', id: 'delete-confirm', hidden: true },
    'Delete task ', el('b', {}, name), '? Its slot, publication and stream are dropped; the destination tables stay. ',
    adminButton('Yes, delete', 'delete-yes', async () => {
      await API.remove(name);
      location.assign('/ui/');
      return new Promise(() => {}); // the page goes away: nothing to refresh
    }, 'danger'),
    el('button', { type: 'button', onclick: () => { confirmBox.hidden = true; } }, 'Cancel'));
  let lastSpec = null;
  const node = el('section', {},
    el('div', { class: 'toolbar' },
      el('h1', {}, el('a', { href: '/ui/' }, 'Tasks'), ' / ', el('span', { id: 'task-name' }, name)),
      el('span', { id: 'task-state' }),
      el('div', { class: 'actions' },
        adminButton('Pause', 'pause', async () => { await API.pause(name); return 'Task ' + name + ' paused.'; }),
        adminButton('Resume', 'resume', async () => { await API.resume(name); return 'Task ' + name + ' resumed.'; }),
        adminButton('Verify', 'verify', async () => verifyOutcome(await API.verify(name))),
        adminButton('Update', 'update', async () => { editor.value = specYAML(lastSpec || {}); updatePanel.hidden = false; }),
        adminButton('Delete', 'delete', async () => { confirmBox.hidden = false; }, 'danger'))),
    confirmBox, updatePanel, summary, charts,
    el('h2', {}, 'Tables'),
    el('table', { class: 'grid', id: 'tables' },
      el('thead', {}, el('tr', {}, ['Table', 'Phase', 'Full sync', 'Copy rows/s', 'ETA', 'Inserts', 'Updates', 'Deletes', 'Truncates', 'Last position', 'Lag'].map(h => el('th', {}, h)))),
      tables),
    errors, extra,
    el('h2', {}, 'Spec'), spec);

  async function refresh() {
    const [t, tbl, hist, records] = await Promise.all([API.task(name), optional(API.tables(name)), optional(API.history(name)), optional(API.verifications(name))]);
    lastSpec = t.spec;
    replace(node.querySelector('#task-state'), stateBadge(t.state), ' ', field('phase', t.phase, 'phase'));
    replace(summary, summaryCards(t));
    replace(charts, hist && hist.points ? [
      lineChart('Latency', hist.points, p => p.latency_ms, ms, 'latency'),
      lineChart('Rows per second', hist.points, p => p.rows_per_second, rate, 'rps')] : el('p', { class: 'muted' }, 'No history on this node.'));
    const rows = (tbl && tbl.tables) || [];
    replace(tables, rows.length ? rows.map(tableRow) : el('tr', {}, el('td', { colspan: 11, class: 'empty' }, tbl ? 'no tables' : 'per-table figures are not available on this node')));
    replace(errors, errorSection(t));
    replace(extra, conflictSection(t), verifySection(t, records));
    const yaml = specYAML(t.spec);
    if (spec.textContent !== yaml) spec.textContent = yaml;
  }
  return { node, refresh };
}

function card(label, ...value) {
  return el('div', { class: 'card' }, el('div', { class: 'label' }, label), el('div', { class: 'value' }, ...value));
}

function summaryCards(t) {
  const f = t.full || {};
  const s = t.slot;
  return [
    card('State', field('state', t.state)),
    card('Phase', field('phase', t.phase)),
    card('Latency', field('latency', ms(t.latency_ms))),
    card('Rows applied', field('rows-applied', num(t.rows_applied))),
    card('Throughput', field('rps', rate(t.throughput_rps)), ' rows/s, ', field('bps', bytes(t.throughput_bps)), '/s'),
    card('Full sync', progress('full', f.rows_done, f.rows_estimated), el('br'),
      field('tables', (f.tables_done || 0) + ' / ' + (f.tables_total || 0)), ' tables',
      f.rows_per_second ? ' \u00b7 ' + rate(f.rows_per_second) + ' rows/s' : ''),
    card('Slot', s ? el('span', {}, field('slot-name', s.name || DASH), el('br'), 'confirmed ', field('slot-lsn', s.confirmed_lsn || DASH),
      el('br'), 'retained WAL ', field('retained-wal', bytes(s.retained_wal_bytes)), el('br'), field('slot-active', s.active ? 'active' : 'inactive'))
      : el('span', {}, 'confirmed ', field('slot-lsn', t.confirmed_lsn || DASH))),
  ];
}

function tableRow(r) {
  const f = r.full || {}, a = r.applied || {};
  return el('tr', { 'data-table': r.table },
    el('td', {}, r.table),
    el('td', {}, field('phase', r.phase || DASH)),
    el('td', {}, f.rows_estimated || f.rows_done ? progress('full', f.rows_done, f.rows_estimated) : DASH),
    el('td', {}, rate(f.rows_per_second)),
    el('td', {}, f.eta_seconds ? seconds(f.eta_seconds) : DASH),
    el('td', {}, field('insert', num(a.insert))),
    el('td', {}, field('update', num(a.update))),
    el('td', {}, field('delete', num(a.delete))),
    el('td', {}, field('truncate', num(a.truncate))),
    el('td', {}, el('code', {}, r.last_position || DASH)),
    el('td', {}, ms(r.lag_ms)));
}

function errorSection(t) {
  const e = t.last_error;
  if (!e && !t.resolved_error) return null;
  return el('section', { class: 'panel' + (e ? ' danger' : ''), id: 'task-errors' },
    el('h2', {}, 'Errors'),
    e ? el('p', {}, el('b', {}, 'Current: '), el('span', { 'data-field': 'error-kind' }, e.kind), ': ', e.message,
      el('br'), 'since ', when(e.at), e.retry_until && !e.retry_until.startsWith('0001-') ? ' \u00b7 retry window ends ' + when(e.retry_until) : ' \u00b7 no retry left') : null,
    t.resolved_error ? el('p', { class: 'muted' }, 'Resolved ', when(t.last_error_resolved_at), ': ', t.resolved_error.kind, ': ', t.resolved_error.message) : null);
}

function conflictSection(t) {
  if (!t.two_way) return null;
  const rows = t.two_way.conflicts || [];
  return el('section', { id: 'conflicts' }, el('h2', {}, 'Conflicts (two-way, policy ' + t.two_way.policy + ')'),
    t.two_way.conflicts_error ? el('p', { class: 'error-text' }, t.two_way.conflicts_error) : null,
    rows.length ? el('table', { class: 'grid' }, el('thead', {}, el('tr', {}, ['Direction', 'Kind', 'Resolution', 'Count'].map(h => el('th', {}, h)))),
      el('tbody', {}, rows.map(c => el('tr', {}, el('td', {}, c.direction), el('td', {}, c.kind), el('td', {}, c.resolution), el('td', {}, num(c.count))))))
      : el('p', { class: 'muted' }, 'No conflicts.'));
}

function verifySection(t, records) {
  if (!records || !records.length) return null;
  return el('section', { id: 'verifications' }, el('h2', {}, 'Verification: ' + verifyText(t.verify)),
    el('table', { class: 'grid' }, el('thead', {}, el('tr', {}, ['Table', 'At', 'Rows', 'Differences', 'Repaired', 'Error'].map(h => el('th', {}, h)))),
      el('tbody', {}, records.map(r => el('tr', { 'data-verified': r.table }, el('td', {}, r.table), el('td', {}, when(r.at)), el('td', {}, num(r.rows)),
        el('td', {}, field('differences', num(r.differences))), el('td', {}, num(r.repaired || 0)), el('td', { class: 'err' }, r.error || ''))))));
}

function verifyOutcome(report) {
  const tables = report.tables || [];
  return 'Verification of ' + tables.length + ' tables done at ' + when(report.at) + '.';
}

// --- Cluster page (/ui/cluster) -----------------------------------------

function clusterPage() {
  const head = el('div', { id: 'cluster-head' });
  const nodes = el('tbody', { id: 'node-rows' });
  const node = el('section', {},
    el('div', { class: 'toolbar' }, el('h1', {}, 'Cluster'), head),
    el('table', { class: 'grid', id: 'nodes' },
      el('thead', {}, el('tr', {}, ['Node', 'Roles', 'Pool', 'State', 'Raft', 'Last seen', 'Units', ''].map(h => el('th', {}, h)))),
      nodes),
    el('div', { id: 'cluster-extra' }));

  async function refresh() {
    const st = await API.cluster();
    replace(head, el('span', {}, 'leader ', field('leader', st.leader || 'none'), ' \u00b7 Raft index ', num(st.index), ' \u00b7 answered by ', st.served_by),
      st.unhealthy && st.unhealthy.length
        ? el('ul', { class: 'unhealthy', id: 'unhealthy' }, st.unhealthy.map(u => el('li', {}, u)))
        : el('span', { class: 'badge state-running', id: 'health' }, 'healthy'));
    replace(nodes, (st.nodes || []).map(nodeRow));
    replace(node.querySelector('#cluster-extra'), pools(st));
  }
  return { node, refresh };
}

function nodeRow(n) {
  const state = !n.live ? 'down' : n.draining ? 'draining' : 'live';
  const raft = n.leader ? 'leader' : n.voter ? 'follower (voter)' : (n.raft ? 'non-voter' : DASH);
  const units = n.units || [];
  return el('tr', { 'data-node': n.id },
    el('td', {}, n.id),
    el('td', {}, (n.roles || []).join(', ')),
    el('td', {}, n.pool || DASH),
    el('td', {}, el('span', { class: 'badge state-' + state, 'data-field': 'node-state' }, state)),
    el('td', {}, field('raft', raft)),
    el('td', {}, n.last_seen ? when(n.last_seen) : DASH),
    el('td', {}, el('details', {}, el('summary', {}, field('units', String(units.length)), ' units'),
      el('ul', { class: 'units' }, units.map(u => el('li', {}, u.unit, ' (epoch ', u.epoch, ')', u.running === false ? el('span', { class: 'error-text' }, ' not running ' + (u.error || '')) : ''))))),
    el('td', {}, n.draining
      ? adminButton('Undrain', 'undrain-' + n.id, async () => { await API.undrain(n.id); return 'Node ' + n.id + ' takes units again.'; })
      : adminButton('Drain', 'drain-' + n.id, async () => { await API.drain(n.id); return 'Node ' + n.id + ' is draining.'; })));
}

function pools(st) {
  const ps = st.pools || [];
  if (!ps.length) return null;
  return el('section', {}, el('h2', {}, 'Pools'),
    el('table', { class: 'grid' }, el('thead', {}, el('tr', {}, ['Pool', 'Nodes', 'Live', 'Units'].map(h => el('th', {}, h)))),
      el('tbody', {}, ps.map(p => el('tr', {}, el('td', {}, p.name || 'default'), el('td', {}, p.nodes), el('td', {}, p.live_nodes), el('td', {}, p.units))))),
    st.waiting && st.waiting.length ? el('ul', {}, st.waiting.map(w => el('li', {}, 'task ' + w.task + ' waits: ' + w.reason))) : null);
}
