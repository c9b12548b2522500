/**
 * The document `swarm backtest --json` prints and `--out` writes as `result.json`: a run's identity,
 * metrics, trades and final positions as JSON for programs. Times are ISO 8601 (UTC) and money is
 * an exact decimal string (`"-1234.5"`); the TypeScript side holds the run's own values (epoch ms,
 * integer micros), so decoding a document gives back exactly what the run computed. Also the run's
 * trades as CSV (`trades.csv`).
 */
import { ParseResult, Schema } from "effect"
import { AgentRestarts, LlmUsage } from "../../schemas/Rpc.js"
import { RunId, Symbol, Timestamp } from "../../schemas/Ids.js"
import { Metrics } from "../../schemas/Metrics.js"
import { MoneyFromDecimal } from "../../schemas/Money.js"
import { Quantity, SignedQuantity } from "../../schemas/Order.js"
import { TradingState } from "../../schemas/Risk.js"
import type { RunEvent } from "../../schemas/RunEvent.js"
import { Trade } from "../../schemas/Trade.js"
import type * as Backtest from "../swarm/Backtest.js"
import { toDecimal } from "../trading/Money.js"

const isoInstant = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:\d{2})$/

/** Epoch ms as an ISO 8601 instant (`2024-03-01T00:00:00.000Z`). */
export const IsoTime = Schema.transformOrFail(Schema.String, Timestamp, {
  strict: true,
  decode: (text, _, ast) => {
    const ms = isoInstant.test(text) ? Date.parse(text) : NaN
    return Number.isSafeInteger(ms)
      ? ParseResult.succeed(Timestamp.make(ms))
      : ParseResult.fail(new ParseResult.Type(ast, text, "expected an ISO 8601 instant, e.g. \"2024-03-01T00:00:00.000Z\""))
  },
  encode: (ms) => ParseResult.succeed(new Date(ms).toISOString())
})

/** The metrics of schemas/Metrics.ts with their money as decimals and their times as ISO instants. */
export const MetricsJson = Schema.Struct({
  ...Metrics.fields,
  initialCash: MoneyFromDecimal,
  finalEquity: MoneyFromDecimal,
  startTs: Schema.NullOr(IsoTime),
  endTs: Schema.NullOr(IsoTime),
  maxDrawdownPeakTs: Schema.NullOr(IsoTime),
  maxDrawdownTroughTs: Schema.NullOr(IsoTime),
  maxDrawdownRecoveryTs: Schema.NullOr(IsoTime),
  grossProfit: MoneyFromDecimal,
  grossLoss: MoneyFromDecimal,
  averageWin: Schema.NullOr(MoneyFromDecimal),
  averageLoss: Schema.NullOr(MoneyFromDecimal)
})

export const TradeJson = Schema.Struct({
  symbol: Symbol,
  side: Trade.fields.side,
  quantity: Quantity,
  entry: IsoTime,
  exit: IsoTime,
  entryPrice: Trade.fields.entryPrice,
  exitPrice: Trade.fields.exitPrice,
  /** Realized P&L of the round trip, commissions included. */
  pnl: MoneyFromDecimal,
  /** The commissions of the round trip's fills (already in `pnl`), as `trades.csv` has them. */
  commission: MoneyFromDecimal
})
export type TradeJson = typeof TradeJson.Type

export const PositionJson = Schema.Struct({
  symbol: Symbol,
  /** Negative when short, 0 when flat. */
  quantity: SignedQuantity,
  averagePrice: Schema.Number,
  markPrice: Schema.Number,
  marketValue: MoneyFromDecimal,
  unrealizedPnl: MoneyFromDecimal,
  realizedPnl: MoneyFromDecimal
})

/**
 * An order of a run with a volume limit (`execution.maxVolumePercent`), as its events left it:
 * `filled` whole (in one fill or several), `partially_filled` (some fills, the rest still working:
 * only in a run that ended early), `working` (no fill yet, ditto), or `cancelled` — replaced,
 * superseded, refused, or left when the data ended — with how much had filled before
 * (`filled` above 0: it was partially filled) and how much was cancelled (`unfilled`).
 */
export const OrderJson = Schema.Struct({
  id: Schema.String,
  symbol: Symbol,
  side: Schema.Literal("buy", "sell"),
  quantity: Quantity,
  placed: IsoTime,
  state: Schema.Literal("filled", "partially_filled", "working", "cancelled"),
  filled: Schema.Number,
  unfilled: Schema.Number,
  fills: Schema.Int,
  /** Why it was cancelled. */
  reason: Schema.optional(Schema.String)
})
export type OrderJson = typeof OrderJson.Type

/** The orders of a run as its events go by (`OrderPlaced`, `OrderFilled`, `OrderCancelled`), for `ResultDocument.orders`. */
export class OrderStates {
  private readonly byId = new Map<string, { -readonly [K in keyof OrderJson]: OrderJson[K] }>()

  add(event: RunEvent): void {
    switch (event._tag) {
      case "OrderPlaced": {
        const o = event.order
        this.byId.set(o.id, { id: o.id, symbol: o.symbol, side: o.side, quantity: o.quantity, placed: o.decidedAt, state: "working", filled: 0, unfilled: o.quantity, fills: 0 })
        return
      }
      case "OrderFilled": {
        const f = event.fill
        const order = this.byId.get(f.orderId)
        if (order === undefined) return
        order.fills++
        order.filled = f.orderFilled ?? onMicroGrid(order.filled + f.quantity)
        order.unfilled = f.orderLeft ?? 0
        order.state = order.unfilled > 0 ? "partially_filled" : "filled"
        return
      }
      case "OrderCancelled": {
        const order = this.byId.get(event.order)
        if (order === undefined) return
        order.state = "cancelled"
        order.unfilled = event.unfilled ?? onMicroGrid(order.quantity - order.filled)
        order.reason = event.reason
        return
      }
    }
  }

  /** Every order, in the order placed. */
  get all(): ReadonlyArray<OrderJson> {
    return [...this.byId.values()]
  }
}

const onMicroGrid = (units: number): number => Math.round(units * 1_000_000) / 1_000_000

export const Counts = Schema.Struct({
  bars: Schema.Int,
  slices: Schema.Int,
  rounds: Schema.Int,
  decisions: Schema.Int,
  orders: Schema.Int,
  fills: Schema.Int,
  rejected: Schema.Int,
  restarts: Schema.Int,
  events: Schema.Int
})

export const ResultDocument = Schema.Struct({
  run: RunId,
  /** `<strategy>#<number>` when the run is kept in the database (absent with `--no-store`). */
  ref: Schema.optional(Schema.String),
  /** The strategy's name. */
  strategy: Schema.String,
  seed: Schema.String,
  status: Schema.Literal("completed", "failed"),
  /** Why a failed run failed; absent when it completed. */
  failure: Schema.optional(Schema.String),
  /** The trading state the run's events end in (`halted` by a drawdown breaker, say): as the summary and the stored run say. */
  tradingState: TradingState,
  period: Schema.Struct({ from: IsoTime, to: IsoTime }),
  metrics: MetricsJson,
  /** Closed round trips, in closing order. */
  trades: Schema.Array(TradeJson),
  /**
   * With a volume limit only (absent otherwise, as before it): every order and what became of it —
   * filled in how many parts, or cancelled with how much unfilled.
   */
  orders: Schema.optional(Schema.Array(OrderJson)),
  /** The final books, marked at the last prices. */
  positions: Schema.Array(PositionJson),
  counts: Counts,
  /** Its agents that crashed: how often each was restarted, and the first line of its last crash's cause, those restarted most first. */
  agentRestarts: Schema.Array(AgentRestarts),
  /**
   * Its analysts that gave no vote in some rounds, in roster order, with why (counted whatever the
   * event detail): `silent` no opinion for the round (warming up, or none to give), `late` no answer
   * by the deadline, `failed` a crash or a refusal, `belowMinConfidence`.
   */
  abstentions: Schema.Array(Schema.Struct({
    agent: Schema.String,
    type: Schema.String,
    rounds: Schema.Int,
    silent: Schema.Int,
    late: Schema.Int,
    failed: Schema.Int,
    belowMinConfidence: Schema.Int
  })),
  /**
   * A run with LLM agents: the language model that answered, what its agents used (as `runs show`
   * has it: calls, cache hits, refusals, tokens, cost, budget, by agent) and, when the budget ran
   * out, why (from then on its LLM agents abstained).
   */
  llm: Schema.optional(Schema.Struct({ ...LlmUsage.fields, budgetSpent: Schema.optional(Schema.String) })),
  /** SHA-256 (hex) over the canonical JSON lines of the run's events. */
  checksum: Schema.String,
  /**
   * What the command warned of before the run started, as stderr said it (`warning: ` left off):
   * an analyst whose warm-up is longer than the data of some symbols (`Backtest.unwarmed`).
   * Absent when there was nothing to warn of.
   */
  warnings: Schema.optional(Schema.Array(Schema.String))
})
export type ResultDocument = typeof ResultDocument.Type
export type ResultDocumentJson = typeof ResultDocument.Encoded

/**
 * An average price (total value over quantity, in floating point) to 8 decimals: 39.69984, not
 * 39.699839999999995. Far finer than any price is quoted; the events keep the exact figure.
 */
const roundPrice = (price: number): number => Number(price.toFixed(8))

/** A closed trade as the document has it. */
export const tradeJson = (t: Trade): typeof TradeJson.Type => ({
  symbol: t.symbol,
  side: t.side,
  quantity: t.quantity,
  entry: t.entryTs,
  exit: t.exitTs,
  entryPrice: roundPrice(t.entryPrice),
  exitPrice: roundPrice(t.exitPrice),
  pnl: t.pnl,
  commission: t.commission
})

export const make = (
  result: Backtest.Result,
  run: {
    readonly strategy: string
    readonly seed: string
    readonly ref?: string
    readonly warnings?: ReadonlyArray<string>
    /** The run's orders (`OrderStates`), for a run with a volume limit. */
    readonly orders?: ReadonlyArray<OrderJson>
  }
): ResultDocument => ({
  run: result.runId,
  ...(run.ref === undefined ? {} : { ref: run.ref }),
  strategy: run.strategy,
  seed: run.seed,
  status: result.status,
  ...(result.status === "failed" ? { failure: result.failure ?? "no reason given" } : {}),
  tradingState: result.tradingState,
  period: { from: result.from, to: result.to },
  metrics: result.metrics,
  trades: result.trades.map(tradeJson),
  ...(run.orders === undefined ? {} : { orders: run.orders }),
  positions: result.portfolio.positions.map((p) => ({
    symbol: p.symbol,
    quantity: p.quantity,
    averagePrice: p.averagePrice,
    markPrice: p.markPrice,
    marketValue: p.marketValue,
    unrealizedPnl: p.unrealizedPnl,
    realizedPnl: p.realizedPnl
  })),
  counts: { ...result.counts },
  agentRestarts: result.agentRestarts,
  abstentions: result.abstentions,
  ...(result.llm === undefined ? {} : { llm: { ...result.llm } }),
  checksum: result.checksum,
  ...(run.warnings === undefined || run.warnings.length === 0 ? {} : { warnings: run.warnings })
})

/** The document as JSON text (two-space indented, newline-terminated): what stdout and result.json get. */
export const toJson = (document: ResultDocument): string =>
  `${JSON.stringify(Schema.encodeSync(ResultDocument)(document), null, 2)}\n`

/**
 * One row per closed trade, in closing order; money as exact decimals, times as ISO instants,
 * average prices to 8 decimals (they are quotients: 37.137426000000005 is 37.137426). No field
 * needs quoting: symbols cannot contain commas or quotes (schemas/Ids.ts), the rest are numbers.
 */
const averagePrice = (price: number): string => String(roundPrice(price))

export const tradesCsv = (trades: ReadonlyArray<Trade>): string => {
  const rows = trades.map((t) =>
    [
      t.symbol,
      t.side,
      String(t.quantity),
      new Date(t.entryTs).toISOString(),
      new Date(t.exitTs).toISOString(),
      averagePrice(t.entryPrice),
      averagePrice(t.exitPrice),
      toDecimal(t.pnl),
      toDecimal(t.commission)
    ].join(",")
  )
  return ["symbol,side,quantity,entry,exit,entry_price,exit_price,pnl,commission", ...rows].join("\n") + "\n"
}
