/**
 * A demo analyst: answers `RequestOpinion` from the prices it has been asked about. `crashEvery`
 * makes it flaky: its n-th opinion since it last (re)started is a defect, so it crashes, its
 * supervisor restarts it with a fresh state, and the request lands in dead letters.
 */
import { Effect } from "effect"
import * as Actor from "../actor/Actor.js"
import { type Opinion, RequestOpinion } from "./protocol.js"

/** `momentum` follows the last move; `contrarian` bets on a return to the recent mean. */
export type Stance = "momentum" | "contrarian"

export interface Options {
  readonly stance: Stance
  readonly crashEvery?: number
}

interface State {
  /** The last few prices asked about, oldest first. */
  readonly seen: ReadonlyArray<number>
  readonly answered: number
}

const MEMORY = 5

const initial: State = { seen: [], answered: 0 }

/** Pure: an opinion from the prices seen so far (no opinion without enough history). */
export const opine = (stance: Stance, seen: ReadonlyArray<number>): Opinion => {
  const last = seen[seen.length - 1]
  if (stance === "momentum") {
    const previous = seen[seen.length - 2]
    if (last === undefined || previous === undefined) return { direction: "flat", confidence: 0 }
    const move = last / previous - 1
    if (Math.abs(move) < 0.001) return { direction: "flat", confidence: 0.5 }
    return { direction: move > 0 ? "long" : "short", confidence: Math.min(0.95, 0.5 + Math.abs(move) * 50) }
  }
  if (last === undefined || seen.length < 3) return { direction: "flat", confidence: 0 }
  const mean = seen.reduce((sum, price) => sum + price, 0) / seen.length
  const gap = last / mean - 1
  if (Math.abs(gap) < 0.001) return { direction: "flat", confidence: 0.5 }
  return { direction: gap > 0 ? "short" : "long", confidence: Math.min(0.9, 0.4 + Math.abs(gap) * 40) }
}

export const make = (options: Options) =>
  Actor.make({
    protocol: RequestOpinion,
    initial,
    behavior: (state, request, context) =>
      Effect.gen(function*() {
        const nth = state.answered + 1
        if (options.crashEvery !== undefined && nth % options.crashEvery === 0) {
          // A defect, not a typed failure: nothing in the protocol covers a broken model.
          return yield* Effect.die(new Error(`garbled model output on opinion #${nth}`))
        }
        const seen = [...state.seen, request.price].slice(-MEMORY)
        yield* context.reply(request, opine(options.stance, seen))
        return { seen, answered: nth }
      })
  })
