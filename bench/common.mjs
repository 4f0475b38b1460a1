// The harness shared by the peers of the side-by-side comparison (issue 5):
// options, the document file, the workload loop (one fresh data dir and a
// peak-RSS sampler per workload, one result line each, an error line
// instead when a workload fails) and the loops every system runs the same
// way as `barrel-peer bench`: sequential and concurrent writes, the timed
// query, the replication latency. A harness supplies only how its system
// opens a database, writes, queries and replicates.
//
// Result lines use barrel-peer bench's key=value format with system= first:
//   system=pouchdb workload=W1a n=5000 seconds=… docs_per_s=… rss_mb=… durability=nosync peak_rss_mb=…
// A failed workload prints system=… workload=… error=<encodeURIComponent(message)>.

import { readFileSync, mkdtempSync, mkdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

export const WORKLOADS = ['W1a', 'W1b', 'W1c', 'Q1', 'W2', 'W3']
export const BULK = 1000 // documents per bulk call (W1c and every load)
export const RSS_EVERY_MS = 50 // as barrel-peer bench's peak_rss_mb

// Options of every harness, with the defaults of barrel-peer bench where it
// has the same flag; bench/compare.sh passes the same values to every system.
const OPTIONS = {
  docs: { type: 'string' }, // NDJSON written by gen.mjs
  workloads: { type: 'string', default: WORKLOADS.join(',') },
  n: { type: 'string', default: '5000' }, // W1a, W1b
  'n-bulk': { type: 'string', default: '50000' }, // W1c
  'n-query': { type: 'string', default: '100000' }, // Q1
  'n-repl': { type: 'string', default: '100000' }, // W2
  'n-latency': { type: 'string', default: '200' }, // W3
  'gap-ms': { type: 'string', default: '20' }, // W3
  writers: { type: 'string', default: '64' }, // W1b
  'query-country': { type: 'string', default: 'Iceland' }, // Q1
  'query-limit': { type: 'string', default: '1000' }, // Q1; 0: every match
  'query-runs': { type: 'string', default: '50' }, // Q1
  data: { type: 'string' }, // parent of the temporary data dir
  keep: { type: 'boolean', default: false }
}

// config parses the command line: numeric options become numbers (a
// harness's own options are numeric when their default is).
function config (values, options) {
  const c = { ...values }
  for (const [k, o] of Object.entries(options)) {
    if (o.type !== 'string' || !/^\d+$/.test(o.default ?? '')) continue
    c[k] = Number(values[k])
    if (!Number.isInteger(c[k]) || c[k] < 0) throw new Error(`--${k} ${values[k]}: want a non-negative integer`)
  }
  if (!c.docs) throw new Error('--docs FILE is required (write it with gen.mjs)')
  return c
}

// need is how many documents of the file the named workloads read.
const need = (c, names) => Math.max(...names.map(w => ({ W1a: c.n, W1b: c.n, W1c: c['n-bulk'], Q1: c['n-query'], W2: c['n-repl'], W3: c['n-latency'] })[w]))

// harness runs one system's workloads (an object of async (c, dir, docs) =>
// fields) in the order of --workloads, each in a fresh directory, and
// prints a line per workload. A positional argument runs commands[name](c)
// instead (a server child process, for example).
export async function harness ({ system, durability, workloads, options = {}, commands = {} }) {
  const all = { ...OPTIONS, ...options }
  const { values, positionals } = parseArgs({ options: all, allowPositionals: true })
  const c = config(values, all)
  if (positionals.length > 0) {
    const cmd = commands[positionals[0]]
    if (!cmd) throw new Error(`unknown command ${positionals[0]}`)
    return cmd(c)
  }
  const names = c.workloads.split(',').map(s => s.trim()).filter(Boolean)
  for (const w of names) if (!workloads[w]) throw new Error(`unknown workload ${w}: want some of ${Object.keys(workloads).join(',')}`)
  const docs = loadDocs(c.docs, need(c, names))
  const parent = mkdtempSync(join(c.data ?? tmpdir(), `${system}-bench-`))
  let failed = 0
  try {
    for (const w of names) {
      const dir = join(parent, w)
      mkdirSync(dir, { recursive: true })
      global.gc?.()
      const rss = new PeakRSS()
      try {
        const fields = await workloads[w](c, dir, docs)
        const end = rssMB()
        process.stdout.write(line(system, w, { ...fields, rss_mb: end, durability, peak_rss_mb: Math.max(end, rss.stop()) }) + '\n')
      } catch (err) {
        rss.stop()
        failed++
        process.stderr.write(`${system} ${w}: ${err.stack ?? err}\n`)
        process.stdout.write(line(system, w, { error: encodeURIComponent(String(err.message ?? err)) }) + '\n')
      }
    }
  } finally {
    if (c.keep) process.stderr.write(`${system}: data kept in ${parent}\n`)
    else rmSync(parent, { recursive: true, force: true })
  }
  return failed
}

// loadDocs reads the first n documents of an NDJSON file written by gen.mjs
// and fails if it holds fewer.
export function loadDocs (file, n) {
  const lines = readFileSync(file, 'utf8').split('\n')
  if (lines.length - 1 < n) throw new Error(`${file}: ${lines.length - 1} documents, need ${n} (regenerate with gen.mjs --n ${n})`)
  const docs = new Array(n)
  for (let i = 0; i < n; i++) docs[i] = JSON.parse(lines[i])
  return docs
}

// copy is the object a write is given: PouchDB adds _rev to it.
export const copy = (d) => ({ ...d })

export function rssMB () {
  return Math.round(process.memoryUsage().rss / (1 << 20))
}

// PeakRSS samples the resident set every RSS_EVERY_MS until stop(), which
// returns the largest sample.
export class PeakRSS {
  constructor () {
    this.max = rssMB()
    this.timer = setInterval(() => { this.max = Math.max(this.max, rssMB()) }, RSS_EVERY_MS)
    this.timer.unref()
  }

  stop () {
    clearInterval(this.timer)
    this.max = Math.max(this.max, rssMB())
    return this.max
  }
}

// line formats one result: system=… workload=… then the given fields in order.
export function line (system, workload, fields) {
  return [`system=${system}`, `workload=${workload}`, ...Object.entries(fields).map(([k, v]) => `${k}=${v}`)].join(' ')
}

export const now = () => process.hrtime.bigint()
export const msSince = (start) => Number(now() - start) / 1e6
export const sleep = (ms) => new Promise(resolve => setTimeout(resolve, ms))

// timed runs fn and returns the fields of a throughput workload of n documents.
export async function timed (n, fn) {
  const start = now()
  await fn()
  const s = msSince(start) / 1e3
  return { n, seconds: s.toFixed(2), docs_per_s: Math.round(n / s) }
}

// writeSequential puts documents [0, n) one after another (W1a).
export async function writeSequential (put, docs, n) {
  for (let i = 0; i < n; i++) await put(copy(docs[i]))
}

// writeConcurrent runs `writers` async writers that take the next index
// until n documents are written (W1b). One Node thread: concurrency is in
// flight requests, not cores.
export async function writeConcurrent (put, docs, n, writers) {
  let next = 0
  const writer = async () => {
    for (let i = next++; i < n; i = next++) await put(copy(docs[i]))
  }
  await Promise.all(Array.from({ length: writers }, writer))
}

// percentile is the nearest-rank p-quantile of sorted ascending numbers,
// as in barrel-peer bench.
export function percentile (sorted, p) {
  const i = Math.ceil(p * sorted.length) - 1
  return sorted[Math.max(0, Math.min(i, sorted.length - 1))]
}

// stats are the median and p99 fields of latencies in ms.
export function stats (times, prefix = '') {
  const s = [...times].sort((a, b) => a - b)
  return { [`${prefix}median_ms`]: percentile(s, 0.5).toFixed(2), [`${prefix}p99_ms`]: percentile(s, 0.99).toFixed(2) }
}

// matches is how many documents Q1 returns: those of the first n-query in
// --query-country, at most --query-limit (0: no limit).
export function matches (c, docs) {
  let m = 0
  for (let i = 0; i < c['n-query']; i++) if (docs[i].locations.country === c['query-country']) m++
  return c['query-limit'] > 0 ? Math.min(m, c['query-limit']) : m
}

// timeQuery runs query (resolving to the number of documents it returned)
// `runs` times and returns the latencies in ms; every run must return want.
export async function timeQuery (runs, want, query) {
  const times = []
  for (let r = 0; r < runs; r++) {
    const start = now()
    const got = await query()
    times.push(msSince(start))
    if (got !== want) throw new Error(`query: got ${got} documents, want ${want}`)
  }
  return times
}

// Arrivals records when documents become visible on a receiver: seen(id)
// from its change events, at(id) resolves to the time (hrtime ns) of the
// first sighting, earlier or later than the call.
export class Arrivals {
  constructor () {
    this.times = new Map()
    this.waiters = new Map()
  }

  seen (id) {
    if (this.times.has(id)) return
    const t = now()
    this.times.set(id, t)
    this.waiters.get(id)?.(t)
    this.waiters.delete(id)
  }

  at (id) {
    if (this.times.has(id)) return Promise.resolve(this.times.get(id))
    return new Promise(resolve => this.waiters.set(id, resolve))
  }
}

// latency is W3 for a sender's put and a receiver's arrivals: one untimed
// document (so that the peers are connected and subscribed), then n-latency
// documents, each timed from the put until the receiver sees it, gap-ms
// apart. Every wait is bounded by timeoutMs.
export async function latency (c, docs, put, arrivals, timeoutMs = 60000) {
  const visible = async (id) => {
    let timer
    const limit = new Promise((resolve, reject) => { timer = setTimeout(() => reject(new Error(`${id} not visible on the receiver after ${timeoutMs} ms`)), timeoutMs) })
    try { return await Promise.race([arrivals.at(id), limit]) } finally { clearTimeout(timer) }
  }
  await put({ _id: 'warmup' })
  await visible('warmup')
  const times = []
  for (let i = 0; i < c['n-latency']; i++) {
    const d = copy(docs[i])
    const start = now()
    await put(d)
    times.push(Number(await visible(d._id) - start) / 1e6)
    await sleep(c['gap-ms'])
  }
  return { n: c['n-latency'], gap_ms: c['gap-ms'], ...stats(times) }
}
