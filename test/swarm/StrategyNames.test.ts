/**
 * Strategy and agent names are printed to terminals (the backtest summary, `runs list`, `runs
 * watch`): a name with a control character in it — an ESC starting a terminal escape, a line
 * break faking a line of output — is refused where the strategy is decoded, naming the field.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either, Schema } from "effect"
import { Strategy } from "../../schemas/Strategy.js"
import { parseText } from "../../src/swarm/StrategyFile.js"

const minimal = { name: "m", symbols: ["AAPL"], agents: [{ type: "sma_crossover" }] }

const problemsOf = (strategy: object) => {
  const result = parseText(JSON.stringify(strategy), "s.json")
  return Either.isLeft(result) ? result.left.problems : []
}

describe("strategy names", () => {
  it("a control character in the strategy's or an agent's name is refused, naming it", () => {
    for (const name of ["evil\u001b[2J", "two\nlines", "tab\there", "bell\u0007", "c1\u009b31m"]) {
      expect(problemsOf({ ...minimal, name }), JSON.stringify(name)).toEqual([
        { field: "name", message: "no control characters (line breaks, tabs, escapes)" }
      ])
      expect(problemsOf({ ...minimal, agents: [{ type: "sma_crossover", name }] })[0]?.field, JSON.stringify(name)).toBe("agents[0].name")
    }
  })

  it("a bidirectional override or isolate in a name is refused: it reorders what a terminal shows after it", () => {
    for (const name of ["invoice\u202egpj.exe", "a\u2066b\u2069", "\u202aleft"]) {
      expect(problemsOf({ ...minimal, name }), JSON.stringify(name)).toEqual([
        { field: "name", message: "no bidirectional formatting characters (U+202A to U+202E, U+2066 to U+2069): they reorder the text shown after them" }
      ])
    }
  })

  it("an invisible format character in a name is refused, naming it and where: two names would look alike and differ", () => {
    for (const [name, at] of [
      ["momentum\u200b", "U+200B at position 9"],
      ["mo\u200cmentum", "U+200C at position 3"],
      ["\u200dmomentum", "U+200D at position 1"],
      ["mo\u200ementum", "U+200E at position 3"],
      ["mo\u2060mentum", "U+2060 at position 3"],
      ["mo\ufeffmentum", "U+FEFF at position 3"],
      ["mo\u00admentum", "U+00AD at position 3"],
      ["🚀\u{e0041}momentum", "U+E0041 at position 2"],
      // Where a joiner would choose no other form: after a letter that joins nothing after it, a letter with no virama, a flag without tags.
      ["و\u200cب", "U+200C at position 2"],
      ["क\u200dष", "U+200D at position 2"],
      ["🏴\u{e007f}momentum", "U+E007F at position 2"]
    ] as const) {
      expect(problemsOf({ ...minimal, name }), JSON.stringify(name)).toEqual([
        { field: "name", message: `no invisible format characters (${at}): the name would look the same as one without it` }
      ])
    }
  })

  it("a name not in Unicode NFC form is refused: an e and a combining accent look like é and differ from it", () => {
    expect(problemsOf({ ...minimal, name: "Cafe\u0301" })).toEqual([{
      field: "name",
      message: "not in Unicode NFC form: it would look the same as, and differ from, its composed form (é as one character, not e and a combining accent); compose it"
    }])
    expect(problemsOf({ ...minimal, name: "Caf\u00e9" })).toEqual([])
  })

  it("a name stored before the check still decodes: only names given now are refused", () => {
    for (const name of ["a\u200bb", "Cafe\u0301"]) expect(Schema.decodeUnknownSync(Strategy)({ ...minimal, name }).name).toBe(name)
  })

  it("a name of a strategy id's form is refused: the commands that take a strategy by id or name would act on that one", () => {
    expect(problemsOf({ ...minimal, name: "str_f03469b5d492" })).toEqual([
      { field: "name", message: "cannot have a strategy id's form (str_ and 12 hexadecimal digits): commands take a strategy by id or by name" }
    ])
    for (const name of ["str_f03469b5d49", "str_F03469B5D492", "my str_f03469b5d492"]) expect(problemsOf({ ...minimal, name }), name).toEqual([])
  })

  it("a joiner or tag that changes what is shown is part of the name: Persian, Indic conjuncts, emoji flag tags", () => {
    // می‌خواهم: the non-joiner keeps the first letter unjoined, visibly; without it the word is written differently.
    // क्‍ष shows a half form where क्ष shows a conjunct; 🏴󠁧󠁢󠁳󠁣󠁴󠁿 is Scotland's flag (a black flag, tag letters, a cancel tag).
    for (const name of ["می\u200cخواهم", "क्\u200dष momentum", "क्\u200cष", "ܐ\u200cܒ", "🏴\u{e0067}\u{e0062}\u{e0073}\u{e0063}\u{e0074}\u{e007f} Scots"]) {
      expect(problemsOf({ ...minimal, name }), name).toEqual([])
    }
  })

  it("any other text is a name: letters of every script, symbols, emoji", () => {
    for (const name of ["SMA crossover#2", "Élan — momentum", "均线交叉", "🚀 rocket", "a/b\\c", "👩\u200d💻 desk", "👩🏽\u200d💻 desk", "שלום momentum"]) {
      expect(problemsOf({ ...minimal, name }), name).toEqual([])
    }
  })
})
