import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as Path from "node:path"
import { parseRule } from "../../src/cli/RulesCommand.js"

/** What `parseRule` refuses a rule file `name` holding `text` for (the file in a directory of its own, removed after). */
const refusal = (name: string, text: string | Buffer) =>
  Effect.gen(function*() {
    const dir = fs.mkdtempSync(Path.join(os.tmpdir(), "swarm-rules-"))
    const file = Path.join(dir, name)
    fs.writeFileSync(file, text)
    return yield* Effect.flip(parseRule(file)).pipe(Effect.ensuring(Effect.sync(() => fs.rmSync(dir, { recursive: true }))))
  })

/** What `parseRule` reads from a rule file `name` holding `text` (removed after). */
const read = (name: string, text: string | Buffer) =>
  Effect.gen(function*() {
    const dir = fs.mkdtempSync(Path.join(os.tmpdir(), "swarm-rules-"))
    const file = Path.join(dir, name)
    fs.writeFileSync(file, text)
    return yield* parseRule(file).pipe(Effect.ensuring(Effect.sync(() => fs.rmSync(dir, { recursive: true }))))
  })

describe("rules put: the rule file", () => {
  it.effect("a leading byte-order mark (Windows editors write one) is skipped, in a JSON or YAML file and inline JSON, as in strategy files", () =>
    Effect.gen(function*() {
      const rule = { id: "cap", name: "Cap", kind: "max_position_percent", params: { percent: 20 } }
      // Before, JSON.parse refused it: "not valid JSON: Unexpected token '\ufeff' …".
      expect(yield* read("rule.json", `\ufeff${JSON.stringify(rule)}`)).toMatchObject(rule)
      expect(yield* read("rule.yaml", "\ufeffid: cap\nname: Cap\nkind: max_position_percent\nparams: { percent: 20 }\n")).toMatchObject(rule)
      expect(yield* parseRule(`\ufeff${JSON.stringify(rule)}`)).toMatchObject(rule)
      // Only a leading one: inside a value it is the value's (and a rule's id refuses it, given now, on the server).
      expect((yield* read("rule.json", JSON.stringify({ ...rule, name: "Cap\ufeff" }))).name).toBe("Cap\ufeff")
    }))

  it.effect("a UTF-16 rule file with a byte-order mark (Notepad's \"Unicode\", PowerShell 5's >) is read, as strategy files are", () =>
    Effect.gen(function*() {
      const rule = { id: "cap", name: "Cap", kind: "max_position_percent", params: { percent: 20 } }
      const le = (text: string) => Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, "utf16le")])
      // Before, read as UTF-8: "not valid JSON: Unexpected token '\ufffd' …".
      expect(yield* read("rule.json", le(JSON.stringify(rule)))).toMatchObject(rule)
      expect(yield* read("rule.yaml", le("id: cap\r\nname: Cap\r\nkind: max_position_percent\r\nparams: { percent: 20 }\r\n").swap16())).toMatchObject(rule)
      expect((yield* refusal("rule.json", Buffer.concat([le(JSON.stringify(rule)), Buffer.from([0x0a])]))).problems[0]!.message).toMatch(
        /^starts with a UTF-16 byte-order mark but has an odd number of bytes/
      )
    }))


  it.effect("a YAML file of more than one document is refused, not read to its first \"---\"", () =>
    Effect.gen(function*() {
      const error = yield* refusal("rule.yaml", "id: a\n---\nid: b\n")
      expect(error.problems).toEqual([
        { field: "", message: "a rule file holds one YAML document, and a second starts at line 2 (after a \"---\" or \"...\" line)" }
      ])
    }))

  it.effect("a YAML error is one line, ending with where it is", () =>
    Effect.gen(function*() {
      const error = yield* refusal("rule.yml", "id: a\nid: b\n")
      expect(error.problems).toEqual([{ field: "", message: "not valid YAML: Map keys must be unique at line 2, column 1" }])
    }))
})
