import { readFile } from 'node:fs/promises'
import { check, type NodeState } from './checker.ts'
import type { OpRecord } from './workload.ts'

/**
 * Re-runs the checker on a run's saved evidence:
 * `node scripts/chaos/recheck.ts tmp/chaos/report-seed7` reads `<base>.history.jsonl` and
 * `<base>.states.json` and prints the result.
 */
const base = (process.argv[2] ?? '').replace(/\.json$/, '')
const history = (await readFile(`${base}.history.jsonl`, 'utf8'))
  .split('\n')
  .filter((l) => l.trim() !== '')
  .map((l) => JSON.parse(l) as OpRecord)
const states = JSON.parse(await readFile(`${base}.states.json`, 'utf8')) as NodeState[]
const result = check(history, states)
console.log(JSON.stringify({ ...result, lostSamples: result.lostSamples.slice(0, 15), divergenceSamples: result.divergenceSamples.slice(0, 10) }, null, 2))
process.exit(result.ok ? 0 : 1)
