// server.mjs runs express-pouchdb (a CouchDB-compatible HTTP server) over
// PouchDB's in-memory adapter on 127.0.0.1, the reference peer of
// barrel's CouchDB-protocol tests.
//
//   node server.mjs PORT [DIR]     (0 picks a free port)
//
// It prints "listening PORT" on stdout once it accepts connections, and
// exits 0 on SIGTERM or SIGINT. Without DIR nothing is written to disk;
// with DIR its databases are LevelDB directories under DIR (benchmarks).
import PouchDB from 'pouchdb'
import memory from 'pouchdb-adapter-memory'
import expressPouchDB from 'express-pouchdb'
import { once } from 'node:events'
import { devNull } from 'node:os'

const port = Number(process.argv[2])
if (process.argv.length < 3 || process.argv.length > 4 || !Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write('usage: node server.mjs PORT [DIR]\n')
  process.exit(2)
}

PouchDB.plugin(memory)
const dir = process.argv[3]
const Mem = dir ? PouchDB.defaults({ prefix: dir.replace(/\/?$/, '/') }) : PouchDB.defaults({ adapter: 'memory' })
const app = expressPouchDB(Mem, { mode: 'minimumForPouchDB', inMemoryConfig: true, logPath: devNull })
const server = app.listen(port, '127.0.0.1')
await once(server, 'listening')
process.stdout.write(`listening ${server.address().port}\n`)

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.once(sig, () => {
    server.close()
    server.closeAllConnections()
    process.exit(0)
  })
}
