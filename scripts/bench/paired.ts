/**
 * One run of a benchmark: the measured side and its baseline, one after the other, alternating
 * which goes first (even runs: the baseline), so neither always gets the warmer page cache or the
 * quieter machine.
 */
export async function pairedPasses<O, B>(run: number, ours: () => Promise<O>, base: () => Promise<B>): Promise<{ o: O; b: B }> {
  if (run % 2 === 0) {
    const b = await base()
    return { o: await ours(), b }
  }
  const o = await ours()
  return { o, b: await base() }
}
