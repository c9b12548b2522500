/**
 * The ledger agent: the single writer of a run's cash and positions. It books the fills the
 * execution desk sends (each exactly once, by fill id: src/trading/Ledger.ts), marks the books at
 * every timestamp's closes, folds the equity curve into the run's metrics, and tells the risk
 * officer what the books look like — only once every fill up to the time asked about is booked, so
 * a risk check never runs against a stale position (DESIGN.md: a single sequenced writer). With
 * `breakers` (runs that check their breakers at every mark) it also tells the risk officer when the
 * marks of a timestamp cross the daily loss or the drawdown limit (`BooksMarked`), and at the first
 * mark of a day after a day whose loss crossed its limit: crossings only, so a timestamp that
 * crosses nothing costs two comparisons. With `afterFills` (`RunStarted.breakers`: `fills`) it
 * checks again once it books fills at the closes it has just marked (`same_close`): a loss those
 * fills make (their slippage, their commission) is seen on their bar — without it, the next bar's
 * marks saw it a bar late, and a next day, starting from the equity after it, never did.
 *
 * Events: `TradeClosed` for each round trip a fill closes, `PortfolioUpdated` after the fills of a
 * timestamp — cash, equity, exposures and P&L of the whole book, and the positions those fills
 * changed (a 100-symbol book listed in full on every fill would be most of a backtest's log; a
 * dashboard keeps the latest position per symbol). With `wholeBook` (paper runs, watched live) every
 * marked timestamp with an open position or a fill reports the whole book at its marks, so equity
 * and each position's value move with the market between trades, not only at them. A crash keeps the books (the state before the failed message): losing them would be
 * worse than any bug that crashed it. Books past the exact money range stop the run (`stopBooks`):
 * the fills of the message that got there are booked if they can be (every fill the desk reported
 * is in the books the run's report shows), at the marks before it if its own marks are past the
 * range.
 */
import { Effect, Either } from "effect"
import type { OrderId, Symbol, Timestamp } from "../schemas/Ids.js"
import type { MetricsConfig } from "../schemas/Metrics.js"
import type { Money } from "../schemas/Money.js"
import { MoneyOutOfRange } from "../schemas/Execution.js"
import type { Fill } from "../schemas/Order.js"
import type { PortfolioSnapshot } from "../schemas/Portfolio.js"
import type { RiskLimits } from "../schemas/Risk.js"
import {
  type BooksView,
  booksMarked,
  type FinalBooks,
  LedgerProtocol,
  type OpenOrder,
  type RiskProtocol,
  type ViewBooks
} from "../schemas/TradingProtocol.js"
import type { Replier } from "../src/actor/Behavior.js"
import * as Actor from "../src/actor/Actor.js"
import type { ActorRef } from "../src/actor/ActorRef.js"
import type { RunLog } from "../src/swarm/RunLog.js"
import * as Gates from "../src/trading/Gates.js"
import * as Ledger from "../src/trading/Ledger.js"
import * as M from "../src/trading/Money.js"
import { MetricsAccumulator } from "../src/trading/Metrics.js"

const DAY_MS = 86_400_000

export interface LedgerOptions {
  readonly log: RunLog
  readonly initialCash: Money
  readonly symbols: ReadonlyArray<Symbol>
  readonly metrics: MetricsConfig
  /** Called after each timestamp is marked (progress reporting). */
  readonly onMark?: (ts: Timestamp, equity: Money) => void
  /** Report the whole book at every marked timestamp with an open position or a fill (paper runs). */
  readonly wholeBook?: boolean
  /**
   * Handed, when the agent first starts, what closes its books without asking it: a run whose
   * supervisor gave up (its agents stopped, the ledger among them) reports the books as they last
   * stood from it — the state after the last message the ledger handled, which a crash of the
   * ledger itself leaves as it was before the message that crashed it. Read once the run is over.
   */
  readonly onBooks?: (close: () => FinalBooks) => void
  /**
   * Runs that check their breakers at every mark (`RunStarted.breakers`): the limits, and the risk
   * officer to tell (`BooksMarked`) when the marks of a bar cross one of them — or at the first mark
   * of a day after a day whose loss crossed its limit. Absent (runs recorded before), it is told nothing.
   */
  readonly breakers?: {
    readonly limits: RiskLimits
    readonly risk: () => ActorRef<RiskProtocol, "backpressure">
    /**
     * Check them again after fills booked at the closes just marked (`same_close`), as at a mark
     * (`RunStarted.breakers`: `fills`). Off (`marks`, runs recorded before it): at the marks only.
     */
    readonly afterFills?: boolean
  }
}

interface Waiting {
  readonly asOf: number
  readonly replier: Replier<BooksView, never>
}

class Books {
  state: Ledger.LedgerState
  /** The last close per slot (the ledger's universe order); 0 until the symbol's first bar. */
  readonly marks: Float64Array
  readonly metrics: MetricsAccumulator
  equity: Money
  peak: Money
  dayStart: Money
  day = Number.NEGATIVE_INFINITY
  markedTs = Number.NEGATIVE_INFINITY
  exposed = false
  /** The orders the desk held unfilled at its last `Book` (`BooksView.open`). */
  open: ReadonlyArray<OrderId> = []
  /** What is left of each of them, with a volume limit (`BooksView.left`). */
  left: ReadonlyArray<OpenOrder> | undefined = undefined
  /**
   * The equity curve's point of the last marked timestamp, added to the metrics only once a later
   * one is marked (or the books close): fills at that timestamp's close (`same_close`) come after
   * its bars, and the point must count them.
   */
  point: { ts: Timestamp; equity: Money; exposed: boolean } | undefined
  waiting: Array<Waiting> = []
  /** The marks before the message being booked, to put back if its books cannot be held. */
  readonly saved: Float64Array
  /** Why the books stopped: they left Money's exact range. Nothing is booked after. */
  outOfRange: string | undefined
  /** Whether the last marks had equity past the drawdown limit (`breakers`): the officer is told when it goes past. */
  pastDrawdown = false
  /** Whether the last marks of the day had its loss past the daily limit (`breakers`). */
  pastDailyLoss = false
  /** Whether the daily loss went past its limit on the day of the last marks: the next day's first mark tells the officer. */
  dailyLossCrossed = false
  /** The marks by symbol, read through the slots (no map built per snapshot). */
  readonly prices: Ledger.Prices = {
    get: (symbol) => {
      const slot = this.state.slots.get(symbol)
      const mark = slot === undefined ? 0 : this.marks[slot]!
      return mark > 0 ? mark : undefined
    }
  }

  constructor(readonly options: LedgerOptions) {
    this.state = Ledger.make({ cash: options.initialCash, symbols: options.symbols })
    this.marks = new Float64Array(options.symbols.length)
    this.saved = new Float64Array(options.symbols.length)
    this.metrics = new MetricsAccumulator(options.initialCash, options.metrics)
    this.equity = this.peak = this.dayStart = options.initialCash
  }

  /** The books at the marks; with `changed`, only the positions of those fills' symbols are listed (totals are whole). */
  snapshot(ts: Timestamp, changed?: ReadonlyArray<Fill>): PortfolioSnapshot {
    return Ledger.markToMarket(this.state, this.prices, ts, changed === undefined ? undefined : new Set(changed.map((fill) => fill.symbol)))
  }

  view(ts: Timestamp): BooksView {
    return {
      snapshot: this.snapshot(ts),
      open: this.open,
      ...(this.left === undefined ? {} : { left: this.left }),
      dayStartEquity: this.dayStart,
      peakEquity: this.peak
    }
  }
}

/**
 * Cash, equity or an exposure past the largest exact amount (`MoneyOutOfRange`, or a fill the
 * ledger cannot book for that reason): nothing after it could be booked exactly, and a restart
 * would meet the same numbers again. The ledger books nothing more and stops the run, saying why;
 * the run's report is the books as they last stood.
 */
const stopBooks = (books: Books, reason: string): Effect.Effect<Books> => {
  books.outOfRange = reason
  books.options.log.stop(reason)
  return Effect.succeed(books)
}

/** Why the books stop, for an amount past the range met at `ts`. */
const pastRange = (error: MoneyOutOfRange, ts: number): string =>
  `the books left the exact money range (at most ${M.format(M.maxValue)}) at ` +
  `${new Date(ts).toISOString()} (an amount of ${
    (Number(error.value) / M.MICROS_PER_UNIT).toLocaleString("en-US", { maximumFractionDigits: 2 })
  })`

/**
 * Equity at the marks, and the snapshot of the fills' symbols when there are fills — or the amount
 * past the range. Anything else thrown is a crash, for the supervisor, after `restore` has put the
 * books back as they were before the message.
 */
const measure = (
  books: Books,
  ts: Timestamp,
  fills: ReadonlyArray<Fill>,
  marked: boolean,
  restore: () => void
): Either.Either<{ readonly equity: Money; readonly snapshot: PortfolioSnapshot | undefined }, MoneyOutOfRange> => {
  try {
    const equity = Ledger.equityFromMarks(books.state, books.marks)
    const snapshot = books.options.wholeBook === true && marked && (fills.length > 0 || Ledger.openPositions(books.state) > 0)
      ? books.snapshot(ts)
      : fills.length > 0
      ? books.snapshot(ts, fills)
      : undefined
    return Either.right({ equity, snapshot })
  } catch (error) {
    if (error instanceof MoneyOutOfRange) return Either.left(error)
    restore()
    throw error
  }
}

/** The run is over: the last point joins the equity curve, and the books are reported as they stand. */
const close = (books: Books): FinalBooks => {
  if (books.point !== undefined) {
    books.metrics.add(books.point.ts, books.point.equity, books.point.exposed)
    books.point = undefined
  }
  const trades = Ledger.trades(books.state)
  const ts = (Number.isFinite(books.markedTs) ? books.markedTs : 0) as Timestamp
  return { metrics: books.metrics.result(trades), trades, snapshot: books.snapshot(ts) }
}

/**
 * At the marks of `ts`, or after fills booked at them (`afterFills`) (`breakers`): the tell of
 * `BooksMarked` to the risk officer when a breaker's
 * limit is crossed there — equity past it now and not at the last marks (the day's last, for the daily
 * loss) — or when a day starts after a day whose loss crossed its limit; undefined, on almost every
 * bar, when neither. Crossings only: a book that stays under water is not told of it on every bar.
 */
const crossed = (
  books: Books,
  ts: Timestamp,
  newDayAfterLoss: boolean,
  breakers: NonNullable<LedgerOptions["breakers"]>
): Effect.Effect<void> | undefined => {
  const { equity, dayStart, peak } = books
  const drawdown = Gates.drawdownPast(equity, peak, breakers.limits)
  const dailyLoss = Gates.dailyLossPast(equity, dayStart, breakers.limits)
  const tell = newDayAfterLoss || (drawdown && !books.pastDrawdown) || (dailyLoss && !books.pastDailyLoss)
  books.pastDrawdown = drawdown
  books.pastDailyLoss = dailyLoss
  if (dailyLoss) books.dailyLossCrossed = true
  if (!tell) return undefined
  return breakers.risk().tell(booksMarked({ ts, equity, peakEquity: peak, dayStartEquity: dayStart }))
}

export const make = (options: LedgerOptions) =>
  Actor.make({
    protocol: LedgerProtocol,
    // A message on every bar of a run (src/actor/Behavior.ts).
    busy: true,
    setup: () =>
      Effect.sync(() => {
        const books = new Books(options)
        options.onBooks?.(() => close(books))
        return books
      }),
    // The books survive a crash of the agent: the state before the message that crashed it.
    onRestart: (books) => Effect.succeed(books),
    behavior: (books, message, context) =>
      Effect.suspend(() => {
        const breakers = options.breakers
        switch (message._tag) {
          case "Book": {
            if (books.outOfRange !== undefined) return Effect.succeed(books)
            const { bars, open, ts } = message
            const log = options.log
            const previous = books.state
            // Why the books stop after this message, if they do.
            let stop: string | undefined
            // Everything is computed before anything is kept or said.
            let state = previous
            let fills = message.fills
            for (let i = 0; i < fills.length; i++) {
              const fill = fills[i]!
              const booked = Ledger.applyFill(state, fill)
              if (Either.isLeft(booked)) {
                // The desk builds fills from orders the gates passed: a refused fill is a defect —
                // unless only the range refuses it (judged at its reference price, it filled at
                // another). Those before it are booked; it cannot be, and the run stops naming it.
                if (!Ledger.leavesMoneyRange(booked.left)) return Effect.die(booked.left)
                stop = `the fill ${fill.id} (${fill.side} ${fill.quantity} ${fill.symbol} at ${fill.price}) could not be booked at ` +
                  `${new Date(ts).toISOString()}: ${booked.left.reason}`
                fills = fills.slice(0, i)
                break
              }
              state = booked.right
            }
            if (bars.length > 0) {
              books.saved.set(books.marks)
              const slots = state.slots
              for (const bar of bars) {
                const slot = slots.get(bar.symbol)
                if (slot !== undefined) books.marks[slot] = bar.close
              }
            }
            // A crash keeps the books as they were before this message.
            const restore = () => {
              books.state = previous
              if (bars.length > 0) books.marks.set(books.saved)
            }
            books.state = state
            const marked = bars.length > 0 && ts > books.markedTs
            let measured = measure(books, ts, fills, marked, restore)
            if (Either.isLeft(measured) && bars.length > 0) {
              // Marks that take the books past the range: the fills (the desk reported them) are
              // booked at the marks before this message, which held.
              stop ??= pastRange(measured.left, ts)
              books.marks.set(books.saved)
              measured = measure(books, ts, fills, marked, restore)
            }
            if (Either.isLeft(measured)) {
              // The fills themselves do: the books stay as they were before this message, with
              // no event of it written.
              const reason = stop ?? pastRange(measured.left, ts)
              restore()
              return stopBooks(books, reason)
            }
            const { equity, snapshot } = measured.right
            if (fills.length > 0) {
              const before = previous.tradeCount
              books.exposed = Ledger.openPositions(state) > 0
              for (const trade of Ledger.trades(state, before)) log.emit("TradeClosed", { trade })
            }
            /** A new day after a day whose loss crossed its limit (`breakers`). */
            let newDayAfterLoss = false
            if (marked) {
              const day = Math.floor(ts / DAY_MS)
              // The day starts from the equity at the previous mark (yesterday's close).
              if (day !== books.day) {
                books.day = day
                books.dayStart = books.equity
                newDayAfterLoss = books.dailyLossCrossed
                books.dailyLossCrossed = false
                books.pastDailyLoss = false
              }
              if (books.point !== undefined) books.metrics.add(books.point.ts, books.point.equity, books.point.exposed)
              books.point = { ts, equity, exposed: books.exposed }
              books.markedTs = ts
            } else if (fills.length > 0 && books.point !== undefined && books.point.ts === ts) {
              // Filled at the close just marked: the point is the books after these fills.
              books.point.equity = equity
              books.point.exposed = books.exposed
            }
            books.equity = equity
            books.open = open
            books.left = message.left
            if (equity > books.peak) books.peak = equity
            if (snapshot !== undefined) log.emit("PortfolioUpdated", { snapshot })
            options.onMark?.(ts, equity)
            if (stop !== undefined) return stopBooks(books, stop)
            // Told before the views waiting for these books are answered: the officer's mailbox has it first.
            // At the marks, and (`afterFills`) after fills at the closes marked (`same_close`): the books
            // after them are the bar's, and their loss is the bar's.
            const told = breakers === undefined
              ? undefined
              : marked
              ? crossed(books, ts, newDayAfterLoss, breakers)
              : fills.length > 0 && breakers.afterFills === true
              ? crossed(books, ts, false, breakers)
              : undefined
            if (books.waiting.length > 0) {
              const ready = books.waiting.filter((w) => w.asOf <= books.markedTs)
              books.waiting = books.waiting.filter((w) => w.asOf > books.markedTs)
              const answered = Effect.as(Effect.forEach(ready, (w) => w.replier.succeed(books.view(ts)), { discard: true }), books)
              return told === undefined ? answered : Effect.zipRight(told, answered)
            }
            return told === undefined ? Effect.succeed(books) : Effect.as(told, books)
          }
          case "ViewBooks": {
            if (message.asOf <= books.markedTs) {
              let view: BooksView
              try {
                view = books.view(books.markedTs as Timestamp)
              } catch (error) {
                // Anything but an amount past the range is a crash, for the supervisor.
                if (!(error instanceof MoneyOutOfRange)) throw error
                return stopBooks(books, pastRange(error, books.markedTs))
              }
              return Effect.as(context.reply(message, view), books)
            }
            books.waiting.push({ asOf: message.asOf, replier: context.replyLater<ViewBooks>(message) })
            return Effect.succeed(books)
          }
          case "RebaseRiskMarks": {
            books.peak = books.equity
            books.dayStart = books.equity
            // Neither breaker's limit is crossed at the rebased marks: the next crossing is told again.
            books.pastDrawdown = false
            books.pastDailyLoss = false
            return Effect.succeed(books)
          }
          case "CloseBooks":
            return Effect.as(context.reply(message, close(books)), books)
        }
      })
  })
