// A horizontal bar chart of ratios as SVG text, on a log scale with the 1×
// line marked: enough for docs/bench-compare.svg without a plotting
// dependency. Used by report.mjs.

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

// chart returns an SVG document. groups: [{ label, bars: [{ series, value }] }]
// with value a ratio > 0 (undefined bars are skipped); series: [{ name, color }].
export function chart ({ title, subtitle, groups, series }) {
  const values = groups.flatMap(g => g.bars.map(b => b.value)).filter(v => v > 0)
  const lo = Math.min(0.1, ...values.map(v => 10 ** Math.floor(Math.log10(v))))
  const hi = Math.max(10, ...values.map(v => 10 ** Math.ceil(Math.log10(v))))
  const labelW = 330
  const plotW = 560
  const barH = 12
  const gap = 3
  const groupGap = 12
  const top = 64
  const x = (v) => labelW + (Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)) * plotW
  const out = []
  let y = top
  for (const g of groups) {
    const h = Math.max(1, g.bars.length) * (barH + gap)
    out.push(`<text x="${labelW - 8}" y="${y + h / 2 + 4}" text-anchor="end" class="label">${esc(g.label)}</text>`)
    g.bars.forEach((b, i) => {
      const by = y + i * (barH + gap)
      const color = series.find(s => s.name === b.series)?.color ?? '#888'
      if (!(b.value > 0)) {
        out.push(`<text x="${x(1) + 4}" y="${by + barH - 2}" class="value">${esc(b.series)}: no figure</text>`)
        return
      }
      const x0 = Math.min(x(1), x(b.value))
      const w = Math.max(1, Math.abs(x(b.value) - x(1)))
      out.push(`<rect x="${x0.toFixed(1)}" y="${by}" width="${w.toFixed(1)}" height="${barH}" fill="${color}"><title>${esc(g.label)}, ${esc(b.series)}: ${b.value.toFixed(2)}×</title></rect>`)
      const tx = b.value >= 1 ? x(b.value) + 4 : x(b.value) - 4
      out.push(`<text x="${tx.toFixed(1)}" y="${by + barH - 2}" text-anchor="${b.value >= 1 ? 'start' : 'end'}" class="value">${b.value >= 10 ? Math.round(b.value) : b.value.toFixed(2)}×</text>`)
    })
    y += h + groupGap
  }
  const height = y + 40
  const width = labelW + plotW + 70
  const ticks = []
  for (let t = lo; t <= hi * 1.0001; t *= 10) {
    ticks.push(`<line x1="${x(t).toFixed(1)}" y1="${top - 6}" x2="${x(t).toFixed(1)}" y2="${y}" class="${Math.abs(t - 1) < 1e-9 ? 'one' : 'grid'}"/>`)
    ticks.push(`<text x="${x(t).toFixed(1)}" y="${y + 14}" text-anchor="middle" class="tick">${t >= 1 ? Math.round(t) : t.toFixed(Math.round(-Math.log10(t)))}×</text>`)
  }
  const legend = series.map((s, i) => `<rect x="${10 + i * 160}" y="${height - 20}" width="10" height="10" fill="${s.color}"/><text x="${24 + i * 160}" y="${height - 11}" class="value">${esc(s.name)}</text>`)
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    '<style>.label{font-size:12px;fill:#222}.value{font-size:10px;fill:#333}.tick{font-size:10px;fill:#555}.grid{stroke:#ddd}.one{stroke:#000;stroke-width:1.5}.title{font-size:15px;font-weight:bold}.sub{font-size:11px;fill:#555}</style>',
    '<rect width="100%" height="100%" fill="#fff"/>',
    `<text x="10" y="22" class="title">${esc(title)}</text>`,
    `<text x="10" y="40" class="sub">${esc(subtitle)}</text>`,
    ...ticks,
    ...out.filter(Boolean),
    ...legend,
    '</svg>',
    ''
  ].join('\n')
}
