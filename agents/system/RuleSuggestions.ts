/**
 * The system agent's `suggest_rules` tool, pure: user rules that would have kept a run out of its
 * losing patterns, read off a trade analysis, each a complete `Rule` ready to add to the strategy
 * (it decodes, and its id is new), with the reason and the numbers behind it.
 *
 * Patterns, each needing at least `minTrades` trades so that one bad trade suggests nothing:
 * - a symbol that lost money overall → stop opening positions in it;
 * - hours of the day that lost, while the other hours did better → trading hours without them;
 * - weekdays that lost, likewise → trading days without them;
 *   both read, when the analysis's `clock` is `decision`, at the time the entry order was decided: the
 *   time the rule will judge it at (with `next_open` fills a trade decided on Friday enters on Monday,
 *   and a rule against Mondays would not have touched it); hours and days the strategy's trading-hours
 *   rules already keep closed are left out, as other patterns already limited are;
 * - larger positions that lost while smaller ones did better → a maximum position percent, the
 *   positions measured as the rule measures them (a share of equity when the entry was judged);
 * - entries placed after a day's first orders that lost while the rest did better → a maximum number
 *   of orders per day (the entries such a cap would have refused, counted as the rule counts).
 */
import type { Symbol } from "../../schemas/Ids.js"
import type { Money } from "../../schemas/Money.js"
import { HARD_LIMITS } from "../../schemas/Risk.js"
import type { Rule, RuleId, Weekday } from "../../schemas/Rule.js"
import type { Strategy } from "../../schemas/Strategy.js"
import * as Format from "./internal/Format.js"
import * as TradeAnalysis from "./TradeAnalysis.js"

// ---------------------------------------------------------------------------------------------
// Result

/** What a suggestion is about. JSON as is. */
export type Pattern =
  | { readonly kind: "symbol"; readonly symbol: string }
  | { readonly kind: "hours"; readonly hours: ReadonlyArray<number>; readonly timeZone: string }
  | { readonly kind: "weekdays"; readonly days: ReadonlyArray<Weekday>; readonly timeZone: string }
  /** Positions above `abovePercent` of equity when their entry order was judged (what `max_position_percent` caps). */
  | { readonly kind: "position_size"; readonly abovePercent: number }
  /**
   * Entries placed after the first `above` orders of their UTC day (orders counted by the UTC day
   * they were decided on, every order placed, as `max_orders_per_day` counts them).
   */
  | { readonly kind: "orders_per_day"; readonly above: number }

/** The trades of the pattern against the rest of the analysed trades. */
export interface Evidence {
  readonly trades: number
  readonly losingTrades: number
  /** Their total P&L: negative. */
  readonly pnl: Money
  readonly averagePnl: Money | null
  readonly winRate: number | null
  readonly otherTrades: number
  readonly otherPnl: Money
  readonly otherAveragePnl: Money | null
}

export interface Suggestion {
  /** Decodes with `Rule` (in its encoded form) and has an id the strategy does not use. */
  readonly rule: Rule
  readonly pattern: Pattern
  readonly reason: string
  readonly evidence: Evidence
}

/** A losing pattern that was not turned into a rule, and why (too few trades, already limited, …). */
export interface Skipped {
  readonly pattern: string
  readonly reason: string
}

export interface RuleSuggestions {
  readonly minTrades: number
  /** Largest loss first; ties by rule id. */
  readonly suggestions: ReadonlyArray<Suggestion>
  readonly skipped: ReadonlyArray<Skipped>
}

export interface SuggestOptions {
  /** Trades a pattern needs before it suggests anything (default 5; at least 1). */
  readonly minTrades?: number
  /** A pattern must lose more than this, in micros (default 0: any net loss). */
  readonly minLoss?: number
}

export const DEFAULT_MIN_TRADES = 5

// ---------------------------------------------------------------------------------------------
// Building blocks

type Stats = TradeAnalysis.TradeStats

const WEEKDAYS: ReadonlyArray<Weekday> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

const roundHalfAwayFromZero = (x: number): number => (x < 0 ? -Math.round(-x) : Math.round(x))

const evidenceOf = (pattern: Stats, overall: Stats): Evidence => {
  const otherTrades = overall.trades - pattern.trades
  const otherPnl = overall.totalPnl - pattern.totalPnl
  return {
    trades: pattern.trades,
    losingTrades: pattern.losses,
    pnl: pattern.totalPnl,
    averagePnl: pattern.averagePnl,
    winRate: pattern.winRate,
    otherTrades,
    otherPnl: otherPnl as Money,
    otherAveragePnl: otherTrades === 0 ? null : (roundHalfAwayFromZero(otherPnl / otherTrades) as Money)
  }
}

/** The rest did better per trade: the loss belongs to the pattern, not to the strategy as a whole. */
const othersDidBetter = (e: Evidence): boolean =>
  e.otherTrades > 0 && e.averagePnl !== null && e.otherAveragePnl !== null && e.otherAveragePnl > e.averagePnl

const against = (e: Evidence): string =>
  e.otherTrades === 0
    ? "there were no other trades"
    : `the other ${Format.count(e.otherTrades, "trade")} made ${Format.pnl(e.otherPnl)} (${Format.pnl(e.otherAveragePnl!)} a trade)`

const lost = (e: Evidence): string =>
  `lost ${Format.money(-e.pnl)} over ${Format.count(e.trades, "trade")} (${e.losingTrades} losing${
    e.winRate === null ? "" : `, win rate ${Format.percent(e.winRate)}`
  })`

const time = (minutes: number): string =>
  `${String(Math.floor(minutes / 60)).padStart(2, "0")}:${String(minutes % 60).padStart(2, "0")}`

/** Hours `[h, h+1)` merged into `[start, end)` ranges of whole hours. */
const ranges = (hours: ReadonlyArray<number>): ReadonlyArray<readonly [number, number]> => {
  const sorted = [...new Set(hours)].sort((a, b) => a - b)
  const out: Array<[number, number]> = []
  for (const h of sorted) {
    const last = out[out.length - 1]
    if (last !== undefined && last[1] === h) last[1] = h + 1
    else out.push([h, h + 1])
  }
  return out
}

const minutesOf = (hhmm: string): number => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5))

/** `rule a already keeps`, `rules a and b already keep`. */
const rulesKeep = (ids: ReadonlyArray<string>): string => {
  const unique = [...new Set(ids)]
  return `${unique.length === 1 ? "rule" : "rules"} ${Format.list(unique)} already keep${unique.length === 1 ? "s" : ""}`
}

const hoursText = (hours: ReadonlyArray<number>): string =>
  Format.list(ranges(hours).map(([s, e]) => `${time(s * 60)}–${time(e * 60)}`))

const slug = (text: string): string => text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "") || "symbol"

/** Whether an active rule's symbol scope covers every symbol (no allow list, nothing denied). */
const coversEverySymbol = (rule: Rule): boolean => rule.active && rule.allowSymbols === undefined && rule.denySymbols.length === 0

const inScope = (rule: Rule, symbol: string): boolean =>
  rule.active && (rule.allowSymbols === undefined || rule.allowSymbols.includes(symbol as Symbol)) &&
  !rule.denySymbols.includes(symbol as Symbol)

const common = (id: string, name: string) => ({
  id: id as RuleId,
  name,
  priority: 0,
  active: true,
  denySymbols: [] as ReadonlyArray<Symbol>
})

// ---------------------------------------------------------------------------------------------
// Suggesting

/**
 * Rules for the losing patterns of `analysis`, for `strategy` (whose rules and limits tell what is
 * already limited, and whose rule ids the suggestions avoid). Deterministic: the same analysis and
 * strategy give the same suggestions in the same order.
 */
export const suggestRules = (
  analysis: TradeAnalysis.TradeAnalysis,
  strategy: Strategy,
  options: SuggestOptions = {}
): RuleSuggestions => {
  const minTrades = options.minTrades !== undefined && Number.isFinite(options.minTrades)
    ? Math.max(1, Math.floor(options.minTrades))
    : DEFAULT_MIN_TRADES
  const minLoss = options.minLoss !== undefined && Number.isFinite(options.minLoss) ? Math.max(0, options.minLoss) : 0
  const overall = analysis.overall
  const rules = strategy.rules
  const taken = new Set<string>(rules.map((r) => r.id))
  const idFor = (base: string): string => {
    let id = base
    for (let n = 2; taken.has(id); n++) id = `${base}-${n}`
    taken.add(id)
    return id
  }
  const suggestions: Array<Suggestion> = []
  const skipped: Array<Skipped> = []
  const losing = (s: Stats) => s.totalPnl < -minLoss
  const tooFew = (pattern: string, s: Stats) =>
    skipped.push({
      pattern,
      reason: `lost ${Format.money(-s.totalPnl)} over ${Format.count(s.trades, "trade")}: fewer than the ${minTrades} a pattern needs`
    })

  // A symbol that loses money. Rules have no deny list that stops a symbol outright: `denySymbols`
  // only takes a symbol out of one rule's scope. `max_orders_per_day` with a count of 0, scoped to
  // the symbol, rejects every new order in it while its default `exemptRiskReducing` still lets a
  // held position be closed — "stop trading X" without trapping what is open. (A blackout would
  // need an end date and, by default, blocks the exit too; a position percent must be above 0.)
  for (const b of analysis.bySymbol) {
    if (b.totalPnl >= 0) continue
    const pattern = `symbol ${b.key}`
    if (!losing(b)) continue
    if (b.trades < minTrades) {
      tooFew(pattern, b)
      continue
    }
    if (!strategy.symbols.includes(b.key as Symbol)) {
      skipped.push({ pattern, reason: `the strategy no longer trades ${b.key}` })
      continue
    }
    const stopped = rules.find((r) => r.kind === "max_orders_per_day" && r.params.count === 0 && inScope(r, b.key))
    if (stopped !== undefined) {
      skipped.push({ pattern, reason: `rule ${stopped.id} already stops new orders in ${b.key}` })
      continue
    }
    const evidence = evidenceOf(b, overall)
    const rule: Rule = {
      kind: "max_orders_per_day",
      category: "frequency",
      ...common(idFor(`suggested-stop-${slug(b.key)}`), `Stop opening positions in ${b.key} (suggested)`),
      allowSymbols: [b.key as Symbol],
      params: { count: 0, exemptRiskReducing: true }
    }
    suggestions.push({
      rule,
      pattern: { kind: "symbol", symbol: b.key },
      evidence,
      reason: `${b.key} ${lost(evidence)}, while ${against(evidence)}. Stop opening positions in ${b.key}: ` +
        `at most 0 orders a day for ${b.key} alone; orders that reduce risk still pass, so what is held can be closed.`
    })
  }

  // Hours and weekdays: a `trading_hours` rule, which recurs every day, in the zone the analysis
  // read them in. (A blackout is one absolute range of dates, not a time of every day.)
  const zone = analysis.timeZone
  const entered = analysis.clock === "decision" ? "Trades whose entry was decided" : "Trades entered"
  // What the strategy's trading-hours rules already keep closed to every order, every day: those of
  // the analysis's zone that cover every symbol (one in another zone, or for some symbols, may
  // overlap a suggestion in part only, and is not compared). A day a rule does not list is closed;
  // an hour is closed when none of its windows meets it (its windows hold on every day it lists).
  const hourRules = rules.flatMap((r) => (r.kind === "trading_hours" && coversEverySymbol(r) && r.params.timeZone === zone ? [r] : []))
  const closingHour = (h: number) =>
    hourRules.find((r) => r.params.windows.every((w) => minutesOf(w.end) <= h * 60 || minutesOf(w.start) >= (h + 1) * 60))
  const closingDay = (d: Weekday) => hourRules.find((r) => !r.params.days.includes(d))

  const losingHoursAll = analysis.byHour.filter((b) => losing(b) && b.trades >= minTrades)
  const closedHours = losingHoursAll.flatMap((b) => {
    const rule = closingHour(b.key)
    return rule === undefined ? [] : [[b.key, rule.id] as const]
  })
  if (closedHours.length > 0) {
    skipped.push({
      pattern: `hours ${hoursText(closedHours.map(([h]) => h))}`,
      reason: `${rulesKeep(closedHours.map(([, id]) => id))} orders out of those hours`
    })
  }
  const losingHours = losingHoursAll.filter((b) => !closedHours.some(([h]) => h === b.key))
  if (losingHours.length > 0) {
    const hours = losingHours.map((b) => b.key)
    const evidence = evidenceOf(TradeAnalysis.combine(losingHours), overall)
    if (!othersDidBetter(evidence)) {
      skipped.push({ pattern: `hours ${hoursText(hours)}`, reason: "the other hours did no better per trade: not a time-of-day pattern" })
    } else {
      const allowed = Array.from({ length: 24 }, (_, h) => h).filter((h) => !hours.includes(h))
      const rule: Rule = {
        kind: "trading_hours",
        category: "schedule",
        ...common(idFor("suggested-trading-hours"), "Trade outside the losing hours (suggested)"),
        params: {
          timeZone: zone,
          windows: ranges(allowed).map(([s, e]) => ({ start: time(s * 60), end: time(e * 60) })),
          days: WEEKDAYS,
          exemptRiskReducing: true
        }
      }
      suggestions.push({
        rule,
        pattern: { kind: "hours", hours, timeZone: zone },
        evidence,
        reason: `${entered} ${hoursText(hours)} (${zone}) ${lost(evidence)}, while ${against(evidence)}. ` +
          `Trade only outside those hours, every day; orders that reduce risk still pass.`
      })
    }
  }

  const losingDaysAll = analysis.byWeekday.filter((b) => losing(b) && b.trades >= minTrades)
  const closedDays = losingDaysAll.flatMap((b) => {
    const rule = closingDay(b.key)
    return rule === undefined ? [] : [[b, rule.id] as const]
  })
  if (closedDays.length > 0) {
    skipped.push({
      pattern: `weekdays ${Format.list(closedDays.map(([b]) => b.label))}`,
      reason: `${rulesKeep(closedDays.map(([, id]) => id))} orders out on those days`
    })
  }
  const losingDays = losingDaysAll.filter((b) => !closedDays.some(([c]) => c === b))
  if (losingDays.length > 0) {
    const days = losingDays.map((b) => b.key)
    const names = Format.list(losingDays.map((b) => b.label))
    const evidence = evidenceOf(TradeAnalysis.combine(losingDays), overall)
    if (!othersDidBetter(evidence)) {
      skipped.push({ pattern: `weekdays ${names}`, reason: "the other weekdays did no better per trade: not a weekday pattern" })
    } else {
      const rule: Rule = {
        kind: "trading_hours",
        category: "schedule",
        ...common(idFor("suggested-trading-days"), "Trade on the other weekdays only (suggested)"),
        params: {
          timeZone: zone,
          windows: [{ start: "00:00", end: "24:00" }],
          days: WEEKDAYS.filter((d) => !days.includes(d)),
          exemptRiskReducing: true
        }
      }
      suggestions.push({
        rule,
        pattern: { kind: "weekdays", days, timeZone: zone },
        evidence,
        reason: `${entered} on ${names} (${zone}) ${lost(evidence)}, while ${against(evidence)}. ` +
          `Trade on the other days only; orders that reduce risk still pass.`
      })
    }
  }

  // Position size: the band edge above which the trades lost most, smaller ones doing better. The
  // bands are of what the rule measures, and a band's positions are above its lower edge: a cap at
  // the edge cuts every one of them (and passes a position sized to exactly the cap).
  if (analysis.byPositionSize.length > 1) {
    let best: { readonly edge: number; readonly evidence: Evidence } | undefined
    for (const edge of TradeAnalysis.SIZE_EDGES) {
      const large = analysis.byPositionSize.filter((b) => b.minPercent >= edge)
      if (large.length === analysis.byPositionSize.length || large.length === 0) continue
      const stats = TradeAnalysis.combine(large)
      if (stats.trades < minTrades || !losing(stats)) continue
      const evidence = evidenceOf(stats, overall)
      if (!othersDidBetter(evidence)) continue
      // The largest loss. Edges between the same two bands tie; the lowest of them is the top of
      // the smaller trades' band, so those all pass the cap.
      if (best === undefined || evidence.pnl < best.evidence.pnl) best = { edge, evidence }
    }
    if (best !== undefined) {
      const { edge, evidence } = best
      const limits = [
        Math.min(strategy.risk.limits.maxPositionPct, HARD_LIMITS.maxPositionPct),
        ...rules.flatMap((r) => (r.kind === "max_position_percent" && coversEverySymbol(r) ? [r.params.percent] : []))
      ]
      const limit = Math.min(...limits)
      if (edge >= limit) {
        skipped.push({
          pattern: `positions above ${edge}% of equity`,
          reason: `positions are already limited to ${Format.decimal(limit)}% of equity: a cap of ${edge}% would change nothing`
        })
      } else {
        const rule: Rule = {
          kind: "max_position_percent",
          category: "position",
          ...common(idFor("suggested-max-position"), `Positions at most ${edge}% of equity (suggested)`),
          params: { percent: edge }
        }
        suggestions.push({
          rule,
          pattern: { kind: "position_size", abovePercent: edge },
          evidence,
          reason: `Positions above ${edge}% of equity when they were entered ${lost(evidence)}, while ${against(evidence)}. ` +
            `Cap a position at ${edge}% of equity; reducing a position is never limited.`
        })
      }
    }
  }

  // Orders per day: a cap of `above` refuses the orders placed after the day's first `above` that
  // do not reduce risk (those pass, and count) — an entry never reduces risk, so the entries placed
  // `above + 1`th or later. Each cap is the loosest that refuses the same entries (one below the
  // earliest place refused): a tighter one would refuse more orders than the evidence holds.
  const byPlace = analysis.byOrderOfDay
  {
    let best: { readonly above: number; readonly evidence: Evidence } | undefined
    for (const b of byPlace) {
      if (b.key < 2) continue
      const refused = byPlace.filter((x) => x.key >= b.key)
      const stats = TradeAnalysis.combine(refused)
      if (stats.trades < minTrades || !losing(stats)) continue
      const evidence = evidenceOf(stats, overall)
      if (!othersDidBetter(evidence)) continue
      if (best === undefined || evidence.pnl <= best.evidence.pnl) best = { above: b.key - 1, evidence }
    }
    if (best !== undefined) {
      const { above, evidence } = best
      const existing = rules.find((r) => r.kind === "max_orders_per_day" && coversEverySymbol(r) && r.params.count <= above)
      if (existing !== undefined) {
        skipped.push({ pattern: `entries after the ${TradeAnalysis.ordinal(above)} order of a day`, reason: `rule ${existing.id} already limits orders per day` })
      } else {
        const rule: Rule = {
          kind: "max_orders_per_day",
          category: "frequency",
          ...common(idFor("suggested-max-orders-per-day"), `At most ${above} orders a day (suggested)`),
          params: { count: above, exemptRiskReducing: true }
        }
        suggestions.push({
          rule,
          pattern: { kind: "orders_per_day", above },
          evidence,
          reason: `Trades entered by the ${TradeAnalysis.ordinal(above + 1)} order of a UTC day or a later one ${lost(evidence)}, ` +
            `while ${against(evidence)}. Allow at most ${Format.count(above, "order")} a day (counted by the UTC day they are decided on); ` +
            `orders that reduce risk still pass.`
        })
      }
    }
  }

  suggestions.sort((a, b) => a.evidence.pnl - b.evidence.pnl || (a.rule.id < b.rule.id ? -1 : a.rule.id > b.rule.id ? 1 : 0))
  return { minTrades, suggestions, skipped }
}

// ---------------------------------------------------------------------------------------------
// Sentences

const SKIPPED_SHOWN = 5

/** A few plain sentences for an operator, for when no model phrases the result. */
export const describeSuggestions = (result: RuleSuggestions): string => {
  const sentences: Array<string> = []
  if (result.suggestions.length === 0) {
    sentences.push(`No rule to suggest: no losing pattern had the ${result.minTrades} trades it needs and a clear loss.`)
  } else {
    sentences.push(`${Format.count(result.suggestions.length, "rule")} to suggest, largest loss first.`)
    result.suggestions.forEach((s, i) => sentences.push(`${i + 1}. ${s.reason} (rule ${s.rule.id}, ${s.rule.kind})`))
    if (result.suggestions.length > 1) sentences.push("The patterns can share trades, so their losses do not add up.")
  }
  if (result.skipped.length > 0) {
    // A run over hundreds of symbols can skip as many; the sentences name the first few.
    const shown = result.skipped.slice(0, SKIPPED_SHOWN).map((s) => `${s.pattern} (${s.reason})`)
    const more = result.skipped.length - shown.length
    sentences.push(`Not suggested: ${shown.join("; ")}${more > 0 ? `; and ${more} more` : ""}.`)
  }
  return sentences.join(" ")
}
