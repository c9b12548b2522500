/** A run's prompts in parts: each part's body once in the run, every prompt read back whole. */
import { describe, expect, it } from "@effect/vitest"
import type { LlmCall, Message } from "../../schemas/Llm.js"
import { sha256Hex } from "../../src/internal/sha256.js"
import { partsOf, PromptLedger, PromptReader } from "../../src/llm/RunPrompts.js"

const FORMAT = `{"type":"object"}`
const promptOf = (messages: ReadonlyArray<Message>) => `{"model":"m","messages":${JSON.stringify(messages)},"format":${FORMAT}}`
const callOf = (step: string, messages: ReadonlyArray<Message>): LlmCall => ({
  agent: "a" as never,
  step,
  model: "m",
  backend: "ollama",
  promptHash: sha256Hex(promptOf(messages)),
  promptParts: partsOf(messages.map((message) => ({ message, json: JSON.stringify(message) })), FORMAT),
  tokensIn: 1,
  tokensOut: 1,
  latencyMillis: 0,
  cache: "miss",
  attempts: 1,
  outcome: "ok"
})

describe("a run's prompts in parts", () => {
  it("a plain message is kept as its role and content, any other (keys in another order, tool calls) as its JSON; each body once; every prompt reads back", () => {
    const system: Message = { role: "system", content: `say "why"\n` }
    const reordered = { content: "odd order", role: "user" } as unknown as Message
    const tooled: Message = { role: "assistant", content: "", toolCalls: [{ name: "t", arguments: { x: 1 } }] }
    const first = callOf("one", [system, reordered, tooled])
    expect(first.promptParts!.map((p) => Object.keys(p).join())).toEqual(["hash,role,content", "hash,text", "hash,text", "hash,text"])
    const second = callOf("two", [system, { role: "user", content: "new" }])
    const ledger = new PromptLedger()
    const recorded = [ledger.record(first), ledger.record(second)]
    expect(recorded[1]!.promptParts!.map((p) => Object.keys(p).join())).toEqual(["hash", "hash,role,content", "hash"])
    // Recorded so already (a replay's call from its recording): as it was.
    const again = new PromptLedger()
    expect([again.record(recorded[0]!), again.record(recorded[1]!)]).toEqual(recorded)
    const reader = new PromptReader()
    for (const call of recorded) expect(sha256Hex(reader.read(call)!)).toBe(call.promptHash)
    // A part no call before gave: no prompt, rather than a wrong one.
    expect(new PromptReader().read(recorded[1]!)).toBeUndefined()
  })
})
