/**
 * mulberry32: the small seeded PRNG that W2.md specifies, so generated market data is byte-identical
 * in any language. Used only to *generate* data (files, synthetic feeds); agents take randomness from
 * Effect's `Random` as DESIGN.md asks. Not cryptographic.
 */

/** A mulberry32 stream. Mutable on purpose: one draw per call on the data generator's hot loop. */
export interface Prng {
  /** The next output as an unsigned 32-bit integer, exactly as W2.md writes the algorithm. */
  readonly nextUint32: () => number
  /** A uniform double in [0, 1): `nextUint32() / 2^32`. */
  readonly nextFloat: () => number
  /** A standard normal draw (Box–Muller over two `nextFloat`s; the second value is not cached, for simplicity of replay). */
  readonly nextNormal: () => number
  /** The internal state `a`, to fork or checkpoint a stream. */
  readonly state: () => number
}

const TWO_32 = 4294967296

/** A stream seeded with `seed` (taken modulo 2^32). */
export const make = (seed: number): Prng => {
  // The state lives in a typed array: a closure variable holding a 32-bit unsigned value is a boxed
  // heap number, one allocation per draw (a fifth of a synthetic backtest's garbage).
  const s = new Uint32Array(1)
  s[0] = seed >>> 0
  const nextUint32 = (): number => {
    const a = (s[0] = (s[0]! + 0x6d2b79f5) >>> 0)
    let t = Math.imul(a ^ (a >>> 15), a | 1)
    t = (t + Math.imul(t ^ (t >>> 7), t | 61)) ^ t
    return (t ^ (t >>> 14)) >>> 0
  }
  const nextFloat = (): number => nextUint32() / TWO_32
  const nextNormal = (): number => {
    // 1 - u keeps the logarithm's argument in (0, 1].
    const u = 1 - nextFloat()
    const v = nextFloat()
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v)
  }
  return { nextUint32, nextFloat, nextNormal, state: () => s[0]! }
}
