// Boot: log in when there is no token, pick the page from the path, and
// refresh it once every POLL_MS while the tab is visible (one request
// set at a time: a slow answer delays the next poll, never stacks them).
'use strict';

const POLL_MS = 2500;

const App = {
  page: null,
  timer: null,
  busy: null,

  async refresh() {
    if (!this.page) return;
    if (this.busy) return this.busy;
    this.busy = this.page.refresh()
      .then(() => { document.body.dataset.loaded = String(Date.now()); clearStale(); })
      .catch(e => {
        if (e.status === 401) { showLogin('The token was refused: ' + e.message); return; }
        flash(e.message, 'error', e.problems, true);
      })
      .finally(() => { this.busy = null; });
    return this.busy;
  },

  schedule() {
    clearTimeout(this.timer);
    this.timer = setTimeout(async () => {
      if (!document.hidden) await this.refresh();
      this.schedule();
    }, POLL_MS);
  },
};

// route picks the page for the path: /ui/, /ui/tasks/NAME, /ui/cluster.
function route() {
  const path = location.pathname.replace(/\/+$/, '');
  const m = path.match(/^\/ui\/tasks\/([^/]+)$/);
  if (m) return { nav: 'tasks', page: taskPage(decodeURIComponent(m[1])), title: decodeURIComponent(m[1]) };
  if (path === '/ui/cluster') return { nav: 'cluster', page: clusterPage(), title: 'Cluster' };
  return { nav: 'tasks', page: tasksPage(), title: 'Tasks' };
}

// flash shows a message (an error with its problems) above the page;
// stale marks a polling error, cleared by the next good answer.
function flash(message, kind, problems, stale) {
  const f = document.getElementById('flash');
  f.className = 'flash ' + kind + (stale ? ' stale' : '');
  f.replaceChildren(el('span', { id: 'flash-text' }, message),
    problems && problems.length ? precheckList(problems) : '',
    el('button', { type: 'button', class: 'close', onclick: () => { f.hidden = true; } }, '\u00d7'));
  f.hidden = false;
}

function clearStale() {
  const f = document.getElementById('flash');
  if (f.classList.contains('stale')) f.hidden = true;
}

function showLogin(message) {
  App.page = null; // no polling without a token
  clearTimeout(App.timer);
  document.getElementById('page').replaceChildren();
  document.getElementById('login').hidden = false;
  document.getElementById('who').hidden = true;
  document.getElementById('logout').hidden = true;
  if (message) flash(message, 'error');
  document.getElementById('token').focus();
}

function start() {
  const r = route();
  document.title = r.title + ' \u00b7 Sluice';
  document.getElementById('nav-' + r.nav).classList.add('current');
  document.getElementById('login').hidden = true;
  const who = document.getElementById('who');
  who.textContent = isAdmin() ? 'admin token' : 'read-only token';
  who.className = 'who ' + (isAdmin() ? 'admin' : 'read');
  who.hidden = false;
  document.getElementById('logout').hidden = false;
  document.body.classList.toggle('readonly', !isAdmin());
  App.page = r.page;
  document.getElementById('page').replaceChildren(r.page.node);
  App.refresh();
  App.schedule();
}

document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('logout').addEventListener('click', logout);
  document.getElementById('login').addEventListener('submit', async ev => {
    ev.preventDefault();
    const input = document.getElementById('token');
    try {
      await login(input.value.trim());
      input.value = '';
      document.getElementById('flash').hidden = true;
      start();
    } catch (e) {
      showLogin('Login failed: ' + e.message);
    }
  });
  document.addEventListener('visibilitychange', () => { if (!document.hidden) App.refresh(); });
  if (token() && store.getItem('sluice.scope')) start(); else showLogin();
});
