// PouchDB side of the comparison (issue 5): the workloads of
// `barrel-peer bench` on PouchDB 9 with its on-disk LevelDB adapter
// (leveldown), and express-pouchdb as the HTTP replication peer on
// 127.0.0.1. Options, loops and result lines are bench/common.mjs's.
//
//   node pouchdb.mjs --docs docs.ndjson [--workloads W1a,W1b,W1c,Q1,W2,W3] [--n 5000] ...
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
// 127.0.0.1 (port 0), prints "ready port=P", and on SIGTERM prints its
// peak RSS.

import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'
import PouchDB from 'pouchdb'
import PouchDBFind from 'pouchdb-find'
import expressPouchDB from 'express-pouchdb'
import { harness, loadDocs, PeakRSS, BULK, timed, writeSequential, writeConcurrent, matches, timeQuery, stats, latency, Arrivals } from './common.mjs'

PouchDB.plugin(PouchDBFind)

const options = {
  'scan-runs': { type: 'string', default: '3' }, // Q1 without an index (full scans)
  'batch-size': { type: 'string', default: '100' }, // W2, W3 replication batch_size (PouchDB's default 100)
  port: { type: 'string', default: '0' } // serve
}

async function bulkLoad (db, docs, lo, hi) {
  for (let i = lo; i < hi; i += BULK) {
    const res = await db.bulkDocs(docs.slice(i, Math.min(i + BULK, hi)))
    for (const r of res) if (r.error) throw new Error(`bulkDocs ${r.id}: ${r.name}: ${r.message}`)
  }
}

// withDB runs fn on a fresh on-disk database in dir and closes it.
async function withDB (dir, fn) {
  const db = new PouchDB(join(dir, 'db'))
  try { return await fn(db) } finally { await db.close() }
}

const workloads = {
  W1a: (c, dir, docs) => withDB(dir, db => timed(c.n, () => writeSequential(d => db.put(d), docs, c.n))),

  W1b: (c, dir, docs) => withDB(dir, async db => ({
    ...await timed(c.n, () => writeConcurrent(d => db.put(d), docs, c.n, c.writers)),
    writers: c.writers
  })),

  // W1c: bulkDocs of 1000, one call after another.
  W1c: (c, dir, docs) => withDB(dir, db => timed(c['n-bulk'], () => bulkLoad(db, docs, 0, c['n-bulk']))),

  // Q1: the equality query on locations.country through pouchdb-find:
  // first without an index (a scan of every document, scan-runs times),
  // then with an index on the field (its build, lazy on the first query,
  // is timed separately as index_s).
  Q1: (c, dir, docs) => withDB(dir, async db => {
    await bulkLoad(db, docs, 0, c['n-query'])
    const want = matches(c, docs)
    // pouchdb-find returns 25 documents without a limit: every match is
    // asked for with a limit of every document.
    const q = { selector: { 'locations.country': c['query-country'] }, limit: c['query-limit'] || c['n-query'] }
    const find = async () => (await db.find(q)).docs.length
    const scan = await timeQuery(c['scan-runs'], want, find)
    const start = process.hrtime.bigint()
    await db.createIndex({ index: { fields: ['locations.country'], name: 'country' } })
    await find() // builds the index
    const indexS = Number(process.hrtime.bigint() - start) / 1e9
    const idx = await timeQuery(c['query-runs'], want, find)
    return {
      n: c['n-query'],
      matches: want,
      runs: c['query-runs'],
      ...stats(idx),
      index_s: indexS.toFixed(2),
      scan_runs: c['scan-runs'],
      ...stats(scan, 'scan_')
    }
  }),

  // W2: an express-pouchdb server in a child process holds n-repl
  // documents; a fresh local database pulls them (one-shot replication)
  // until it has them all.
  async W2 (c, dir) {
    const srv = await startServer(c, join(dir, 'server'), c['n-repl'])
    let out
    try {
      out = await withDB(dir, async db => {
        let res
        const r = await timed(c['n-repl'], async () => { res = await PouchDB.replicate(srv.url, db, { batch_size: c['batch-size'] }) })
        const info = await db.info()
        if (info.doc_count !== c['n-repl']) throw new Error(`replicate: got ${info.doc_count} documents, want ${c['n-repl']} (${JSON.stringify(res)})`)
        return r
      })
    } finally {
      srv.peak = await srv.stop()
    }
    return { ...out, batch_size: c['batch-size'], server_peak_rss_mb: srv.peak }
  },

  // W3: A (served by express-pouchdb on 127.0.0.1 in this process) and B
  // (live pull replication from A's URL); a document is visible when B's
  // changes feed shows it.
  async W3 (c, dir, docs) {
    mkdirSync(join(dir, 'server'))
    const Prefixed = PouchDB.defaults({ prefix: join(dir, 'server') + '/' })
    const app = expressPouchDB(Prefixed, { mode: 'minimumForPouchDB', inMemoryConfig: true, logPath: join(dir, 'log.txt') })
    const server = app.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const a = new Prefixed('bench')
    const b = new PouchDB(join(dir, 'b'))
    const arrivals = new Arrivals()
    const feed = b.changes({ live: true, since: 'now' }).on('change', ch => arrivals.seen(ch.id))
    const rep = PouchDB.replicate(`http://127.0.0.1:${server.address().port}/bench`, b, { live: true, retry: true, batch_size: c['batch-size'] })
    try {
      return await latency(c, docs, d => a.put(d), arrivals)
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
// documents; stop() ends it and resolves to its peak RSS in MiB (-1 if it
// did not say).
async function startServer (c, dir, n) {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), 'serve', '--data', dir, '--docs', c.docs, '--n', String(n)], { stdio: ['ignore', 'pipe', 'inherit'] })
  const it = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
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
  const server = app.listen(Number(c.port), '127.0.0.1')
  await once(server, 'listening')
  process.stdout.write(`ready port=${server.address().port}\n`)
  process.once('SIGTERM', () => {
    process.stdout.write(`peak_rss_mb=${rss.stop()}\n`, () => process.exit(0))
  })
}

await harness({ system: 'pouchdb', durability: 'nosync', workloads, options, commands: { serve } })
