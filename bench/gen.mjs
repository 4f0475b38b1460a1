// Document generator shared by every system in the comparison.
//
// doc(seed, i) is a port of docGen.doc in internal/bench/bench.go: the
// same PCG-DXSM generator as Go's math/rand/v2 (rand.NewPCG(seed, i)), the
// same draws in the same order, so document i here is the document i that
// `barrel-peer bench --seed S` writes. compare.sh checks this against Go's
// output (see checkgen below) before it measures anything.
//
// Usage: node gen.mjs [--n 100000] [--seed 1] [--out docs.ndjson]
// writes one JSON document per line, {"_id":"doc-00000000",...}, keys sorted
// the way Go's encoding/json sorts a map.

import { createWriteStream } from 'node:fs'
import { once } from 'node:events'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'

const M64 = (1n << 64n) - 1n
const M128 = (1n << 128n) - 1n
const MUL = (2549297995355413924n << 64n) | 4865540595714422341n
const INC = (6364136223846793005n << 64n) | 1442695040888963407n
const CHEAP_MUL = 0xda942042e4dd58b5n

// PCG is Go's math/rand/v2 PCG: a 128-bit LCG with the DXSM output function.
class PCG {
  constructor (seed1, seed2) {
    this.s = ((BigInt(seed1) & M64) << 64n) | (BigInt(seed2) & M64)
  }

  uint64 () {
    this.s = (this.s * MUL + INC) & M128
    let hi = this.s >> 64n
    const lo = this.s & M64
    hi ^= hi >> 32n
    hi = (hi * CHEAP_MUL) & M64
    hi ^= hi >> 48n
    hi = (hi * (lo | 1n)) & M64
    return hi
  }

  // intN is rand.Rand.IntN on a 64-bit platform (uint64n: mask for a power
  // of two, else Lemire's multiply with rejection).
  intN (n) {
    const bn = BigInt(n)
    if ((bn & (bn - 1n)) === 0n) return Number(this.uint64() & (bn - 1n))
    let p = this.uint64() * bn
    let lo = p & M64
    if (lo < bn) {
      const thresh = ((1n << 64n) - bn) % bn
      while (lo < thresh) {
        p = this.uint64() * bn
        lo = p & M64
      }
    }
    return Number(p >> 64n)
  }

  float64 () {
    return Number(this.uint64() & ((1n << 53n) - 1n)) / 2 ** 53
  }
}

export const MATCH_EVERY = 100 // document i is in Iceland when i % MATCH_EVERY == 0 (1%)
export const COUNTRY = 'Iceland'
const COUNTRIES = ['France', 'Germany', 'Italy', 'Spain', 'Portugal', 'Norway', 'Japan', 'Brazil', 'Canada']
const CITIES = {
  Iceland: ['Reykjavik', 'Akureyri', 'Selfoss'],
  France: ['Paris', 'Lyon', 'Nantes'],
  Germany: ['Berlin', 'Hamburg', 'Leipzig'],
  Italy: ['Rome', 'Milan', 'Turin'],
  Spain: ['Madrid', 'Seville', 'Bilbao'],
  Portugal: ['Lisbon', 'Porto', 'Braga'],
  Norway: ['Oslo', 'Bergen', 'Tromso'],
  Japan: ['Tokyo', 'Osaka', 'Sapporo'],
  Brazil: ['Recife', 'Manaus', 'Curitiba'],
  Canada: ['Toronto', 'Halifax', 'Calgary']
}
const FIRST = ['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald', 'Frances', 'Ken', 'Radia', 'Leslie']
const LAST = ['Lovelace', 'Hopper', 'Turing', 'Dijkstra', 'Liskov', 'Knuth', 'Allen', 'Thompson', 'Perlman', 'Lamport']
const TAGS = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta', 'eta', 'theta', 'iota', 'kappa', 'lambda', 'omicron']

export function docID (i) {
  return 'doc-' + String(i).padStart(8, '0')
}

// doc returns document i's body (without _id), keys in Go's sorted order.
export function doc (seed, i) {
  const r = new PCG(seed, i)
  let country = COUNTRY
  if (i % MATCH_EVERY !== 0) country = COUNTRIES[r.intN(COUNTRIES.length)]
  const cities = CITIES[country]
  const tags = new Array(2 + r.intN(3))
  for (let j = 0; j < tags.length; j++) tags[j] = TAGS[r.intN(TAGS.length)]
  // Draw order follows the Go composite literal: name, age, email, active,
  // locations.city, locations.zip, score.
  const name = FIRST[r.intN(FIRST.length)] + ' ' + LAST[r.intN(LAST.length)]
  const age = 18 + r.intN(70)
  const email = `user${r.intN(1000000)}@example.org`
  const active = r.intN(2) === 0
  const city = cities[r.intN(cities.length)]
  const zip = String(r.intN(100000)).padStart(5, '0')
  const score = Math.round(r.float64() * 1e6) / 1e6
  return { active, age, email, locations: { city, country, zip }, name, score, tags }
}

async function main () {
  const { values } = parseArgs({
    options: {
      n: { type: 'string', default: '100000' },
      seed: { type: 'string', default: '1' },
      out: { type: 'string', default: '-' }
    }
  })
  const n = Number(values.n)
  const seed = BigInt(values.seed)
  const out = values.out === '-' ? process.stdout : createWriteStream(values.out)
  for (let i = 0; i < n; i++) {
    if (!out.write(JSON.stringify({ _id: docID(i), ...doc(seed, i) }) + '\n')) await once(out, 'drain')
  }
  if (out !== process.stdout) {
    out.end()
    await once(out, 'finish')
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main()
