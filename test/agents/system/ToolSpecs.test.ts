import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck, Schema } from "effect"
import { ToolSpec } from "../../../schemas/Llm.js"
import type { ToolCall } from "../../../schemas/Llm.js"
import * as ToolSpecs from "../../../agents/system/ToolSpecs.js"

const DAY = 86_400_000

const ok = (name: string, args: unknown): ToolSpecs.ToolRequest => {
  const r = ToolSpecs.decodeToolCall({ name, arguments: args } as ToolCall)
  if (Either.isLeft(r)) throw new Error(r.left.message)
  return r.right
}

/** The rejection of a call, as [tool, field, reason]. */
const rejected = (call: unknown): readonly [string, string, string] => {
  const r = ToolSpecs.decodeToolCall(call as ToolCall)
  if (Either.isRight(r)) throw new Error(`expected a rejection, got ${JSON.stringify(r.right)}`)
  expect(r.left).toBeInstanceOf(ToolSpecs.ToolCallRejected)
  expect(r.left._tag).toBe("ToolCallRejected")
  return [r.left.tool, r.left.field, r.left.reason]
}

describe("toolSpecs", () => {
  it("offers the eight tools, each a ToolSpec with a plain JSON Schema object Ollama takes", () => {
    expect(ToolSpecs.toolSpecs.map((t) => t.name)).toEqual([
      "analyse_trades",
      "calculate_metrics",
      "explain_decision",
      "suggest_rules",
      "compare_runs",
      "run_status",
      "analyst_scores",
      "risk_checks"
    ])
    for (const spec of ToolSpecs.toolSpecs) {
      expect(Schema.decodeUnknownSync(ToolSpec)(spec)).toEqual(spec)
      expect(JSON.parse(JSON.stringify(spec))).toEqual(spec)
      const p = spec.parameters as { type: unknown; properties: Record<string, Record<string, unknown>>; required: unknown }
      expect(p.type).toBe("object")
      expect(Array.isArray(p.required)).toBe(true)
      expect(JSON.stringify(p)).not.toMatch(/\$ref|\$schema|\$defs/)
      expect(spec.description.length).toBeGreaterThan(40)
      for (const property of Object.values(p.properties)) {
        // Ollama reads each property's type and description, and nothing it cannot place.
        expect(["string", "integer"]).toContain(property.type)
        expect(typeof property.description).toBe("string")
      }
    }
  })

  it("states each tool's arguments", () => {
    const params = Object.fromEntries(ToolSpecs.toolSpecs.map((t) => [t.name, t.parameters]))
    expect(params.analyse_trades).toMatchObject({
      required: [],
      properties: {
        symbol: { type: "string" },
        from: { type: "string" },
        to: { type: "string" },
        top: { type: "integer", minimum: 1, maximum: 50 },
        timeZone: { type: "string" }
      }
    })
    expect(Object.keys((params.calculate_metrics as { properties: object }).properties)).toEqual(["from", "to"])
    expect(Object.keys((params.explain_decision as { properties: object }).properties)).toEqual(["round", "order", "last", "symbol", "side"])
    expect(params.explain_decision).toMatchObject({ properties: { last: { enum: ["decision", "order", "rejection"] }, side: { enum: ["buy", "sell"] } } })
    expect(params.suggest_rules).toMatchObject({ properties: { minTrades: { type: "integer", minimum: 1, maximum: 1000 } } })
    expect(params.compare_runs).toMatchObject({ required: ["other"], properties: { other: { type: "string" } } })
    expect(params.run_status).toMatchObject({ required: [], properties: { symbol: { type: "string" } } })
    expect(params.risk_checks).toMatchObject({ required: [], properties: { symbol: { type: "string" } } })
    expect(params.analyst_scores).toMatchObject({ required: [], properties: { agent: { type: "string" }, symbol: { type: "string" } } })
  })
})

describe("decodeToolCall: good calls", () => {
  it("decodes analyse_trades, dates to epoch ms (a `to` date includes its day)", () => {
    expect(ok("analyse_trades", { symbol: "AAPL", from: "2024-03-01", to: "2024-03-31", top: 10, timeZone: "America/New_York" })).toEqual({
      tool: "analyse_trades",
      args: { symbol: "AAPL", from: Date.UTC(2024, 2, 1), to: Date.UTC(2024, 2, 31) + DAY, top: 10, timeZone: "America/New_York" }
    })
    expect(ok("analyse_trades", {})).toEqual({ tool: "analyse_trades", args: {} })
    expect(ok("analyse_trades", { from: "2024-03-01T14:30:00Z", to: "2024-03-01T16:00:00+01:00" }).args).toEqual({
      from: Date.UTC(2024, 2, 1, 14, 30),
      to: Date.UTC(2024, 2, 1, 15, 0)
    })
  })

  it("reads a date-time without a zone as UTC", () => {
    expect(ok("calculate_metrics", { from: "2024-03-01T14:30" }).args).toEqual({ from: Date.UTC(2024, 2, 1, 14, 30) })
  })

  it("treats null as an argument not given (models send it for optional ones)", () => {
    expect(ok("analyse_trades", { symbol: null, top: null })).toEqual({ tool: "analyse_trades", args: {} })
    expect(ok("suggest_rules", null)).toEqual({ tool: "suggest_rules", args: {} })
  })

  it("takes arguments sent as a JSON string", () => {
    expect(ok("suggest_rules", "{\"minTrades\": 8}")).toEqual({ tool: "suggest_rules", args: { minTrades: 8 } })
    expect(ok("suggest_rules", "")).toEqual({ tool: "suggest_rules", args: {} })
  })

  it("normalises a round written with a date to the coordinator's <symbol>@<ms>", () => {
    expect(ok("explain_decision", { round: "AAPL@1709301600000" }).args).toEqual({ round: "AAPL@1709301600000" })
    expect(ok("explain_decision", { round: "AAPL@2024-03-01T14:00:00Z" }).args).toEqual({ round: "AAPL@1709301600000" })
    expect(ok("explain_decision", { round: "AAPL@2024-03-01" }).args).toEqual({ round: `AAPL@${Date.UTC(2024, 2, 1)}` })
    expect(ok("explain_decision", { order: "AAPL@1709301600000" }).args).toEqual({ order: "AAPL@1709301600000" })
    expect(ok("explain_decision", { last: "decision" }).args).toEqual({ last: "decision" })
    expect(ok("explain_decision", { last: "order", symbol: "AAPL", side: "sell" }).args).toEqual({ last: "order", symbol: "AAPL", side: "sell" })
  })

  it("takes a run as an id, a number or <strategy>#<number>", () => {
    expect(ok("compare_runs", { other: "3" }).args).toEqual({ other: "3" })
    expect(ok("compare_runs", { other: "#3" }).args).toEqual({ other: "3" })
    expect(ok("compare_runs", { other: " run_0a1b2c3d4e5f " }).args).toEqual({ other: "run_0a1b2c3d4e5f" })
    expect(ok("compare_runs", { other: "momentum v2#12" }).args).toEqual({ other: "momentum v2#12" })
  })
})

describe("decodeToolCall: hostile and malformed calls are rejected with the field named", () => {
  it("refuses unknown tools, including names that are keys of every object", () => {
    expect(rejected({ name: "rm_rf", arguments: {} })).toEqual([
      "rm_rf",
      "name",
      "is not a tool (the tools are analyse_trades, calculate_metrics, explain_decision, suggest_rules, compare_runs, run_status, analyst_scores, risk_checks)"
    ])
    for (const name of ["__proto__", "constructor", "toString", "hasOwnProperty"]) {
      expect(rejected({ name, arguments: {} })[1]).toBe("name")
    }
    expect(rejected({ name: 42, arguments: {} })).toEqual(["(unknown)", "name", "is missing: a tool call names a tool"])
    expect(rejected(null)[1]).toBe("name")
    expect(rejected("analyse_trades")[1]).toBe("name")
    expect(rejected({ name: "y".repeat(1_000_000), arguments: {} })[0].length).toBeLessThanOrEqual(65)
  })

  it("refuses wrong types", () => {
    expect(rejected({ name: "analyse_trades", arguments: { top: "5" } })).toEqual([
      "analyse_trades",
      "top",
      "must be how many winners and losers to list: a whole number from 1 to 50"
    ])
    expect(rejected({ name: "analyse_trades", arguments: { top: 5.5 } })[1]).toBe("top")
    expect(rejected({ name: "analyse_trades", arguments: { top: 0 } })[1]).toBe("top")
    expect(rejected({ name: "analyse_trades", arguments: { top: 51 } })[1]).toBe("top")
    expect(rejected({ name: "analyse_trades", arguments: { top: [5] } })[1]).toBe("top")
    expect(rejected({ name: "analyse_trades", arguments: { symbol: 123 } })).toEqual([
      "analyse_trades",
      "symbol",
      "must be a ticker such as AAPL"
    ])
    expect(rejected({ name: "analyse_trades", arguments: { symbol: { $gt: "" } } })[1]).toBe("symbol")
    expect(rejected({ name: "analyse_trades", arguments: { symbol: "AA PL; drop" } })[1]).toBe("symbol")
    expect(rejected({ name: "suggest_rules", arguments: { minTrades: true } })[1]).toBe("minTrades")
    expect(rejected({ name: "compare_runs", arguments: { other: 3 } })[1]).toBe("other")
  })

  it("refuses bad dates and periods", () => {
    expect(rejected({ name: "analyse_trades", arguments: { from: "2024-02-30" } })).toEqual([
      "analyse_trades",
      "from",
      "must be a date on the calendar"
    ])
    expect(rejected({ name: "calculate_metrics", arguments: { to: "yesterday" } })[1]).toBe("to")
    expect(rejected({ name: "calculate_metrics", arguments: { from: "2024-03-02", to: "2024-03-01" } })).toEqual([
      "calculate_metrics",
      "to",
      "must be after from"
    ])
    // A `to` date includes its day, so the same day for both is a one-day period.
    expect(ok("calculate_metrics", { from: "2024-03-01", to: "2024-03-01" }).args).toEqual({
      from: Date.UTC(2024, 2, 1),
      to: Date.UTC(2024, 2, 2)
    })
    expect(rejected({ name: "analyse_trades", arguments: { timeZone: "Mars/Olympus" } })[1]).toBe("timeZone")
  })

  it("refuses huge strings without echoing them", () => {
    const huge = "A".repeat(1_000_000)
    for (const [name, field] of [["analyse_trades", "symbol"], ["analyse_trades", "from"], ["explain_decision", "round"], ["compare_runs", "other"], ["analyse_trades", "timeZone"]] as const) {
      const [, f, reason] = rejected({ name, arguments: { [field]: huge } })
      expect(f).toBe(field)
      expect(reason.length).toBeLessThanOrEqual(301)
      expect(reason).not.toContain("AAAAAAAAAA")
    }
    expect(rejected({ name: "suggest_rules", arguments: JSON.stringify({ minTrades: 5, pad: huge }) })).toEqual([
      "suggest_rules",
      "arguments",
      "must be at most 16384 characters of JSON"
    ])
  })

  it("refuses arguments nested past a depth before anything walks them", () => {
    const deep = JSON.parse(`{"symbol":${"[".repeat(50_000)}${"]".repeat(50_000)}}`) as unknown
    expect(rejected({ name: "analyse_trades", arguments: deep })).toEqual(["analyse_trades", "arguments", "must not be nested deeper than 32 levels"])
    expect(ToolSpecs.nestedDeeper({ a: [[1]] }, 3)).toBe(false)
    expect(ToolSpecs.nestedDeeper({ a: [[[1]]] }, 3)).toBe(true)
  })

  it("refuses unknown fields, prototype-pollution keys included, and pollutes nothing", () => {
    expect(rejected({ name: "analyse_trades", arguments: { symbol: "AAPL", limit: 3 } })).toEqual([
      "analyse_trades",
      "limit",
      "is not an argument of analyse_trades (its arguments: symbol, from, to, top, timeZone)"
    ])
    const polluting = JSON.parse("{\"__proto__\": {\"polluted\": true}, \"minTrades\": 5}")
    expect(rejected({ name: "suggest_rules", arguments: polluting })).toEqual([
      "suggest_rules",
      "__proto__",
      "is not an argument of suggest_rules (its arguments: minTrades)"
    ])
    expect(rejected({ name: "suggest_rules", arguments: "{\"__proto__\": {\"polluted\": true}}" })[1]).toBe("__proto__")
    expect(rejected({ name: "suggest_rules", arguments: { constructor: { prototype: { polluted: true } } } })[1]).toBe("constructor")
    expect(({} as { polluted?: boolean }).polluted).toBeUndefined()
    const weird = rejected({ name: "suggest_rules", arguments: { ["k".repeat(10_000)]: 1 } })
    expect(weird[1].length).toBeLessThan(50)
  })

  it("refuses arguments that are not an object of named arguments", () => {
    expect(rejected({ name: "suggest_rules", arguments: [1, 2] })).toEqual(["suggest_rules", "arguments", "must be an object of named arguments"])
    expect(rejected({ name: "suggest_rules", arguments: 7 })[1]).toBe("arguments")
    expect(rejected({ name: "suggest_rules", arguments: "{not json" })).toEqual(["suggest_rules", "arguments", "must be a JSON object of named arguments"])
    expect(rejected({ name: "suggest_rules", arguments: "[]" })[1]).toBe("arguments")
  })

  it("needs exactly one of round, order and last, and a run to compare with", () => {
    expect(rejected({ name: "explain_decision", arguments: {} })).toEqual([
      "explain_decision",
      "round",
      "is missing: give round, order or last to say which decision to explain"
    ])
    expect(rejected({ name: "explain_decision", arguments: { round: "AAPL@1", order: "AAPL@1" } })).toEqual([
      "explain_decision",
      "order",
      "give one of round, order or last, not more"
    ])
    expect(rejected({ name: "explain_decision", arguments: { round: "AAPL@1", last: "order" } })).toEqual([
      "explain_decision",
      "last",
      "give one of round, order or last, not more"
    ])
    expect(rejected({ name: "explain_decision", arguments: { last: "trade" } })).toEqual(["explain_decision", "last", "must be \"decision\", \"order\" or \"rejection\""])
    expect(rejected({ name: "explain_decision", arguments: { round: "AAPL@1", symbol: "AAPL" } })).toEqual([
      "explain_decision",
      "symbol",
      "goes with last only (a round or order names its symbol already)"
    ])
    expect(rejected({ name: "explain_decision", arguments: { last: "decision", side: "buy" } })).toEqual([
      "explain_decision",
      "side",
      "goes with last \"order\" only"
    ])
    expect(rejected({ name: "explain_decision", arguments: { last: "order", side: "long" } })).toEqual(["explain_decision", "side", "must be \"buy\" or \"sell\""])
    expect(rejected({ name: "explain_decision", arguments: { last: "order", symbol: "A A P L" } })[1]).toBe("symbol")
    // A model's argument can be megabytes long: the message does not echo it.
    expect(rejected({ name: "explain_decision", arguments: { last: "x".repeat(100_000) } })[2]).toBe("must be \"decision\", \"order\" or \"rejection\"")
    expect(rejected({ name: "explain_decision", arguments: { round: "AAPL" } })[1]).toBe("round")
    expect(rejected({ name: "explain_decision", arguments: { round: "@123" } })[1]).toBe("round")
    expect(rejected({ name: "explain_decision", arguments: { order: "a\u0000b" } })[1]).toBe("order")
    expect(rejected({ name: "compare_runs", arguments: {} })).toEqual([
      "compare_runs",
      "other",
      "is missing: give a run: its id (run_…), its number in the strategy (3) or <strategy>#<number>"
    ])
    expect(rejected({ name: "compare_runs", arguments: { other: "#0" } })[1]).toBe("other")
    expect(rejected({ name: "compare_runs", arguments: { other: "drop table runs" } })[1]).toBe("other")
  })

  it("never throws, whatever a model sends", () => {
    FastCheck.assert(
      FastCheck.property(
        FastCheck.oneof(FastCheck.constantFrom(...ToolSpecs.toolNames), FastCheck.string()),
        FastCheck.oneof(
          FastCheck.anything({ withObjectString: true, withNullPrototype: true }),
          FastCheck.dictionary(
            FastCheck.oneof(FastCheck.constantFrom("symbol", "from", "to", "top", "round", "order", "other", "minTrades", "__proto__"), FastCheck.string()),
            FastCheck.anything()
          )
        ),
        (name, args) => {
          const r = ToolSpecs.decodeToolCall({ name, arguments: args } as ToolCall)
          return Either.isLeft(r) ? r.left.reason.length <= 301 : r.right.tool === name
        }
      ),
      { numRuns: 500, seed: 42 }
    )
  })
})

describe("routeQuestion", () => {
  const route = (q: string, symbols?: ReadonlyArray<string>) => ToolSpecs.routeQuestion(q, symbols === undefined ? {} : { symbols })

  it("routes why and explain questions to explain_decision, with the round", () => {
    expect(route("Why did we buy AAPL at 2024-03-01T14:00Z?")).toEqual({ tool: "explain_decision", args: { round: "AAPL@1709301600000" } })
    expect(route("explain round MSFT@1709301600000")).toEqual({ tool: "explain_decision", args: { round: "MSFT@1709301600000" } })
    expect(route("why was aapl sold on 2024-03-04", ["AAPL", "MSFT"])).toEqual({
      tool: "explain_decision",
      args: { round: `AAPL@${Date.UTC(2024, 2, 4)}` }
    })
    expect(route("what happened to order 42-b7?")).toEqual({ tool: "explain_decision", args: { order: "42-b7" } })
  })

  it("routes why and explain questions naming no round or date to the most recent order or decision", () => {
    expect(route("why did you buy ACME?", ["ACME", "GLOBEX"])).toEqual({ tool: "explain_decision", args: { last: "order", symbol: "ACME", side: "buy" } })
    expect(route("Why did we go short on globex", ["ACME", "GLOBEX"])).toEqual({
      tool: "explain_decision",
      args: { last: "order", symbol: "GLOBEX", side: "sell" }
    })
    expect(route("why was ACME sold?", ["ACME"])).toEqual({ tool: "explain_decision", args: { last: "order", symbol: "ACME", side: "sell" } })
    expect(route("why did the swarm sell")).toEqual({ tool: "explain_decision", args: { last: "order", side: "sell" } })
    expect(route("explain the last order")).toEqual({ tool: "explain_decision", args: { last: "order" } })
    expect(route("explain the last decision")).toEqual({ tool: "explain_decision", args: { last: "decision" } })
    expect(route("What happened in the latest round for ACME?", ["ACME"])).toEqual({
      tool: "explain_decision",
      args: { last: "decision", symbol: "ACME" }
    })
    // About many trades, or a period: trade analysis, as before.
    expect(route("why did we buy so many losers?")).toEqual({ tool: "analyse_trades", args: {} })
    expect(route("why did we sell ACME since 2024-01-01?", ["ACME"])).toEqual({ tool: "analyse_trades", args: { symbol: "ACME", from: Date.UTC(2024, 0, 1) } })
    // Buying without a why is no question about a decision.
    expect(route("did we buy ACME?", ["ACME"])).toEqual({ tool: "analyse_trades", args: { symbol: "ACME" } })
    // Rejected: the last intent the risk officer rejected.
    expect(route("why was the order rejected?")).toEqual({ tool: "explain_decision", args: { last: "rejection" } })
    expect(route("Why did risk refuse GLOBEX?", ["GLOBEX"])).toEqual({ tool: "explain_decision", args: { last: "rejection", symbol: "GLOBEX" } })
    // What the swarm said last: the round of the last decision (of the symbol named).
    expect(route("What did the analysts say about ACME last?", ["ACME", "GLOBEX"])).toEqual({ tool: "explain_decision", args: { last: "decision", symbol: "ACME" } })
    expect(route("what did the judge decide?")).toEqual({ tool: "explain_decision", args: { last: "decision" } })
    expect(route("what did the analysts say about ACME on 2024-03-01?", ["ACME"])).toEqual({ tool: "explain_decision", args: { round: `ACME@${Date.UTC(2024, 2, 1)}` } })
    // Not buying: no order to explain, the symbol's last decision.
    expect(route("Why didn't we buy GLOBEX?", ["ACME", "GLOBEX"])).toEqual({ tool: "explain_decision", args: { last: "decision", symbol: "GLOBEX" } })
  })

  it("routes questions about now (the book, the trading state, how it is going) to run_status", () => {
    const symbols = ["ACME", "GLOBEX"]
    for (const q of ["How much cash do we have?", "what's the equity now", "How are we doing?", "how is the run going", "are we making money?", "Why are we halted?", "is a breaker on?", "summarize the run", "what do we hold?", "show the portfolio", "is the risk officer down?", "did an analyst crash?"]) {
      expect(route(q, symbols), q).toEqual({ tool: "run_status", args: {} })
    }
    expect(route("what is our current position in acme?", symbols)).toEqual({ tool: "run_status", args: { symbol: "ACME" } })
    expect(route("position in GLOBEX", symbols)).toEqual({ tool: "run_status", args: { symbol: "GLOBEX" } })
    expect(route("what's the largest position?", symbols)).toEqual({ tool: "run_status", args: {} })
    for (const q of ["how many tokens have we used?", "is the LLM budget spent?", "how much of the budget is left?", "what did the model calls cost?", "how many cache hits?"]) {
      expect(route(q, symbols), q).toEqual({ tool: "run_status", args: {} })
    }
    expect(route("what are the open positions?", symbols)).toEqual({ tool: "run_status", args: {} })
    // How many so far: counts of orders, fills, decisions, verdicts, approvals pending.
    for (const q of ["How many orders were rejected?", "how many orders have we placed", "how many decisions so far?", "how many intents did risk reduce?", "are there pending approvals?"]) {
      expect(route(q, symbols), q).toEqual({ tool: "run_status", args: {} })
    }
    expect(route("how many orders on ACME got filled?", symbols)).toEqual({ tool: "run_status", args: { symbol: "ACME" } })
    // Why, not how many: the rejection explained; trades counted by trade analysis.
    expect(route("why was the order rejected?", symbols)).toEqual({ tool: "explain_decision", args: { last: "rejection" } })
    expect(route("how many trades lost money?", symbols)).toEqual({ tool: "analyse_trades", args: {} })
    // Over a period, or looking back: metrics and trades, as before.
    expect(route("exposure since 2024-01-01")).toEqual({ tool: "calculate_metrics", args: { from: Date.UTC(2024, 0, 1) } })
    expect(route("what was our exposure?")).toEqual({ tool: "calculate_metrics", args: {} })
    expect(route("how did the run do?")).toEqual({ tool: "calculate_metrics", args: {} })
    expect(route("trades by holding period")).toEqual({ tool: "analyse_trades", args: {} })
  })

  it("routes questions about the analysts (accuracy, votes, dissent) to analyst_scores, with the analyst or symbol named", () => {
    const context = { symbols: ["ACME", "GLOBEX"], agents: ["sma_crossover", "rsi_reversion", "llm.debate-2"] }
    const ask = (q: string) => ToolSpecs.routeQuestion(q, context)
    for (
      const q of [
        "Which analyst is the most accurate?",
        "how accurate are the analysts?",
        "which agent is wrong most often?",
        "who dissents most?",
        "what is each analyst's hit rate?",
        "did the analysts agree?",
        "Which analyst should I trust?",
        "how did the agents perform?",
        "show the analysts' scorecard",
        "accuracy of the agents"
      ]
    ) {
      expect(ask(q), q).toEqual({ tool: "analyst_scores", args: {} })
    }
    expect(ask("How accurate is sma_crossover?")).toEqual({ tool: "analyst_scores", args: { agent: "sma_crossover" } })
    expect(ask("how did RSI_REVERSION do on acme")).toEqual({ tool: "analyst_scores", args: { agent: "rsi_reversion", symbol: "ACME" } })
    expect(ask("is llm.debate-2 any good?")).toEqual({ tool: "analyst_scores", args: { agent: "llm.debate-2" } })
    expect(ask("which analyst was best on GLOBEX?")).toEqual({ tool: "analyst_scores", args: { symbol: "GLOBEX" } })
    // An analyst down is where the run stands; an analyst's round is explained; a name inside another word is none.
    expect(ask("is an analyst down?")).toEqual({ tool: "run_status", args: {} })
    expect(ask("did an agent crash?")).toEqual({ tool: "run_status", args: {} })
    expect(ask("why did sma_crossover say long on ACME at 2024-03-01?")).toEqual({ tool: "explain_decision", args: { round: `ACME@${Date.UTC(2024, 2, 1)}` } })
    expect(ask("how did my_sma_crossover_v2 do?")).toBeUndefined()
    expect(ask("which trades lost money?")).toEqual({ tool: "analyse_trades", args: {} })
    expect(ask("what is the win rate?")).toEqual({ tool: "analyse_trades", args: {} })
    // A model's call: a name of letters, digits and _ . - : only.
    expect(rejected({ name: "analyst_scores", arguments: { agent: "a b" } })).toEqual([
      "analyst_scores",
      "agent",
      "must be an analyst's name such as sma_crossover: 1 to 64 letters, digits or _ . - :"
    ])
  })

  it("routes trade questions to analyse_trades, with symbol, period and top", () => {
    expect(route("Which trades lost money?")).toEqual({ tool: "analyse_trades", args: {} })
    expect(route("show me the top 10 winners")).toEqual({ tool: "analyse_trades", args: { top: 10 } })
    expect(route("how did tsla trades do since 2024-02-01", ["TSLA"])).toEqual({
      tool: "analyse_trades",
      args: { symbol: "TSLA", from: Date.UTC(2024, 1, 1) }
    })
    expect(route("P&L on MSFT between 2024-01-01 and 2024-01-31")).toEqual({
      tool: "analyse_trades",
      args: { symbol: "MSFT", from: Date.UTC(2024, 0, 1), to: Date.UTC(2024, 1, 1) }
    })
    expect(route("what's our win rate?")).toEqual({ tool: "analyse_trades", args: {} })
    expect(route("why did AAPL lose money since 2024-01-01?")).toEqual({
      tool: "analyse_trades",
      args: { symbol: "AAPL", from: Date.UTC(2024, 0, 1) }
    })
  })

  it("routes metric questions to calculate_metrics", () => {
    expect(route("What is the Sharpe ratio?")).toEqual({ tool: "calculate_metrics", args: {} })
    expect(route("max drawdown from 2024-01-01 to 2024-06-30")).toEqual({
      tool: "calculate_metrics",
      args: { from: Date.UTC(2024, 0, 1), to: Date.UTC(2024, 6, 1) }
    })
  })

  it("routes rule questions to suggest_rules", () => {
    expect(route("Can you suggest some rules?")).toEqual({ tool: "suggest_rules", args: {} })
    expect(route("which rules would help, with at least 8 trades each")).toEqual({ tool: "suggest_rules", args: { minTrades: 8 } })
  })

  it("routes questions about the rules in force, the gates and what rejects orders to risk_checks", () => {
    const symbols = ["ACME", "GLOBEX"]
    for (
      const q of [
        "what rules are active?",
        "Which rule rejected the most orders?",
        "show me the rules",
        "list the gates",
        "what are the risk limits?",
        "which gate blocks our orders?",
        "what is blocking the orders?",
        "why were so many orders rejected?",
        "what keeps rejecting the buys?",
        "are any rules in force?"
      ]
    ) {
      expect(route(q, symbols), q).toEqual({ tool: "risk_checks", args: {} })
    }
    expect(route("which rule rejects GLOBEX?", symbols)).toEqual({ tool: "risk_checks", args: { symbol: "GLOBEX" } })
    // Suggesting is suggest_rules; one rejection's why is explained; how many is the run's status.
    expect(route("what rules would have avoided the losses?", symbols)).toEqual({ tool: "suggest_rules", args: {} })
    expect(route("recommend rules to cut losses", symbols)).toEqual({ tool: "suggest_rules", args: {} })
    expect(route("rules?", symbols)).toEqual({ tool: "suggest_rules", args: {} })
    expect(route("why was the order rejected?", symbols)).toEqual({ tool: "explain_decision", args: { last: "rejection" } })
    expect(route("how many orders were rejected?", symbols)).toEqual({ tool: "run_status", args: {} })
  })

  it("routes comparisons to compare_runs, with the run", () => {
    expect(route("compare with run 3")).toEqual({ tool: "compare_runs", args: { other: "3" } })
    expect(route("how does this differ from momentum#2?")).toEqual({ tool: "compare_runs", args: { other: "momentum#2" } })
    expect(route("compare this run to run_0a1b2c")).toEqual({ tool: "compare_runs", args: { other: "run_0a1b2c" } })
  })

  it("reads a run of a strategy whose name holds spaces: the asker's longest name before #n, or a quoted one", () => {
    const strategies = ["SMA crossover", "Six analysts", "analysts", "SMA B"]
    const compare = (q: string) => ToolSpecs.routeQuestion(q, { strategies })
    const other = (ref: string) => ({ tool: "compare_runs", args: { other: ref } })
    expect(compare("compare with Six analysts#2")).toEqual(other("Six analysts#2"))
    expect(compare("compare with six ANALYSTS#2")).toEqual(other("Six analysts#2"))
    expect(compare("compare this run with SMA B#1")).toEqual(other("SMA B#1"))
    expect(compare("how does it differ from SMA crossover#12?")).toEqual(other("SMA crossover#12"))
    // A name ends where a word does: "my analysts#2" is analysts', not a longer name's tail.
    expect(compare("compare with my analysts#2")).toEqual(other("analysts#2"))
    expect(compare("compare with XSMA B#1")).toEqual(other("B#1"))
    // Not the asker's (or renamed since): what a quote holds, closed before # or around the reference.
    expect(compare('compare with "Old name"#3')).toEqual(other("Old name#3"))
    expect(compare("compare with \u201cOld name#3\u201d")).toEqual(other("Old name#3"))
    expect(compare("what's different from 'Old name'#3")).toEqual(other("Old name#3"))
    // An apostrophe opens nothing; without a known or quoted name, the word before #n as before.
    expect(compare("what's different from momentum#2?")).toEqual(other("momentum#2"))
    expect(ToolSpecs.routeQuestion("compare with Six analysts#2")).toEqual(other("analysts#2"))
    expect(() => compare(`compare ${"x#1 ".repeat(1_000)}`)).not.toThrow()
  })

  it("routes nothing when no tool fits or a needed argument is missing", () => {
    expect(route("what's the weather like?")).toBeUndefined()
    expect(route("compare them")).toBeUndefined()
    expect(route("why?")).toBeUndefined()
    expect(route("")).toBeUndefined()
    expect(() => route("why ".repeat(100_000))).not.toThrow()
  })
})
