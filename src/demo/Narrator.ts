/**
 * How the demo talks to a human: one line per event, `[  120ms] who  what`, with the time relative
 * to the start of the demo on Effect's `Clock`. Colour only on a terminal, and never with NO_COLOR.
 *
 * Lines are held back briefly and printed in time order: a lifecycle event reaches its subscriber a
 * moment after it happened, and without the hold a round that saw a crash could print before it.
 */
import { Config, Console, Context, Effect, Layer } from "effect"

export type Tone = "plain" | "good" | "warn" | "bad" | "note" | "dim"

export interface Service {
  /** Print a line for `who`; `at` is a `Clock` time in millis (defaults to now). */
  readonly line: (who: string, text: string, options?: { readonly tone?: Tone; readonly at?: number }) => Effect.Effect<void>
  /** Print a line as is (headers, the summary), in its place in time. */
  readonly raw: (text: string, tone?: Tone) => Effect.Effect<void>
  /** Print everything held back. */
  readonly flush: Effect.Effect<void>
}

export class Narrator extends Context.Tag("swarm/demo/Narrator")<Narrator, Service>() {}

const WHO_WIDTH = 12
/** How long a line is held back for an earlier one to arrive; well under what a human notices. */
const HOLD_MILLIS = 40

const ansi: Record<Tone, readonly [string, string]> = {
  plain: ["", ""],
  good: ["\x1b[32m", "\x1b[39m"],
  warn: ["\x1b[33m", "\x1b[39m"],
  bad: ["\x1b[31m", "\x1b[39m"],
  note: ["\x1b[35m", "\x1b[39m"],
  dim: ["\x1b[2m", "\x1b[22m"]
}

interface Held {
  readonly at: number
  readonly order: number
  readonly text: string
}

/** `terminal`: whether stdout is a TTY (the caller knows; this module does not touch `process`). */
export const layer = (options: { readonly terminal: boolean }): Layer.Layer<Narrator> =>
  Layer.scoped(
    Narrator,
    Effect.gen(function*() {
      const noColor = yield* Config.string("NO_COLOR").pipe(Config.withDefault(""), Effect.orElseSucceed(() => ""))
      const color = options.terminal && noColor === ""
      const paint = (tone: Tone, text: string) => (color && tone !== "plain" ? ansi[tone][0] + text + ansi[tone][1] : text)
      const clock = yield* Effect.clock
      const origin = clock.unsafeCurrentTimeMillis()

      let held: Array<Held> = []
      let order = 0
      const hold = (at: number, text: string) => Effect.sync(() => void held.push({ at, order: order++, text }))
      const release = (upTo: number) =>
        Effect.suspend(() => {
          const due = held.filter((line) => line.at <= upTo).sort((a, b) => a.at - b.at || a.order - b.order)
          held = held.filter((line) => line.at > upTo)
          return Effect.forEach(due, (line) => Console.log(line.text), { discard: true })
        })
      const flush = release(Infinity)

      yield* Effect.forever(Effect.zipRight(Effect.sleep(HOLD_MILLIS / 2), Effect.suspend(() => release(clock.unsafeCurrentTimeMillis() - HOLD_MILLIS)))).pipe(
        Effect.forkScoped
      )
      yield* Effect.addFinalizer(() => flush)

      return {
        line: (who, text, lineOptions) =>
          Effect.suspend(() => {
            const at = lineOptions?.at ?? clock.unsafeCurrentTimeMillis()
            const stamp = paint("dim", `[${String(Math.max(0, Math.round(at - origin))).padStart(5)}ms]`)
            return hold(at, `${stamp} ${who.padEnd(WHO_WIDTH)} ${paint(lineOptions?.tone ?? "plain", text)}`)
          }),
        raw: (text, tone = "plain") => Effect.suspend(() => hold(clock.unsafeCurrentTimeMillis(), paint(tone, text))),
        flush
      }
    })
  )
