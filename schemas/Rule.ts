/**
 * A user's rule: a structured, enforceable constraint with a category, a priority, parameters, a
 * symbol scope and an active flag. A tagged union by `kind`; decoded once at the edge (strategy
 * file, RPC) with unknown fields refused, so a typo cannot silently disable a limit — nor can one
 * in a symbol scope: a strategy given now is refused for a scope symbol it does not trade
 * (`unknownScopeSymbol`).
 *
 * Times: trading hours are wall-clock `HH:MM` in an IANA time zone (resolved with the ICU data of
 * the Node.js that runs the swarm); blackout windows are absolute: ISO-8601 date-times that must
 * carry `Z` or an offset, or whole UTC days (`2024-03-15`), so they never depend on the machine's zone.
 */
import { Either, ParseResult, Schema } from "effect"
import { Symbol } from "./Ids.js"
import { oneOf } from "./OneOf.js"
import { Money, MoneyFromDecimal } from "./Money.js"
import { visibleTextProblem } from "./VisibleText.js"

export const RuleId = Schema.String.pipe(
  Schema.minLength(1, { message: () => "a rule id must not be empty" }),
  Schema.maxLength(64, { message: () => "a rule id is at most 64 characters" }),
  Schema.brand("RuleId")
)
export type RuleId = typeof RuleId.Type

export const RuleKind = Schema.Literal(
  "max_position_percent",
  "max_open_positions",
  "min_cash_reserve",
  "max_order_notional",
  "max_orders_per_day",
  "trading_hours",
  "blackout"
)
export type RuleKind = typeof RuleKind.Type

/** Each kind belongs to exactly one category; a rule may state it, and must state it right. */
export const RuleCategory = Schema.Literal("position", "exposure", "cash", "order", "frequency", "schedule")
export type RuleCategory = typeof RuleCategory.Type

export const categoryOf: { readonly [K in RuleKind]: RuleCategory } = {
  max_position_percent: "position",
  max_open_positions: "exposure",
  min_cash_reserve: "cash",
  max_order_notional: "order",
  max_orders_per_day: "frequency",
  trading_hours: "schedule",
  blackout: "schedule"
}

// ---------------------------------------------------------------------------------------------
// Parameter types

const Percent = Schema.Number.pipe(
  Schema.finite({ message: () => "a percent must be a finite number" }),
  Schema.greaterThan(0, { message: () => "a percent must be greater than 0" }),
  Schema.lessThanOrEqualTo(100, { message: () => "a percent must be at most 100" })
)

const Count = Schema.Number.pipe(
  Schema.int({ message: () => "a count must be a whole number" }),
  Schema.between(0, 1_000_000, { message: () => "a count must be between 0 and 1000000" })
)

const decodeDecimal = ParseResult.decodeUnknownEither(MoneyFromDecimal)
const encodeDecimal = ParseResult.encodeUnknown(MoneyFromDecimal)

/** A positive amount of currency, written as a decimal string (`"10000"`, `"99.95"`) or a number of units, to the micro. */
const PositiveAmount = Schema.transformOrFail(
  Schema.declare((u): u is string | number => typeof u === "string" || typeof u === "number", {
    identifier: "Amount",
    message: () => "an amount is a decimal string such as \"10000\" or a number of units"
  }),
  Money,
  {
    strict: true,
    decode: (input, _, ast) => {
      const fail = (why: string) => ParseResult.fail(new ParseResult.Type(ast, input, why))
      let micros: number
      if (typeof input === "string") {
        const decoded = decodeDecimal(input)
        if (Either.isLeft(decoded)) return fail("expected a decimal amount with at most 6 decimals, e.g. \"10000\" or \"99.95\"")
        micros = decoded.right
      } else {
        if (!Number.isFinite(input) || Math.abs(input) > 9_000_000_000) {
          return fail("an amount must be a finite number of at most 9000000000 units")
        }
        micros = Math.round(input * 1_000_000)
      }
      return micros > 0 ? ParseResult.succeed(micros as Money) : fail("an amount must be greater than 0")
    },
    encode: (micros) => encodeDecimal(micros)
  }
)

/** A time zone the ICU data knows (`America/New_York`, `Europe/London`, `UTC`). */
export const TimeZone = Schema.String.pipe(
  Schema.maxLength(64, { message: () => "a time zone name is at most 64 characters" }),
  Schema.filter((zone) => {
    try {
      new Intl.DateTimeFormat("en-US", { timeZone: zone })
      return zone.length > 0 || "a time zone must not be empty"
    } catch {
      return `unknown time zone "${zone}" (expected an IANA name such as "America/New_York")`
    }
  })
)

/** Wall-clock time of day, `HH:MM`, 00:00 to 24:00 (24:00 only ends a window). */
export const TimeOfDay = Schema.String.pipe(
  Schema.pattern(/^(?:(?:[01]\d|2[0-3]):[0-5]\d|24:00)$/, {
    message: () => "a time of day is HH:MM between 00:00 and 24:00"
  })
)

export const Weekday = oneOf("mon", "tue", "wed", "thu", "fri", "sat", "sun")
export type Weekday = typeof Weekday.Type

const isoDateTime = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?(Z|[+-]\d{2}:\d{2})$/

/** An absolute instant written as ISO-8601 with `Z` or an offset, decoded to epoch ms (and encoded as UTC). */
export const DateTimeMillis = Schema.transformOrFail(Schema.String, Schema.Int, {
  strict: true,
  decode: (text, _, ast) => {
    const m = isoDateTime.exec(text)
    const fail = (why: string) => ParseResult.fail(new ParseResult.Type(ast, text, why))
    if (m === null) {
      return fail("expected an ISO-8601 date-time with Z or an offset, e.g. \"2024-03-01T14:30:00Z\"")
    }
    const [y, mo, d, h, mi] = [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5])]
    const s = Number(m[6] ?? "0")
    // Date.parse rolls 2024-02-30 over to March 1st: check the fields against the calendar first.
    const civil = new Date(Date.UTC(y, mo - 1, d, h, mi, s))
    if (
      civil.getUTCFullYear() !== y || civil.getUTCMonth() !== mo - 1 || civil.getUTCDate() !== d ||
      civil.getUTCHours() !== h || civil.getUTCMinutes() !== mi || civil.getUTCSeconds() !== s
    ) {
      return fail(`"${text}" is not a date-time on the calendar`)
    }
    const ms = Date.parse(text)
    return Number.isFinite(ms) ? ParseResult.succeed(ms) : fail(`"${text}" is not a valid date-time`)
  },
  encode: (ms) => ParseResult.succeed(new Date(ms).toISOString())
})

const isoDate = /^(\d{4})-(\d{2})-(\d{2})$/
const DAY_MS = 86_400_000

/**
 * A UTC calendar day written `YYYY-MM-DD`: the epoch ms of its first instant (`Right`), why it is no
 * day on the calendar (`Left`: `2024-02-30`), or undefined when the text is not written that way.
 */
export const utcDay = (text: string): Either.Either<number, string> | undefined => {
  const m = isoDate.exec(text)
  if (m === null) return undefined
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])]
  const civil = new Date(0)
  civil.setUTCFullYear(y, mo - 1, d)
  return civil.getUTCFullYear() === y && civil.getUTCMonth() === mo - 1 && civil.getUTCDate() === d
    ? Either.right(civil.getTime())
    : Either.left(`"${text}" is not a date on the calendar`)
}

/**
 * One end of a blackout window: a `DateTimeMillis`, or a whole UTC day — as the start, its first
 * instant; as the end (windows are `[from, to)`), the first instant of the next day, so that
 * `{ from: "2024-03-15", to: "2024-03-15" }` is all of March 15th, as `--from`/`--to` read dates.
 */
const windowEnd = (end: "from" | "to") =>
  Schema.transformOrFail(Schema.String, Schema.Int, {
    strict: true,
    decode: (text, options, ast) => {
      const day = utcDay(text)
      if (day === undefined) {
        // A date-time's own reasons (no offset, not on the calendar); anything else is neither form.
        return text.includes("T")
          ? ParseResult.decodeUnknown(DateTimeMillis)(text, options)
          : ParseResult.fail(new ParseResult.Type(ast, text, "expected an ISO date (\"2024-03-15\", a whole UTC day) or a date-time with Z or an offset (\"2024-03-15T14:30:00Z\")"))
      }
      return Either.match(day, {
        onLeft: (why) => ParseResult.fail(new ParseResult.Type(ast, text, why)),
        onRight: (ms) => ParseResult.succeed(end === "to" ? ms + DAY_MS : ms)
      })
    },
    encode: (ms) => ParseResult.succeed(new Date(ms).toISOString())
  })

const SymbolList = Schema.Array(Symbol).pipe(
  Schema.maxItems(10_000, { message: () => "a symbol list has at most 10000 symbols" })
)

// ---------------------------------------------------------------------------------------------
// Rules

const common = {
  id: RuleId,
  name: Schema.String.pipe(
    Schema.minLength(1, { message: () => "a rule name must not be empty" }),
    Schema.maxLength(200, { message: () => "a rule name is at most 200 characters" })
  ),
  /** Lower numbers are evaluated first; ties are broken by id. */
  priority: Schema.optionalWith(
    Schema.Number.pipe(
      Schema.int({ message: () => "a priority must be a whole number" }),
      Schema.between(-1_000_000, 1_000_000, { message: () => "a priority must be between -1000000 and 1000000" })
    ),
    { default: () => 0, exact: true }
  ),
  active: Schema.optionalWith(Schema.Boolean, { default: () => true, exact: true }),
  /** Only these symbols are in scope; omitted means every symbol. Must not be empty when given. */
  allowSymbols: Schema.optionalWith(
    SymbolList.pipe(
      Schema.minItems(1, { message: () => "an allow list must name at least one symbol (omit it to apply to every symbol)" })
    ),
    { exact: true }
  ),
  /** These symbols are out of scope, even when allowed. */
  denySymbols: Schema.optionalWith(SymbolList, { default: () => [], exact: true })
}

const categoryField = <C extends RuleCategory>(category: C) =>
  Schema.optionalWith(Schema.Literal(category), { default: () => category, exact: true })

/** A kind's parameters; the message says the expected shape when `params` is not an object at all. */
const params = <Fields extends Schema.Struct.Fields>(fields: Fields, shape: string) =>
  Schema.Struct(fields).annotations({ message: () => `params must be an object ${shape}` })

/** Risk-reducing orders are let through unless the rule says otherwise. */
const exemptRiskReducing = (byDefault: boolean) => Schema.optionalWith(Schema.Boolean, { default: () => byDefault, exact: true })

/** A position's notional after the order is at most `percent` of equity. Never limits a risk-reducing order. */
export const MaxPositionPercentRule = Schema.Struct({
  kind: Schema.Literal("max_position_percent"),
  category: categoryField("position"),
  ...common,
  params: params({ percent: Percent }, "{ percent }")
}).annotations({ identifier: "MaxPositionPercentRule" })

/** At most `count` symbols with an open position; only an order that opens a new one is limited. */
export const MaxOpenPositionsRule = Schema.Struct({
  kind: Schema.Literal("max_open_positions"),
  category: categoryField("exposure"),
  ...common,
  params: params({ count: Count }, "{ count }")
}).annotations({ identifier: "MaxOpenPositionsRule" })

/** At least `percent` of equity left uncommitted (cash, for a long-only book) after the order. Never limits a risk-reducing order. */
export const MinCashReserveRule = Schema.Struct({
  kind: Schema.Literal("min_cash_reserve"),
  category: categoryField("cash"),
  ...common,
  params: params({ percent: Percent }, "{ percent }")
}).annotations({ identifier: "MinCashReserveRule" })

/** An order's notional (quantity × reference price) is at most `notional`. */
export const MaxOrderNotionalRule = Schema.Struct({
  kind: Schema.Literal("max_order_notional"),
  category: categoryField("order"),
  ...common,
  params: params({ notional: PositiveAmount, exemptRiskReducing: exemptRiskReducing(true) }, "{ notional, exemptRiskReducing? }")
}).annotations({ identifier: "MaxOrderNotionalRule" })

/** At most `count` orders per day (the risk context counts them). */
export const MaxOrdersPerDayRule = Schema.Struct({
  kind: Schema.Literal("max_orders_per_day"),
  category: categoryField("frequency"),
  ...common,
  params: params({ count: Count, exemptRiskReducing: exemptRiskReducing(true) }, "{ count, exemptRiskReducing? }")
}).annotations({ identifier: "MaxOrdersPerDayRule" })

/** `[start, end)` in the zone's wall-clock time; `start` before `end` (split an overnight session in two). */
export const TimeWindow = Schema.Struct({ start: TimeOfDay, end: TimeOfDay }).pipe(
  Schema.filter((w) =>
    w.start === "24:00"
      ? { path: ["start"], message: "a window cannot start at 24:00" }
      : w.start < w.end || { path: ["end"], message: `a window ends after it starts (${w.start} to ${w.end})` }
  )
)

/** Orders only inside one of the windows, on the listed weekdays, in the zone's wall-clock time. */
export const TradingHoursRule = Schema.Struct({
  kind: Schema.Literal("trading_hours"),
  category: categoryField("schedule"),
  ...common,
  params: params({
    timeZone: TimeZone,
    windows: Schema.Array(TimeWindow).pipe(
      Schema.minItems(1, { message: () => "trading hours need at least one window" }),
      Schema.maxItems(16, { message: () => "trading hours have at most 16 windows" })
    ),
    days: Schema.optionalWith(
      Schema.Array(Weekday).pipe(
        Schema.minItems(1, { message: () => "trading hours need at least one weekday" }),
        Schema.filter((days) => new Set(days).size === days.length || "a weekday is listed twice")
      ),
      { default: () => ["mon", "tue", "wed", "thu", "fri"] as const, exact: true }
    ),
    exemptRiskReducing: exemptRiskReducing(false)
  }, "{ timeZone, windows, days?, exemptRiskReducing? }")
}).annotations({ identifier: "TradingHoursRule" })

/** An absolute `[from, to)` range of time; a date as `to` is through the end of that day. */
export const BlackoutWindow = Schema.Struct({
  from: windowEnd("from"),
  to: windowEnd("to"),
  label: Schema.optionalWith(Schema.String.pipe(Schema.maxLength(200, { message: () => "a label is at most 200 characters" })), {
    exact: true
  })
}).pipe(Schema.filter((w) => w.from < w.to || { path: ["to"], message: "a blackout window ends after it starts" }))

/** No orders inside any of the windows. */
export const BlackoutRule = Schema.Struct({
  kind: Schema.Literal("blackout"),
  category: categoryField("schedule"),
  ...common,
  params: params({
    windows: Schema.Array(BlackoutWindow).pipe(
      Schema.minItems(1, { message: () => "a blackout needs at least one window" }),
      Schema.maxItems(1_000, { message: () => "a blackout has at most 1000 windows" })
    ),
    exemptRiskReducing: exemptRiskReducing(false)
  }, "{ windows, exemptRiskReducing? }")
}).annotations({ identifier: "BlackoutRule" })

export const Rule = Schema.Union(
  MaxPositionPercentRule,
  MaxOpenPositionsRule,
  MinCashReserveRule,
  MaxOrderNotionalRule,
  MaxOrdersPerDayRule,
  TradingHoursRule,
  BlackoutRule
).annotations({
  identifier: "Rule",
  // For a value that is no object at all; a rule's own fields (`kind`, `params.percent`) keep their words.
  message: () => ({ message: `a rule is an object with an id and a kind (${RuleKind.literals.join(", ")})`, override: false })
})
export type Rule = typeof Rule.Type
export type RuleEncoded = typeof Rule.Encoded

/** A strategy's rules: at most 1000, ids unique. */
export const RuleSet = Schema.Array(Rule).pipe(
  Schema.maxItems(1_000, { message: () => "a strategy has at most 1000 rules" }),
  Schema.filter((rules) => {
    const seen = new Set<string>()
    for (let i = 0; i < rules.length; i++) {
      const id = rules[i]!.id
      if (seen.has(id)) return { path: [i, "id"], message: `duplicate rule id "${id}"` }
      seen.add(id)
    }
    return true
  })
)

/** The most of a strategy's symbols a message lists. */
const LISTED = 10

/**
 * The first symbol of the rule's `allowSymbols` or `denySymbols` that is not among `symbols` (the
 * strategy's), as its path in the rule and why, or undefined. Such a symbol is a typo: with
 * `allowSymbols: ["AA"]` on a strategy trading `A`, every order skipped the rule ("A is not in the
 * rule's allow list") and the limit was off without a word. Not a filter of the schema: a strategy
 * stored with such a rule still decodes, and runs as it did; a strategy given now (a file,
 * `strategies.create|update`, `rules.put`) is refused.
 */
export const unknownScopeSymbol = (
  rule: Rule,
  symbols: ReadonlyArray<string>
): { readonly path: ReadonlyArray<string | number>; readonly reason: string } | undefined => {
  const traded = new Set(symbols)
  for (const list of ["allowSymbols", "denySymbols"] as const) {
    const named = rule[list] ?? []
    for (let j = 0; j < named.length; j++) {
      if (traded.has(named[j]!)) continue
      const shown = symbols.length <= LISTED ? symbols.join(", ") : `${symbols.slice(0, LISTED).join(", ")}, … (${symbols.length} symbols)`
      const effect = list === "allowSymbols" ? "the rule would never apply to it" : "denying it would exclude nothing"
      return {
        path: [list, j],
        reason: `${named[j]} is not a symbol the strategy trades (${shown}): ${effect}; check the spelling, or add it to the strategy's symbols`
      }
    }
  }
  return undefined
}

/**
 * A rule's id or name that a terminal would act on rather than show, or that would look like
 * another (`visibleTextProblem`: control, bidirectional and other invisible format characters,
 * text not in NFC form), or undefined. Both are printed (`rules list`, and a rule's name in every
 * verdict it gives, which `runs watch` shows — an admin watching another user's run too): an ESC
 * in one was a terminal escape, and `max\u200bpos` was a second rule looking like `maxpos`.
 * Refused for a rule given now, as `unknownScopeSymbol` is, so that strategies stored before keep
 * decoding.
 */
export const unprintableText = (rule: Rule): { readonly path: ReadonlyArray<string | number>; readonly reason: string } | undefined => {
  for (const field of ["id", "name"] as const) {
    const reason = visibleTextProblem(rule[field])
    if (reason !== undefined) return { path: [field], reason }
  }
  return undefined
}

/** The first problem of a rule given now that the schema does not check (`unprintableText`, `unknownScopeSymbol`), or undefined. */
export const givenRuleProblem = (
  rule: Rule,
  symbols: ReadonlyArray<string>
): { readonly path: ReadonlyArray<string | number>; readonly reason: string } | undefined => unprintableText(rule) ?? unknownScopeSymbol(rule, symbols)

/** One problem with a rule: the field it is in (`rules[2].params.percent`) and what is wrong. */
export const RuleIssue = Schema.Struct({ field: Schema.String, message: Schema.String })
export type RuleIssue = typeof RuleIssue.Type

/** Rules that do not decode. `field` and `message` are the first issue; `issues` has them all. */
export class InvalidRule extends Schema.TaggedError<InvalidRule>()("InvalidRule", {
  field: Schema.String,
  message: Schema.String,
  issues: Schema.Array(RuleIssue)
}) {}
