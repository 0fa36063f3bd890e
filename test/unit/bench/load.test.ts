import { setTimeout as sleep } from 'node:timers/promises'
import { describe, expect, it } from 'vitest'
import { closedLoop, warmUp, warmUpRounds } from '../../../scripts/bench/load.ts'

describe('bench load helpers', () => {
  it('closedLoop runs every operation once, at most `concurrency` at a time, and times each', async () => {
    const ran: number[] = []
    let inFlight = 0
    let most = 0
    const result = await closedLoop(50, 4, async (i) => {
      most = Math.max(most, ++inFlight)
      await sleep(1)
      ran.push(i)
      inFlight--
    })
    expect(ran.sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i))
    expect(most).toBe(4)
    // Every operation's latency was recorded (the array starts at zeros).
    expect(result.latencies.every((ms) => ms > 0)).toBe(true)
  })

  it('warmUp runs operations 0, 1, 2, ... until the time is up and counts exactly those it ran', async () => {
    const ran = new Set<number>()
    const started = performance.now()
    const count = await warmUp(60, 3, async (i) => {
      ran.add(i)
      await sleep(2)
    })
    expect(performance.now() - started).toBeGreaterThanOrEqual(59)
    expect(count).toBeGreaterThanOrEqual(3)
    expect([...ran].sort((a, b) => a - b)).toEqual(Array.from({ length: count }, (_, i) => i))
  })

  it('the first failure stops every loop and rejects', async () => {
    let started = 0
    const failing = (i: number): Promise<void> => {
      started++
      return i === 5 ? Promise.reject(new Error('refused')) : sleep(1).then(() => undefined)
    }
    await expect(closedLoop(1000, 4, failing)).rejects.toThrow('refused')
    await sleep(20)
    expect(started).toBeLessThan(20)
    started = 0
    await expect(warmUp(10_000, 4, failing)).rejects.toThrow('refused')
    await sleep(20)
    expect(started).toBeLessThan(20)
  })

  it('warmUpRounds runs at least one round, and rounds until the time is up', async () => {
    expect(await warmUpRounds(0, async () => undefined)).toBe(1)
    const rounds: number[] = []
    const started = performance.now()
    const count = await warmUpRounds(30, async (r) => {
      rounds.push(r)
      await sleep(5)
    })
    expect(performance.now() - started).toBeGreaterThanOrEqual(29)
    expect(rounds).toEqual(Array.from({ length: count }, (_, i) => i))
    expect(count).toBeGreaterThanOrEqual(2)
  })
})
