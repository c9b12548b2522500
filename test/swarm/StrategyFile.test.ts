import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Schema } from "effect"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { agentName, givenProblem, Strategy } from "../../schemas/Strategy.js"
import { LeaderboardMetric } from "../../schemas/Rpc.js"
import { invalidPayload } from "../../src/edge/RpcPayloads.js"
import { duplicateKey, load, MAX_DEPTH, parseText, type StrategyFileError } from "../../src/swarm/StrategyFile.js"

const examples = join(fileURLToPath(new URL(".", import.meta.url)), "../../examples")

const problems = (text: string, file = "s.json") => {
  const result = parseText(text, file)
  if (Either.isRight(result)) throw new Error("expected the strategy to be refused")
  return result.left.problems
}

const minimal = { name: "m", symbols: ["AAPL"], agents: [{ type: "sma_crossover" }] }

describe("strategy files", () => {
  it.effect("the examples decode, JSON and YAML", () =>
    Effect.gen(function*() {
      const sma = yield* load(join(examples, "sma-crossover.json"))
      expect(sma).toMatchObject({ name: "SMA crossover", allowShort: true, initialCash: 100_000_000_000 })
      expect(sma.execution.commission).toEqual({ _tag: "per_share", perShare: 5_000, minimum: 1_000_000 })
      const six = yield* load(join(examples, "six-analysts.yaml"))
      expect(six.agents.map(agentName)).toEqual([
        "sma_crossover",
        "ema_crossover",
        "rsi_reversion",
        "bollinger_breakout",
        "macd_momentum",
        "volume_surge"
      ])
      expect(six.risk.limits).toMatchObject({ maxPositionPct: 25, maxDrawdownPct: 20, minCashReservePct: 10 })
      expect(six.rules).toHaveLength(1)
    }))

  it.effect("the LLM example decodes: its llm section, and no llm section in strategies without one", () =>
    Effect.gen(function*() {
      const debate = yield* load(join(examples, "llm-debate.yaml"))
      expect(debate.llm).toMatchObject({ model: "llama3.2:3b", maxTokensOut: 256, budget: { tokens: 2_000_000, pricePerMillionIn: 0 } })
      expect(debate.agents.map(agentName)).toEqual(["llm_debate", "sma_crossover", "rsi_reversion"])
      // Optional: a strategy without it encodes as before (its run ids do not change).
      expect((yield* load(join(examples, "six-analysts.yaml"))).llm).toBeUndefined()
    }))

  it("llm settings out of range name their field", () => {
    expect(problems(JSON.stringify({ ...minimal, llm: { timeoutMillis: 5 } })).map((p) => p.field)).toEqual(["llm.timeoutMillis"])
    expect(problems(JSON.stringify({ ...minimal, llm: { budget: { tokens: 0 } } })).map((p) => p.field)).toEqual(["llm.budget.tokens"])
    expect(problems(JSON.stringify({ ...minimal, llm: { model: "rm -rf /" } })).map((p) => p.field)).toEqual(["llm.model"])
    expect(problems(JSON.stringify({ ...minimal, llm: { temprature: 1 } })).map((p) => p.field)).toEqual(["llm.temprature"])
  })

  it("every field but the name, symbols and roster has a default", () => {
    const strategy = Either.getOrThrow(parseText(JSON.stringify(minimal), "m.json"))
    expect(strategy).toMatchObject({
      initialCash: 100_000_000_000,
      allowShort: false,
      description: "",
      rules: [],
      consensus: { quorum: 0.5, minConfidence: 0 },
      sizing: { mode: "percent_of_equity", value: 10 },
      execution: { fillTiming: "next_open", slippageBps: 0 },
      metrics: { periodsPerYear: 252, riskFreeRate: 0 }
    })
    expect(strategy.agents[0]).toEqual({ type: "sma_crossover", weight: 1, params: {} })
  })

  it("errors name the field, as a path into the file", () => {
    expect(problems(JSON.stringify({ ...minimal, agents: [{ type: "sma_crossover", weight: -1 }] }))).toEqual([
      { field: "agents[0].weight", message: "a weight is between 0 and 1000" }
    ])
    const bad = problems(JSON.stringify({ ...minimal, risk: { limits: { maxPositionPct: "lots" } }, initialCash: "-5" }))
    expect(bad.map((p) => p.field).sort()).toEqual(["initialCash", "risk.limits.maxPositionPct"])
    // A limit looser than its hard gate is refused, not clamped unseen; a tighter one is taken.
    for (const [limits, field, reason] of [
      [{ maxPositionPct: 60 }, "maxPositionPct", "60 is looser than the hard gate's 50 %: a strategy may tighten a gate, never loosen it (give at most 50, or leave it out)"],
      [{ dailyLossPct: 5.5 }, "dailyLossPct", "5.5 is looser than the hard gate's 5 %: a strategy may tighten a gate, never loosen it (give at most 5, or leave it out)"],
      [{ maxDrawdownPct: 100 }, "maxDrawdownPct", "100 is looser than the hard gate's 25 %: a strategy may tighten a gate, never loosen it (give at most 25, or leave it out)"],
      [{ minCashReservePct: 0 }, "minCashReservePct", "0 is looser than the hard gate's 10 %: a strategy may tighten a gate, never loosen it (give at least 10, or leave it out)"]
    ] as const) {
      expect(problems(JSON.stringify({ ...minimal, risk: { limits } }))).toEqual([{ field: `risk.limits.${field}`, message: reason }])
    }
    expect(Either.isRight(parseText(JSON.stringify({ ...minimal, risk: { limits: { maxPositionPct: 50, dailyLossPct: 2, maxDrawdownPct: 25, minCashReservePct: 10 } } }), "s.json")))
      .toBe(true)
    expect(problems(JSON.stringify({ ...minimal, symbols: ["AAPL", "AAPL"] }))).toEqual([
      { field: "symbols[1]", message: "duplicate symbol \"AAPL\"" }
    ])
    expect(problems(JSON.stringify({ ...minimal, agents: [{ type: "sma_crossover" }, { type: "sma_crossover" }] }))[0]!.field)
      .toBe("agents[1].name")
    expect(problems(JSON.stringify({ ...minimal, sizing: { allowShort: true } }))[0]!.field).toBe("sizing.allowShort")
    expect(problems(JSON.stringify({ ...minimal, agents: [] }))).toEqual([{ field: "agents", message: "a strategy needs at least one agent" }])
    expect(problems(JSON.stringify({ ...minimal, agents: [{ type: "sma_crossover", weight: 0 }, { type: "rsi_reversion", weight: 0 }] }))).toEqual([
      { field: "agents", message: "every agent has weight 0, so no vote would ever count: give one a positive weight" }
    ])
    expect(Either.isRight(parseText(JSON.stringify({ ...minimal, agents: [{ type: "sma_crossover", weight: 0 }, { type: "rsi_reversion" }] }), "s.json"))).toBe(true)
    expect(problems(JSON.stringify({ symbols: ["AAPL"], agents: minimal.agents }))[0]!.field).toBe("name")
  })

  it("initial cash is at most 1,000,000,000 (a ninth of the exact money range), the field named with the reason", () => {
    const atMost = "initial cash must be at most 1000000000: the books hold at most 9007199254.740991 exactly, and need the rest for gains and short sales' proceeds"
    for (const initialCash of ["1000000000.000001", "9000000000", "9007199254.740991", 5e9]) {
      expect(problems(JSON.stringify({ ...minimal, initialCash }))).toEqual([{ field: "initialCash", message: atMost }])
    }
    // Past the range itself, Money's own reason.
    expect(problems(JSON.stringify({ ...minimal, initialCash: "9999999999" }))).toContainEqual(
      { field: "initialCash", message: "amount too large: at most 9007199254.740991" }
    )
    expect(Either.getOrThrow(parseText(JSON.stringify({ ...minimal, initialCash: "1000000000" }), "m.json")).initialCash).toBe(1e15)
    expect(Either.getOrThrow(parseText(JSON.stringify({ ...minimal, initialCash: 1e9 }), "m.json")).initialCash).toBe(1e15)
    // A strategy stored before the limit came in still decodes (its runs stay readable and
    // replayable); the limit is the input edges' (`givenProblem`), and the RPC edge says the same.
    const stored = Schema.decodeUnknownSync(Strategy)({ ...minimal, initialCash: "5000000000" })
    expect(stored.initialCash).toBe(5e15)
    expect(givenProblem(stored)).toEqual({ path: ["initialCash"], reason: atMost })
  })

  it("one line per problem: a default adds no 'Expected undefined', a choice lists its words once", () => {
    const hours = (days: unknown) => ({
      rules: [{ kind: "trading_hours", id: "h", name: "hours", params: { timeZone: "UTC", windows: [{ start: "09:00", end: "17:00" }], days } }]
    })
    const cases: ReadonlyArray<readonly [changes: object, field: string, message: string | RegExp]> = [
      [{ consensus: { quorum: 1.5 } }, "consensus.quorum", "a confidence is a number from 0 to 1"],
      [{ consensus: { deadlineMillis: 0 } }, "consensus.deadlineMillis", /positive/],
      [{ consensus: { adaptiveWeights: { enabld: true } } }, "consensus.adaptiveWeights.enabld", /is not a known field here \(known: enabled, /],
      [hours(["monday"]), "rules[0].params.days[0]", "expected one of mon, tue, wed, thu, fri, sat, sun, got \"monday\""],
      [{ sizing: { mode: "kelly" } }, "sizing.mode", "expected percent_of_equity or fixed_quantity, got \"kelly\""],
      [{ risk: { approval: { policy: "maybe" } } }, "risk.approval.policy", "expected one of approve, reject, pause, got \"maybe\""],
      [{ execution: { fillTiming: "later" } }, "execution.fillTiming", "expected next_open or same_close, got \"later\""],
      // A union of two schemas: their bare 'Expected …' lines are one; a member's own words win.
      [{ initialCash: true }, "initialCash", "expected a string or a number, got true"],
      [{ initialCash: "abc" }, "initialCash", /^expected a decimal amount/]
    ]
    for (const [changes, field, message] of cases) {
      expect(problems(JSON.stringify({ ...minimal, ...changes })), JSON.stringify(changes)).toEqual([
        { field, message: typeof message === "string" ? message : expect.stringMatching(message) }
      ])
    }
    // The RPC edge answers a payload's first problem: the choice's whole message, not 'Expected "mon"'.
    const decoded = Schema.decodeUnknownEither(Strategy, { errors: "all", onExcessProperty: "error" })({ ...minimal, ...hours(["monday"]) })
    expect(Either.isLeft(decoded) && invalidPayload(decoded.left).reason).toBe("expected one of mon, tue, wed, thu, fri, sat, sun, got \"monday\"")
    // A value quoted back is clipped.
    expect(problems(JSON.stringify({ ...minimal, sizing: { mode: "k".repeat(1_000) } }))[0]!.message)
      .toBe(`expected percent_of_equity or fixed_quantity, got "${"k".repeat(99)}… (1002 characters)`)
  })

  it("a rule scoped to a symbol the strategy does not trade is refused, naming the symbol; stored ones still decode", () => {
    const scoped = (scope: object) => ({
      ...minimal,
      symbols: ["A", "B"],
      rules: [
        { id: "ok", name: "ok", kind: "max_orders_per_day", allowSymbols: ["B"], denySymbols: ["A"], params: { count: 3 } },
        { id: "pos", name: "pos", kind: "max_position_percent", ...scope, params: { percent: 5 } }
      ]
    })
    expect(problems(JSON.stringify(scoped({ allowSymbols: ["A", "AA"] })))).toEqual([{
      field: "rules[1].allowSymbols[1]",
      message: "AA is not a symbol the strategy trades (A, B): the rule would never apply to it; check the spelling, or add it to the strategy's symbols"
    }])
    expect(problems(JSON.stringify(scoped({ denySymbols: ["BB"] })))).toEqual([{
      field: "rules[1].denySymbols[0]",
      message: "BB is not a symbol the strategy trades (A, B): denying it would exclude nothing; check the spelling, or add it to the strategy's symbols"
    }])
    expect(Either.isRight(parseText(JSON.stringify(scoped({ allowSymbols: ["A"], denySymbols: ["B"] })), "s.json"))).toBe(true)
    // Not a filter of the schema: a strategy stored with such a rule still decodes (and reads as it ran).
    expect(Schema.decodeUnknownSync(Strategy)(scoped({ allowSymbols: ["AA"] })).rules[1]!.allowSymbols).toEqual(["AA"])
  })

  it("a rule's id or name with a control, bidirectional or invisible format character, or not in NFC form, is refused; stored ones still decode", () => {
    const ruled = (rule: object) => ({ ...minimal, rules: [{ id: "r", name: "r", kind: "max_open_positions", params: { count: 1 }, ...rule }] })
    const control = (at: string) => `no control characters (line breaks, tabs, escapes) (${at})`
    expect(problems(JSON.stringify(ruled({ id: "evil\u001b[2J" })))).toEqual([{ field: "rules[0].id", message: control("U+001B at position 5") }])
    expect(problems(JSON.stringify(ruled({ name: "tab\there" })))).toEqual([{ field: "rules[0].name", message: control("U+0009 at position 4") }])
    expect(problems(JSON.stringify(ruled({ name: "C1 \u009b31m" })))).toEqual([{ field: "rules[0].name", message: control("U+009B at position 4") }])
    expect(problems(JSON.stringify(ruled({ name: "\u2066isolate" })))).toEqual([{
      field: "rules[0].name",
      message: "no bidirectional formatting characters (U+2066 at position 1): they reorder the text shown after them"
    }])
    // Two rules `maxpos` and `max\u200bpos` looked the same in `rules list`, and `rules delete maxpos` removed one of them.
    expect(problems(JSON.stringify(ruled({ id: "max\u200bpos" })))).toEqual([{
      field: "rules[0].id",
      message: "no invisible format characters (U+200B at position 4): the name would look the same as one without it"
    }])
    expect(problems(JSON.stringify(ruled({ name: "\ufeffMax 1" })))[0]!.message).toMatch(/^no invisible format characters \(U\+FEFF at position 1\)/)
    expect(problems(JSON.stringify(ruled({ name: "e\u0301te\u0301" })))[0]).toEqual({
      field: "rules[0].name",
      message: expect.stringMatching(/^not in Unicode NFC form: /)
    })
    expect(Either.isRight(parseText(JSON.stringify(ruled({ name: "Max 1 position — été" })), "s.json"))).toBe(true)
    expect(Schema.decodeUnknownSync(Strategy)(ruled({ name: "old\u001b[31m" })).rules[0]!.name).toBe("old\u001b[31m")
    expect(Schema.decodeUnknownSync(Strategy)(ruled({ id: "old\u200b" })).rules[0]!.id).toBe("old\u200b")
  })

  it("an adaptive-weight floor above its ceiling is refused, naming the floor", () => {
    expect(problems(JSON.stringify({ ...minimal, consensus: { adaptiveWeights: { enabled: true, floor: 3, ceiling: 2 } } }))).toEqual([{
      field: "consensus.adaptiveWeights.floor",
      message: "the floor 3 is above the ceiling 2: the weight multiplier stays within [floor, ceiling]"
    }])
    // The defaults' ceiling is 2: a floor of 3 alone is above it too.
    expect(problems(JSON.stringify({ ...minimal, consensus: { adaptiveWeights: { floor: 3 } } }))[0]!.field).toBe("consensus.adaptiveWeights.floor")
    expect(Either.isRight(parseText(JSON.stringify({ ...minimal, consensus: { adaptiveWeights: { floor: 1, ceiling: 1 } } }), "s.json"))).toBe(true)
  })

  it("malformed and hostile files are refused with a reason, never thrown", () => {
    expect(problems("{ not json")[0]!.message).toMatch(/^not valid JSON/)
    expect(problems("name: [unclosed", "s.yaml")[0]!.message).toMatch(/^not valid YAML/)
    // duplicate keys: one line, ending with where (the parser's pretty message went on after a colon)
    expect(problems("a: 1\na: 2\n", "s.yml")).toEqual([{ field: "", message: "not valid YAML: Map keys must be unique at line 2, column 1" }])
    expect(problems("{}", "strategy.txt")[0]!.message).toMatch(/unknown strategy file type/)
    expect(problems("null")[0]!.message.length).toBeGreaterThan(0)
    expect(problems("[1,2,3]")[0]!.message.length).toBeGreaterThan(0)
    // an unknown field is an error (a typo must not fall back to a default silently), __proto__ included
    expect(problems(JSON.stringify({ ...minimal, riks: {} }))[0]!.field).toBe("riks")
    expect(problems(`{"name":"m","symbols":["AAPL"],"agents":[{"type":"sma_crossover"}],"__proto__":{"x":1}}`)[0]!.field)
      .toBe("__proto__")
    expect(({} as Record<string, unknown>).x).toBeUndefined()
    // ...and inside an agent's params (a record, whose decoding dropped it: the run went on without a word)
    const proto = problems(`{"name":"m","symbols":["AAPL"],"agents":[{"type":"sma_crossover","params":{"__proto__":{"fast":-5}}}]}`)[0]!
    expect(proto).toMatchObject({ field: "agents[0].params.__proto__", message: expect.stringMatching(/"__proto__" is not accepted/) })
    expect(problems("name: m\nsymbols: [AAPL]\nagents:\n  - type: sma_crossover\n    params: {__proto__: {fast: 3}}\n", "s.yaml")[0]!)
      .toMatchObject({ field: "agents[0].params.__proto__" })
    // text no database keeps (a stored run keeps its strategy): refused naming the field, not by the database
    expect(problems(`{"name":"m","description":"a\\u0000b","symbols":["AAPL"],"agents":[{"type":"sma_crossover"}]}`)[0]!)
      .toMatchObject({ field: "description", message: expect.stringMatching(/U\+0000/) })
    // a YAML alias bomb stops at the alias cap
    const bomb = ["a: &a [x,x,x,x,x,x,x,x,x,x]"]
    for (let i = 0; i < 12; i++) bomb.push(`${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)}]`)
    expect(problems(bomb.join("\n"), "bomb.yaml")[0]!.message).toMatch(/^not valid YAML/)
    expect(problems("x".repeat(1_000_001))[0]!.message).toMatch(/larger than/)
    // a tag the parser cannot resolve was a warning (a multi-line Node warning on stderr) and the value a plain string
    const warned: Array<unknown> = []
    const onWarning = (warning: unknown) => warned.push(warning)
    process.on("warning", onWarning)
    try {
      expect(problems("name: !!js/function 'm'\nsymbols: [AAPL]\nagents: [{type: sma_crossover}]\n", "s.yaml")[0]!.message)
        .toMatch(/^not valid YAML: Unresolved tag: tag:yaml.org,2002:js\/function/)
    } finally {
      process.off("warning", onWarning)
    }
    expect(warned).toEqual([])
  })

  it("a byte-order mark at the start of a file is skipped, JSON as YAML", () => {
    const json = parseText(`\ufeff${JSON.stringify(minimal)}`, "s.json")
    expect(Either.getOrThrow(json).name).toBe("m")
    expect(Either.getOrThrow(parseText("\ufeffname: m\nsymbols: [AAPL]\nagents: [{type: sma_crossover}]\n", "s.yaml")).name).toBe("m")
    // Only at the start: elsewhere it is a character like any other.
    expect(problems(`{"name":"m",\ufeff"symbols":["AAPL"],"agents":[{"type":"sma_crossover"}]}`)[0]!.message).toMatch(/^not valid JSON/)
  })

  it("a YAML file of more than one document is refused, not read to its first \"---\" and the rest ignored", () => {
    const first = "name: m\nsymbols: [AAPL]\nagents: [{type: sma_crossover}]\n"
    expect(problems(`${first}---\nthis is: [broken\n`, "s.yaml")).toEqual([
      { field: "", message: "a strategy file holds one YAML document, and a second starts at line 4 (after a \"---\" or \"...\" line)" }
    ])
    expect(problems(`${first}...\nname: n\n`, "s.yml")[0]!.message).toMatch(/a second starts at line 5/)
    // One document, however it is marked, still reads.
    for (const text of [`---\n${first}`, `${first}...\n`, `--- # m\n${first}...\n# done\n`]) {
      expect(Either.isRight(parseText(text, "s.yaml"))).toBe(true)
    }
  })

  it("a value nesting deeper than 64 levels is refused before decoding, naming the field (5,000 levels overflowed the stack)", () => {
    const nested = (levels: number) => "[".repeat(levels) + "]".repeat(levels)
    const json = (fields: string) => `{"name":"m","symbols":["AAPL"],"agents":[{"type":"sma_crossover"${fields}}]}`
    const deep = `nests deeper than ${MAX_DEPTH} levels: a strategy is configuration, and never needs that`
    expect(problems(`{"name":"m","symbols":["AAPL"],"agents":[{"type":"sma_crossover"}],"description":${nested(5000)}}`))
      .toEqual([{ field: "description", message: deep }])
    expect(problems(json(`,"params":{"fast":${nested(20000)}}`))).toEqual([{ field: "agents[0].params.fast", message: deep }])
    expect(problems(`name: m\nsymbols: [AAPL]\nagents: [{type: sma_crossover}]\ndescription: ${nested(5000)}\n`, "s.yaml"))
      .toEqual([{ field: "", message: deep }])
    // The bound is exact: the document is level 1, so params.fast's own array is level 5.
    expect(Either.isRight(parseText(json(`,"params":{"fast":${nested(MAX_DEPTH - 4)}}`), "s.json"))).toBe(true)
    expect(problems(json(`,"params":{"fast":${nested(MAX_DEPTH - 3)}}`))).toEqual([{ field: "agents[0].params.fast", message: deep }])
  })

  it("says what it expected in plain words, not in Effect's type names", () => {
    const cases: ReadonlyArray<readonly [changes: object, field: string, message: string]> = [
      [{ consensus: 5 }, "consensus", "expected an object, got 5"],
      [{ risk: { limits: "tight" } }, "risk.limits", "expected an object, got \"tight\""],
      [{ symbols: "AAPL" }, "symbols", "expected a list, got \"AAPL\""],
      [{ agents: [{ type: "sma_crossover", params: 5 }] }, "agents[0].params", "expected an object, got 5"],
      [{ allowShort: "yes" }, "allowShort", "expected true or false, got \"yes\""],
      [{ name: 5 }, "name", "expected a string, got 5"],
      [{ consensus: { deadlineMillis: -5 } }, "consensus.deadlineMillis", "expected a positive number, got -5"],
      [{ consensus: { deadlineMillis: 1e300 } }, "consensus.deadlineMillis", "a round waits at most an hour (3600000 ms) for its analysts"],
      [{ metrics: { periodsPerYear: 1e308 } }, "metrics.periodsPerYear", "periodsPerYear must be at most 31536000 (one return a second)"],
      [{ rules: [5] }, "rules[0]", expect.stringMatching(/^a rule is an object with an id and a kind \(max_position_percent, /) as never],
      [{ execution: { commission: 5 } }, "execution.commission", expect.stringMatching(/^a commission is \{ _tag: none \}, /) as never],
      [{ execution: { commission: { _tag: "flat" } } }, "execution.commission._tag", "expected one of none, per_share, percent, got \"flat\""],
      [{ risk: { limts: {} } }, "risk.limts", expect.stringMatching(/^is not a known field here \(known: limits, /) as never]
    ]
    for (const [changes, field, message] of cases) {
      expect(problems(JSON.stringify({ ...minimal, ...changes })), JSON.stringify(changes)).toEqual([{ field, message }])
    }
    // The RPC edge says the same.
    const decoded = Schema.decodeUnknownEither(Strategy, { errors: "all", onExcessProperty: "error" })({ ...minimal, consensus: 5 })
    expect(Either.isLeft(decoded) && invalidPayload(decoded.left)).toMatchObject({ field: "consensus", reason: "expected an object, got 5" })
    // A choice among literals names every choice, not only the first.
    const metric = Schema.decodeUnknownEither(Schema.Struct({ metric: LeaderboardMetric }))({ metric: "totalreturn" })
    expect(Either.isLeft(metric) && invalidPayload(metric.left)).toMatchObject({
      field: "metric",
      reason: `expected one of "totalReturn", "sharpe", "sortino", "calmar", "maxDrawdown", "winRate", "profitFactor", got "totalreturn"`
    })
  })

  it("an error quotes at most 100 characters of a value, then its length", () => {
    const [name] = problems(`{"name":[${Array(400_000).fill(1).join(",")}],"symbols":["AAPL"],"agents":[{"type":"sma_crossover"}]}`)
    expect(name!.field).toBe("name")
    expect(name!.message).toBe(`expected a string, got [${"1,".repeat(49)}1… (800001 characters)`)
    const [key] = problems(JSON.stringify({ ...minimal, ["k".repeat(10_000)]: 1 }))
    expect(key!.field).toBe(`${"k".repeat(100)}… (10000 characters)`)
  })

  it.scoped("a UTF-16 file with a byte-order mark (Notepad's \"Unicode\", PowerShell 5's >) loads, little- or big-endian", () =>
    Effect.gen(function*() {
      const dir = mkdtempSync(join(tmpdir(), "swarm-strategy-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true })))
      const utf16 = (text: string, endian: "le" | "be") => {
        const le = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, "utf16le")])
        return endian === "le" ? le : le.swap16()
      }
      const named = { ...minimal, name: "Ünïcode 策略" }
      for (const endian of ["le", "be"] as const) {
        // Before, read as UTF-8: "not valid JSON: Unexpected token '\ufffd', \"\ufffd\ufffd{\u0000…".
        writeFileSync(join(dir, `s-${endian}.json`), utf16(JSON.stringify(named, null, 2), endian))
        expect((yield* load(join(dir, `s-${endian}.json`))).name).toBe("Ünïcode 策略")
        writeFileSync(join(dir, `s-${endian}.yaml`), utf16("name: Ünïcode 策略\r\nsymbols: [AAPL]\r\nagents: [{type: sma_crossover}]\r\n", endian))
        expect((yield* load(join(dir, `s-${endian}.yaml`))).name).toBe("Ünïcode 策略")
      }
      // A mark and then an odd number of bytes is no UTF-16: said so, not decoded to garbage.
      writeFileSync(join(dir, "odd.json"), Buffer.concat([utf16(JSON.stringify(minimal), "le"), Buffer.from([0x0a])]))
      const odd = yield* Effect.flip(load(join(dir, "odd.json")))
      expect(odd.problems).toEqual([{ field: "", message: "starts with a UTF-16 byte-order mark but has an odd number of bytes: it is cut short, or not text" }])
    }))

  it.effect("a file that cannot be read is a typed error naming it", () =>
    Effect.gen(function*() {
      const error: StrategyFileError = yield* load(join(examples, "missing.json")).pipe(Effect.flip)
      expect(error._tag).toBe("StrategyFileError")
      expect(error.message).toContain("missing.json: cannot read it")
    }))
})

describe("a JSON strategy with a key given twice", () => {
  it("is refused, naming the key's path, wherever the key is and however it is written", () => {
    const base = `"name": "j", "symbols": ["ACME"], "agents": [{ "type": "sma_crossover" }]`
    expect(problems(`{ ${base}, "execution": { "slippageBps": 5 }, "execution": { "slippageBps": 500 } }`)).toEqual([
      { field: "execution", message: "is given twice in its object (JSON would keep the last silently): give it once" }
    ])
    expect(problems(`{ ${base}, "execution": { "slippageBps": 5, "slippage\\u0042ps": 500 } }`).map((p) => p.field)).toEqual(["execution.slippageBps"])
    expect(problems(`{ "name": "j", "symbols": ["A", "B"], "agents": [{ "type": "x" }, { "type": "sma_crossover", "weight": 1, "weight": 2 }] }`)
      .map((p) => p.field)).toEqual(["agents[1].weight"])
    // The same key in two objects, and key-like text inside strings, are no duplicates.
    expect(duplicateKey(`{ "a": { "k": 1 }, "b": { "k": 2 }, "c": "\\"a\\": 1, \\"a\\": 2", "d": ["{", "}"] }`)).toBeUndefined()
    expect(duplicateKey(`[{ "k": 1 }, { "k": 1 }]`)).toBeUndefined()
  })
})
