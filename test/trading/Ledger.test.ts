import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck as fc } from "effect"
import type { FillRejected } from "../../schemas/Execution.js"
import type { FillId, OrderId, Symbol, Timestamp } from "../../schemas/Ids.js"
import type { Fill } from "../../schemas/Order.js"
import * as Ledger from "../../src/trading/Ledger.js"
import * as Money from "../../src/trading/Money.js"

const AAA = "AAA" as Symbol
const BBB = "BBB" as Symbol
const CCC = "CCC" as Symbol
const units = Money.fromUnits

interface FillSpec {
  readonly id: string
  readonly symbol?: Symbol
  readonly side: "buy" | "sell"
  readonly quantity: number
  readonly price: number
  /** micros */
  readonly commission?: number
  readonly ts?: number
}

const fillOf = (spec: FillSpec): Fill => ({
  id: spec.id as FillId,
  orderId: `order-${spec.id}` as OrderId,
  symbol: spec.symbol ?? AAA,
  side: spec.side,
  quantity: spec.quantity,
  price: spec.price,
  marketPrice: spec.price,
  slippageBps: 0,
  notional: Money.notional(spec.quantity, spec.price),
  commission: Money.micros(spec.commission ?? 0),
  ts: (spec.ts ?? 0) as Timestamp
})

const apply = (state: Ledger.LedgerState, spec: FillSpec | Fill): Ledger.LedgerState =>
  Either.getOrThrowWith(Ledger.applyFill(state, "notional" in spec ? spec : fillOf(spec)), (e) => e)

const applyAll = (state: Ledger.LedgerState, specs: ReadonlyArray<FillSpec>) => specs.reduce(apply, state)

const rejected = (state: Ledger.LedgerState, fill: unknown): FillRejected => {
  const result = Ledger.applyFill(state, fill as Fill)
  if (Either.isRight(result)) throw new Error(`expected a rejection, got a state with ${result.right.fillCount} fills`)
  return result.left
}

const prices = (entries: Record<string, number>): Ledger.Prices => new Map(Object.entries(entries))

const start = (cash = 100_000) => Ledger.make({ cash: units(cash) })

describe("Ledger: positions and P&L", () => {
  it("a buy costs notional + commission; the commission is realized at once", () => {
    const s = apply(start(), { id: "f1", side: "buy", quantity: 10, price: 100, commission: 1_000_000 })
    expect(s.cash).toBe(units(100_000 - 1_000 - 1))
    expect(Ledger.quantityOf(s, AAA)).toBe(10)
    expect(Ledger.averagePriceOf(s, AAA)).toBe(100)
    expect(s.realizedPnl).toBe(units(-1))
    expect(s.commissions).toBe(units(1))
    const snap = Ledger.markToMarket(s, prices({ AAA: 100 }), 1 as Timestamp)
    expect(snap.equity).toBe(units(100_000 - 1))
    expect(snap.unrealizedPnl).toBe(0)
    expect(Ledger.markToMarket(s, prices({ AAA: 103 }), 1 as Timestamp).unrealizedPnl).toBe(units(30))
  })

  it("a snapshot of some symbols: their positions only, the totals of the whole book", () => {
    const s = applyAll(start(), [
      { id: "f1", side: "buy", quantity: 10, price: 100 },
      { id: "f2", symbol: BBB, side: "buy", quantity: 5, price: 20 }
    ])
    const marks = prices({ AAA: 110, BBB: 30 })
    const whole = Ledger.markToMarket(s, marks, 1 as Timestamp)
    const some = Ledger.markToMarket(s, marks, 1 as Timestamp, new Set([BBB]))
    expect(some.positions).toEqual(whole.positions.filter((p) => p.symbol === BBB))
    expect({ ...some, positions: [] }).toEqual({ ...whole, positions: [] })
  })

  it("adding to a position updates the average price", () => {
    const s = applyAll(start(), [
      { id: "f1", side: "buy", quantity: 10, price: 100 },
      { id: "f2", side: "buy", quantity: 30, price: 104 }
    ])
    expect(Ledger.quantityOf(s, AAA)).toBe(40)
    expect(Ledger.averagePriceOf(s, AAA)).toBe(103)
    expect(s.cash).toBe(units(100_000 - 1_000 - 3_120))
  })

  it("a partial close realizes P&L on the closed part at the average price, and keeps the average", () => {
    const s = applyAll(start(), [
      { id: "f1", side: "buy", quantity: 10, price: 100 },
      { id: "f2", side: "buy", quantity: 30, price: 104 },
      { id: "f3", side: "sell", quantity: 15, price: 110 }
    ])
    expect(Ledger.quantityOf(s, AAA)).toBe(25)
    expect(Ledger.averagePriceOf(s, AAA)).toBe(103)
    expect(s.realizedPnl).toBe(units(15 * (110 - 103)))
    expect(s.tradeCount).toBe(0)
    expect(Ledger.markToMarket(s, prices({ AAA: 100 }), 0 as Timestamp).unrealizedPnl).toBe(units(25 * (100 - 103)))
  })

  it("closing to flat records a trade with its max size, average prices and P&L net of commissions", () => {
    const s = applyAll(start(), [
      { id: "f1", side: "buy", quantity: 10, price: 100, commission: 1_000_000, ts: 1 },
      { id: "f2", side: "buy", quantity: 30, price: 104, commission: 1_000_000, ts: 2 },
      { id: "f3", side: "sell", quantity: 15, price: 110, commission: 1_000_000, ts: 3 },
      { id: "f4", side: "sell", quantity: 25, price: 90, commission: 1_000_000, ts: 4 }
    ])
    expect(Ledger.quantityOf(s, AAA)).toBe(0)
    expect(Ledger.averagePriceOf(s, AAA)).toBe(0)
    const gross = 15 * (110 - 103) + 25 * (90 - 103)
    expect(s.realizedPnl).toBe(units(gross - 4))
    expect(s.cash).toBe(units(100_000 + gross - 4))
    expect(Ledger.trades(s)).toEqual([{
      symbol: AAA,
      side: "long",
      quantity: 40,
      entryTs: 1,
      exitTs: 4,
      entryPrice: 103,
      exitPrice: (15 * 110 + 25 * 90) / 40,
      pnl: units(gross - 4),
      commission: units(4)
    }])
    const snap = Ledger.markToMarket(s, prices({}), 5 as Timestamp)
    expect(snap.positions).toEqual([{
      symbol: AAA,
      quantity: 0,
      averagePrice: 0,
      realizedPnl: units(gross - 4),
      markPrice: 90,
      marketValue: 0,
      unrealizedPnl: 0
    }])
    expect(snap.equity).toBe(s.cash)
  })

  it("a short sale credits notional − commission; its liability keeps equity from rising; covering lower profits", () => {
    let s = apply(start(), { id: "f1", side: "sell", quantity: 10, price: 50, commission: 500_000, ts: 1 })
    expect(s.cash).toBe(units(100_000 + 500 - 0.5))
    expect(Ledger.quantityOf(s, AAA)).toBe(-10)
    expect(Ledger.averagePriceOf(s, AAA)).toBe(50)
    const at50 = Ledger.markToMarket(s, prices({ AAA: 50 }), 1 as Timestamp)
    expect(at50.equity).toBe(units(100_000 - 0.5))
    expect(at50.netExposure).toBe(units(-500))
    expect(at50.grossExposure).toBe(units(500))
    const at40 = Ledger.markToMarket(s, prices({ AAA: 40 }), 2 as Timestamp)
    expect(at40.unrealizedPnl).toBe(units(100))
    expect(at40.positions[0]!.marketValue).toBe(units(-400))
    expect(Ledger.equity(s, prices({ AAA: 60 }))).toBe(units(100_000 - 0.5 - 100))
    s = apply(s, { id: "f2", side: "buy", quantity: 10, price: 40, commission: 500_000, ts: 3 })
    expect(s.realizedPnl).toBe(units(100 - 1))
    expect(s.cash).toBe(units(100_000 + 100 - 1))
    expect(Ledger.trades(s)).toMatchObject([{ side: "short", quantity: 10, entryPrice: 50, exitPrice: 40, pnl: units(99) }])
  })

  it("a reversal in one fill closes the old side at the average price and opens the other with the remainder", () => {
    const s = applyAll(start(), [
      { id: "f1", side: "buy", quantity: 10, price: 100, commission: 2_000_000, ts: 1 },
      { id: "f2", side: "sell", quantity: 25, price: 110, commission: 5_000_000, ts: 2 }
    ])
    expect(Ledger.quantityOf(s, AAA)).toBe(-15)
    expect(Ledger.averagePriceOf(s, AAA)).toBe(110)
    // the reversing fill's commission is shared by quantity: 10/25 to the closed trade, 15/25 to the new one
    expect(Ledger.trades(s)).toEqual([{
      symbol: AAA,
      side: "long",
      quantity: 10,
      entryTs: 1,
      exitTs: 2,
      entryPrice: 100,
      exitPrice: 110,
      pnl: units(100 - 2 - 2),
      commission: units(4)
    }])
    expect(s.realizedPnl).toBe(units(100 - 7))
    expect(s.cash).toBe(units(100_000 - 1_000 + 2_750 - 7))
    expect(Ledger.book(s, AAA)!.trip.commission).toBe(units(3))
    const back = apply(s, { id: "f3", side: "buy", quantity: 15, price: 100, ts: 3 })
    expect(Ledger.trades(back, 1)).toMatchObject([{ side: "short", quantity: 15, entryTs: 2, exitTs: 3, pnl: units(150 - 3) }])
    expect(back.realizedPnl).toBe(units(100 - 7 + 150))
  })

  it("sells beyond the position are booked, not refused: that is the risk gates' job", () => {
    const s = applyAll(start(), [
      { id: "f1", side: "buy", quantity: 5, price: 10 },
      { id: "f2", side: "sell", quantity: 12, price: 10 }
    ])
    expect(Ledger.quantityOf(s, AAA)).toBe(-7)
  })

  it("fractional quantities come back to exactly flat", () => {
    const s = applyAll(start(), [
      { id: "f1", side: "buy", quantity: 0.1, price: 33.33 },
      { id: "f2", side: "buy", quantity: 0.2, price: 33.34 },
      { id: "f3", side: "sell", quantity: 0.3, price: 35 }
    ])
    expect(Ledger.quantityOf(s, AAA)).toBe(0)
    expect(Ledger.openPositions(s)).toBe(0)
    expect(s.tradeCount).toBe(1)
    expect(Ledger.markToMarket(s, prices({}), 0 as Timestamp).equity).toBe(s.cash)
  })

  it("keeps symbols apart, marks a symbol without a price at its last fill price, and lists every symbol traded", () => {
    const s = applyAll(Ledger.make({ cash: units(10_000), symbols: [BBB, AAA, CCC] }), [
      { id: "f1", symbol: AAA, side: "buy", quantity: 2, price: 10 },
      { id: "f2", symbol: BBB, side: "sell", quantity: 3, price: 20 },
      { id: "f3", symbol: AAA, side: "buy", quantity: 2, price: 12 }
    ])
    const snap = Ledger.markToMarket(s, prices({ AAA: 15 }), 9 as Timestamp)
    expect(snap.positions.map((p) => [p.symbol, p.quantity, p.markPrice])).toEqual([[BBB, -3, 20], [AAA, 4, 15]])
    expect(snap.equity).toBe(units(10_000 - 44 + 60 + 60 - 60))
    expect(Ledger.equity(s, prices({ AAA: 15 }))).toBe(snap.equity)
    expect(Ledger.slotOf(s, BBB)).toBe(0)
    expect(Ledger.equityFromMarks(s, [0, 15, 0])).toBe(snap.equity)
    expect(Ledger.equityFromMarks(s, new Float64Array([20, 15, 1]))).toBe(snap.equity)
  })
})

describe("Ledger: exactly once", () => {
  it("applying a fill again returns the very same state", () => {
    const fill = fillOf({ id: "f1", side: "buy", quantity: 10, price: 100, commission: 1_000_000 })
    const once = apply(start(), fill)
    expect(Ledger.isApplied(once, "f1")).toBe(true)
    const twice = Ledger.applyFill(once, fill)
    expect(Either.isRight(twice) && twice.right).toBe(once)
    // the key is the fill id: another fill under the same id is the same fill delivered again
    const imposter = Ledger.applyFill(once, fillOf({ id: "f1", side: "sell", quantity: 99, price: 1 }))
    expect(Either.isRight(imposter) && imposter.right).toBe(once)
  })

  it("older states keep answering as they did when a newer one is extended, or when they are branched", () => {
    const s0 = start()
    const s1 = apply(s0, { id: "a", side: "buy", quantity: 1, price: 10, ts: 1 })
    const s2 = apply(s1, { id: "b", side: "sell", quantity: 1, price: 12, ts: 2 })
    // branch from s1: c instead of b
    const s2b = apply(s1, { id: "c", side: "sell", quantity: 1, price: 8, ts: 3 })
    expect([Ledger.isApplied(s0, "a"), Ledger.isApplied(s1, "a"), Ledger.isApplied(s1, "b")]).toEqual([false, true, false])
    expect([Ledger.isApplied(s2, "b"), Ledger.isApplied(s2, "c")]).toEqual([true, false])
    expect([Ledger.isApplied(s2b, "b"), Ledger.isApplied(s2b, "c")]).toEqual([false, true])
    expect(Ledger.trades(s1)).toEqual([])
    expect(Ledger.trades(s2).map((t) => t.exitPrice)).toEqual([12])
    expect(Ledger.trades(s2b).map((t) => t.exitPrice)).toEqual([8])
    // b can still be applied on the branch, and extending s2 further does not disturb s2b
    const s3b = apply(s2b, { id: "b", side: "sell", quantity: 1, price: 12, ts: 4 })
    const s3 = apply(s2, { id: "d", side: "buy", quantity: 2, price: 9, ts: 5 })
    expect(Ledger.quantityOf(s3b, AAA)).toBe(-1)
    expect(Ledger.quantityOf(s3, AAA)).toBe(2)
    expect(Ledger.isApplied(s3, "c")).toBe(false)
    expect(Ledger.isApplied(s2b, "d")).toBe(false)
    expect(Ledger.trades(s2b).length).toBe(1)
    expect(Ledger.quantityOf(s1, AAA)).toBe(1)
  })

  // Ids shaped as the desk makes them (`<symbol>@<time>:fill`) and ids that only look alike: the
  // same time written with a leading zero, a sign, a later part, another prefix, no `@`.
  const idArb = fc.oneof(
    fc.tuple(fc.constantFrom("AAA", "BBB", "A@B", ""), fc.constantFrom(0, 5, 6, 7, 50, 505440000000, 505526400000, 999999999999999)).map(
      ([prefix, n]) => `${prefix}@${n}:fill`
    ),
    fc.constantFrom("AAA@05:fill", "AAA@-5:fill", "AAA@5:fill:2", "BBB@5:fil", "AAA@1000000000000000:fill", "AAA@:fill", "@:fill", "AAA5:fill", "f1")
  )

  it.prop(
    "any id, in any order, on any branch of states: applied exactly when it was booked on the way to that state",
    { ops: fc.array(fc.record({ id: idArb, from: fc.nat() }), { minLength: 1, maxLength: 40 }) },
    ({ ops }) => {
      // Every state made, with the ids booked on the way to it.
      const states: Array<{ readonly state: Ledger.LedgerState; readonly ids: ReadonlySet<string> }> = [{ state: start(), ids: new Set() }]
      ops.forEach(({ from, id }, i) => {
        // Mostly the newest state (the log appended in place), sometimes an older one (a branch).
        const base = states[from % 3 === 0 ? from % states.length : states.length - 1]!
        const next = apply(base.state, { id, side: i % 2 === 0 ? "buy" : "sell", quantity: 1, price: 10, ts: i })
        if (base.ids.has(id)) expect(next).toBe(base.state)
        else states.push({ state: next, ids: new Set([...base.ids, id]) })
      })
      const every = new Set(ops.map((op) => op.id))
      for (const { ids, state } of states) {
        for (const id of every) expect([id, Ledger.isApplied(state, id)]).toEqual([id, ids.has(id)])
        expect(state.fillCount).toBe(ids.size)
      }
    },
    { fastCheck: { numRuns: 500 } }
  )

  it("a rejected fill is not marked applied: the same id can be booked once corrected", () => {
    const s = start()
    const bad = { ...fillOf({ id: "f1", side: "buy", quantity: 1, price: 10 }), price: Number.NaN }
    expect(rejected(s, bad).field).toBe("price")
    expect(Ledger.isApplied(s, "f1")).toBe(false)
    expect(Ledger.quantityOf(apply(s, { id: "f1", side: "buy", quantity: 1, price: 10 }), AAA)).toBe(1)
  })
})

describe("Ledger: malformed and hostile fills are typed errors naming the field", () => {
  const s = Ledger.make({ cash: units(1_000), symbols: [AAA] })
  const good = fillOf({ id: "f1", side: "buy", quantity: 1, price: 10 })
  const cases: ReadonlyArray<[string, Partial<Record<keyof Fill, unknown>>, string]> = [
    ["quantity 0", { quantity: 0 }, "quantity"],
    ["negative quantity", { quantity: -1 }, "quantity"],
    ["NaN quantity", { quantity: Number.NaN }, "quantity"],
    ["infinite quantity", { quantity: Infinity }, "quantity"],
    ["huge quantity", { quantity: 1e300 }, "quantity"],
    ["quantity finer than 10⁻⁶", { quantity: 1.0000001 }, "quantity"],
    ["quantity as a string", { quantity: "1" }, "quantity"],
    ["NaN price", { price: Number.NaN }, "price"],
    ["zero price", { price: 0 }, "price"],
    ["negative price", { price: -10 }, "price"],
    ["infinite price", { price: Infinity }, "price"],
    ["notional that is not quantity × price", { notional: 9_999_999 }, "notional"],
    ["negative commission", { commission: -1 }, "commission"],
    ["fractional commission", { commission: 0.5 }, "commission"],
    ["NaN commission", { commission: Number.NaN }, "commission"],
    ["NaN time", { ts: Number.NaN }, "ts"],
    ["empty id", { id: "" }, "id"],
    ["missing id", { id: undefined }, "id"],
    ["unknown side", { side: "hold" }, "side"],
    ["symbol outside the run's universe", { symbol: "ZZZ" }, "symbol"],
    ["empty symbol", { symbol: "" }, "symbol"]
  ]
  for (const [name, patch, field] of cases) {
    it(name, () => {
      const error = rejected(s, { ...good, ...patch })
      expect(error._tag).toBe("FillRejected")
      expect(error.field).toBe(field)
      expect(error.reason.length).toBeGreaterThan(0)
    })
  }

  it("the error carries the fill id and the offending value as text, NaN included", () => {
    const error = rejected(s, { ...good, price: Number.NaN })
    expect({ fillId: error.fillId, value: error.value }).toEqual({ fillId: "f1", value: "NaN" })
  })

  it("a fill that is not an object is refused, not a crash", () => {
    expect(rejected(s, null).field).toBe("fill")
    expect(rejected(s, 42).field).toBe("fill")
  })

  it("amounts that would leave the exact money range are refused before booking", () => {
    // 9e9 units × 1e6: the notional alone is beyond 2^53 micros
    expect(rejected(start(), { ...good, quantity: 9e9, price: 1e6, notional: 0 }).field).toBe("notional")
    // each fill fits, but cash would overflow
    const big = fillOf({ id: "big", side: "sell", quantity: 9_000_000, price: 600 })
    const rich = apply(Ledger.make({ cash: Money.zero }), big)
    expect(rejected(rich, { ...big, id: "big2" }).field).toBe("notional")
    // Told apart from a malformed fill: the books' limit, which stops a run rather than crash it.
    expect(Ledger.leavesMoneyRange(rejected(rich, { ...big, id: "big2" }))).toBe(true)
    expect(Ledger.leavesMoneyRange(rejected(start(), { ...good, quantity: 9e9, price: 1e6, notional: 0 }))).toBe(true)
    expect(Ledger.leavesMoneyRange(rejected(s, { ...good, price: Number.NaN }))).toBe(false)
    expect(Ledger.leavesMoneyRange(rejected(s, { ...good, notional: good.notional + 1 }))).toBe(false)
  })
})

// ---------------------------------------------------------------------------------------------
// Properties

const symbolArb = fc.constantFrom(AAA, BBB, CCC)
const quantityArb = fc.oneof(
  fc.integer({ min: 1, max: 500 }),
  fc.integer({ min: 1, max: 5_000_000 }).map((micro) => micro / 1_000_000)
)
const priceArb = fc.oneof(
  fc.integer({ min: 1, max: 1_000_000_000 }).map((micro) => micro / 1_000_000),
  fc.double({ min: 0.01, max: 1_000, noNaN: true, noDefaultInfinity: true })
)
const opArb = fc.oneof(
  { weight: 4, arbitrary: fc.record({
    kind: fc.constant("new" as const),
    symbol: symbolArb,
    side: fc.constantFrom("buy" as const, "sell" as const),
    quantity: quantityArb,
    price: priceArb,
    commission: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 5_000_000 }))
  }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("again" as const), pick: fc.nat() }) }
)
const marksArb = fc.record({
  AAA: fc.double({ min: 0.01, max: 2_000, noNaN: true, noDefaultInfinity: true }),
  BBB: fc.double({ min: 0.01, max: 2_000, noNaN: true, noDefaultInfinity: true }),
  CCC: fc.double({ min: 0.01, max: 2_000, noNaN: true, noDefaultInfinity: true })
})

type Op = typeof opArb extends fc.Arbitrary<infer T> ? T : never

interface Run {
  readonly initial: number
  readonly state: Ledger.LedgerState
  /** The distinct fills booked, in order. */
  readonly distinct: ReadonlyArray<Fill>
  /** Every fill delivered, duplicates included. */
  readonly delivered: ReadonlyArray<Fill>
}

/** Book the ops; every re-delivery must return the very same state. */
const runOps = (initial: number, ops: ReadonlyArray<Op>): Run => {
  let state = Ledger.make({ cash: Money.micros(initial) })
  const distinct: Array<Fill> = []
  const delivered: Array<Fill> = []
  ops.forEach((op, i) => {
    const fill = op.kind === "new"
      ? fillOf({ id: `f${i}`, symbol: op.symbol, side: op.side, quantity: op.quantity, price: op.price, commission: op.commission, ts: i })
      : distinct[op.pick % Math.max(1, distinct.length)]
    if (fill === undefined) return
    const next = apply(state, fill)
    if (op.kind === "again") expect(next).toBe(state)
    else distinct.push(fill)
    delivered.push(fill)
    state = next
  })
  return { initial, state, distinct, delivered }
}

const runArb = fc.record({
  initial: fc.integer({ min: 0, max: 1_000_000_000 }).map((u) => u * 1_000_000),
  ops: fc.array(opArb, { minLength: 1, maxLength: 60 })
})

describe("Ledger properties (random fills: several symbols, long and short, reversals, re-deliveries)", () => {
  it.prop("cash = initial − Σ buy notionals + Σ sell notionals − Σ commissions, exactly", { run: runArb }, ({ run }) => {
    const { distinct, initial, state } = runOps(run.initial, run.ops)
    let expected = initial
    for (const f of distinct) expected += (f.side === "buy" ? -f.notional : f.notional) - f.commission
    expect(state.cash).toBe(expected)
    expect(state.commissions).toBe(distinct.reduce((a, f) => a + f.commission, 0))
  }, { fastCheck: { numRuns: 300 } })

  it.prop(
    "equity = cash + Σ notional(position, mark) exactly, and realized + unrealized = equity − initial cash",
    { run: runArb, marks: marksArb },
    ({ marks, run }) => {
      const { initial, state } = runOps(run.initial, run.ops)
      const map = prices(marks)
      const snap = Ledger.markToMarket(state, map, 0 as Timestamp)
      let expected = snap.cash as number
      for (const p of snap.positions) expected += Money.notional(p.quantity, marks[p.symbol as "AAA"])
      expect(snap.equity).toBe(expected)
      expect(Ledger.equity(state, map)).toBe(snap.equity)
      const bySlot = [...state.slots.keys()].map((s) => marks[s as "AAA"])
      expect(Ledger.equityFromMarks(state, bySlot)).toBe(snap.equity)
      expect(snap.realizedPnl + snap.unrealizedPnl).toBe(snap.equity - initial)
      expect(snap.netExposure).toBe(snap.positions.reduce((a, p) => a + p.marketValue, 0))
      expect(snap.grossExposure).toBe(snap.positions.reduce((a, p) => a + Math.abs(p.marketValue), 0))
      expect(snap.realizedPnl).toBe(snap.positions.reduce((a, p) => a + p.realizedPnl, 0))
    },
    { fastCheck: { numRuns: 300 } }
  )

  it.prop("positions are the exact signed sums of the fills; closed trades and open trips add up to realized P&L", { run: runArb }, ({ run }) => {
    const { distinct, state } = runOps(run.initial, run.ops)
    for (const symbol of [AAA, BBB, CCC]) {
      const micro = distinct
        .filter((f) => f.symbol === symbol)
        .reduce((a, f) => a + (f.side === "buy" ? 1 : -1) * Math.round(f.quantity * 1_000_000), 0)
      expect(Ledger.quantityOf(state, symbol)).toBe(micro / 1_000_000)
    }
    let fromTrips = 0
    for (const b of state.books) if (b !== undefined && b.quantity !== 0) fromTrips += b.trip.gross - b.trip.commission
    const closed = Ledger.trades(state)
    expect(closed.reduce((a, t) => a + t.pnl, 0) + fromTrips).toBe(state.realizedPnl)
    for (const t of closed) {
      expect(t.quantity).toBeGreaterThan(0)
      expect(t.entryPrice).toBeGreaterThan(0)
      expect(t.exitPrice).toBeGreaterThan(0)
      expect(t.exitTs).toBeGreaterThanOrEqual(t.entryTs)
    }
  }, { fastCheck: { numRuns: 300 } })

  it.prop("applying any fill twice changes nothing: duplicates leave the same books as the distinct fills alone", { run: runArb, marks: marksArb }, ({ marks, run }) => {
    const { delivered, distinct, initial, state } = runOps(run.initial, run.ops)
    const clean = distinct.reduce(apply, Ledger.make({ cash: Money.micros(initial) }))
    const map = prices(marks)
    expect(Ledger.markToMarket(state, map, 0 as Timestamp)).toEqual(Ledger.markToMarket(clean, map, 0 as Timestamp))
    expect(Ledger.trades(state)).toEqual(Ledger.trades(clean))
    expect(state.fillCount).toBe(distinct.length)
    // and every delivered fill, re-applied to the final state, returns it unchanged
    for (const f of delivered) expect(Either.getOrThrow(Ledger.applyFill(state, f))).toBe(state)
  }, { fastCheck: { numRuns: 300 } })
})
