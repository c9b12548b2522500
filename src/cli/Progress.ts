/**
 * The progress bar a backtest draws on a terminal's stderr: bars replayed (of the feed's total when
 * known), the virtual date reached and the equity. A backtest is CPU work that yields to the event
 * loop only every few hundred slices, so the bar is drawn from the run's own progress calls, not
 * left to cli-progress's timer (which could fire too rarely to show anything).
 */
import cliProgress from "cli-progress"
import { Effect, type Scope } from "effect"
import type * as Backtest from "../swarm/Backtest.js"
import type { Money } from "../trading/Money.js"
import { money, time } from "./Summary.js"

export interface Bar {
  readonly update: (progress: Backtest.Progress) => void
  /** Take the bar off the screen while `effect` runs (a prompt), then draw it again. */
  readonly aside: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** Take the bar off the screen for good (also done when the scope closes). */
  readonly done: Effect.Effect<void>
}

/** At most this many redraws a second: more only costs the run time. */
const FPS = 10

export const start = (stream: NodeJS.WriteStream, total: number | undefined): Effect.Effect<Bar, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const known = total !== undefined && total > 0
      const bar = new cliProgress.SingleBar({
        stream,
        format: known
          ? "{bar} {percentage}% | {value}/{total} bars | {date} | equity {equity}"
          : "{value} bars | {date} | equity {equity}",
        barCompleteChar: "█",
        barIncompleteChar: "░",
        fps: FPS,
        hideCursor: true,
        clearOnComplete: true
      })
      let value = 0
      let payload = { date: "…", equity: "…" }
      let lastDraw = 0
      bar.start(known ? total : 0, 0, payload)
      const update = (progress: Backtest.Progress) => {
        value = progress.bars
        payload = { date: time(progress.ts), equity: money(progress.equity as Money) }
        bar.update(value, payload)
        const now = Date.now()
        if (now - lastDraw >= 1_000 / FPS) {
          lastDraw = now
          bar.render()
        }
      }
      const aside = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
        Effect.acquireUseRelease(
          Effect.sync(() => bar.stop()),
          () => effect,
          () => Effect.sync(() => bar.start(known ? total : 0, value, payload))
        )
      return { bar, value: { update, aside, done: Effect.sync(() => bar.stop()) } satisfies Bar }
    }),
    ({ bar }) => Effect.sync(() => bar.stop())
  ).pipe(Effect.map(({ value }) => value))
