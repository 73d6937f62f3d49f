// The HTTP API with the session's token. The token lives in
// sessionStorage (gone when the tab closes); the scope is probed once at
// login: GET /api/v1/tokens needs the admin scope, so a 403 there means
// a read token.
'use strict';

const store = window.sessionStorage;

class APIError extends Error {
  constructor(status, body) {
    super('HTTP ' + status + ': ' + ((body && body.error) || 'no answer'));
    this.status = status;
    this.problems = (body && body.problems) || [];
  }
}

function token() { return store.getItem('sluice.token'); }
function isAdmin() { return store.getItem('sluice.scope') === 'admin'; }

function logout() {
  store.removeItem('sluice.token');
  store.removeItem('sluice.scope');
  location.reload();
}

// call sends one request and returns the decoded JSON answer; a 401
// logs out (the token was revoked or is wrong), other errors throw.
async function call(method, path, body, contentType) {
  const headers = { 'Authorization': 'Bearer ' + token() };
  if (body !== undefined) headers['Content-Type'] = contentType || 'application/json';
  const resp = await fetch(path, { method, headers, body, cache: 'no-store' });
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = { error: text.trim() }; }
  if (resp.status === 401 && path !== '/api/v1/tokens') {
    store.removeItem('sluice.token');
    throw new APIError(401, data);
  }
  if (!resp.ok) throw new APIError(resp.status, data);
  return data;
}

// login checks a token (any scope reads the task list) and finds its scope.
async function login(tok) {
  store.setItem('sluice.token', tok);
  try {
    await call('GET', '/api/v1/tasks');
  } catch (e) {
    store.removeItem('sluice.token');
    throw e;
  }
  let scope = 'admin';
  try {
    await call('GET', '/api/v1/tokens');
  } catch (e) {
    if (e.status !== 403) throw e;
    scope = 'read';
  }
  store.setItem('sluice.scope', scope);
}

const enc = encodeURIComponent;
const API = {
  tasks: () => call('GET', '/api/v1/tasks'),
  task: n => call('GET', '/api/v1/tasks/' + enc(n)),
  tables: n => call('GET', '/api/v1/tasks/' + enc(n) + '/tables'),
  history: n => call('GET', '/api/v1/tasks/' + enc(n) + '/history'),
  verifications: n => call('GET', '/api/v1/tasks/' + enc(n) + '/verify'),
  cluster: () => call('GET', '/api/v1/cluster'),
  precheck: (yaml, ignore) => call('POST', '/api/v1/precheck' + ignoreQuery(ignore), yaml, 'application/yaml'),
  create: (yaml, ignore) => call('POST', '/api/v1/tasks' + ignoreQuery(ignore), yaml, 'application/yaml'),
  update: (n, yaml) => call('PUT', '/api/v1/tasks/' + enc(n), yaml, 'application/yaml'),
  pause: n => call('POST', '/api/v1/tasks/' + enc(n) + '/pause'),
  resume: n => call('POST', '/api/v1/tasks/' + enc(n) + '/resume'),
  remove: n => call('DELETE', '/api/v1/tasks/' + enc(n)),
  verify: n => call('POST', '/api/v1/tasks/' + enc(n) + '/verify'),
  drain: id => call('POST', '/api/v1/cluster/nodes/' + enc(id) + '/drain'),
  undrain: id => call('POST', '/api/v1/cluster/nodes/' + enc(id) + '/undrain'),
};

function ignoreQuery(ids) {
  return ids && ids.length ? '?ignore=' + ids.map(enc).join(',') : '';
}

// optional turns an endpoint a node may not have (404) into null, so a
// page shows dashes instead of an error.
async function optional(p) {
  try { return await p; } catch (e) { if (e.status === 404 || e.status === 405) return null; throw e; }
}
