// PouchDB side of the comparison (issue 5): the workloads of
// `barrel-peer bench` on PouchDB 9 with its on-disk LevelDB adapter
// (leveldown), and express-pouchdb as the HTTP replication peer on 127.0.0.1.
//
//   node pouchdb.mjs --docs docs.ndjson [--workloads W1a,W1b,W1c,Q1,W2,W3] [--n 5000] ...
//
// prints one line per workload, like barrel-peer bench but with system=pouchdb:
//   system=pouchdb workload=W1a n=5000 seconds=… docs_per_s=… rss_mb=… peak_rss_mb=… durability=nosync
//
// Durability: PouchDB's leveldb adapter writes every put/bulkDocs as one
// LevelDB batch without the sync option, so LevelDB appends to its log and
// returns without fsync (leveldown's default sync:false); a write survives a
// process crash but not a power loss. barrel's matching mode is
// --durability batch; its default, sync, fsyncs before acknowledging.
// PouchDB offers no option to sync, so every line says durability=nosync.
//
// `node pouchdb.mjs serve --data DIR --docs FILE --n N` is the replication
// peer W2 starts as a child process: it loads N documents, listens on
// 127.0.0.1 (port 0), prints "ready port=P", and on SIGTERM prints its RSS.

import { mkdtempSync, rmSync, mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'
import PouchDB from 'pouchdb'
import PouchDBFind from 'pouchdb-find'
import expressPouchDB from 'express-pouchdb'
import { loadDocs, rssMB, PeakRSS, line, throughput, percentile, seconds, msSince, now, sleep } from './common.mjs'
import { COUNTRY } from './gen.mjs'

PouchDB.plugin(PouchDBFind)

const SYSTEM = 'pouchdb'
const DURABILITY = 'nosync'
const BULK = 1000
const QUERY_LIMIT = 1000
const WORKLOADS = ['W1a', 'W1b', 'W1c', 'Q1', 'W2', 'W3']

const opts = {
  docs: { type: 'string' },
  workloads: { type: 'string', default: WORKLOADS.join(',') },
  n: { type: 'string', default: '5000' }, // W1a, W1b
  'n-bulk': { type: 'string', default: '50000' }, // W1c
  'n-query': { type: 'string', default: '100000' }, // Q1
  'n-repl': { type: 'string', default: '100000' }, // W2
  'n-latency': { type: 'string', default: '200' }, // W3
  'gap-ms': { type: 'string', default: '20' }, // W3
  writers: { type: 'string', default: '64' }, // W1b
  'query-runs': { type: 'string', default: '50' }, // Q1 with an index
  'scan-runs': { type: 'string', default: '5' }, // Q1 without an index (full scans)
  'batch-size': { type: 'string', default: '100' }, // W2, W3 replication batch_size (PouchDB's default 100)
  data: { type: 'string' }, // parent of the temporary data dir
  port: { type: 'string', default: '0' }, // serve
  keep: { type: 'boolean', default: false }
}

function config (values) {
  const c = { ...values }
  for (const k of ['n', 'n-bulk', 'n-query', 'n-repl', 'n-latency', 'gap-ms', 'writers', 'query-runs', 'scan-runs', 'batch-size', 'port']) {
    c[k] = Number(values[k])
    if (!Number.isInteger(c[k]) || c[k] < 0) throw new Error(`--${k} ${values[k]}: want a non-negative integer`)
  }
  if (!c.docs) throw new Error('--docs FILE is required (write it with gen.mjs)')
  return c
}

async function bulkLoad (db, docs, lo, hi) {
  for (let i = lo; i < hi; i += BULK) {
    const res = await db.bulkDocs(docs.slice(i, Math.min(i + BULK, hi)))
    for (const r of res) if (r.error) throw new Error(`bulkDocs ${r.id}: ${r.name}: ${r.message}`)
  }
}

// The copy passed to put: PouchDB adds _rev to the object it is given.
const copy = (d) => ({ ...d })

const workloads = {
  // W1a: one put after another.
  async W1a (c, dir, docs) {
    const db = new PouchDB(join(dir, 'db'))
    const rss = new PeakRSS()
    const start = now()
    for (let i = 0; i < c.n; i++) await db.put(copy(docs[i]))
    const s = seconds(start)
    const r = throughput(c.n, s, rss.stop(), DURABILITY)
    await db.close()
    return r
  },

  // W1b: --writers async writers take the next index until n are written
  // (one Node thread: concurrency is in flight requests, not cores).
  async W1b (c, dir, docs) {
    const db = new PouchDB(join(dir, 'db'))
    const rss = new PeakRSS()
    let next = 0
    const writer = async () => {
      for (let i = next++; i < c.n; i = next++) await db.put(copy(docs[i]))
    }
    const start = now()
    await Promise.all(Array.from({ length: c.writers }, writer))
    const s = seconds(start)
    const r = { ...throughput(c.n, s, rss.stop(), DURABILITY), writers: c.writers }
    await db.close()
    return r
  },

  // W1c: bulkDocs of 1000, one call after another.
  async W1c (c, dir, docs) {
    const db = new PouchDB(join(dir, 'db'))
    const rss = new PeakRSS()
    const start = now()
    await bulkLoad(db, docs, 0, c['n-bulk'])
    const s = seconds(start)
    const r = throughput(c['n-bulk'], s, rss.stop(), DURABILITY)
    await db.close()
    return r
  },

  // Q1: n-query documents, then the equality query on locations.country
  // (limit 1000): first without an index (pouchdb-find scans every
  // document), then with a pouchdb-find index on the field (its build,
  // lazy on the first query, is timed separately as index_s).
  async Q1 (c, dir, docs) {
    const db = new PouchDB(join(dir, 'db'))
    const rss = new PeakRSS()
    await bulkLoad(db, docs, 0, c['n-query'])
    const want = Math.min(docs.slice(0, c['n-query']).filter(d => d.locations.country === COUNTRY).length, QUERY_LIMIT)
    const q = { selector: { 'locations.country': COUNTRY }, limit: QUERY_LIMIT }
    const run = async (runs) => {
      const times = []
      for (let r = 0; r < runs; r++) {
        const start = now()
        const res = await db.find(q)
        times.push(msSince(start))
        if (res.docs.length !== want) throw new Error(`find: got ${res.docs.length} documents, want ${want}`)
      }
      return times.sort((a, b) => a - b)
    }
    const scan = await run(c['scan-runs'])
    const start = now()
    await db.createIndex({ index: { fields: ['locations.country'], name: 'country' } })
    await db.find(q) // builds the index
    const indexS = seconds(start)
    const idx = await run(c['query-runs'])
    const out = {
      n: c['n-query'],
      matches: want,
      runs: c['query-runs'],
      median_ms: percentile(idx, 0.5).toFixed(2),
      p99_ms: percentile(idx, 0.99).toFixed(2),
      index_s: indexS.toFixed(2),
      scan_runs: c['scan-runs'],
      scan_median_ms: percentile(scan, 0.5).toFixed(2),
      scan_p99_ms: percentile(scan, 0.99).toFixed(2),
      rss_mb: rssMB(),
      peak_rss_mb: rss.stop(),
      durability: DURABILITY
    }
    await db.close()
    return out
  },

  // W2: an express-pouchdb server in a child process holds n-repl
  // documents; a fresh local database pulls them (one-shot replication)
  // until it has them all.
  async W2 (c, dir) {
    const srv = await startServer(c, join(dir, 'server'), c['n-repl'])
    try {
      const db = new PouchDB(join(dir, 'db'))
      const rss = new PeakRSS()
      const start = now()
      const res = await PouchDB.replicate(srv.url, db, { batch_size: c['batch-size'] })
      const s = seconds(start)
      const info = await db.info()
      if (info.doc_count !== c['n-repl']) throw new Error(`replicate: got ${info.doc_count} documents, want ${c['n-repl']} (${JSON.stringify(res)})`)
      const out = { ...throughput(c['n-repl'], s, rss.stop(), DURABILITY), batch_size: c['batch-size'] }
      await db.close()
      out.server_peak_rss_mb = await srv.stop()
      return out
    } catch (err) {
      await srv.stop()
      throw err
    }
  },

  // W3: A (served by express-pouchdb on 127.0.0.1 in this process) and B
  // (live pull replication from A's URL). A puts n-latency documents
  // gap-ms apart; each is timed from the put until B's changes feed shows it.
  async W3 (c, dir, docs) {
    mkdirSync(join(dir, 'server'))
    const Prefixed = PouchDB.defaults({ prefix: join(dir, 'server') + '/' })
    const app = expressPouchDB(Prefixed, { mode: 'minimumForPouchDB', inMemoryConfig: true, logPath: join(dir, 'log.txt') })
    const server = app.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const a = new Prefixed('bench')
    const b = new PouchDB(join(dir, 'b'))
    const waiters = new Map()
    const seen = new Map()
    const feed = b.changes({ live: true, since: 'now' }).on('change', ch => {
      const t = now()
      const w = waiters.get(ch.id)
      if (w) w(t)
      else seen.set(ch.id, t)
    })
    const url = `http://127.0.0.1:${server.address().port}/bench`
    const rep = PouchDB.replicate(url, b, { live: true, retry: true, batch_size: c['batch-size'] })
    const rss = new PeakRSS()
    try {
      // One write before timing, so that B's replication is connected.
      await a.put({ _id: 'warmup' })
      await new Promise(resolve => { if (seen.has('warmup')) resolve(); else waiters.set('warmup', resolve) })
      const times = []
      for (let i = 0; i < c['n-latency']; i++) {
        const d = copy(docs[i])
        const visible = new Promise(resolve => waiters.set(d._id, resolve))
        const start = now()
        await a.put(d)
        const t = seen.get(d._id) ?? await visible
        times.push(Number(t - start) / 1e6)
        waiters.delete(d._id)
        await sleep(c['gap-ms'])
      }
      times.sort((x, y) => x - y)
      return {
        n: c['n-latency'],
        gap_ms: c['gap-ms'],
        median_ms: percentile(times, 0.5).toFixed(2),
        p99_ms: percentile(times, 0.99).toFixed(2),
        rss_mb: rssMB(),
        peak_rss_mb: rss.stop(),
        durability: DURABILITY
      }
    } finally {
      rep.cancel()
      feed.cancel()
      await b.close()
      await a.close()
      server.close()
    }
  }
}

// startServer runs `pouchdb.mjs serve` in a child process holding n
// documents; stop() ends it and resolves to its peak RSS in MiB.
async function startServer (c, dir, n) {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), 'serve', '--data', dir, '--docs', c.docs, '--n', String(n)], { stdio: ['ignore', 'pipe', 'inherit'] })
  const lines = createInterface({ input: child.stdout })
  const it = lines[Symbol.asyncIterator]()
  const first = await it.next()
  const m = /^ready port=(\d+)$/.exec(first.value ?? '')
  if (!m) {
    child.kill()
    throw new Error(`serve: unexpected output ${JSON.stringify(first.value)}`)
  }
  return {
    url: `http://127.0.0.1:${m[1]}/bench`,
    async stop () {
      if (child.exitCode !== null) return -1
      child.kill('SIGTERM')
      const last = await it.next()
      await once(child, 'exit').catch(() => {})
      const r = /peak_rss_mb=(\d+)/.exec(last.value ?? '')
      return r ? Number(r[1]) : -1
    }
  }
}

async function serve (c) {
  mkdirSync(c.data, { recursive: true })
  const rss = new PeakRSS()
  const Prefixed = PouchDB.defaults({ prefix: c.data + '/' })
  const db = new Prefixed('bench')
  await bulkLoad(db, loadDocs(c.docs, c.n), 0, c.n)
  const app = expressPouchDB(Prefixed, { mode: 'minimumForPouchDB', inMemoryConfig: true, logPath: join(c.data, 'log.txt') })
  const server = app.listen(c.port, '127.0.0.1')
  await once(server, 'listening')
  process.stdout.write(`ready port=${server.address().port}\n`)
  process.once('SIGTERM', () => {
    process.stdout.write(`peak_rss_mb=${rss.stop()}\n`, () => process.exit(0))
  })
}

async function main () {
  const { values, positionals } = parseArgs({ options: opts, allowPositionals: true })
  const c = config(values)
  if (positionals[0] === 'serve') return serve(c)
  const names = c.workloads.split(',').map(s => s.trim()).filter(Boolean)
  for (const w of names) if (!workloads[w]) throw new Error(`unknown workload ${w}: want some of ${WORKLOADS.join(',')}`)
  const need = Math.max(...names.map(w => ({ W1a: c.n, W1b: c.n, W1c: c['n-bulk'], Q1: c['n-query'], W2: c['n-repl'], W3: c['n-latency'] })[w]))
  const docs = loadDocs(c.docs, need)
  const parent = mkdtempSync(join(c.data ?? tmpdir(), 'pouchdb-bench-'))
  try {
    for (const w of names) {
      const dir = join(parent, w)
      mkdirSync(dir, { recursive: true })
      global.gc?.()
      const fields = await workloads[w](c, dir, docs)
      process.stdout.write(line(SYSTEM, w, fields) + '\n')
    }
  } finally {
    if (c.keep) process.stderr.write(`pouchdb: data kept in ${parent}\n`)
    else rmSync(parent, { recursive: true, force: true })
  }
}

await main()
