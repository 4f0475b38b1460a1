// Helpers shared by the peer harnesses: the document file, result lines in
// barrel-peer bench's key=value format, RSS sampling, percentiles.

import { readFileSync } from 'node:fs'

// loadDocs reads the first n documents of an NDJSON file written by gen.mjs
// and fails if it holds fewer.
export function loadDocs (file, n) {
  const lines = readFileSync(file, 'utf8').split('\n')
  if (lines.length - 1 < n) throw new Error(`${file}: ${lines.length - 1} documents, need ${n} (regenerate with gen.mjs --n ${n})`)
  const docs = new Array(n)
  for (let i = 0; i < n; i++) docs[i] = JSON.parse(lines[i])
  return docs
}

export function rssMB () {
  return Math.round(process.memoryUsage().rss / (1 << 20))
}

// PeakRSS samples the resident set every 50 ms until stop(); peak() is the
// largest sample (and the current value).
export class PeakRSS {
  constructor () {
    this.max = rssMB()
    this.timer = setInterval(() => { this.max = Math.max(this.max, rssMB()) }, 50)
    this.timer.unref()
  }

  peak () {
    this.max = Math.max(this.max, rssMB())
    return this.max
  }

  stop () {
    clearInterval(this.timer)
    return this.peak()
  }
}

// line formats one result: system=… workload=… then the given fields in order.
export function line (system, workload, fields) {
  return [`system=${system}`, `workload=${workload}`, ...Object.entries(fields).map(([k, v]) => `${k}=${v}`)].join(' ')
}

// writeResult returns the fields of a throughput workload.
export function throughput (n, seconds, peak, durability) {
  return { n, seconds: seconds.toFixed(2), docs_per_s: Math.round(n / seconds), rss_mb: rssMB(), peak_rss_mb: peak, durability }
}

// percentile is the nearest-rank p-quantile of sorted ascending numbers,
// as in barrel-peer bench.
export function percentile (sorted, p) {
  const i = Math.ceil(p * sorted.length) - 1
  return sorted[Math.max(0, Math.min(i, sorted.length - 1))]
}

export function seconds (startNs) {
  return Number(process.hrtime.bigint() - startNs) / 1e9
}

export function msSince (startNs) {
  return Number(process.hrtime.bigint() - startNs) / 1e6
}

export const now = () => process.hrtime.bigint()

export const sleep = (ms) => new Promise(resolve => setTimeout(resolve, ms))
