// The HTTP API as the dashboard calls it. Every request carries the
// bearer token the user gave, kept in sessionStorage only: it goes away
// with the tab, never to localStorage or a cookie.

const tokenKey = 'barrel.token';

export function token() {
  return sessionStorage.getItem(tokenKey) || '';
}

export function setToken(t) {
  if (t) sessionStorage.setItem(tokenKey, t);
  else sessionStorage.removeItem(tokenKey);
}

// AuthError is thrown when the API answers 401: the page asks for the token.
export class AuthError extends Error {}

// APIError carries the API's {"error", "reason"} answer.
export class APIError extends Error {
  constructor(status, code, reason) {
    super(reason ? `${code}: ${reason}` : `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

function headers(extra) {
  const hd = new Headers(extra || {});
  const t = token();
  if (t) hd.set('Authorization', 'Bearer ' + t);
  return hd;
}

async function check(resp) {
  if (resp.status === 401) throw new AuthError('the HTTP API wants its token');
  if (!resp.ok) {
    let code = 'error', reason = '';
    try {
      const e = await resp.json();
      code = e.error || code;
      reason = e.reason || '';
    } catch { /* not JSON */ }
    throw new APIError(resp.status, code, reason);
  }
  return resp;
}

// api makes one JSON request: api('GET', '/dbs'), api('PUT', path, body).
// It answers the decoded body, or throws AuthError or APIError.
export async function api(method, path, body, signal) {
  const init = { method, headers: headers(), signal };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    init.headers.set('Content-Type', 'application/json');
  }
  const resp = await check(await fetch(path, init));
  const text = await resp.text();
  return text ? JSON.parse(text) : null;
}

// raw makes a request and answers the Response (downloads, uploads).
export async function raw(method, path, body, contentType, signal) {
  const hd = headers(contentType ? { 'Content-Type': contentType } : null);
  return check(await fetch(path, { method, headers: hd, body, signal }));
}

// seg escapes one path segment (a database name, a document id).
export const seg = encodeURIComponent;

// follow streams db's changes feed (feed=sse) after since, calling
// onChange({seq, id, rev, deleted}) for each, until signal aborts. fetch
// reads the stream rather than EventSource, which cannot send the
// Authorization header. A dropped stream is resumed from the last seq
// seen after a pause; onAuth is called (and the stream ends) on 401.
export async function follow(db, since, onChange, signal, onAuth) {
  let pause = 500;
  while (!signal.aborted) {
    try {
      const resp = await raw('GET', `/dbs/${seg(db)}/changes?feed=sse&since=${since}`, undefined, '', signal);
      pause = 500;
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let end;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const event = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const data = event.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
          if (!data) continue; // a heartbeat comment
          const c = JSON.parse(data);
          since = Math.max(since, c.seq);
          onChange(c);
        }
      }
    } catch (e) {
      if (signal.aborted) return;
      if (e instanceof AuthError) { if (onAuth) onAuth(e); return; }
    }
    await new Promise((ok) => setTimeout(ok, pause));
    pause = Math.min(pause * 2, 10000);
  }
}
