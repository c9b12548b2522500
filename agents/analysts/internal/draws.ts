/**
 * The randomness a model is given (`Draws`, agents/analysts/Model.ts): one generator per analyst
 * and symbol, seeded from the run's seed, the analyst's name and the symbol — so a run is the same
 * for the same seed whatever order its actors are scheduled in, and one analyst's draws do not move
 * when another is added. Effect's PCG generator (the one its `Random` service runs on), made on
 * the first draw: a model that draws nothing costs nothing.
 */
import { createHash } from "node:crypto"
import { PCGRandom } from "effect/Utils"
import type { Draws } from "../Model.js"

export const seededDraws = (seed: string, agent: string, symbol: string): Draws => {
  let pcg: PCGRandom | undefined
  const generator = (): PCGRandom => {
    if (pcg === undefined) {
      const digest = createHash("sha256").update(seed).update("\0").update(agent).update("\0").update(symbol).digest()
      pcg = new PCGRandom(digest.readUInt32BE(0), digest.readUInt32BE(4), digest.readUInt32BE(8), digest.readUInt32BE(12))
    }
    return pcg
  }
  return {
    number: () => generator().number(),
    integer: (max) => generator().integer(max)
  }
}
