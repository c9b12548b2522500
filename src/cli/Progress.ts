/**
 * The progress bars drawn on a terminal's stderr: a backtest's (bars replayed, of the feed's total
 * when known, the virtual date reached, the equity and the rate) and a replay's (events compared, of the
 * recording's total, the bars and date reached, and the rate; before its first bar, what it does:
 * checking the recording, then reading it). A run is CPU work that yields to the
 * event loop only every few hundred slices, so a bar is drawn from the run's own progress calls, not
 * left to cli-progress's timer (which could fire too rarely to show anything).
 */
import cliProgress from "cli-progress"
import { Effect, type Scope } from "effect"
import type * as StoredRun from "../store/StoredRun.js"
import type * as Backtest from "../swarm/Backtest.js"
import type { Money } from "../trading/Money.js"
import { count, money, time } from "./Summary.js"

export interface Bar {
  readonly update: (progress: Backtest.Progress) => void
  /** Take the bar off the screen while `effect` runs (a prompt), then draw it again. */
  readonly aside: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** Take the bar off the screen for good (also done when the scope closes). */
  readonly done: Effect.Effect<void>
}

/** At most this many redraws a second: more only costs the run time. */
const FPS = 10

type Payload = Record<string, string>

/** A bar at `value` of `total` (none when unknown: only the count is drawn), with its payload. */
const draw = (
  stream: NodeJS.WriteStream,
  total: number | undefined,
  formats: { readonly known: string; readonly unknown: string },
  initial: Payload
): Effect.Effect<{ readonly set: (value: number, payload: Payload, now?: boolean) => void } & Omit<Bar, "update">, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const known = total !== undefined && total > 0
      const bar = new cliProgress.SingleBar({
        stream,
        format: known ? formats.known : formats.unknown,
        barCompleteChar: "█",
        barIncompleteChar: "░",
        fps: FPS,
        hideCursor: true,
        clearOnComplete: true
      })
      let value = 0
      let payload = initial
      let lastDraw = 0
      bar.start(known ? total : 0, 0, payload)
      /** Draws at most `FPS` times a second, or at once (`now`): a change of what the bar says, drawn however soon after the last. */
      const set = (next: number, nextPayload: Payload, drawNow = false) => {
        value = next
        payload = nextPayload
        bar.update(value, payload)
        const now = Date.now()
        if (drawNow || now - lastDraw >= 1_000 / FPS) {
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
      return { bar, value: { set, aside, done: Effect.sync(() => bar.stop()) } }
    }),
    ({ bar }) => Effect.sync(() => bar.stop())
  ).pipe(Effect.map(({ value }) => value))

/** A backtest's bar: bars replayed of the feed's `total`, the date reached, the equity, bars a second. */
export const start = (stream: NodeJS.WriteStream, total: number | undefined): Effect.Effect<Bar, never, Scope.Scope> =>
  Effect.map(
    draw(stream, total, {
      known: "{bar} {percentage}% | {bars} bars | {date} | equity {equity} | {rate}",
      unknown: "{bars} bars | {date} | equity {equity} | {rate}"
    }, { bars: of(0, total), date: "…", equity: "…", rate: "… bars/s" }),
    ({ aside, done, set }) => {
      const rate = recentRate("bars/s")
      return {
        update: (progress: Backtest.Progress) =>
          set(progress.bars, {
            bars: of(progress.bars, total),
            date: time(progress.ts),
            equity: money(progress.equity as Money),
            rate: rate(progress.bars)
          }),
        aside,
        done
      }
    }
  )

/** How many progress calls a rate is measured over: recent enough to follow a run that slows down. */
const RATE_SAMPLES = 10

/**
 * The rate of a count over its last `RATE_SAMPLES` progress calls (wall-clock), as `1,234 <unit>`.
 * Not from the bar's start, which a replay spends reading and checking the recording before it
 * executes a bar.
 */
const recentRate = (unit: string): (value: number) => string => {
  const samples: Array<readonly [number, number]> = []
  return (value) => {
    const now = Date.now()
    samples.push([now, value])
    if (samples.length > RATE_SAMPLES) samples.shift()
    const [since, from] = samples[0]!
    const seconds = (now - since) / 1_000
    return seconds > 0 ? `${count(Math.round((value - from) / seconds))} ${unit}` : `… ${unit}`
  }
}

/**
 * A replay's bar: events re-executed (and compared) of the recording's `events`, the bars replayed
 * (of `bars`, when the run's counts know them), the date reached, and events a second. The
 * percentage is the events', which every replay knows (a run that never finished has no bar count).
 */
export const replay = (
  stream: NodeJS.WriteStream,
  totals: { readonly events: number | undefined; readonly bars: number | undefined }
): Effect.Effect<Bar & { readonly phase: (phase: StoredRun.ReplayPhase) => void }, never, Scope.Scope> =>
  Effect.map(
    draw(stream, totals.events, {
      known: "{bar} {percentage}% | {events} events | {bars} bars | {date} | {rate}",
      unknown: "{events} events | {bars} bars | {date} | {rate}"
    }, {
      events: of(0, totals.events),
      bars: of(0, totals.bars),
      date: "…",
      rate: "… events/s"
    }),
    ({ aside, done, set }) => {
      const rate = recentRate("events/s")
      return {
        update: (progress: Backtest.Progress) =>
          set(progress.events, {
            events: of(progress.events, totals.events),
            bars: of(progress.bars, totals.bars),
            date: time(progress.ts),
            rate: rate(progress.events)
          }),
        // Where the date will be: a big recording's checks and reading take a while before the first bar.
        phase: (phase: StoredRun.ReplayPhase) =>
          set(0, {
            events: of(0, totals.events),
            bars: of(0, totals.bars),
            date: phase === "checking" ? "checking the recording…" : "reading the recording…",
            rate: "… events/s"
          }, true),
        aside,
        done
      }
    }
  )

/** `1,234/5,678`, or `1,234` when the total is not known. */
const of = (value: number, total: number | undefined): string =>
  total !== undefined && total > 0 ? `${count(value)}/${count(total)}` : count(value)
