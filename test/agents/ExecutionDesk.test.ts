/**
 * The execution desk with a recording ledger: when orders fill (next open of their symbol, or the
 * deciding bar's close), idempotency by key, stale and replaced orders, and one Book per
 * MarketOpen.
 */
import { describe, expect, it } from "@effect/vitest"
import * as ExecutionDesk from "../../agents/ExecutionDesk.js"
import type { FillTiming, Order } from "../../schemas/Order.js"
import { type Book, MarketOpen, PlaceOrders } from "../../schemas/TradingProtocol.js"
import * as Actor from "../../src/actor/Actor.js"
import { AAA, at, bar, BBB, execution, inSpine, order, recordingLedger, type Spine, wire } from "./spine.js"

const t1 = at(0, 10)
const t2 = at(0, 11)
const t3 = at(0, 12)
const t4 = at(0, 13)

const spawnDesk = (spine: Spine, fillTiming: FillTiming = "next_open", cash?: () => number) => {
  const ledger = recordingLedger()
  const ledgerRef = spine.inSystem(Actor.spawn(ledger.spec, { name: "ledger" }))
  const desk = spine.inSystem(
    Actor.spawn(
      ExecutionDesk.make({ log: spine.log, execution: execution({ fillTiming }), ledger: wire(ledgerRef), initialCash: cash?.() ?? Number.MAX_SAFE_INTEGER }),
      { name: "desk" }
    )
  )
  const open = (ts: number, bars: ReturnType<typeof bar>[]) => spine.send(desk.tell(new MarketOpen({ ts: ts as never, bars })))
  const place = (ts: number, ...orders: Array<Order>) => spine.send(desk.tell(new PlaceOrders({ ts: ts as never, orders })))
  const fills = () => ledger.books.flatMap((b) => b.fills)
  return { books: ledger.books, open, place, fills }
}

const buy = (decidedAt: number, quantity = 10, fillTiming: FillTiming = "next_open") =>
  order({ symbol: AAA, side: "buy", quantity, decidedAt, fillTiming })

describe("the execution desk", () => {
  it("fills a next_open order at the open of its symbol's next bar, not on the deciding timestamp", inSpine((spine) => {
    const desk = spawnDesk(spine)
    desk.open(t1, [bar(AAA, t1, { open: 99, close: 100 })])
    desk.place(t1, buy(t1))
    expect(spine.ofTag("OrderPlaced")).toHaveLength(1)
    expect(desk.fills()).toEqual([])
    // The next timestamp has no bar of AAA: nothing fills.
    desk.open(t2, [bar(BBB, t2, { open: 50, close: 51 })])
    expect(desk.fills()).toEqual([])
    desk.open(t3, [bar(AAA, t3, { open: 104, close: 108 }), bar(BBB, t3, { open: 51, close: 52 })])
    expect(desk.fills()).toEqual([
      expect.objectContaining({ symbol: AAA, side: "buy", quantity: 10, price: 104, marketPrice: 104, ts: t3, orderId: buy(t1).id })
    ])
    // It went to the ledger in the Book of t3.
    expect(desk.books.map((b) => [b.ts, b.fills.length])).toEqual([[t1, 0], [t2, 0], [t3, 1]])
    expect(spine.ofTag("OrderFilled")).toHaveLength(1)
    // And it fills once.
    desk.open(t4, [bar(AAA, t4, { open: 110, close: 110 })])
    expect(desk.fills()).toHaveLength(1)
  }))

  it("fills a same_close order at once, at the close of the bar it was decided on", inSpine((spine) => {
    const desk = spawnDesk(spine, "same_close")
    desk.open(t1, [bar(AAA, t1, { open: 99, close: 100 })])
    desk.place(t1, buy(t1, 10, "same_close"))
    expect(desk.books).toHaveLength(2)
    const sameClose: Book = desk.books[1]!
    expect(sameClose.ts).toBe(t1)
    expect(sameClose.bars).toEqual([])
    expect(sameClose.fills).toEqual([expect.objectContaining({ symbol: AAA, price: 100, ts: t1 })])
    // Nothing left to fill at the next open.
    desk.open(t2, [bar(AAA, t2, { open: 105, close: 105 })])
    expect(desk.fills()).toHaveLength(1)
  }))

  it("places an order once per idempotency key", inSpine((spine) => {
    const desk = spawnDesk(spine)
    desk.open(t1, [bar(AAA, t1, { close: 100 })])
    desk.place(t1, buy(t1), buy(t1))
    desk.place(t1, buy(t1))
    expect(spine.ofTag("OrderPlaced")).toHaveLength(1)
    expect(spine.ofTag("OrderCancelled")).toEqual([])
    desk.open(t2, [bar(AAA, t2, { close: 101 })])
    // Delivered again after it filled: still nothing new.
    desk.place(t2, buy(t1))
    desk.open(t3, [bar(AAA, t3, { close: 102 })])
    expect(desk.fills()).toHaveLength(1)
    expect(spine.ofTag("OrderPlaced")).toHaveLength(1)
  }))

  it("cancels as stale an order decided before the last one placed for its symbol", inSpine((spine) => {
    const desk = spawnDesk(spine)
    desk.open(t2, [bar(AAA, t2, { close: 100 })])
    const newer = order({ symbol: AAA, side: "buy", quantity: 5, decidedAt: t2 })
    const older = order({ symbol: AAA, side: "buy", quantity: 7, decidedAt: t1 })
    desk.place(t2, newer)
    desk.place(t2, older)
    expect(spine.ofTag("OrderPlaced").map((e) => e.order.id)).toEqual([newer.id])
    const cancelled = spine.ofTag("OrderCancelled")
    expect(cancelled).toHaveLength(1)
    expect(cancelled[0]).toMatchObject({ order: older.id, symbol: AAA })
    expect(cancelled[0]!.reason).toMatch(/^stale/)
    desk.open(t3, [bar(AAA, t3, { close: 101 })])
    expect(desk.fills()).toEqual([expect.objectContaining({ orderId: newer.id, quantity: 5 })])
  }))

  it("replaces an unfilled order of the symbol with the new one", inSpine((spine) => {
    const desk = spawnDesk(spine)
    desk.open(t1, [bar(AAA, t1, { close: 100 })])
    const first = buy(t1, 10)
    desk.place(t1, first)
    // No AAA bar at t2: the first order is still unfilled when the next decision comes.
    desk.open(t2, [bar(BBB, t2, { close: 50 })])
    const second = order({ symbol: AAA, side: "buy", quantity: 3, decidedAt: t2 })
    desk.place(t2, second)
    const cancelled = spine.ofTag("OrderCancelled")
    expect(cancelled).toHaveLength(1)
    expect(cancelled[0]).toMatchObject({ order: first.id, symbol: AAA })
    expect(cancelled[0]!.reason).toMatch(/replaced/)
    desk.open(t3, [bar(AAA, t3, { open: 102, close: 103 })])
    expect(desk.fills()).toEqual([expect.objectContaining({ orderId: second.id, quantity: 3, price: 102 })])
  }))

  it("sends exactly one Book per MarketOpen, with its bars", inSpine((spine) => {
    const desk = spawnDesk(spine)
    const opens = [
      { ts: t1, bars: [bar(AAA, t1, { close: 100 }), bar(BBB, t1, { close: 50 })] },
      { ts: t2, bars: [bar(BBB, t2, { close: 51 })] },
      { ts: t3, bars: [bar(AAA, t3, { close: 102 }), bar(BBB, t3, { close: 52 })] },
      { ts: t4, bars: [] }
    ]
    desk.open(opens[0]!.ts, opens[0]!.bars)
    desk.place(t1, buy(t1), order({ symbol: BBB, side: "buy", quantity: 4, decidedAt: t1 }))
    for (const o of opens.slice(1)) desk.open(o.ts, o.bars)
    expect(desk.books.map((b) => ({ ts: b.ts, bars: b.bars }))).toEqual(opens)
    // BBB filled at t2, AAA at t3: each in its timestamp's single Book.
    expect(desk.books.map((b) => b.fills.map((f) => f.symbol))).toEqual([[], [BBB], [AAA], []])
  }))

  it("tells the ledger which orders it still holds with each Book", inSpine((spine) => {
    const desk = spawnDesk(spine)
    desk.open(t1, [bar(AAA, t1, { close: 100 }), bar(BBB, t1, { close: 50 })])
    const a = buy(t1)
    const b = order({ symbol: BBB, side: "buy", quantity: 4, decidedAt: t1 })
    desk.place(t1, a, b)
    desk.open(t2, [bar(BBB, t2, { close: 51 })])
    desk.open(t3, [bar(AAA, t3, { close: 102 })])
    expect(desk.books.map((book) => book.open)).toEqual([[], [a.id], []])
  }))

  it("fills a buy that gapped past the cash at hand only as far as the cash pays, this open's sales included", inSpine((spine) => {
    // 10,000 of cash: 100 at 100 fits; at an open of 130 only 76 do (9,880), the rest is not bought.
    const desk = spawnDesk(spine, "next_open", () => 10_000_000_000)
    desk.open(t1, [bar(AAA, t1, { close: 100 }), bar(BBB, t1, { close: 50 })])
    desk.place(t1, buy(t1, 100), order({ symbol: BBB, side: "sell", quantity: 10, decidedAt: t1 }))
    desk.open(t2, [bar(AAA, t2, { open: 130, close: 130 }), bar(BBB, t2, { open: 30, close: 30 })])
    // The sale at the same open pays too: 10,000 + 300 buys 79 at 130 (10,270).
    expect(desk.fills()).toEqual([
      expect.objectContaining({ symbol: AAA, quantity: 79, notional: 10_270_000_000, reduced: expect.stringMatching(/^cut from 100 to 79: 13,000(\.00)? needed at 130, 10,300(\.00)? at hand/) }),
      expect.objectContaining({ symbol: BBB, side: "sell", quantity: 10 })
    ])
    expect(desk.fills()[1]).not.toHaveProperty("reduced")
  }))

  it("fills no buy that the cash at hand cannot pay one unit of", inSpine((spine) => {
    const poor = spawnDesk(spine, "next_open", () => 50_000_000)
    poor.open(t3, [bar(AAA, t3, { close: 100 })])
    poor.place(t3, buy(t3, 1))
    poor.open(t4, [bar(AAA, t4, { open: 100, close: 100 })])
    expect(poor.fills()).toEqual([])
    expect(spine.ofTag("OrderCancelled").at(-1)!.reason).toMatch(/^not enough cash at the fill: 100(\.00)? needed at 100, 50(\.00)? at hand/)
  }))
})
