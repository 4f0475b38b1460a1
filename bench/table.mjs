// Reads result lines (barrel-peer bench and the peer harnesses, each
// prefixed with system=… and run=…) from stdin or a file and prints a
// Markdown table of the median of the runs per (system, workload) with
// barrel's advantage over each peer.
//
//   node table.mjs out/results.txt
//
// "× barrel" is barrel/peer for throughput (docs/s) and peer/barrel for
// latency (ms): above 1 barrel is ahead, below 1 it is behind.

import { readFileSync } from 'node:fs'

const parse = (l) => Object.fromEntries(l.trim().split(/\s+/).map(kv => kv.split('=')))
const rows = readFileSync(process.argv[2] ?? 0, 'utf8').split('\n').filter(l => l.includes('workload=')).map(parse)

// metric of each workload: [field, unit, higher is better]
const METRICS = [
  ['W1a', 'docs_per_s', 'docs/s', true],
  ['W1b', 'docs_per_s', 'docs/s', true],
  ['W1c', 'docs_per_s', 'docs/s', true],
  ['Q1', 'median_ms', 'ms (median)', false],
  ['Q1', 'scan_median_ms', 'ms (median, no index)', false],
  ['W2', 'docs_per_s', 'docs/s', true],
  ['W3', 'median_ms', 'ms (median)', false],
  ['W3', 'p99_ms', 'ms (p99)', false]
]

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

// value(system, workload, field) is the median over runs, or undefined.
const value = (system, workload, field) => {
  const xs = rows.filter(r => r.system === system && r.workload === workload && r[field] !== undefined).map(r => Number(r[field]))
  return xs.length ? median(xs) : undefined
}

const systems = [...new Set(rows.map(r => r.system))]
const barrels = systems.filter(s => s.startsWith('barrel'))
const peers = systems.filter(s => !s.startsWith('barrel'))
const fmt = (v) => v === undefined ? '—' : (v >= 100 || Number.isInteger(v) ? Math.round(v).toLocaleString('en-US') : v.toFixed(2))
const ratio = (b, p, higher) => (b === undefined || p === undefined) ? '—' : (higher ? b / p : p / b).toFixed(2) + '×'
const runs = Math.max(...rows.map(r => Number(r.run ?? 1)))
const durability = (s) => rows.find(r => r.system === s)?.durability ?? '?'

const head = ['workload', 'metric', ...barrels.map(b => `${b} (${durability(b)})`), ...peers.map(p => `${p} (${durability(p)})`)]
for (const b of barrels) for (const p of peers) head.push(`× ${b} vs ${p}`)
const out = [`Median of ${runs} run(s). × = barrel/peer for docs/s, peer/barrel for ms: above 1 barrel is ahead.`, '', `| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`]
for (const [w, field, unit, higher] of METRICS) {
  const vals = systems.map(s => value(s, w, field))
  if (vals.every(v => v === undefined)) continue
  const cells = [w, unit, ...barrels.map(s => fmt(value(s, w, field))), ...peers.map(s => fmt(value(s, w, field)))]
  // Q1 without an index is compared with barrel's (indexed) Q1.
  const bf = field === 'scan_median_ms' ? 'median_ms' : field
  for (const b of barrels) for (const p of peers) cells.push(ratio(value(b, w, bf), value(p, w, field), higher))
  out.push(`| ${cells.join(' | ')} |`)
}
out.push('', 'Notes: barrel-peer bench writes W3 5 ms apart (a constant in cmd/barrel-peer/bench.go), the peers GAP_MS apart. barrel reports RSS at the end of a workload, the peers their peak (sampled every 50 ms). Q1 without an index is compared with barrel\'s indexed Q1.')
out.push('', '| system | workload | peak RSS MB (median) |', '|---|---|---|')
for (const s of systems) {
  for (const w of [...new Set(rows.filter(r => r.system === s).map(r => r.workload))]) {
    const v = value(s, w, 'peak_rss_mb') ?? value(s, w, 'rss_mb')
    const srv = value(s, w, 'server_peak_rss_mb')
    out.push(`| ${s} | ${w} | ${fmt(v)}${srv !== undefined ? ` (server ${fmt(srv)})` : ''} |`)
  }
}
console.log(out.join('\n'))
