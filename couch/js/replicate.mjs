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
//
// Options:
//   --local DIR       a LevelDB database in DIR (default: in memory, gone on exit)
//   --on local|remote where write and read act (default local)
//   --n N             documents written by write (default 100)
//   --prefix P        id prefix of written documents (default "doc")
//   --batch-size N    replication batch size (default PouchDB's, 100)
//   --skip-setup      do not create the remote database (PouchDB's skip_setup)
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
      'skip-setup': { type: 'boolean', default: false }
    },
    strict: true
  }).values
} catch (err) {
  badArgs(err.message)
}
const steps = (args.op ?? '').split(',').filter(Boolean)
const known = ['push', 'pull', 'both', 'write', 'read']
if (!args.remote || !args.db || steps.length === 0) badArgs('--remote, --db and --op are required')
for (const s of steps) if (!known.includes(s)) badArgs(`unknown step ${JSON.stringify(s)}`)
if (!['local', 'remote'].includes(args.on)) badArgs('--on must be local or remote')
const n = intArg('n', args.n)
const batchSize = args['batch-size'] === undefined ? undefined : intArg('batch-size', args['batch-size'])

PouchDB.plugin(memory)
const local = args.local ? new PouchDB(args.local) : new PouchDB(`local-${process.pid}`, { adapter: 'memory' })
const remote = new PouchDB(`${args.remote.replace(/\/+$/, '')}/${encodeURIComponent(args.db)}`, { skip_setup: args['skip-setup'] })
const opts = batchSize === undefined ? {} : { batch_size: batchSize }

const out = { ok: true, steps: [], docs_read: 0, docs_written: 0, doc_write_failures: 0, errors: [] }
try {
  for (const step of steps) {
    const r = await run(step)
    out.steps.push({ op: step, ...r })
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
process.stdout.write(JSON.stringify(out) + '\n')
await local.close().catch(() => {})
process.exit(out.ok ? 0 : 1)

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
