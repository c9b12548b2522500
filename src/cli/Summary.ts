/**
 * The report `swarm backtest` prints for people: what ran, the metrics (docs/metrics.md) in a
 * table, the open positions, the last trades, the trading state, counts and the checksum. Money is
 * rounded for reading only (`Money.format`); the exact figures are in `--json`.
 */
import Table from "cli-table3"
import type { Timestamp } from "../../schemas/Ids.js"
import type { Metrics } from "../../schemas/Metrics.js"
import type { AgentRestarts, LlmUsage } from "../../schemas/Rpc.js"
import type { Trade } from "../../schemas/Trade.js"
import type * as Backtest from "../swarm/Backtest.js"
import { format, type Money } from "../trading/Money.js"

const DAY_MS = 86_400_000
const DASH = "—"

/** A date when the time is midnight UTC (daily bars), else the instant to the second, UTC. */
export const time = (ts: Timestamp | number): string => {
  const iso = new Date(ts).toISOString()
  if (ts % DAY_MS === 0) return iso.slice(0, 10)
  return `${iso.slice(0, 10)} ${iso.endsWith(".000Z") ? iso.slice(11, 19) : iso.slice(11, 23)}Z`
}

/** The latest instant a `Date` holds (±8.64e15 ms): a bar time past it has no calendar time to print. */
const MAX_DATE_MS = 8.64e15

/**
 * A round as people read it: `<symbol>@<bar time ms>`, as the coordinator names rounds, becomes its
 * symbol and its bar's time as every line prints times (`GLOBEX@2022-02-25`), which `swarm chat ask
 * <run> "explain GLOBEX@2022-02-25"` and `swarm trace` take as they take the id; one not of that
 * form (an id from elsewhere, a time no calendar has) is printed as it is.
 */
export const roundText = (round: string): string => {
  const at = round.lastIndexOf("@")
  const ms = at > 0 && /^-?\d{1,16}$/.test(round.slice(at + 1)) ? Number(round.slice(at + 1)) : Number.NaN
  return Number.isSafeInteger(ms) && Math.abs(ms) <= MAX_DATE_MS ? `${round.slice(0, at)}@${time(ms)}` : round
}

export const money = (amount: Money): string => format(amount)


const signed = (text: string, x: number) => (x > 0 ? `+${text}` : text)

/** A plain fraction as a percentage: 0.1234 → "12.34%". */
export const percent = (x: number | null, options: { readonly sign?: boolean } = {}): string =>
  x === null ? DASH : options.sign === true ? signed(`${(x * 100).toFixed(2)}%`, x) : `${(x * 100).toFixed(2)}%`

export const ratio = (x: number | null): string => (x === null ? DASH : x.toFixed(2))

/**
 * A metric that is null because it is unbounded, the best case (docs/metrics.md), as such; undefined
 * for any other null, which prints as a dash. The other figures tell the cases apart, by the rules
 * the leaderboard ranks by (src/store/Leaderboard.ts):
 * - profit factor: winning trades and no losing one (not: no trade, or break-even trades only);
 * - Sortino: no day below the target while the equity moved (a volatility above 0). Not: fewer than
 *   two days (no volatility either), or every day alike — flat equity is 0 / 0, not a best case;
 * - Calmar: no drawdown and a CAGR above 0. Not: no CAGR (one bar time), or a CAGR of 0 (flat).
 */
export const unbounded = (m: Metrics, key: keyof Metrics): string | undefined =>
  key === "profitFactor" && m.profitFactor === null && m.winningTrades > 0 && m.losingTrades === 0
    ? "∞ (no losing trade)"
    : key === "sortino" && m.sortino === null && m.annualVolatility !== null && m.annualVolatility > 0
    ? "∞ (no day below the target)"
    : key === "calmar" && m.calmar === null && m.maxDrawdown === 0 && m.cagr !== null && m.cagr > 0
    ? "∞ (no drawdown)"
    : undefined

export const quantity = (q: number): string => q.toLocaleString("en-US", { maximumFractionDigits: 6 })

export const price = (p: number): string => p.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 6 })

export const count = (n: number): string => n.toLocaleString("en-US")

/** `1 symbol`, `2 symbols`, `1,500 bar times`. */
export const plural = (n: number, noun: string): string => `${count(n)} ${noun}${n === 1 ? "" : "s"}`

const days = (d: number): string => (d === 1 ? "1 day" : `${Number.isInteger(d) ? d : d.toFixed(1)} days`)

const table = (head: ReadonlyArray<string>, align: ReadonlyArray<"left" | "right">) =>
  // No colours: the report is read in terminals, files and CI logs alike.
  new Table({ head: [...head], colAligns: [...align], style: { head: [], border: [], compact: true } })

/** Closed trades as a table; an `undefined` row is a "…" standing for the trades left out. */
export const tradesTable = (rows: ReadonlyArray<Trade | undefined>): string => {
  const t = table(["symbol", "side", "quantity", "entry", "exit", "entry price", "exit price", "P&L"], [
    "left",
    "left",
    "right",
    "left",
    "left",
    "right",
    "right",
    "right"
  ])
  for (const row of rows) {
    if (row === undefined) t.push(["…", "", "", "", "", "", "", ""])
    else {
      t.push([row.symbol, row.side, quantity(row.quantity), time(row.entryTs), time(row.exitTs), price(row.entryPrice), price(row.exitPrice), money(row.pnl)])
    }
  }
  return t.toString()
}

/** The metrics as rows of (name, value): what the summary's table shows, in this order. */
export const metricRows = (m: Metrics): ReadonlyArray<readonly [string, string]> => {
  const drawdown = m.maxDrawdown === 0
    ? "0.00%"
    : `${percent(m.maxDrawdown)} over ${days(m.maxDrawdownDays)} (${count(m.maxDrawdownBars)} bars), ${
      m.maxDrawdownRecoveryTs === null ? "not recovered" : `recovered ${time(m.maxDrawdownRecoveryTs)}`
    }`
  const peakToLow = m.maxDrawdownPeakTs === null || m.maxDrawdownTroughTs === null
    ? []
    : [["  peak → low", `${time(m.maxDrawdownPeakTs)} → ${time(m.maxDrawdownTroughTs)}`] as const]
  return [
    ["total return", `${percent(m.totalReturn, { sign: true })} (${money(m.initialCash)} → ${money(m.finalEquity)})`],
    ["CAGR", percent(m.cagr, { sign: true })],
    ["volatility", m.annualVolatility === null ? DASH : `${percent(m.annualVolatility)} a year`],
    ["Sharpe", ratio(m.sharpe)],
    ["Sortino", unbounded(m, "sortino") ?? ratio(m.sortino)],
    ["Calmar", unbounded(m, "calmar") ?? ratio(m.calmar)],
    ["max drawdown", drawdown],
    ...peakToLow,
    ["longest drawdown", m.longestDrawdownBars === 0 ? DASH : `${days(m.longestDrawdownDays)} (${count(m.longestDrawdownBars)} bars)`],
    ["win rate", m.winRate === null ? DASH : `${percent(m.winRate)} (${m.winningTrades} won, ${m.losingTrades} lost)`],
    ["profit factor", unbounded(m, "profitFactor") ?? ratio(m.profitFactor)],
    ["avg win / loss", `${m.averageWin === null ? DASH : money(m.averageWin)} / ${m.averageLoss === null ? DASH : money(m.averageLoss)}`],
    ["exposure", m.exposure === null ? DASH : `${percent(m.exposure)} of bars`],
    ["trades", count(m.tradeCount)]
  ]
}

/** An agent as an operator knows it: `analyst-2 (rsi_reversion)`, `risk`; an analyst named after its type by its name alone. */
const agentName = (a: AgentRestarts): string => (a.type === null || a.type === a.agent ? a.agent : `${a.agent} (${a.type})`)

/**
 * Which agents crashed, one line each, those restarted most first: `restarts  analyst-2
 * (rsi_reversion) ×8, last: Error: …` — how often its supervisor restarted it (and how often it
 * crashed, when not as often: a crash at the run's end, or one it was not restarted after), and
 * the first line of its last crash's cause. Nothing when none crashed.
 */
export const restartLines = (agents: ReadonlyArray<AgentRestarts>): Array<string> =>
  agents.map((a, i) =>
    `${i === 0 ? "restarts  " : "          "}${agentName(a)} ×${count(a.restarts)}${a.crashes === a.restarts ? "" : ` (${count(a.crashes)} crash${a.crashes === 1 ? "" : "es"})`}${
      a.lastCause === null ? "" : `, last: ${a.lastCause}`
    }`
  )

/**
 * The analysts that gave no vote in a share of the rounds worth a look — past the deadline or
 * failing at all, or silent or below the minimum confidence in more than half — one line each:
 * `abstained slow_thinker: 1,497 of 1,500 rounds (1,460 past the deadline, 37 without an opinion)`
 * — warming up, or none to give. An
 * analyst warming up on a short history, or one cut off by its deadline, reads as what it is.
 */
export const abstentionLines = (agents: ReadonlyArray<Backtest.Abstentions>): Array<string> =>
  agents
    .filter((a) => a.late > 0 || a.failed > 0 || (a.silent + a.belowMinConfidence) * 2 > a.rounds)
    .map((a, i) => {
      const total = a.silent + a.late + a.failed + a.belowMinConfidence
      const why = [
        ...(a.late === 0 ? [] : [`${count(a.late)} past the deadline`]),
        ...(a.failed === 0 ? [] : [`${count(a.failed)} failed`]),
        ...(a.silent === 0 ? [] : [`${count(a.silent)} without an opinion`]),
        ...(a.belowMinConfidence === 0 ? [] : [`${count(a.belowMinConfidence)} below the minimum confidence`])
      ]
      return `${i === 0 ? "abstained " : "          "}${a.agent === a.type ? a.agent : `${a.agent} (${a.type})`}: ${count(total)} of ${
        count(a.rounds)
      } rounds (${why.join(", ")})`
    })

export interface Context {
  readonly strategy: string
  readonly strategyFile: string
  readonly seed: string
  /** The symbols the data delivered for the strategy. */
  readonly symbols: number
  /** `<strategy>#<number>` when the run is kept in the database. */
  readonly ref?: string
}

/** An amount of the strategy's currency spent on models: to the cent, or to a millionth below one. */
const cost = (x: number): string =>
  x === 0 ? "0" : x >= 1 ? x.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 }) : x.toLocaleString("en-US", { maximumSignificantDigits: 3 })

/**
 * The lines on what a run's LLM agents used (`runs show`, and a backtest's summary): the model, the
 * calls (from the cache, refused by the budget, failed) and tokens, and the budget spent of its
 * limit — exhausted or not.
 */
export const llmLines = (llm: LlmUsage): Array<string> => {
  const calls = [
    `${count(llm.cacheHits)} from the cache`,
    ...(llm.refused === 0 ? [] : [`${count(llm.refused)} refused by the budget`]),
    ...(llm.failed === 0 ? [] : [`${count(llm.failed)} failed`])
  ]
  const b = llm.budget
  const priced = b.maxCost !== null || b.cost > 0
  return [
    `llm       ${llm.backend} ${llm.model}: ${llm.description}`,
    `          ${count(llm.calls)} model call${llm.calls === 1 ? "" : "s"} (${calls.join(", ")}), tokens ${count(llm.tokensIn)} in, ${count(llm.tokensOut)} out${
      priced ? `, cost ${cost(llm.cost)}` : ""
    }`,
    `          budget ${count(b.tokens)} of ${count(b.maxTokens)} tokens${b.maxCost === null ? "" : `, cost ${cost(b.cost)} of ${cost(b.maxCost)}`} spent${
      b.exhausted ? ": exhausted, its LLM agents abstained from then on" : ""
    }`
  ]
}

/** How many trades the summary lists (the last ones); `--json` and `trades.csv` have them all. */
export const LAST_TRADES = 5

export const render = (result: Backtest.Result, context: Context): string => {
  const lines: Array<string> = []
  const c = result.counts
  lines.push(
    `run       ${result.runId}${context.ref === undefined ? "" : ` (${context.ref}, kept in the database)`}`,
    `strategy  ${context.strategy} (${context.strategyFile})`,
    `seed      ${context.seed}`,
    `period    ${time(result.from)} → ${time(result.to)}`,
    // Not "times × symbols": symbols with gaps make fewer bars than that product.
    `bars      ${count(c.bars)} (${plural(context.symbols, "symbol")}, ${plural(c.slices, "bar time")})`,
    `status    ${result.status}${result.status === "failed" ? `: ${result.failure ?? "no reason given"}` : ""}`,
    ...(result.llm === undefined ? [] : llmLines(result.llm)),
    ...(result.llm?.budgetSpent === undefined ? [] : [`          the first call refused: ${result.llm.budgetSpent}`]),
    ""
  )

  const metrics = table(["metric", "value"], ["left", "left"])
  for (const row of metricRows(result.metrics)) metrics.push([...row])
  lines.push(metrics.toString(), "")

  const open = result.portfolio.positions.filter((p) => p.quantity !== 0)
  if (open.length === 0) lines.push("positions: none open", "")
  else {
    const positions = table(["symbol", "quantity", "avg price", "mark", "market value", "unrealized", "realized"], [
      "left",
      "right",
      "right",
      "right",
      "right",
      "right",
      "right"
    ])
    for (const p of open) {
      positions.push([
        p.symbol,
        quantity(p.quantity),
        price(p.averagePrice),
        price(p.markPrice),
        money(p.marketValue),
        money(p.unrealizedPnl),
        money(p.realizedPnl)
      ])
    }
    lines.push(`positions (${time(result.portfolio.ts)})`, positions.toString(), "")
  }
  lines.push(
    `equity    ${money(result.portfolio.equity)} (cash ${money(result.portfolio.cash)}, realized ${money(result.portfolio.realizedPnl)}, unrealized ${
      money(result.portfolio.unrealizedPnl)
    })`,
    ""
  )

  if (result.trades.length === 0) lines.push("trades: none closed", "")
  else {
    const last = result.trades.slice(-LAST_TRADES)
    lines.push(`last ${last.length} of ${count(result.trades.length)} trades`, tradesTable(last), "")
  }

  lines.push(
    `trading   ${result.tradingState}`,
    `counts    ${count(c.rounds)} rounds, ${count(c.decisions)} decisions, ${count(c.orders)} orders, ${count(c.fills)} fills, ${
      count(c.rejected)
    } rejected, ${count(c.restarts)} restarts, ${count(c.events)} events`,
    ...restartLines(result.agentRestarts),
    ...abstentionLines(result.abstentions),
    `checksum  ${result.checksum}`
  )
  return `${lines.join("\n")}\n`
}
