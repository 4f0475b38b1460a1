// replicate.mjs drives PouchDB 9 against a CouchDB-protocol server for
// barrel's tests: it runs the steps given by --op, in order, against one
// local database and the remote one, then prints one JSON line:
//
//   {"ok":true,"steps":[...],"docs_read":N,"docs_written":N,
//    "doc_write_failures":N,"errors":[],"local_doc_count":N}
//
// docs_read, docs_written and doc_write_failures add up the steps'
// (PouchDB's replication counts for push, pull and both; the documents
// written by write and read by read). It exits 1 when a step fails (ok
// false, errors says why) and 2 on bad arguments.
//
//   node replicate.mjs --remote URL --db NAME --op STEP[,STEP...] [options]
//
// Steps:
//   push    one-shot replication local -> remote
//   pull    one-shot replication remote -> local
//   both    one-shot sync both ways (PouchDB.sync)
//   write   write --n documents {_id: PREFIX + i, n: i} to --on's database
//   read    read every document of --on's database (allDocs, include_docs)
//   edit    set --field to --value in every document of --on's database whose id starts with --prefix
//   delete  delete the documents --ids (comma-separated) of --on's database
//   dump    add "docs" to the result: every document of --on's database, with _conflicts
//   attach  put an attachment --field of --n bytes (byte i = i*7 mod 251) on --write-id of --on's database
//   latency live sync; with --role writer write --n documents {_id: PREFIX+i, t: ms}
//           --interval-ms apart; with --role reader wait for --n of them to
//           arrive and report their latency (arrival - t): median, p99, max
//   live    sync both ways live; write {_id: --write-id, v: --value} once it runs,
//           wait until --wait-id is in the local database (--timeout-ms), then stop
//
// Options:
//   --local DIR       a LevelDB database in DIR (default: in memory, gone on exit)
//   --on local|remote where write and read act (default local)
//   --n N             documents written by write (default 100)
//   --prefix P        id prefix of written documents (default "doc")
//   --batch-size N    replication batch size (default PouchDB's, 100)
//   --skip-setup      do not create the remote database (PouchDB's skip_setup)
//   --selector JSON   replicate only the documents a Mango selector matches (filter=_selector)
import PouchDB from 'pouchdb'
import memory from 'pouchdb-adapter-memory'
import { parseArgs } from 'node:util'

const usage = 'usage: node replicate.mjs --remote URL --db NAME --op push|pull|both|write|read[,...] [--local DIR] [--on local|remote] [--n N] [--prefix P] [--batch-size N] [--skip-setup]\n'

let args
try {
  args = parseArgs({
    options: {
      remote: { type: 'string' },
      db: { type: 'string' },
      op: { type: 'string' },
      local: { type: 'string' },
      on: { type: 'string', default: 'local' },
      n: { type: 'string', default: '100' },
      prefix: { type: 'string', default: 'doc' },
      'batch-size': { type: 'string' },
      'skip-setup': { type: 'boolean', default: false },
      field: { type: 'string', default: 'edited' },
      value: { type: 'string', default: 'yes' },
      ids: { type: 'string', default: '' },
      'write-id': { type: 'string' },
      'wait-id': { type: 'string' },
      'timeout-ms': { type: 'string', default: '20000' },
      user: { type: 'string' },
      role: { type: 'string', default: 'reader' },
      selector: { type: 'string' },
      'interval-ms': { type: 'string', default: '20' },
      password: { type: 'string' }
    },
    strict: true
  }).values
} catch (err) {
  badArgs(err.message)
}
const steps = (args.op ?? '').split(',').filter(Boolean)
const known = ['push', 'pull', 'both', 'write', 'read', 'edit', 'delete', 'dump', 'live', 'attach', 'latency']
if (!args.remote || !args.db || steps.length === 0) badArgs('--remote, --db and --op are required')
for (const s of steps) if (!known.includes(s)) badArgs(`unknown step ${JSON.stringify(s)}`)
if (!['local', 'remote'].includes(args.on)) badArgs('--on must be local or remote')
const n = intArg('n', args.n)
const batchSize = args['batch-size'] === undefined ? undefined : intArg('batch-size', args['batch-size'])

PouchDB.plugin(memory)
const local = args.local ? new PouchDB(args.local) : new PouchDB(`local-${process.pid}`, { adapter: 'memory' })
const remoteOpts = { skip_setup: args['skip-setup'] }
if (args.password !== undefined) remoteOpts.auth = { username: args.user ?? 'barrel', password: args.password }
const remote = new PouchDB(`${args.remote.replace(/\/+$/, '')}/${encodeURIComponent(args.db)}`, remoteOpts)
const opts = batchSize === undefined ? {} : { batch_size: batchSize }
if (args.selector !== undefined) opts.selector = JSON.parse(args.selector)

const out = { ok: true, steps: [], docs_read: 0, docs_written: 0, doc_write_failures: 0, errors: [] }
try {
  for (const step of steps) {
    const t0 = performance.now()
    const r = await run(step)
    out.steps.push({ op: step, ms: Math.round(performance.now() - t0), ...r })
    out.docs_read += r.docs_read ?? 0
    out.docs_written += r.docs_written ?? 0
    out.doc_write_failures += r.doc_write_failures ?? 0
    for (const e of r.errors ?? []) out.errors.push(message(e))
  }
  out.local_doc_count = (await local.info()).doc_count
} catch (err) {
  out.ok = false
  out.errors.push(message(err))
}
await local.close().catch(() => {})
// A pipe's writes are asynchronous: exit once the line is flushed, or a
// large dump is cut.
process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(out.ok ? 0 : 1))

async function run (step) {
  const db = args.on === 'remote' ? remote : local
  switch (step) {
    case 'push': return counts(await local.replicate.to(remote, opts))
    case 'pull': return counts(await local.replicate.from(remote, opts))
    case 'both': {
      const r = await local.sync(remote, opts)
      const push = counts(r.push)
      const pull = counts(r.pull)
      return {
        docs_read: push.docs_read + pull.docs_read,
        docs_written: push.docs_written + pull.docs_written,
        doc_write_failures: push.doc_write_failures + pull.doc_write_failures,
        errors: [...push.errors, ...pull.errors],
        push,
        pull
      }
    }
    case 'write': {
      let written = 0
      let failures = 0
      const errors = []
      const width = String(Math.max(n - 1, 0)).length
      for (let i = 0; i < n; i += 1000) {
        const docs = []
        for (let j = i; j < Math.min(n, i + 1000); j++) docs.push({ _id: args.prefix + String(j).padStart(width, '0'), n: j })
        for (const r of await db.bulkDocs(docs)) {
          if (r.error) {
            failures++
            errors.push(`${r.id}: ${r.name ?? r.error}: ${r.message ?? r.reason}`)
          } else {
            written++
          }
        }
      }
      return { docs_written: written, doc_write_failures: failures, errors }
    }
    case 'read': {
      const r = await db.allDocs({ include_docs: true })
      return { docs_read: r.rows.length }
    }
    case 'edit': {
      const r = await db.allDocs({ include_docs: true, startkey: args.prefix, endkey: args.prefix + '\uffff' })
      const docs = r.rows.map(row => ({ ...row.doc, [args.field]: args.value }))
      const res = await db.bulkDocs(docs)
      const errors = res.filter(x => x.error).map(x => `${x.id}: ${x.name ?? x.error}`)
      return { docs_written: res.length - errors.length, doc_write_failures: errors.length, errors }
    }
    case 'delete': {
      const errors = []
      let written = 0
      for (const id of args.ids.split(',').filter(Boolean)) {
        try {
          const doc = await db.get(id)
          await db.remove(doc)
          written++
        } catch (err) {
          errors.push(`${id}: ${message(err)}`)
        }
      }
      return { docs_written: written, doc_write_failures: errors.length, errors }
    }
    case 'attach': {
      const data = Buffer.alloc(n)
      for (let i = 0; i < n; i++) data[i] = (i * 7) % 251
      let doc
      try {
        doc = await db.get(args['write-id'])
      } catch {
        doc = { _id: args['write-id'] }
      }
      doc._attachments = { ...(doc._attachments ?? {}), [args.field]: { content_type: 'application/octet-stream', data } }
      await db.put(doc)
      return { docs_written: 1 }
    }
    case 'dump': {
      const r = await db.allDocs({ include_docs: true, conflicts: true, attachments: true })
      out.docs = r.rows.map(row => row.doc)
      return { docs_read: r.rows.length }
    }
    case 'latency': {
      const sync = local.sync(remote, { ...opts, live: true, retry: true })
      const errors = []
      sync.on('error', err => errors.push(message(err)))
      const timeout = intArg('timeout-ms', args['timeout-ms'])
      if (args.role === 'writer') {
        await new Promise(resolve => setTimeout(resolve, 500)) // the live feeds are up
        const every = intArg('interval-ms', args['interval-ms'])
        for (let i = 0; i < n; i++) {
          await local.put({ _id: args.prefix + i, t: Date.now() })
          await new Promise(resolve => setTimeout(resolve, every))
        }
        await new Promise(resolve => setTimeout(resolve, 2000)) // the last ones leave
        sync.cancel()
        return { docs_written: n, errors }
      }
      const lat = []
      const feed = local.changes({ live: true, since: 'now', include_docs: true })
      await new Promise(resolve => {
        const timer = setTimeout(resolve, timeout)
        feed.on('change', ch => {
          if (!ch.id.startsWith(args.prefix) || typeof ch.doc?.t !== 'number') return
          lat.push(Date.now() - ch.doc.t)
          if (lat.length >= n) { clearTimeout(timer); resolve() }
        })
      })
      feed.cancel()
      sync.cancel()
      lat.sort((a, b) => a - b)
      if (lat.length < n) errors.push(`timeout: ${lat.length} of ${n} documents arrived`)
      const q = p => lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : -1
      return { docs_read: lat.length, errors, median_ms: q(0.5), p99_ms: q(0.99), max_ms: lat.length ? lat[lat.length - 1] : -1 }
    }
    case 'live': {
      const sync = local.sync(remote, { ...opts, live: true, retry: true })
      const errors = []
      let idle = false
      sync.on('error', err => errors.push(message(err)))
      sync.on('paused', err => { if (!err) idle = true })
      sync.on('active', () => { idle = false })
      sync.on('change', () => { idle = false })
      if (args['write-id']) await local.put({ _id: args['write-id'], v: args.value })
      const started = Date.now()
      const timeout = intArg('timeout-ms', args['timeout-ms'])
      let seen = !args['wait-id']
      while (!seen && Date.now() - started < timeout) {
        try {
          await local.get(args['wait-id'])
          seen = true
        } catch {
          await new Promise(resolve => setTimeout(resolve, 5))
        }
      }
      // Then until the sync is idle (caught up both ways), so that what
      // this client wrote has left too.
      while (seen && !idle && Date.now() - started < timeout) await new Promise(resolve => setTimeout(resolve, 10))
      sync.cancel()
      if (!seen) errors.push(`timeout: ${args['wait-id']} not seen in ${timeout} ms`)
      else if (!idle) errors.push(`timeout: the sync was not idle in ${timeout} ms`)
      return { errors, waited_ms: Date.now() - started }
    }
  }
}

function counts (r) {
  return {
    docs_read: r.docs_read,
    docs_written: r.docs_written,
    doc_write_failures: r.doc_write_failures,
    errors: r.errors ?? [],
    last_seq: r.last_seq,
    status: r.status
  }
}

function message (err) {
  if (err && typeof err === 'object') {
    const status = err.status ? `${err.status} ` : ''
    return `${status}${err.name ?? 'Error'}: ${err.message ?? err.reason ?? JSON.stringify(err)}`
  }
  return String(err)
}

function intArg (name, v) {
  const x = Number(v)
  if (!Number.isInteger(x) || x < 0) badArgs(`--${name} must be a non-negative integer`)
  return x
}

function badArgs (msg) {
  process.stderr.write(`replicate.mjs: ${msg}\n${usage}`)
  process.exit(2)
}
