import type { FaultEvent } from '../chaos/faults.ts'
import type { SoakSample } from './sampler.ts'

/**
 * The soak's plot: one SVG, a panel per figure (RSS, V8 heap in use, open fds, data dir on disk,
 * CPU), a line per daemon over the run's minutes, the faults as vertical marks (kill -9 red,
 * partition or SIGSTOP orange). Plain SVG text, no library: it opens in any browser.
 */

const PANELS: readonly { readonly title: string; readonly value: (s: SoakSample) => number | null }[] = [
  { title: 'RSS (MiB)', value: (s) => (s.rssBytes === null ? null : s.rssBytes / 1048576) },
  { title: 'V8 heap used (MiB)', value: (s) => (s.heapUsedBytes === null ? null : s.heapUsedBytes / 1048576) },
  { title: 'open fds', value: (s) => s.fds },
  { title: 'data dir on disk (MiB)', value: (s) => s.dataDirBytes / 1048576 },
  { title: 'CPU (% of a core)', value: (s) => s.cpuPct },
]

const COLORS = ['#1f77b4', '#2ca02c', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22']
const WIDTH = 900
const PANEL_H = 150
const LEFT = 60
const RIGHT = 20
const TOP = 40
const GAP = 40

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
const num = (x: number): string => (Math.round(x * 10) / 10).toString()

export function renderSvg(samples: readonly SoakSample[], faults: readonly FaultEvent[], options: { title: string; durationMs: number }): string {
  const nodes = [...new Set(samples.map((s) => s.node))].sort((a, b) => a - b)
  const height = TOP + PANELS.length * (PANEL_H + GAP) + 20
  const plotW = WIDTH - LEFT - RIGHT
  // The run's length, or the last sample's time (the last one is taken as the load ends).
  const end = Math.max(1, options.durationMs, ...samples.map((s) => s.t))
  const x = (t: number): number => LEFT + (Math.max(0, t) / end) * plotW
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="${LEFT}" y="18" font-size="14" font-weight="bold">${esc(options.title)}</text>`,
  ]
  nodes.forEach((node, i) => {
    out.push(`<rect x="${LEFT + i * 70}" y="26" width="10" height="3" fill="${COLORS[i % COLORS.length]}"/><text x="${LEFT + i * 70 + 14}" y="31">node ${node}</text>`)
  })
  out.push(`<text x="${LEFT + nodes.length * 70 + 10}" y="31" fill="#d62728">| kill -9</text><text x="${LEFT + nodes.length * 70 + 70}" y="31" fill="#ff7f0e">| partition / SIGSTOP</text>`)
  PANELS.forEach((panel, p) => {
    const top = TOP + p * (PANEL_H + GAP) + 20
    const values = samples.map((s) => panel.value(s)).filter((v): v is number => v !== null && Number.isFinite(v))
    const max = Math.max(1, ...values) * 1.05
    const y = (v: number): number => top + PANEL_H - (v / max) * PANEL_H
    out.push(`<text x="${LEFT}" y="${top - 6}" font-weight="bold">${esc(panel.title)}</text>`)
    out.push(`<rect x="${LEFT}" y="${top}" width="${plotW}" height="${PANEL_H}" fill="none" stroke="#ccc"/>`)
    for (const frac of [0, 0.5, 1]) out.push(`<text x="${LEFT - 4}" y="${num(y(max * frac) + 4)}" text-anchor="end" fill="#666">${num(max * frac)}</text>`)
    for (const f of faults) {
      const color = f.kind === 'kill9-restart' ? '#d62728' : '#ff7f0e'
      out.push(`<line x1="${num(x(f.injectedAt))}" x2="${num(x(f.injectedAt))}" y1="${top}" y2="${top + PANEL_H}" stroke="${color}" stroke-opacity="0.5"/>`)
    }
    nodes.forEach((node, i) => {
      // A line per stretch of consecutive samples with a value (a node that is down breaks it).
      const runs: string[][] = [[]]
      for (const s of samples.filter((s) => s.node === node)) {
        const v = panel.value(s)
        if (v === null || !Number.isFinite(v)) {
          if ((runs.at(-1) as string[]).length > 0) runs.push([])
          continue
        }
        ;(runs.at(-1) as string[]).push(`${num(x(s.t))},${num(y(v))}`)
      }
      for (const run of runs.filter((r) => r.length > 0)) {
        out.push(`<polyline fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="1.5" points="${run.join(' ')}"/>`)
      }
    })
    if (p === PANELS.length - 1) {
      const minutes = end / 60_000
      const step = minutes > 20 ? 10 : minutes > 5 ? 1 : 0.5
      for (let m = 0; m <= minutes + 1e-9; m += step) out.push(`<text x="${num(x(m * 60_000))}" y="${top + PANEL_H + 14}" text-anchor="middle" fill="#666">${num(m)} min</text>`)
    }
  })
  out.push('</svg>')
  return `${out.join('\n')}\n`
}
