/**
 * The rules engine for user rules. Rules are decoded once at the edge (`decode`), prepared once
 * into a `RuleBook` (`make`: sorted, symbol scopes as sets, time-zone plans), and evaluated per
 * order intent without any schema work. A rule passes, reduces or rejects an intent and says why;
 * an inactive rule, or one whose symbol scope excludes the intent's symbol, is `skipped` and
 * recorded as such.
 *
 * Decisions (where the issue left room):
 * - Order: ascending `priority` (lower first), ties by `id` (code-unit order), fixed by `make`.
 * - Which rules let a risk-reducing order through (see Gates.ts for what "risk-reducing" means):
 *   `max_position_percent`, `max_open_positions` and `min_cash_reserve` limit exposure, which a
 *   risk-reducing order cannot increase: they always pass it. `max_order_notional` and
 *   `max_orders_per_day` limit order flow; they exempt risk-reducing orders by default
 *   (`params.exemptRiskReducing: true`) so they never stand between a run and getting out.
 *   `trading_hours` and `blackout` apply to every order unless `exemptRiskReducing: true`.
 * - `max_open_positions` counts symbols with a non-zero position in the ledger's snapshot; only an
 *   order that opens a new one is limited (a reversal keeps the count). It cannot reduce.
 * - `min_cash_reserve` measures equity − gross exposure, which is the cash of a long-only book
 *   (Gates.ts explains shorts).
 * - `max_orders_per_day` counts `context.ordersToday` plus the order being judged; a rule limited to
 *   some symbols (allow or deny list) counts only their orders (`context.ordersTodayBySymbol`).
 * - Trading hours: the zone's wall-clock time at `context.now`, via `Intl.DateTimeFormat` (ICU data
 *   of the running Node.js, hence deterministic for a given Node version). Windows are
 *   `[start, end)` in minutes of the local day on the listed local weekdays; an overnight session
 *   is two windows. The zone offset of the last hour seen is memoized in the prepared rule.
 * - Blackout windows are absolute `[from, to)` ranges.
 * - A reduce computes the largest whole (or 10⁻⁶ fractional) quantity that passes; when there is
 *   none the rule rejects.
 */
import { Either, ParseResult, Schema } from "effect"
import type { RiskContext } from "../../schemas/Risk.js"
import { InvalidRule, type Rule, RuleSet, Rule as RuleSchema, type RuleIssue, type Weekday } from "../../schemas/Rule.js"
import type { MeasureUnit, RuleOutcome } from "../../schemas/Verdict.js"
import { plainly } from "../internal/issues.js"
import {
  type Emit,
  fitNotional,
  formatMoney,
  notional,
  type OrderFacts,
  positionCheck,
  reduceOrReject,
  reducesExposure,
  reserveCheck
} from "./Gates.js"

// ---------------------------------------------------------------------------------------------
// Decoding

const formatPath = (root: string, path: ReadonlyArray<PropertyKey>): string => {
  let out = root
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`
    else if (typeof key === "string" && /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(key)) out += out === "" ? key : `.${key}`
    else out += `[${JSON.stringify(String(key))}]`
  }
  return out === "" ? "(root)" : out
}

const toInvalidRule = (root: string, error: ParseResult.ParseError): InvalidRule => {
  const issues: Array<RuleIssue> = ParseResult.ArrayFormatter.formatErrorSync(error).map((issue) => ({
    field: formatPath(root, issue.path),
    message: plainly(issue.message)
  }))
  const first = issues[0] ?? { field: root === "" ? "(root)" : root, message: "invalid rule" }
  return new InvalidRule({ field: first.field, message: first.message, issues })
}

// Unknown fields are refused: a misspelt optional parameter must not silently fall back to its default.
const options = { errors: "all", onExcessProperty: "error" } as const
const decodeRuleSet = Schema.decodeUnknownEither(RuleSet, options)
const decodeOne = Schema.decodeUnknownEither(RuleSchema, options)

/** Decodes a strategy's rules (JSON values); errors name the field, e.g. `rules[2].params.percent`. */
export const decode = (input: unknown): Either.Either<ReadonlyArray<Rule>, InvalidRule> =>
  Either.mapLeft(decodeRuleSet(input), (error) => toInvalidRule("rules", error))

/** Decodes one rule; errors name the field, e.g. `params.percent`. */
export const decodeRule = (input: unknown): Either.Either<Rule, InvalidRule> =>
  Either.mapLeft(decodeOne(input), (error) => toInvalidRule("", error))

// ---------------------------------------------------------------------------------------------
// Preparing

const weekdayIndex: { readonly [D in Weekday]: number } = { sun: 0, mon: 1, tue: 2, wed: 3, thu: 4, fri: 5, sat: 6 }
const weekdayName = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"] as const

const HOUR = 3_600_000
const DAY = 86_400_000

/** A trading-hours rule made ready: minutes, a weekday bit mask, a formatter and a one-hour offset memo. */
interface HoursPlan {
  readonly zone: string
  readonly formatter: Intl.DateTimeFormat
  readonly starts: ReadonlyArray<number>
  readonly ends: ReadonlyArray<number>
  readonly dayMask: number
  readonly description: string
  memoHour: number
  memoOffset: number
}

export interface PreparedRule {
  readonly rule: Rule
  readonly allow: ReadonlySet<string> | null
  readonly deny: ReadonlySet<string> | null
  readonly hours: HoursPlan | null
  /** Builds this rule's outcome records. */
  readonly emit: Emit<RuleOutcome>
}

/** Rules in evaluation order, ready for the per-intent path. */
export interface RuleBook {
  readonly rules: ReadonlyArray<PreparedRule>
}

const minutes = (hhmm: string): number => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5))

const hoursPlan = (rule: Extract<Rule, { kind: "trading_hours" }>): HoursPlan => {
  const { days, timeZone, windows } = rule.params
  let dayMask = 0
  for (const d of days) dayMask |= 1 << weekdayIndex[d]
  return {
    zone: timeZone,
    formatter: new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric"
    }),
    starts: windows.map((w) => minutes(w.start)),
    ends: windows.map((w) => minutes(w.end)),
    dayMask,
    description: `${windows.map((w) => `${w.start}-${w.end}`).join(", ")} on ${days.join(",")}`,
    memoHour: Number.NaN,
    memoOffset: 0
  }
}

const byPriorityThenId = (a: Rule, b: Rule): number =>
  a.priority !== b.priority ? a.priority - b.priority : a.id < b.id ? -1 : a.id > b.id ? 1 : 0

/** Prepares decoded rules for evaluation: sorted by priority then id. */
export const make = (rules: ReadonlyArray<Rule>): RuleBook => ({
  rules: [...rules].sort(byPriorityThenId).map((rule) => ({
    rule,
    allow: rule.allowSymbols === undefined ? null : new Set<string>(rule.allowSymbols),
    deny: rule.denySymbols.length === 0 ? null : new Set<string>(rule.denySymbols),
    hours: rule.kind === "trading_hours" ? hoursPlan(rule) : null,
    emit: emitter(rule)
  }))
})

export const empty: RuleBook = { rules: [] }

/** Today's orders a rule counts: all of them, or those of the symbols in its scope when it has one. */
const ordersInScope = (p: RuleBook["rules"][number], context: RiskContext): number => {
  const bySymbol = context.ordersTodayBySymbol
  if ((p.allow === null && p.deny === null) || bySymbol === undefined) return context.ordersToday
  let n = 0
  for (const symbol in bySymbol) {
    if ((p.allow === null || p.allow.has(symbol)) && (p.deny === null || !p.deny.has(symbol))) n += bySymbol[symbol]!
  }
  return n
}

/** `decode` then `make`. */
export const fromJson = (input: unknown): Either.Either<RuleBook, InvalidRule> => Either.map(decode(input), make)

// ---------------------------------------------------------------------------------------------
// Time zones

/** Offset of the zone from UTC at `t` (local − UTC, ms), from the formatter's wall-clock fields. */
const zoneOffset = (formatter: Intl.DateTimeFormat, t: number): number => {
  let y = 0
  let mo = 0
  let d = 0
  let h = 0
  let mi = 0
  let s = 0
  for (const part of formatter.formatToParts(t)) {
    switch (part.type) {
      case "year":
        y = Number(part.value)
        break
      case "month":
        mo = Number(part.value)
        break
      case "day":
        d = Number(part.value)
        break
      case "hour":
        h = Number(part.value)
        break
      case "minute":
        mi = Number(part.value)
        break
      case "second":
        s = Number(part.value)
        break
    }
  }
  return Date.UTC(y, mo - 1, d, h, mi, s) - Math.floor(t / 1000) * 1000
}

/**
 * The offset at `t`, memoized per UTC hour: a zone changes offset at most once within any hour,
 * so when the hour's first and last millisecond agree the whole hour has that offset.
 */
const offsetAt = (plan: HoursPlan, t: number): number => {
  const hour = Math.floor(t / HOUR)
  if (hour === plan.memoHour) return plan.memoOffset
  const first = zoneOffset(plan.formatter, hour * HOUR)
  const last = zoneOffset(plan.formatter, hour * HOUR + HOUR - 1)
  if (first !== last) return zoneOffset(plan.formatter, t)
  plan.memoHour = hour
  plan.memoOffset = first
  return first
}

const two = (n: number): string => (n < 10 ? `0${n}` : String(n))

// ---------------------------------------------------------------------------------------------
// Evaluating

const RISK_REDUCING_EXEMPT = "risk-reducing order: exempt by the rule's parameters"

/** The measure a rule is about, for skipped outcomes. */
const ruleLimit = (rule: Rule): readonly [number | null, MeasureUnit] => {
  switch (rule.kind) {
    case "max_position_percent":
    case "min_cash_reserve":
      return [rule.params.percent, "percent"]
    case "max_open_positions":
    case "max_orders_per_day":
      return [rule.params.count, "count"]
    case "max_order_notional":
      return [rule.params.notional, "micros"]
    case "trading_hours":
    case "blackout":
      return [null, "timestamp"]
  }
}

const emitter = (rule: Rule): Emit<RuleOutcome> =>
(result, reason, limit, actual, unit, quantityBefore, quantityAfter) => ({
  rule: rule.id,
  name: rule.name,
  kind: rule.kind,
  category: rule.category,
  result,
  reason,
  limit,
  actual,
  unit,
  quantityBefore,
  quantityAfter
})

const skipped = (rule: Rule, reason: string, quantity: number): RuleOutcome => {
  const [limit, unit] = ruleLimit(rule)
  return {
    rule: rule.id,
    name: rule.name,
    kind: rule.kind,
    category: rule.category,
    result: "skipped",
    reason,
    limit,
    actual: null,
    unit,
    quantityBefore: quantity,
    quantityAfter: quantity
  }
}

const openPositions = (f: OrderFacts): number => {
  const positions = f.context.portfolio.positions
  let n = 0
  for (let i = 0; i < positions.length; i++) if (positions[i]!.quantity !== 0) n++
  return n
}

const check = (p: PreparedRule, f: OrderFacts, q: number): RuleOutcome => {
  const { emit, rule } = p
  switch (rule.kind) {
    case "max_position_percent":
      return positionCheck(f, q, rule.params.percent, emit)
    case "min_cash_reserve":
      return reserveCheck(f, q, rule.params.percent, emit)
    case "max_open_positions": {
      const limit = rule.params.count
      // Counting is a scan of the book: only an order that opens a position needs it.
      if (f.held !== 0) return emit("pass", "does not open a new position", limit, null, "count", q, q)
      const open = openPositions(f) + 1
      if (open <= limit) return emit("pass", "within the limit", limit, open, "count", q, q)
      return emit("reject", `would open position ${open} (limit ${limit} open positions)`, limit, open, "count", q, 0)
    }
    case "max_order_notional": {
      const limit = rule.params.notional
      if (rule.params.exemptRiskReducing && reducesExposure(f, q)) {
        return emit("pass", RISK_REDUCING_EXEMPT, limit, null, "micros", q, q)
      }
      const value = notional(q, f.price)
      if (value <= limit) return emit("pass", "within the limit", limit, value, "micros", q, q)
      return reduceOrReject(
        emit,
        `order notional ${formatMoney(value)} is above the limit of ${formatMoney(limit)}`,
        q,
        fitNotional(f, q, limit),
        limit,
        value,
        "micros"
      )
    }
    case "max_orders_per_day": {
      const limit = rule.params.count
      if (rule.params.exemptRiskReducing && reducesExposure(f, q)) {
        return emit("pass", RISK_REDUCING_EXEMPT, limit, null, "count", q, q)
      }
      const nth = ordersInScope(p, f.context) + 1
      if (nth <= limit) return emit("pass", "within the limit", limit, nth, "count", q, q)
      return emit("reject", `would be order ${nth} today (limit ${limit} per day)`, limit, nth, "count", q, 0)
    }
    case "trading_hours": {
      const now = f.context.now
      if (rule.params.exemptRiskReducing && reducesExposure(f, q)) {
        return emit("pass", RISK_REDUCING_EXEMPT, null, now, "timestamp", q, q)
      }
      const plan = p.hours!
      const local = now + offsetAt(plan, now)
      const day = Math.floor(local / DAY)
      const weekday = (((day + 4) % 7) + 7) % 7 // 1970-01-01 was a Thursday
      const minute = Math.floor((local - day * DAY) / 60_000)
      if ((plan.dayMask & (1 << weekday)) !== 0) {
        for (let i = 0; i < plan.starts.length; i++) {
          if (plan.starts[i]! <= minute && minute < plan.ends[i]!) {
            return emit("pass", "within trading hours", null, now, "timestamp", q, q)
          }
        }
      }
      return emit(
        "reject",
        `outside trading hours: ${weekdayName[weekday]} ${two(Math.floor(minute / 60))}:${two(minute % 60)} in ${plan.zone} (open ${plan.description})`,
        null,
        now,
        "timestamp",
        q,
        0
      )
    }
    case "blackout": {
      const now = f.context.now
      if (rule.params.exemptRiskReducing && reducesExposure(f, q)) {
        return emit("pass", RISK_REDUCING_EXEMPT, null, now, "timestamp", q, q)
      }
      for (const w of rule.params.windows) {
        if (w.from <= now && now < w.to) {
          return emit(
            "reject",
            `inside the blackout window ${new Date(w.from).toISOString()} to ${new Date(w.to).toISOString()}${
              w.label === undefined || w.label === "" ? "" : ` (${w.label})`
            }`,
            null,
            now,
            "timestamp",
            q,
            0
          )
        }
      }
      return emit("pass", "outside every blackout window", null, now, "timestamp", q, q)
    }
  }
}

/** One rule's outcome for an intent at `quantity` (the quantity earlier rules left). */
export const evaluateRule = (p: PreparedRule, f: OrderFacts, quantity: number): RuleOutcome => {
  const rule = p.rule
  if (!rule.active) return skipped(rule, "inactive rule", quantity)
  const symbol = f.intent.symbol
  if (p.allow !== null && !p.allow.has(symbol)) return skipped(rule, `${symbol} is not in the rule's allow list`, quantity)
  if (p.deny !== null && p.deny.has(symbol)) return skipped(rule, `${symbol} is in the rule's deny list`, quantity)
  return check(p, f, quantity)
}

/**
 * Every rule of the book in order, each on the quantity the previous ones left (a reject leaves
 * the quantity as it was, so later rules still say what they would have done).
 */
export const evaluate = (
  book: RuleBook,
  f: OrderFacts,
  quantity: number
): { readonly outcomes: ReadonlyArray<RuleOutcome>; readonly quantity: number; readonly rejected: boolean } => {
  const outcomes: Array<RuleOutcome> = []
  let q = quantity
  let anyRejected = false
  for (const p of book.rules) {
    const o = evaluateRule(p, f, q)
    outcomes.push(o)
    if (o.result === "reduce") q = o.quantityAfter
    else if (o.result === "reject") anyRejected = true
  }
  return { outcomes, quantity: q, rejected: anyRejected }
}
