/**
 * The system agent's tools as a model sees them: each tool's arguments as an Effect Schema, its
 * `ToolSpec` (JSON Schema an Ollama model accepts), `decodeToolCall` — which turns whatever a model
 * sent into typed arguments or a `ToolCallRejected` naming the field, and never throws — and
 * `routeQuestion`, the keyword routing of an operator's question when no model is there.
 */
import { Either, JSONSchema, ParseResult, Schema } from "effect"
import { OrderId, RoundId, Symbol } from "../../schemas/Ids.js"
import type { ToolCall, ToolSpec } from "../../schemas/Llm.js"
import { DateTimeMillis, TimeZone, utcDay } from "../../schemas/Rule.js"

// ---------------------------------------------------------------------------------------------
// Argument types. Every message is written here and none echoes the value: a model's argument can
// be megabytes long, and the rejection goes back into the model's context and the operator's log.

const DAY_MS = 86_400_000
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/

const text = (max: number, what: string) =>
  Schema.String.annotations({ message: () => `must be ${what}` }).pipe(
    Schema.maxLength(max, { message: () => `must be ${what}, at most ${max} characters` })
  )

const int = (min: number, max: number, what: string) =>
  Schema.Number.annotations({ message: () => `must be ${what}: a whole number from ${min} to ${max}` }).pipe(
    Schema.int({ message: () => `must be ${what}: a whole number from ${min} to ${max}` }),
    Schema.between(min, max, { message: () => `must be ${what}: a whole number from ${min} to ${max}` })
  )

const SYMBOL = /^[A-Za-z0-9^][A-Za-z0-9.\-_:/^=]{0,31}$/
const LOCAL_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,3})?)?$/

const decodeDateTime = ParseResult.decodeUnknownEither(DateTimeMillis)

/**
 * `2024-03-01` (a whole UTC day) or `2024-03-01T14:30:00Z` (an instant; without `Z` or an offset it
 * is read as UTC). The start of the day, or with `end`, the start of the next one: `to: 2024-03-31`
 * includes March 31st.
 */
const instantOf = (input: string, end: boolean): number | string => {
  const day = utcDay(input)
  if (day !== undefined) {
    return Either.match(day, { onLeft: () => "must be a date on the calendar", onRight: (ms) => end ? ms + DAY_MS : ms })
  }
  const decoded = decodeDateTime(LOCAL_DATE_TIME.test(input) ? `${input}Z` : input)
  return Either.isRight(decoded) ? decoded.right : "must be an ISO date (2024-03-01) or date-time (2024-03-01T14:30:00Z)"
}

const dateBound = (end: boolean) =>
  Schema.transformOrFail(text(40, "an ISO date (2024-03-01) or date-time (2024-03-01T14:30:00Z)"), Schema.Number, {
    strict: true,
    decode: (input, _, ast) => {
      const ms = instantOf(input.trim(), end)
      return typeof ms === "number" ? ParseResult.succeed(ms) : ParseResult.fail(new ParseResult.Type(ast, input, ms))
    },
    encode: (ms) => ParseResult.succeed(new Date(ms).toISOString())
  })

/** Inclusive start of a period: epoch ms. */
export const From = dateBound(false)
/** Exclusive end of a period: epoch ms (a date means the end of that day). */
export const To = dateBound(true)

const SymbolArg = text(32, "a ticker such as AAPL").pipe(
  Schema.filter((s) => SYMBOL.test(s) || "must be a ticker such as AAPL: 1 to 32 letters, digits or . - _ : / ^ ="),
  Schema.compose(Symbol)
)

/**
 * A round, `<symbol>@<bar time>`: the time as epoch ms (as rounds are named) or as an ISO date or
 * date-time, which is converted to ms, so a model (or an operator) can write `AAPL@2024-03-01T14:30Z`.
 */
export const RoundArg = Schema.transformOrFail(text(100, "a round id such as AAPL@1709301600000"), RoundId, {
  strict: true,
  decode: (input, _, ast) => {
    const fail = () =>
      ParseResult.fail(new ParseResult.Type(ast, input, "must be a round id: <symbol>@<bar time>, e.g. AAPL@1709301600000 or AAPL@2024-03-01T14:30:00Z"))
    const at = input.lastIndexOf("@")
    if (at <= 0) return fail()
    const symbol = input.slice(0, at).trim()
    const when = input.slice(at + 1).trim()
    if (!SYMBOL.test(symbol)) return fail()
    if (/^\d{1,16}$/.test(when)) return ParseResult.succeed(`${symbol}@${Number(when)}`)
    const ms = instantOf(when.replace(" ", "T"), false)
    return typeof ms === "number" ? ParseResult.succeed(`${symbol}@${ms}`) : fail()
  },
  encode: ParseResult.succeed
})

export const OrderArg = text(100, "an order id such as AAPL@1709301600000").pipe(
  Schema.filter((s) => (s.trim().length > 0 && !CONTROL.test(s)) || "must be an order id such as AAPL@1709301600000"),
  Schema.compose(OrderId)
)

const RUN_REFERENCE = "a run: its id (run_…), its number in the strategy (3) or <strategy>#<number>"

/** A run id, a run number of the same strategy (`3`, `#3`: decoded to `3`), or `<strategy>#<number>`. */
export const RunReference = Schema.transformOrFail(text(200, RUN_REFERENCE), Schema.String, {
  strict: true,
  decode: (input, _, ast) => {
    const ref = input.trim()
    const number = /^#?(\d{1,10})$/.exec(ref)
    if (number !== null && Number(number[1]) >= 1 && Number(number[1]) <= 2_147_483_647) {
      return ParseResult.succeed(String(Number(number[1])))
    }
    if (/^run_[A-Za-z0-9]{1,64}$/.test(ref)) return ParseResult.succeed(ref)
    const named = /^([^#]{1,100})#(\d{1,10})$/.exec(ref)
    if (named !== null && !CONTROL.test(named[1]!) && named[1]!.trim() === named[1] && Number(named[2]) >= 1) {
      return ParseResult.succeed(ref)
    }
    return ParseResult.fail(new ParseResult.Type(ast, input, `must be ${RUN_REFERENCE}`))
  },
  encode: ParseResult.succeed
})

const TimeZoneArg = text(64, "an IANA time zone such as America/New_York").pipe(Schema.compose(TimeZone))

const optional = <S extends Schema.Schema.Any>(schema: S, description: string) =>
  Schema.optionalWith(schema, { exact: true }).annotations({ description })

const period = <A extends { readonly from?: number; readonly to?: number }>(args: A) =>
  args.from === undefined || args.to === undefined || args.from < args.to ||
  { path: ["to"], message: "must be after from" }

// ---------------------------------------------------------------------------------------------
// The tools' arguments

export const AnalyseTradesArgs = Schema.Struct({
  symbol: optional(SymbolArg, "Only this symbol's trades, e.g. AAPL."),
  from: optional(From, "Only trades closed on or after this ISO date or date-time (UTC), e.g. 2024-03-01."),
  to: optional(To, "Only trades closed before this date-time, or on or before this ISO date, e.g. 2024-03-31."),
  top: optional(int(1, 50, "how many winners and losers to list"), "How many of the largest winners and losers to list (1 to 50, default 5)."),
  timeZone: optional(TimeZoneArg, "IANA time zone for the hours and weekdays of entry, e.g. America/New_York (default UTC).")
}).pipe(Schema.filter(period))
export type AnalyseTradesArgs = typeof AnalyseTradesArgs.Type

export const CalculateMetricsArgs = Schema.Struct({
  from: optional(From, "Start of the period, an ISO date or date-time (UTC), e.g. 2024-01-01. Default: the start of the run."),
  to: optional(To, "End of the period, an ISO date (included) or date-time (excluded). Default: the end of the run.")
}).pipe(Schema.filter(period))
export type CalculateMetricsArgs = typeof CalculateMetricsArgs.Type

const LastArg = Schema.Literal("decision", "order", "rejection").annotations({
  message: () => ({ message: "must be \"decision\", \"order\" or \"rejection\"", override: true })
})
const SideArg = Schema.Literal("buy", "sell").annotations({ message: () => ({ message: "must be \"buy\" or \"sell\"", override: true }) })

/**
 * Which round to explain: one named (`round`), the one that placed an order (`order`), or the
 * run's most recent (`last`) — an operator asks "why did we sell?" or "explain the last decision"
 * without knowing any id — narrowed by `symbol` and, for an order, `side`.
 */
export const ExplainDecisionArgs = Schema.Struct({
  round: optional(RoundArg, "The round to explain: <symbol>@<bar time>, e.g. AAPL@1709301600000 or AAPL@2024-03-01T14:30:00Z."),
  order: optional(OrderArg, "The order whose round to explain, e.g. AAPL@1709301600000."),
  last: optional(
    LastArg,
    "Instead of round or order: explain the run's most recent \"decision\" (the last round it recorded a decision in), " +
      "\"order\" (the round of the last order placed) or \"rejection\" (the round of the last intent the risk officer rejected)."
  ),
  symbol: optional(SymbolArg, "With last: only this symbol's decisions, orders or rejections, e.g. AAPL."),
  side: optional(SideArg, "With last \"order\": only buy orders or only sell orders.")
}).pipe(
  Schema.filter((args) => {
    const given = [args.round, args.order, args.last].filter((a) => a !== undefined).length
    return given > 1
      ? { path: [args.last !== undefined ? "last" : "order"], message: "give one of round, order or last, not more" }
      : given === 0
      ? { path: ["round"], message: "is missing: give round, order or last to say which decision to explain" }
      : args.symbol !== undefined && args.last === undefined
      ? { path: ["symbol"], message: "goes with last only (a round or order names its symbol already)" }
      : args.side !== undefined && args.last !== "order"
      ? { path: ["side"], message: "goes with last \"order\" only" }
      : true
  })
)
export type ExplainDecisionArgs = typeof ExplainDecisionArgs.Type

export const SuggestRulesArgs = Schema.Struct({
  minTrades: optional(
    int(1, 1_000, "the trades a pattern needs"),
    "How many trades a losing pattern needs before a rule is suggested (1 to 1000, default 5)."
  )
})
export type SuggestRulesArgs = typeof SuggestRulesArgs.Type

export const RunStatusArgs = Schema.Struct({
  symbol: optional(SymbolArg, "Only this symbol's position, e.g. AAPL.")
})
export type RunStatusArgs = typeof RunStatusArgs.Type

const AGENT = /^[A-Za-z0-9_][A-Za-z0-9_.\-:]{0,63}$/
const AgentArg = text(64, "an analyst's name such as sma_crossover").pipe(
  Schema.filter((s) => AGENT.test(s) || "must be an analyst's name such as sma_crossover: 1 to 64 letters, digits or _ . - :")
)

export const AnalystScoresArgs = Schema.Struct({
  agent: optional(AgentArg, "Only this analyst, by its name in the strategy, e.g. sma_crossover."),
  symbol: optional(SymbolArg, "Only the rounds of this symbol, e.g. AAPL.")
})
export type AnalystScoresArgs = typeof AnalystScoresArgs.Type

export const RiskChecksArgs = Schema.Struct({
  symbol: optional(SymbolArg, "Only the verdicts on this symbol, e.g. AAPL.")
})
export type RiskChecksArgs = typeof RiskChecksArgs.Type

export const CompareRunsArgs = Schema.Struct({
  other: Schema.propertySignature(RunReference).annotations({
    description: "The run to compare this one with: a run id (run_…), a run number of the same strategy (3) or <strategy>#<number>.",
    missingMessage: () => `is missing: give ${RUN_REFERENCE}`
  })
})
export type CompareRunsArgs = typeof CompareRunsArgs.Type

const tools = {
  analyse_trades: {
    args: AnalyseTradesArgs,
    description: "Analyse the run's closed trades: win rate, P&L, profit factor, and breakdowns by symbol, side, hour and " +
      "weekday of entry, holding period, position size and orders per day, with the largest winners and losers. " +
      "Use it for questions about which trades won or lost, and when."
  },
  calculate_metrics: {
    args: CalculateMetricsArgs,
    description: "Compute the run's performance metrics (total return, CAGR, volatility, Sharpe, Sortino, Calmar, max " +
      "drawdown, exposure, trade statistics), for the whole run or a period of it."
  },
  explain_decision: {
    args: ExplainDecisionArgs,
    description: "Explain one round of the run: each analyst's opinion, what its LLM agents argued (bull, bear, judge), the consensus decision with its votes and dissent, " +
      "the risk verdict with every rule and gate, any approval, and the order and its fills. Give exactly one of round, order or " +
      "last (the most recent decision, order or rejection, optionally of one symbol and, for orders, one side)."
  },
  suggest_rules: {
    args: SuggestRulesArgs,
    description: "Suggest user rules, ready to apply, that would have avoided the run's losing patterns (symbols, hours, " +
      "weekdays, position sizes, orders per day), each with its reason and evidence."
  },
  compare_runs: {
    args: CompareRunsArgs,
    description: "Compare this run with another: metrics side by side and the first decision where the two runs differ."
  },
  run_status: {
    args: RunStatusArgs,
    description: "Where the run stands now: its status (running, paused, completed…), its trading state (active, reducing, halted) " +
      "with the last change of it (who or what made it, and why), and its book as of its last recorded event: cash, equity, " +
      "exposure, realized and unrealized P&L, and each open position with its quantity, average price, mark and unrealized P&L. " +
      "It names its agents that crashed, and counts what the run has done so far: decisions, the risk officer's verdicts " +
      "(approved, reduced, rejected), orders, fills and approvals pending, and what its LLM agents used of their model and " +
      "budget (calls, cache hits, tokens, cost). Use it for questions about positions, cash, equity, how the run is doing now, " +
      "why it is halted, whether an agent is down, how many orders or rejections there were, or the LLM budget."
  },
  analyst_scores: {
    args: AnalystScoresArgs,
    description: "How each analyst did over the rounds the run recorded a decision in: what it said (long, short, flat, " +
      "its confidence), its votes and abstentions, how often it sided with the decision or dissented, and how often its " +
      "votes were right (scored against the close its horizon later, as adaptive weights score them), with the most and " +
      "least accurate named. Use it for questions about which analyst is most accurate, useful or wrong, and who dissents."
  },
  risk_checks: {
    args: RiskChecksArgs,
    description: "The risk officer's side of the run: its verdicts by outcome (approved, reduced, rejected, sent for approval), " +
      "which rules and gates rejected or reduced intents, how often and the last reason each gave, the strategy's rules as " +
      "the run has them (kind, parameters, symbols, priority, active) and the hard gates' limits. Use it for questions about " +
      "the rules in force, the gates and limits, and which rule or gate rejects or blocks orders."
  }
} as const

export type ToolName = keyof typeof tools
export const toolNames: ReadonlyArray<ToolName> = Object.keys(tools) as Array<ToolName>

/** A decoded tool call: the tool and its typed arguments. */
export type ToolRequest = { readonly [K in ToolName]: { readonly tool: K; readonly args: (typeof tools)[K]["args"]["Type"] } }[ToolName]

// ---------------------------------------------------------------------------------------------
// Tool specs

type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [key: string]: Json }

/**
 * A plain JSON Schema object: `$ref`s into `$defs` inlined (Ollama reads each property's `type`
 * directly and has no use for references), and `$schema` and the generated `title`s dropped.
 */
const plain = (value: Json, defs: { readonly [key: string]: Json }): Json => {
  if (Array.isArray(value)) return value.map((v) => plain(v, defs))
  if (value === null || typeof value !== "object") return value
  const object = value as { readonly [key: string]: Json }
  const out: Record<string, Json> = {}
  const ref = object.$ref
  if (typeof ref === "string" && ref.startsWith("#/$defs/")) {
    const target = defs[ref.slice("#/$defs/".length)]
    if (target !== undefined && typeof target === "object" && target !== null && !Array.isArray(target)) {
      Object.assign(out, plain(target, defs))
    }
  }
  for (const [key, v] of Object.entries(object)) {
    if (key === "$ref" || key === "$schema" || key === "$defs" || key === "title") continue
    out[key] = plain(v, defs)
  }
  return out
}

/** The JSON Schema of a tool's arguments, as Ollama takes it: `{ type: "object", properties, required }`. */
export const parametersOf = (schema: Schema.Schema.Any): { readonly [key: string]: unknown } => {
  const generated = JSON.parse(JSON.stringify(JSONSchema.make(schema))) as { readonly [key: string]: Json }
  const defs = (generated.$defs ?? {}) as { readonly [key: string]: Json }
  const out = plain(generated, defs) as { [key: string]: Json }
  return { ...out, type: "object", properties: out.properties ?? {}, required: out.required ?? [] }
}

/** The tools offered to the model, in a stable order. */
export const toolSpecs: ReadonlyArray<ToolSpec> = toolNames.map((name) => ({
  name,
  description: tools[name].description,
  parameters: parametersOf(tools[name].args)
}))

// ---------------------------------------------------------------------------------------------
// Decoding a model's call

/** A tool call that cannot be run: which tool, which field (`name`, `arguments`, or an argument) and why. */
export class ToolCallRejected extends Schema.TaggedError<ToolCallRejected>()("ToolCallRejected", {
  tool: Schema.String,
  field: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `${this.tool}: ${this.field} ${this.reason}`
  }
}

const argumentNames = new Map<string, ReadonlyArray<string>>(
  toolSpecs.map((spec) => [spec.name, Object.keys(spec.parameters.properties as object)])
)

/** Past this, a model's arguments are not read at all. */
const MAX_ARGUMENTS_JSON = 16_384
/**
 * Past this depth too: no tool takes more than a level or two, and arguments nested 50,000 deep
 * (a few hundred KB of `[[[…]]]`) overflowed the stack of every recursive walk over them
 * (`JSON.stringify` included), which crashed the answer before its model call was recorded.
 */
export const MAX_ARGUMENT_DEPTH = 32

/** Whether a JSON value nests arrays and objects deeper than `limit`: found without recursion, so any depth is safe to ask about. */
export const nestedDeeper = (value: unknown, limit: number = MAX_ARGUMENT_DEPTH): boolean => {
  const pending: Array<readonly [unknown, number]> = [[value, 0]]
  while (pending.length > 0) {
    const [v, depth] = pending.pop()!
    if (typeof v !== "object" || v === null) continue
    if (depth >= limit) return true
    for (const child of Array.isArray(v) ? v : Object.values(v)) pending.push([child, depth + 1])
  }
  return false
}

/** What a model is told, and what is stored, of arguments nested past `MAX_ARGUMENT_DEPTH`. */
export const TOO_DEEP = `nested deeper than ${MAX_ARGUMENT_DEPTH} levels`
const MAX_REASON = 300

const cut = (s: string, max: number): string => (s.length > max ? `${s.slice(0, max)}…` : s)

/** A name as it may be shown: an identifier as is, anything else quoted and cut short. */
const fieldName = (key: PropertyKey): string =>
  typeof key === "string" && /^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(key) ? key : JSON.stringify(cut(String(key), 40))

const reject = (tool: string, field: string, reason: string) =>
  Either.left(new ToolCallRejected({ tool, field, reason: cut(reason, MAX_REASON) }))

const decoders = new Map<string, (u: unknown) => Either.Either<unknown, ParseResult.ParseError>>(
  toolNames.map((name) => [name, Schema.decodeUnknownEither(tools[name].args as Schema.Schema<unknown, unknown>, { onExcessProperty: "error" })])
)

/** The call's arguments as a plain object: a JSON string is parsed (some models send one), `null` values mean "not given". */
const argumentsOf = (raw: unknown): { readonly [key: string]: unknown } | string => {
  let value = raw
  if (value === undefined || value === null) return {}
  if (typeof value === "string") {
    if (value.length > MAX_ARGUMENTS_JSON) return `must be at most ${MAX_ARGUMENTS_JSON} characters of JSON`
    try {
      value = JSON.parse(value.trim() === "" ? "{}" : value)
    } catch {
      return "must be a JSON object of named arguments"
    }
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "must be an object of named arguments"
  if (nestedDeeper(value)) return `must not be ${TOO_DEEP}`
  // A fresh object without a prototype: keys such as `__proto__` stay plain keys (and are then refused as unknown).
  const out: { [key: string]: unknown } = Object.create(null)
  for (const key of Object.keys(value)) {
    const v = (value as { readonly [key: string]: unknown })[key]
    if (v !== null) out[key] = v
  }
  return out
}

/**
 * A model's tool call, decoded: the tool and its typed arguments, or `ToolCallRejected` naming the
 * tool, the field and the reason. Unknown tools, unknown or missing arguments, wrong types and
 * oversized values are all rejected; nothing a model sends makes it throw.
 */
export const decodeToolCall = (call: ToolCall): Either.Either<ToolRequest, ToolCallRejected> => {
  const raw: unknown = call
  if (typeof raw !== "object" || raw === null) return reject("(unknown)", "name", "is missing: a tool call names a tool")
  const name: unknown = (raw as { readonly name?: unknown }).name
  if (typeof name !== "string" || name.trim() === "") return reject("(unknown)", "name", "is missing: a tool call names a tool")
  const decode = decoders.get(name)
  if (decode === undefined) {
    return reject(cut(name, 64), "name", `is not a tool (the tools are ${toolNames.join(", ")})`)
  }
  const args = argumentsOf((raw as { readonly arguments?: unknown }).arguments)
  if (typeof args === "string") return reject(name, "arguments", args)
  const decoded = decode(args)
  if (Either.isRight(decoded)) return Either.right({ tool: name, args: decoded.right } as ToolRequest)
  const issue = ParseResult.ArrayFormatter.formatErrorSync(decoded.left)[0]
  if (issue === undefined) return reject(name, "arguments", "are not valid")
  const field = issue.path.length === 0 ? "arguments" : issue.path.map(fieldName).join(".")
  const known = argumentNames.get(name) ?? []
  const reason = issue._tag === "Unexpected"
    ? `is not an argument of ${name} (${known.length === 0 ? "it takes none" : `its arguments: ${known.join(", ")}`})`
    : issue.message
  return reject(name, field, reason)
}

// ---------------------------------------------------------------------------------------------
// Routing a question without a model

export interface RouteContext {
  /** The run's symbols: a question naming one (in any case) is about it. */
  readonly symbols?: ReadonlyArray<string>
  /**
   * The names of the asker's strategies: a run named `<strategy>#<n>` in a question is found by
   * the longest of them written right before `#<n>`, spaces and all (`Six analysts#2`).
   */
  readonly strategies?: ReadonlyArray<string>
  /** The names of the run's analysts: one named in a question is the analyst asked about. */
  readonly agents?: ReadonlyArray<string>
}

/** Only the start of a question is read. */
const MAX_QUESTION = 2_000

const ISO = /\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,3})?)?(?:Z|[+-]\d{2}:\d{2})?)?/g
const ROUND = /([A-Za-z0-9^][A-Za-z0-9.\-_:/^=]{0,31})@(\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,3})?)?(?:Z|[+-]\d{2}:\d{2})?)?|\d{1,16})/
const ORDER = /\border\s+(?:id\s+)?([^\s,;?!]*\d[^\s,;?!]*)/i
const RUN_ID = /\b(run_[A-Za-z0-9]{1,64})\b/
const STRATEGY_RUN = /([A-Za-z0-9][A-Za-z0-9_.-]{0,99})#(\d{1,10})\b/
const RUN_NUMBER = /\brun\s*(?:number\s*|no\.?\s*)?#?\s*(\d{1,10})\b|(?:^|\s)#(\d{1,10})\b/i

/** Upper-case words that are not tickers. */
const NOT_TICKERS = new Set(["I", "A", "AN", "AND", "OR", "THE", "PNL", "P", "L", "UTC", "ID", "OK", "ISO", "AM", "PM", "FAQ", "API", "CAGR", "ETA", "VS"])

const symbolIn = (question: string, context: RouteContext): string | undefined => {
  const tokens = question.split(/[^A-Za-z0-9.\-_:/^=]+/).map((t) => t.replace(/[.:/-]+$/, "")).filter((t) => t.length > 0)
  if (context.symbols !== undefined && context.symbols.length > 0) {
    const known = new Map(context.symbols.map((s) => [s.toUpperCase(), s]))
    for (const t of tokens) {
      const hit = known.get(t.toUpperCase())
      if (hit !== undefined) return hit
    }
    return undefined
  }
  return tokens.find((t) => /^[A-Z^][A-Z0-9.\-=^]{0,9}$/.test(t) && /[A-Z]/.test(t) && !NOT_TICKERS.has(t))
}

/** The period a question names: two dates are a range; one date is a bound after since/from/after or until/to/before, else that day. */
const periodIn = (question: string): { from?: string; to?: string } => {
  const dates = Array.from(question.matchAll(ISO), (m) => ({ text: m[0].replace(" ", "T"), index: m.index }))
  if (dates.length === 0) return {}
  if (dates.length >= 2) return { from: dates[0]!.text, to: dates[1]!.text }
  const { index, text: date } = dates[0]!
  const before = question.slice(Math.max(0, index - 12), index).toLowerCase()
  if (/\b(since|from|after)\s+$/.test(before)) return { from: date }
  if (/\b(until|till|to|before|through|up to)\s+$/.test(before)) return { to: date }
  return { from: date, to: date }
}

/** Opening quotes a strategy's name may be written in, and what closes each. */
const QUOTES: Readonly<Record<string, string>> = { "\"": "\"", "'": "'", "`": "`", "\u201c": "\u201d", "\u2018": "\u2019" }
const RUN_SUFFIX = /#(\d{1,10})\b/g

/**
 * A `<strategy>#<n>` run named in a question. A strategy's name may hold spaces, so a plain
 * pattern reads only its last word: the name is the longest of the asker's strategies written
 * right before `#<n>` (in any case, starting the question or after a space or a quote), or what a
 * quote holds (`"Six analysts"#2`, `"Six analysts#2"`); else the word before `#<n>`.
 */
const namedRunIn = (question: string, strategies: ReadonlyArray<string>): string | undefined => {
  for (const match of question.matchAll(RUN_SUFFIX)) {
    const before = question.slice(0, match.index)
    const lower = before.toLowerCase()
    let best: string | undefined
    for (const name of strategies) {
      const wanted = name.toLowerCase()
      if (!lower.endsWith(wanted) || (best !== undefined && name.length <= best.length)) continue
      const edge = lower.length === wanted.length ? " " : lower[lower.length - wanted.length - 1]!
      if (/\s/.test(edge) || edge in QUOTES) best = name
    }
    if (best !== undefined) return `${best}#${match[1]}`
    const quoted = quotedNameBefore(before)
    if (quoted !== undefined) return `${quoted}#${match[1]}`
  }
  const named = STRATEGY_RUN.exec(question)
  return named === null ? undefined : `${named[1]}#${named[2]}`
}

/**
 * The name a quote holds at the end of `before`: closed right before it (`"Six analysts"`), or
 * still open (`"Six analysts`, the quote around a whole reference). An opening quote starts the
 * text or follows a space or a bracket: the apostrophe of "it's" opens nothing.
 */
const quotedNameBefore = (before: string): string | undefined => {
  const closer = before.at(-1)
  const closed = Object.keys(QUOTES).find((open) => QUOTES[open] === closer)
  const body = closed === undefined ? before : before.slice(0, -1)
  for (let i = body.length - 1; i >= 0; i--) {
    const open = body[i]!
    if (!(open in QUOTES) || (closed !== undefined && open !== closed) || (i > 0 && !/[\s([]/.test(body[i - 1]!))) continue
    const name = body.slice(i + 1).trim()
    return name.length > 0 && name.length <= 100 && !name.includes(QUOTES[open]!) ? name : undefined
  }
  return undefined
}

const runIn = (question: string, context: RouteContext): string | undefined => {
  const id = RUN_ID.exec(question)
  if (id !== null) return id[1]
  const named = namedRunIn(question, context.strategies ?? [])
  if (named !== undefined) return named
  const number = RUN_NUMBER.exec(question)
  return number === null ? undefined : (number[1] ?? number[2])
}

const has = (question: string, pattern: RegExp) => pattern.test(question)

/**
 * Words of a question about where the run stands now (`run_status`): its book (cash, equity, what
 * it holds), its trading state (halted, a breaker), how it is going, how many orders, fills,
 * decisions and rejections it has so far, approvals pending. Not "holding period" nor
 * "position size" (trade analysis), nor "how did it do" (its metrics).
 */
const NOW = new RegExp(
  [
    String.raw`\b(?:cash|equity|balance|buying power|net worth|portfolio|holdings)\b`,
    String.raw`\b(?:current|open|our|my)\s+positions?\b`,
    String.raw`\bpositions?\s+(?:in|on|of|for)\b`,
    String.raw`\b(?:largest|biggest|smallest|top)\s+(?:open\s+)?positions?\b`,
    String.raw`\bwhat\s+(?:are|is|'s)\s+(?:the\s+)?(?:open\s+)?positions?\b|\bwhat's\s+(?:the\s+)?(?:open\s+)?positions?\b`,
    String.raw`\bwhat\s+(?:do|are)\s+(?:we|you|i)\s+(?:hold|holding|own)\b`,
    String.raw`\b(?:halted|halt|reducing|trading state|breakers?)\b`,
    String.raw`\bhow\s+(?:are|is)\s+(?:we|it|things|the run|the swarm)(?:\s+(?:doing|going))?\b`,
    String.raw`\b(?:making|losing)\s+money\b`,
    String.raw`\b(?:status|summary|summari[sz]e|where\s+(?:do|does)\s+(?:we|it|the run)\s+stand)\b`,
    String.raw`\b(?:crash(?:ed|es)?|restart(?:ed|s)?|risk officer|(?:agents?|analysts?|officer|desk|ledger)\s+(?:is\s+|are\s+)?down)\b`,
    String.raw`\bhow many\b[^?.!]*\b(?:orders?|fills?|filled|decisions?|rejections?|rejected|reduced|approved|intents?|approvals?|verdicts?)\b`,
    String.raw`\b(?:pending approvals?|approvals? (?:pending|waiting))\b`,
    String.raw`\b(?:tokens?|(?:llm|model|language model)\s+(?:budget|usage|calls?|costs?|spend(?:ing)?)|budget|cache hits?)\b`
  ].join("|")
)

/**
 * Words of a question about the analysts themselves (`analyst_scores`): their accuracy, their
 * votes, who dissents. An analyst "down" or "crashed" is where the run stands (`run_status`).
 */
const ANALYSTS = new RegExp(
  [
    String.raw`\b(?:analysts?|agents?|signals?)\b[^?.!]*\b(?:accura(?:te|cy)|right|wrong|hit rate|scores?|score(?:d|card)|reliable|useful|trust(?:worthy)?|helps?|helped|pull(?:s|ing)? (?:its|their) weight|best|worst|perform(?:s|ed|ing|ance)?|dissent(?:s|ed|ing)?|disagree(?:s|d)?|agree(?:s|d)?|abstain(?:s|ed)?|vot(?:e|es|ed|ing))\b`,
    String.raw`\b(?:accura(?:te|cy)|hit rate|scorecard|dissent(?:s|ed|ing)?|abstain(?:s|ed)?)\b[^?.!]*\b(?:analysts?|agents?|signals?)\b`,
    String.raw`\b(?:which|what)\s+(?:analyst|agent)\b`,
    String.raw`\bwho\s+(?:dissent(?:s|ed)?|disagree(?:s|d)?|abstain(?:s|ed)?)\b`
  ].join("|")
)

/**
 * Words of a question about the risk officer's checks (`risk_checks`): the rules in force, the gates
 * and limits, what rejects or reduces orders. Suggesting rules is `suggest_rules`.
 */
const RISK = new RegExp(
  [
    String.raw`\b(?:rules?|gates?|checks?|limits?|risk officer)\b[^?.!]*\b(?:reject\w*|block\w*|reduc\w*|refus\w*|den(?:y|ied|ies)|cut|stop(?:s|ped|ping)?)\b`,
    String.raw`\b(?:what|which|list|show|current|active|existing|our|my)\s+(?:me\s+)?(?:the\s+)?(?:rules|gates|limits|risk (?:rules|limits|settings|checks))\b`,
    String.raw`\b(?:rules?|gates?)\s+(?:are\s+)?(?:active|in force|in place|on)\b`,
    String.raw`\b(?:hard gates?|risk limits?|risk settings|risk checks?|hard limits?)\b`,
    String.raw`\bwhat\s+(?:is\s+|keeps\s+)?(?:reject|block|refus)\w*\b`,
    String.raw`\b(?:so many|most)\b[^?.!]*\b(?:reject\w*|refus\w*|block\w*)\b`
  ].join("|")
)

/** What the swarm said or decided last ("what did the analysts say about AAPL?"): the round of its last decision. */
const SAID = /\bwhat\s+(?:did|do|does)\s+(?:the\s+)?(?:analysts?|agents?|coordinator|swarm|llm\w*|debate|judge|researchers?|bull|bear)\s+(?:say|think|decide|vote|conclude|argue)\b/

/** Words of a question about many trades ("why did we buy so many losers?"): trade analysis, not one order. */
const MANY = /\b(?:trades|losers|winners|so many|so often|always|usually)\b/

/**
 * The side of an order a question asks the reason for: "why did we buy", "why did the swarm go
 * short", "why was AAPL sold" — a buy covers a short and a sell may open one.
 */
const sideAsked = (lower: string): "buy" | "sell" | undefined => {
  const active = /\b(?:did|do|does|would|has|have)\s+(?:you|we|it|i|the (?:run|swarm|coordinator|agents?))\s+(buy|cover|go long|sell|short|go short)\b/.exec(lower)
  const passive = /\b(?:was|were)\s+(?:\S+\s+){1,3}?(bought|covered|sold|shorted)\b/.exec(lower)
  const verb = active?.[1] ?? passive?.[1]
  return verb === undefined ? undefined : /^(?:buy|cover|go long|bought|covered)$/.test(verb) ? "buy" : "sell"
}

const route = (tool: ToolName, args: { readonly [key: string]: unknown }): ToolRequest | undefined =>
  Either.getOrUndefined(decodeToolCall({ name: tool, arguments: args }))

/**
 * The tool an operator's plain question asks for, with the arguments it names (a round id, an
 * order, a symbol, dates, a run), or `undefined` when no tool fits or a needed argument is absent
 * (the caller asks again). Keyword rules, first match wins: compare, explain (a round or order
 * named, a symbol at a date, else the most recent order or decision asked about), suggest, where
 * the run stands now (no date named), metrics, trades. Dates and times in a question are read as UTC.
 */
export const routeQuestion = (question: string, context: RouteContext = {}): ToolRequest | undefined => {
  const q = question.slice(0, MAX_QUESTION)
  const lower = q.toLowerCase()

  if (has(lower, /\b(compare|comparison|versus|vs\.?|differs?|different from|difference)\b/)) {
    const other = runIn(q, context)
    if (other !== undefined) return route("compare_runs", { other })
    if (has(lower, /\bcompare\b/)) return undefined
  }

  const round = ROUND.exec(q)
  if (round !== null) return route("explain_decision", { round: `${round[1]}@${round[2]}` })
  const order = ORDER.exec(q)
  if (order !== null) return route("explain_decision", { order: order[1] })
  const symbol = symbolIn(q, context)
  const { from, to } = periodIn(q)
  // One point in time ("at", "on") names a round; a period ("since", "between") is about trades.
  if ((has(lower, /\b(why|explain|what happened|how come)\b/) || has(lower, SAID)) && symbol !== undefined && from !== undefined && from === to) {
    return route("explain_decision", { round: `${symbol}@${from}` })
  }
  // No id and no date: the most recent order or decision ("why did we sell AAPL?", "explain the last decision").
  if ((has(lower, /\b(why|explain|what happened|how come)\b/) || has(lower, SAID)) && from === undefined && to === undefined && !has(lower, MANY)) {
    const side = sideAsked(lower)
    const bySymbol = symbol === undefined ? {} : { symbol }
    if (side !== undefined || has(lower, /\b(?:last|latest|most recent|previous)\s+(?:order|trade|fill)\b/)) {
      return route("explain_decision", { last: "order", ...bySymbol, ...(side === undefined ? {} : { side }) })
    }
    // "Why was the order rejected?": the last intent the risk officer rejected (of the symbol named).
    if (has(lower, /\b(?:reject(?:ed|ion|s)?|refus(?:e|ed|es|al)|den(?:y|ied|ies)|blocked by (?:risk|a rule|a gate))\b/)) {
      return route("explain_decision", { last: "rejection", ...bySymbol })
    }
    // "What did the analysts say about AAPL?": the round of its last decision.
    if (has(lower, SAID)) return route("explain_decision", { last: "decision", ...bySymbol })
    // "Why didn't we buy AAPL?": no order to explain, the decision that placed none.
    const declined = /\b(?:didn't|did not|don't|do not|haven't|have not|wasn't|was not)\b[^?.!]*\b(?:buy|sell|short|cover|trade|bought|sold)\b/
    if (has(lower, /\b(?:last|latest|most recent|previous)\s+(?:decision|round|call|signal)\b/) || (symbol !== undefined && has(lower, declined))) {
      return route("explain_decision", { last: "decision", ...bySymbol })
    }
  }

  // Rules asked for: suggestions first; the rules in force and what rejects orders are the risk checks.
  const suggesting = has(lower, /\b(?:suggest\w*|recommend\w*|improve|what should (?:we|i) change|would (?:have\s+)?(?:help\w*|avoid\w*|prevent\w*|stop\w*|kept)|should (?:we|i) add|new rules?)\b/)
  if (!suggesting && has(lower, RISK)) return route("risk_checks", symbol === undefined ? {} : { symbol })
  if (suggesting || has(lower, /\brules?\b/)) {
    const min = /\b(?:at least|min(?:imum)?(?: of)?)\s+(\d{1,4})\s+trades?\b/.exec(lower)
    return route("suggest_rules", min === null ? {} : { minTrades: Number(min[1]) })
  }

  // Now rather than over a period: the book, the trading state, how it is going.
  if (from === undefined && to === undefined && has(lower, NOW)) return route("run_status", symbol === undefined ? {} : { symbol })

  // The analysts themselves: which is right most often, who dissents (one of them, when named).
  const agent = context.agents?.find((name) => new RegExp(`(?:^|[^A-Za-z0-9_])${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(?![A-Za-z0-9_])`, "i").test(q))
  if (has(lower, ANALYSTS) || (agent !== undefined && !has(lower, /\b(?:why|explain)\b/))) {
    return route("analyst_scores", { ...(agent === undefined ? {} : { agent }), ...(symbol === undefined ? {} : { symbol }) })
  }

  const dates = { ...(from === undefined ? {} : { from }), ...(to === undefined ? {} : { to }) }
  if (has(lower, /\b(sharpe|sortino|calmar|drawdowns?|metrics?|cagr|volatility|exposure|returns?|performance|how did (?:we|it|the run) do)\b/)) {
    return route("calculate_metrics", dates)
  }

  if (
    symbol !== undefined ||
    has(lower, /(\btrades?\b|\btraded\b|\blost\b|\blos(?:e|es|ing|er|ers|s)\b|\bwin(?:s|ners?|ning)?\b|win rate|p&l|\bpnl\b|\bprofit|\bworst\b|\bbest\b|\bhours?\b|\bweekdays?\b)/)
  ) {
    const top = /\b(?:top|worst|best|largest|biggest)\s+(\d{1,2})\b|\b(\d{1,2})\s+(?:worst|best|largest|biggest|top)\b/.exec(lower)
    const n = top === null ? undefined : Number(top[1] ?? top[2])
    return route("analyse_trades", {
      ...(symbol === undefined ? {} : { symbol }),
      ...dates,
      ...(n === undefined || n < 1 || n > 50 ? {} : { top: n })
    })
  }
  return undefined
}
