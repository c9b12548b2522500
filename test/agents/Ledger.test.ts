/**
 * The ledger agent in a world: exactly-once booking, marks at closes, ViewBooks held until the
 * books of its time exist, the day's start and the peak across a UTC day change, the final books,
 * books that outlive a crash, and the risk officer told when the marks cross a breaker's limit —
 * or (`afterFills`) when the fills booked at the closes just marked do.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import * as LedgerAgent from "../../agents/Ledger.js"
import { MetricsConfig } from "../../schemas/Metrics.js"
import type { Money } from "../../schemas/Money.js"
import type { Fill } from "../../schemas/Order.js"
import { RiskLimits } from "../../schemas/Risk.js"
import {
  Book,
  type BooksMarked,
  type BooksView,
  CloseBooks,
  RebaseRiskMarks,
  RiskProtocol,
  ViewBooks
} from "../../schemas/TradingProtocol.js"
import * as Actor from "../../src/actor/Actor.js"
import type { ActorRef } from "../../src/actor/ActorRef.js"
import type { LedgerProtocol } from "../../schemas/TradingProtocol.js"
import { AAA, at, bar, BBB, fillOf, inSpine, order, type Spine, units } from "./spine.js"

const CASH = 100_000

const spawnLedger = (spine: Spine, name = "ledger", wholeBook = false) =>
  spine.inSystem(
    Actor.spawn(
      LedgerAgent.make({
        log: spine.log,
        initialCash: units(CASH),
        symbols: [AAA, BBB],
        metrics: Schema.decodeUnknownSync(MetricsConfig)({}),
        ...(wholeBook ? { wholeBook } : {})
      }),
      { name }
    )
  )

type Ledger = ActorRef<LedgerProtocol, "backpressure">

const book = (spine: Spine, ledger: Ledger, ts: number, bars: ReturnType<typeof bar>[], fills: ReadonlyArray<Fill> = []) =>
  spine.send(ledger.tell(new Book({ ts: ts as never, bars, fills, open: [] })))

const view = (spine: Spine, ledger: Ledger, asOf: number): BooksView =>
  spine.inSystem(ledger.ask(new ViewBooks({ asOf: asOf as never }), { timeout: "1 minute" }))

const position = (v: BooksView, symbol: string) => v.snapshot.positions.find((p) => p.symbol === symbol)?.quantity ?? 0

// A round trip in AAA: buy 10 on the open of t1 (decided at t0), sell 10 on the open of t2.
const t0 = at(0, 10)
const t1 = at(0, 11)
const t2 = at(0, 12)
const t3 = at(0, 13)
const buy = order({ symbol: AAA, side: "buy", quantity: 10, decidedAt: t0 })
const sell = order({ symbol: AAA, side: "sell", quantity: 10, decidedAt: t1 })
const bar1 = bar(AAA, t1, { open: 100, close: 110 })
const bar2 = bar(AAA, t2, { open: 120, close: 125 })
const buyFill = fillOf(buy, bar1)
const sellFill = fillOf(sell, bar2)

describe("the ledger agent", () => {
  it("books each fill exactly once: the same fill in two Book messages changes nothing", inSpine((spine) => {
    const ledger = spawnLedger(spine)
    book(spine, ledger, t1, [bar1], [buyFill])
    book(spine, ledger, t1, [bar1], [buyFill])
    const afterBuy = view(spine, ledger, t1)
    expect(afterBuy.snapshot.cash).toBe(units(CASH - 1_000))
    expect(position(afterBuy, AAA)).toBe(10)

    book(spine, ledger, t2, [bar2], [sellFill])
    expect(spine.ofTag("TradeClosed")).toHaveLength(1)
    // Both fills again, in a later Book: still one round trip, the same cash, flat.
    book(spine, ledger, t3, [bar(AAA, t3, { close: 125 })], [buyFill, sellFill])
    const after = view(spine, ledger, t3)
    expect(after.snapshot.cash).toBe(units(CASH - 1_000 + 1_200))
    expect(position(after, AAA)).toBe(0)
    expect(spine.ofTag("TradeClosed")).toHaveLength(1)
    expect(spine.inSystem(ledger.ask(new CloseBooks())).trades).toHaveLength(1)
  }))

  it("marks the books at the closes of each timestamp", inSpine((spine) => {
    const ledger = spawnLedger(spine)
    // Bought at the open (100), marked at the close (110).
    book(spine, ledger, t1, [bar1, bar(BBB, t1, { close: 50 })], [buyFill])
    const v = view(spine, ledger, t1)
    expect(v.snapshot.ts).toBe(t1)
    expect(v.snapshot.equity).toBe(units(CASH - 1_000 + 1_100))
    expect(v.snapshot.positions).toMatchObject([{ symbol: AAA, quantity: 10, markPrice: 110, marketValue: units(1_100) }])
    // A later bar of AAA re-marks it; BBB's bar alone leaves AAA at its last close.
    book(spine, ledger, t2, [bar(BBB, t2, { close: 55 })])
    expect(view(spine, ledger, t2).snapshot.equity).toBe(units(CASH - 1_000 + 1_100))
    book(spine, ledger, t3, [bar(AAA, t3, { close: 90 })])
    expect(view(spine, ledger, t3).snapshot.equity).toBe(units(CASH - 1_000 + 900))
    const updated = spine.ofTag("PortfolioUpdated")
    expect(updated).toHaveLength(1)
    expect(updated[0]!.snapshot.equity).toBe(units(CASH + 100))
  }))

  it("with wholeBook (paper runs) every marked timestamp with a position reports the whole book at its marks", inSpine((spine) => {
    const ledger = spawnLedger(spine, "ledger", true)
    // Nothing held and no fill: nothing moves, nothing is said.
    book(spine, ledger, t0, [bar(AAA, t0, { close: 95 }), bar(BBB, t0, { close: 50 })])
    expect(spine.ofTag("PortfolioUpdated")).toHaveLength(0)
    // The buy's fill: the whole book (AAA; BBB is flat, so not listed).
    book(spine, ledger, t1, [bar1, bar(BBB, t1, { close: 50 })], [buyFill])
    // No fill, and only BBB's bar: reported all the same, AAA at its last close.
    book(spine, ledger, t2, [bar(BBB, t2, { close: 55 })])
    // No fill: AAA re-marked at 90, and equity with it.
    book(spine, ledger, t3, [bar(AAA, t3, { close: 90 })])
    const updated = spine.ofTag("PortfolioUpdated").map((e) => e.snapshot)
    expect(updated.map((s) => [s.ts, s.equity])).toEqual([[t1, units(CASH + 100)], [t2, units(CASH + 100)], [t3, units(CASH - 100)]])
    expect(updated[2]!.positions).toMatchObject([{ symbol: AAA, quantity: 10, markPrice: 90, marketValue: units(900), unrealizedPnl: units(-100) }])
    // The same timestamp booked again (a late fill of it) reports no second mark of it.
    book(spine, ledger, t3, [bar(AAA, t3, { close: 90 })])
    expect(spine.ofTag("PortfolioUpdated")).toHaveLength(3)
  }))

  it("answers ViewBooks for a time not booked yet only once the Book of that time arrives, with its fills", inSpine((spine) => {
    const ledger = spawnLedger(spine)
    book(spine, ledger, t0, [bar(AAA, t0, { close: 100 })])
    const now = spine.world.now
    const asked = spine.world.start(
      ledger.ask(new ViewBooks({ asOf: t1 }), { timeout: "1 minute" })
    )
    expect(asked.poll()).toBeUndefined()
    // An earlier time (a re-sent Book of t0) does not release it.
    book(spine, ledger, t0, [bar(AAA, t0, { close: 101 })])
    expect(asked.poll()).toBeUndefined()
    book(spine, ledger, t1, [bar1], [buyFill])
    const exit = asked.poll()
    expect(exit?._tag).toBe("Success")
    const answer = (exit as { value: BooksView }).value
    expect(answer.snapshot.ts).toBe(t1)
    expect(position(answer, AAA)).toBe(10)
    expect(answer.snapshot.cash).toBe(units(CASH - 1_000))
    // No virtual time passed: it was answered by the Book, not by a timeout.
    expect(spine.world.now).toBe(now)
  }))

  it("keeps the peak equity and starts a UTC day from the previous day's last mark", inSpine((spine) => {
    const ledger = spawnLedger(spine)
    const open = order({ symbol: AAA, side: "buy", quantity: 100, decidedAt: at(0, 9) })
    const d0a = at(0, 10)
    const d0b = at(0, 15)
    const d0c = at(0, 20)
    const d1a = at(1, 10)
    const d1b = at(1, 11)
    const first = bar(AAA, d0a, { open: 100, close: 100 })
    book(spine, ledger, d0a, [first], [fillOf(open, first)])
    let v = view(spine, ledger, d0a)
    expect(v.snapshot.equity).toBe(units(CASH))
    expect(v.dayStartEquity).toBe(units(CASH))
    expect(v.peakEquity).toBe(units(CASH))

    book(spine, ledger, d0b, [bar(AAA, d0b, { close: 120 })])
    v = view(spine, ledger, d0b)
    expect(v.peakEquity).toBe(units(CASH + 2_000))
    expect(v.dayStartEquity).toBe(units(CASH))

    book(spine, ledger, d0c, [bar(AAA, d0c, { close: 110 })]) // the day's last mark: 101,000
    v = view(spine, ledger, d0c)
    expect(v.snapshot.equity).toBe(units(CASH + 1_000))
    expect(v.peakEquity).toBe(units(CASH + 2_000))

    book(spine, ledger, d1a, [bar(AAA, d1a, { close: 90 })])
    v = view(spine, ledger, d1a)
    expect(v.snapshot.equity).toBe(units(CASH - 1_000))
    expect(v.dayStartEquity).toBe(units(CASH + 1_000))
    expect(v.peakEquity).toBe(units(CASH + 2_000))

    // Later in the same day the start does not move.
    book(spine, ledger, d1b, [bar(AAA, d1b, { close: 95 })])
    v = view(spine, ledger, d1b)
    expect(v.dayStartEquity).toBe(units(CASH + 1_000))
    expect(v.peakEquity).toBe(units(CASH + 2_000))
  }))

  it("CloseBooks gives the metrics of the equity curve and the closed trades", inSpine((spine) => {
    const ledger = spawnLedger(spine)
    book(spine, ledger, t0, [bar(AAA, t0, { close: 100 })])
    book(spine, ledger, t1, [bar1], [buyFill])
    book(spine, ledger, t2, [bar2], [sellFill])
    const final = spine.inSystem(ledger.ask(new CloseBooks()))
    expect(final.metrics.tradeCount).toBe(1)
    expect(final.metrics.winningTrades).toBe(1)
    expect(final.metrics.finalEquity).toBe(units(CASH + 200))
    expect(final.metrics.initialCash).toBe(units(CASH))
    expect(final.metrics.bars).toBe(3)
    expect(final.metrics.startTs).toBe(t0)
    expect(final.metrics.endTs).toBe(t2)
    expect(final.trades).toEqual([
      expect.objectContaining({ symbol: AAA, side: "long", quantity: 10, entryTs: t1, exitTs: t2, entryPrice: 100, exitPrice: 120, pnl: units(200) })
    ])
    expect(final.snapshot.cash).toBe(units(CASH + 200))
    expect(final.snapshot.ts).toBe(t2)
  }))

  it("keeps its books across a crash: a Book with a fill applyFill refuses is a defect, not a loss", inSpine((spine) => {
    const ledger = spawnLedger(spine)
    book(spine, ledger, t1, [bar1], [buyFill])
    const before = view(spine, ledger, t1)

    // The notional does not match quantity × price: the ledger refuses it and the agent dies.
    const malformed: Fill = { ...sellFill, notional: (sellFill.notional + 1) as Money }
    book(spine, ledger, t2, [bar2], [malformed])
    const crashed = spine.lifecycle.filter((e) => e._tag === "ActorCrashed")
    expect(crashed).toHaveLength(1)
    expect(crashed[0]).toMatchObject({ actor: "/user/ledger", message: "Book" })

    // After the restart (the guardian's backoff, in virtual time) the books are those before the crash.
    const after = view(spine, ledger, t1)
    expect(spine.lifecycle.filter((e) => e._tag === "ActorRestarted")).toHaveLength(1)
    expect(after.snapshot).toEqual(before.snapshot)
    expect(after.peakEquity).toBe(before.peakEquity)
    // The fill record survived too: the buy delivered again is not booked twice; the sell books.
    book(spine, ledger, t2, [bar2], [buyFill, sellFill])
    const later = view(spine, ledger, t2)
    expect(position(later, AAA)).toBe(0)
    expect(later.snapshot.cash).toBe(units(CASH + 200))
    expect(spine.ofTag("TradeClosed")).toHaveLength(1)
  }))

  it("with the breakers checked at every mark, tells the risk officer when its marks cross a limit: crossings only, and the next day after a day's loss", inSpine((spine) => {
    const told: Array<BooksMarked> = []
    const risk = spine.inSystem(Actor.spawn(
      Actor.make({
        protocol: RiskProtocol,
        initial: undefined as void,
        behavior: (_s, message) => Effect.sync(() => void (message._tag === "BooksMarked" && told.push(message)))
      }),
      { name: "risk" }
    ))
    const ledger = spine.inSystem(Actor.spawn(
      LedgerAgent.make({
        log: spine.log,
        initialCash: units(CASH),
        symbols: [AAA, BBB],
        metrics: Schema.decodeUnknownSync(MetricsConfig)({}),
        breakers: { limits: Schema.decodeUnknownSync(RiskLimits)({}), risk: () => risk }
      }),
      { name: "ledger" }
    ))
    const mark = (ts: number, close: number, fills: ReadonlyArray<Fill> = []) => {
      spine.world.advanceTo(ts)
      book(spine, ledger, ts, [bar(AAA, ts, { open: 100, close })], fills)
    }
    const d0 = (h: number) => at(0, h)
    const d1 = (h: number) => at(1, h)
    // All in: 1,000 AAA at 100.
    mark(d0(10), 100, [fillOf(order({ symbol: AAA, side: "buy", quantity: 1_000, decidedAt: d0(9) }), bar(AAA, d0(10), { open: 100, close: 100 }))])
    mark(d0(11), 94) // 6 % below the day's start (the daily limit is 5 %): told
    mark(d0(12), 93) // still past it: not told again
    mark(d1(10), 93) // a new day after a day's loss: told (its reducing may be lifted)
    mark(d1(11), 74) // 26 % below the peak (and 20 % below the day's start): told
    mark(d1(12), 70) // still past both: not told
    spine.send(ledger.tell(new RebaseRiskMarks({}))) // an operator lifted the halt: peak and day start 70,000
    mark(d1(13), 60) // 14 % below: past the daily limit only, told
    mark(d1(14), 52) // 25.7 % below the rebased peak: told
    expect(told.map((m) => [m.ts, m.equity, m.peakEquity, m.dayStartEquity])).toEqual([
      [d0(11), units(94_000), units(CASH), units(CASH)],
      [d1(10), units(93_000), units(CASH), units(93_000)],
      [d1(11), units(74_000), units(CASH), units(93_000)],
      [d1(13), units(60_000), units(70_000), units(70_000)],
      [d1(14), units(52_000), units(70_000), units(70_000)]
    ])
  }))
  it("with afterFills, tells the risk officer when fills at the closes just marked take equity past a limit, on their bar; without, at the next marks", inSpine((spine) => {
    const told: Array<BooksMarked> = []
    const risk = spine.inSystem(Actor.spawn(
      Actor.make({
        protocol: RiskProtocol,
        initial: undefined as void,
        behavior: (_s, message) => Effect.sync(() => void (message._tag === "BooksMarked" && told.push(message)))
      }),
      { name: "risk" }
    ))
    const spawn = (name: string, afterFills: boolean) =>
      spine.inSystem(Actor.spawn(
        LedgerAgent.make({
          log: spine.log,
          initialCash: units(CASH),
          symbols: [AAA, BBB],
          metrics: Schema.decodeUnknownSync(MetricsConfig)({}),
          breakers: { limits: Schema.decodeUnknownSync(RiskLimits)({}), risk: () => risk, afterFills }
        }),
        { name }
      ))
    const d0 = (h: number) => at(0, h)
    const d1 = (h: number) => at(1, h)
    const flat = (ts: number, close: number) => bar(AAA, ts, { open: close, close })
    const buy = fillOf(order({ symbol: AAA, side: "buy", quantity: 1_000, decidedAt: d0(9) }), flat(d0(10), 100))
    // Sold at 96 at the close of d0(11), with 1,500 of commission: 5.5 % below the day's start.
    const sale: Fill = {
      ...fillOf(order({ symbol: AAA, side: "sell", quantity: 1_000, decidedAt: d0(10) }), flat(d0(11), 96)),
      commission: units(1_500)
    }
    const told1 = (afterFills: boolean) => {
      told.length = 0
      const ledger = spawn(afterFills ? "ledger-fills" : "ledger-marks", afterFills)
      const mark = (ts: number, close: number, fills: ReadonlyArray<Fill> = []) => {
        spine.world.advanceTo(ts)
        book(spine, ledger, ts, [flat(ts, close)], fills)
      }
      mark(d0(10), 100, [buy])
      mark(d0(11), 96) // 4 % below the day's start (the daily limit is 5 %): not told
      book(spine, ledger, d0(11), [], [sale]) // the close's fills: 94,500
      mark(d0(12), 96) // flat since
      mark(d1(10), 96) // a new day after a day's loss: told
      return told.map((m) => [m.ts, m.equity, m.dayStartEquity])
    }
    expect(told1(true)).toEqual([[d0(11), units(94_500), units(CASH)], [d1(10), units(94_500), units(94_500)]])
    // Without (`marks`): seen only at the next marks, a bar late.
    expect(told1(false)).toEqual([[d0(12), units(94_500), units(CASH)], [d1(10), units(94_500), units(94_500)]])
  }))
})
