/**
 * The Ollama backend against a fake Ollama on a loopback port: what it sends is what Ollama expects
 * (messages, tool calls and results, options, format, tools), what it answers is the model's text,
 * tool calls and token counts, streamed or not; and every failure is a typed `BackendError` — an
 * unknown model (404, not transient), an overloaded one (5xx), a timeout that aborts the request, no
 * server at all, a body that is not Ollama's. Interrupting a stream hangs up on the server.
 */
import * as net from "node:net"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, Stream } from "effect"
import type { BackendError } from "../../schemas/Llm.js"
import type { ChatChunk, ChatRequest } from "../../src/llm/LanguageModel.js"
import * as Ollama from "../../src/llm/Ollama.js"
import * as FakeOllama from "./FakeOllama.js"

const requestWith = (overrides: Partial<ChatRequest> = {}): ChatRequest => ({
  model: "llama3.2:3b",
  messages: [
    { role: "system", content: "You are a terse analyst." },
    { role: "user", content: "AAPL closed up 2%. Long or short?" }
  ],
  timeoutMillis: 5_000,
  offline: () => ({ content: "offline answer" }),
  ...overrides
})

const request = requestWith

const textOf = (chunks: ReadonlyArray<ChatChunk>) =>
  chunks.flatMap((c) => (c._tag === "Text" ? [c.text] : [])).join("")

/**
 * A failure as plain data. Errors that crossed a span are proxies, and vitest overflows its stack
 * printing one in a failed assertion.
 */
const plain = (error: BackendError) => {
  switch (error._tag) {
    case "LlmTimeout":
      return { _tag: error._tag, model: error.model, millis: error.millis, reason: undefined }
    case "LlmUnavailable":
      return { _tag: error._tag, model: error.model, reason: error.reason }
    case "LlmRequestFailed":
      return { _tag: error._tag, model: error.model, status: error.status, reason: error.reason, transient: error.transient }
  }
}

const failure = <A, R>(effect: Effect.Effect<A, BackendError, R>) => Effect.map(Effect.flip(effect), plain)

const collect = <E>(stream: Stream.Stream<ChatChunk, E>) => Effect.map(Stream.runCollect(stream), Chunk.toReadonlyArray)

describe("Ollama backend", () => {
  it.scoped("chat: the answer's content and token counts, and the request as Ollama expects it", () =>
    Effect.gen(function*() {
      const fake = yield* FakeOllama.start(() => ({ content: "Long, modestly.", tokensIn: 31, tokensOut: 4 }))
      const model = Ollama.make({ host: fake.url })
      expect(model.backend).toEqual({ kind: "ollama", description: `ollama at ${fake.url}` })
      const format = { type: "object", properties: { direction: { type: "string" } }, required: ["direction"] }
      const answer = yield* model.chat(request({ maxTokensOut: 64, temperature: 0.2, seed: 7, format }))
      expect(answer).toEqual({ content: "Long, modestly.", toolCalls: [], tokensIn: 31, tokensOut: 4 })

      expect(fake.calls()).toBe(1)
      const sent = fake.requests[0]!
      expect(sent.model).toBe("llama3.2:3b")
      expect(sent.stream).toBe(false)
      expect(sent.messages).toEqual([
        { role: "system", content: "You are a terse analyst." },
        { role: "user", content: "AAPL closed up 2%. Long or short?" }
      ])
      expect(sent.options).toEqual({ num_predict: 64, temperature: 0.2, seed: 7 })
      expect(sent.format).toEqual(format)
      expect(sent.tools).toBeUndefined()
    }))

  it.scoped("chat: options left out are not sent; missing counts (a cached prompt) are 0", () =>
    Effect.gen(function*() {
      const fake = yield* FakeOllama.start(() => ({ content: "ok", tokensIn: null, tokensOut: null }))
      const answer = yield* Ollama.make({ host: fake.url }).chat(request())
      expect(answer).toEqual({ content: "ok", toolCalls: [], tokensIn: 0, tokensOut: 0 })
      expect(fake.requests[0]!.options).toBeUndefined()
      expect(fake.requests[0]!.format).toBeUndefined()
    }))

  it.scoped("tools both ways: offered as Ollama tools, called back as tool calls, results sent as tool messages", () =>
    Effect.gen(function*() {
      const fake = yield* FakeOllama.start(() => ({
        content: "",
        toolCalls: [{ name: "get_quote", arguments: { symbol: "AAPL", window: 20 } }]
      }))
      const model = Ollama.make({ host: fake.url })
      const tools = [{
        name: "get_quote",
        description: "The latest quote of a symbol",
        parameters: { type: "object", properties: { symbol: { type: "string" } }, required: ["symbol"] }
      }]
      const first = yield* model.chat(request({ tools }))
      expect(first.toolCalls).toEqual([{ name: "get_quote", arguments: { symbol: "AAPL", window: 20 } }])
      expect(fake.requests[0]!.tools).toEqual([{
        type: "function",
        function: {
          name: "get_quote",
          description: "The latest quote of a symbol",
          parameters: { type: "object", properties: { symbol: { type: "string" } }, required: ["symbol"] }
        }
      }])

      fake.setHandler(() => ({ content: "AAPL trades at 231.5." }))
      const second = yield* model.chat(request({
        tools,
        messages: [
          { role: "user", content: "Quote AAPL" },
          { role: "assistant", content: "", toolCalls: first.toolCalls },
          { role: "tool", content: "231.5", toolName: "get_quote" }
        ]
      }))
      expect(second).toMatchObject({ content: "AAPL trades at 231.5.", toolCalls: [] })
      expect(fake.requests[1]!.messages).toEqual([
        { role: "user", content: "Quote AAPL" },
        { role: "assistant", content: "", tool_calls: [{ function: { name: "get_quote", arguments: { symbol: "AAPL", window: 20 } } }] },
        { role: "tool", content: "231.5", tool_name: "get_quote" }
      ])
    }))

  it.scoped("chatStream: text chunks that concatenate to the answer, then Done with the counts", () =>
    Effect.gen(function*() {
      const fake = yield* FakeOllama.start(() => ({
        chunks: ["Short", " the ", "", "rally: ", "momentum fades."],
        tokensIn: 12,
        tokensOut: 5
      }))
      const chunks = yield* collect(Ollama.make({ host: fake.url }).chatStream(request({ maxTokensOut: 32 })))
      expect(chunks).toEqual([
        { _tag: "Text", text: "Short" },
        { _tag: "Text", text: " the " },
        { _tag: "Text", text: "rally: " },
        { _tag: "Text", text: "momentum fades." },
        { _tag: "Done", tokensIn: 12, tokensOut: 5 }
      ])
      expect(textOf(chunks)).toBe("Short the rally: momentum fades.")
      expect(fake.requests[0]!.stream).toBe(true)
      expect(fake.requests[0]!.options).toEqual({ num_predict: 32 })
    }))

  it.scoped("chatStream: a tool call comes as a ToolCalls chunk before Done", () =>
    Effect.gen(function*() {
      const fake = yield* FakeOllama.start(() => ({
        content: "Checking.",
        toolCalls: [{ name: "get_quote", arguments: { symbol: "MSFT" } }],
        tokensIn: 9,
        tokensOut: 3
      }))
      const chunks = yield* collect(Ollama.make({ host: fake.url }).chatStream(request()))
      expect(chunks).toEqual([
        { _tag: "Text", text: "Checking." },
        { _tag: "ToolCalls", calls: [{ name: "get_quote", arguments: { symbol: "MSFT" } }] },
        { _tag: "Done", tokensIn: 9, tokensOut: 3 }
      ])
    }))

  it.scoped("an unknown model (404) is a request failure that is not worth retrying", () =>
    Effect.gen(function*() {
      const fake = yield* FakeOllama.start(() => ({ status: 404 }))
      const model = Ollama.make({ host: fake.url })
      const notFound = {
        _tag: "LlmRequestFailed",
        model: "nope:1b",
        status: 404,
        reason: `model "nope:1b" not found, try pulling it first`,
        transient: false
      }
      expect(yield* failure(model.chat(request({ model: "nope:1b" })))).toEqual(notFound)
      expect(yield* failure(collect(model.chatStream(request({ model: "nope:1b" }))))).toEqual(notFound)
    }))

  it.scoped("a server error (500) is a transient request failure, streamed or not, and mid-stream too", () =>
    Effect.gen(function*() {
      const fake = yield* FakeOllama.start(() => ({ status: 500, error: "llama runner process has terminated" }))
      const model = Ollama.make({ host: fake.url })
      const overloaded = {
        _tag: "LlmRequestFailed",
        model: "llama3.2:3b",
        status: 500,
        reason: "llama runner process has terminated",
        transient: true
      }
      expect(yield* failure(model.chat(request()))).toEqual(overloaded)
      expect(yield* failure(collect(model.chatStream(request())))).toEqual(overloaded)

      fake.setHandler(() => ({ chunks: ["Half an ", "answer"], streamError: "an error was encountered while running the model" }))
      const texts: Array<string> = []
      const midway = yield* failure(Stream.runForEach(model.chatStream(request()), (c) =>
        Effect.sync(() => {
          if (c._tag === "Text") texts.push(c.text)
        })))
      expect(texts).toEqual(["Half an ", "answer"])
      expect(midway).toEqual({ ...overloaded, reason: "an error was encountered while running the model" })
    }))

  it.scoped("a huge error body is quoted cut short, streamed or not, JSON or plain text", () =>
    Effect.gen(function*() {
      const huge = "E".repeat(2_000_000)
      const fake = yield* FakeOllama.start(() => ({ status: 500, error: huge }))
      const model = Ollama.make({ host: fake.url })
      const reasons: Array<string> = []
      for (const reply of [{ status: 500, error: huge }, { status: 500, raw: huge, contentType: "text/plain" }]) {
        fake.setHandler(() => reply)
        for (const error of [yield* failure(model.chat(request())), yield* failure(collect(model.chatStream(request())))]) {
          expect(error).toMatchObject({ _tag: "LlmRequestFailed", status: 500, transient: true })
          reasons.push((error as { reason: string }).reason)
        }
      }
      for (const reason of reasons) {
        expect(reason.length).toBeLessThan(1_000)
        expect(reason).toMatch(/^E+… \(2000000 characters\)$/)
      }
    }))

  it.scoped("a streamed line with 200,000 tool calls is read, not a crash (spread into a push, it overflowed the stack)", () =>
    Effect.gen(function*() {
      const calls = Array.from({ length: 200_000 }, (_, i) => ({ name: "f", arguments: { i } }))
      const fake = yield* FakeOllama.start(() => ({ toolCalls: calls }))
      // The call's limit well above the time a loaded machine takes to send and read the line (5 s was not).
      const chunks = yield* collect(Ollama.make({ host: fake.url }).chatStream(request({ timeoutMillis: 50_000 })))
      const toolCalls = chunks.flatMap((chunk) => (chunk._tag === "ToolCalls" ? chunk.calls : []))
      expect(toolCalls.length).toBe(200_000)
      expect(toolCalls.at(-1)).toEqual({ name: "f", arguments: { i: 199_999 } })
    }), { timeout: 60_000 })

  it.scoped("a model slower than the call's limit is a timeout, and the request is aborted", () =>
    Effect.gen(function*() {
      const fake = yield* FakeOllama.start(() => ({ content: "too late", delayMillis: 10_000 }))
      const error = yield* failure(Ollama.make({ host: fake.url }).chat(request({ timeoutMillis: 200 })))
      expect(error).toEqual({ _tag: "LlmTimeout", model: "llama3.2:3b", millis: 200 })
      yield* fake.awaitDisconnects(1)
    }))

  it.scoped("the limit covers the whole stream, not just its start", () =>
    Effect.gen(function*() {
      const fake = yield* FakeOllama.start(() => ({ chunks: ["one ", "two ", "three ", "four"], chunkDelayMillis: 250 }))
      const texts: Array<string> = []
      const error = yield* failure(Stream.runForEach(
        Ollama.make({ host: fake.url }).chatStream(request({ timeoutMillis: 400 })),
        (c) => Effect.sync(() => c._tag === "Text" && texts.push(c.text))
      ))
      expect(error).toEqual({ _tag: "LlmTimeout", model: "llama3.2:3b", millis: 400 })
      expect(texts.length).toBeGreaterThan(0)
      expect(texts.length).toBeLessThan(4)
      yield* fake.awaitDisconnects(1)
    }))

  it.scoped("concurrent calls have their own limits: one timing out does not abort the other", () =>
    Effect.gen(function*() {
      const fake = yield* FakeOllama.start((r) =>
        r.messages?.[0]?.content === "slow" ? { content: "slow", delayMillis: 10_000 } : { content: "fast", delayMillis: 400 }
      )
      const model = Ollama.make({ host: fake.url })
      const [slow, fast, streamed] = yield* Effect.all([
        failure(model.chat(request({ messages: [{ role: "user", content: "slow" }], timeoutMillis: 150 }))),
        model.chat(request({ messages: [{ role: "user", content: "fast" }], timeoutMillis: 5_000 })),
        collect(model.chatStream(request({ messages: [{ role: "user", content: "fast" }], timeoutMillis: 5_000 })))
      ], { concurrency: "unbounded" })
      expect(slow._tag).toBe("LlmTimeout")
      expect(fast.content).toBe("fast")
      expect(textOf(streamed)).toBe("fast")
    }))

  it.scoped("nothing listening, or no such address: unavailable, naming the cause", () =>
    Effect.gen(function*() {
      const url = yield* FakeOllama.unusedUrl
      const model = Ollama.make({ host: url })
      const refused = { _tag: "LlmUnavailable", model: "llama3.2:3b", reason: `connect ECONNREFUSED ${new URL(url).host}` }
      expect(yield* failure(model.chat(request()))).toEqual(refused)
      expect(yield* failure(collect(model.chatStream(request())))).toEqual(refused)

      // A host that is not an address cannot be reached either (and is no defect).
      const nowhere = Ollama.make({ host: "http://exa mple:11434" })
      expect((yield* failure(nowhere.chat(request())))._tag).toBe("LlmUnavailable")
      expect((yield* failure(collect(nowhere.chatStream(request()))))._tag).toBe("LlmUnavailable")
    }))

  it.scoped("a body that is not Ollama's is a failed request (502), never a defect", () =>
    Effect.gen(function*() {
      const fake = yield* FakeOllama.start(() => ({ raw: "<html>502 Bad Gateway</html>" }))
      const model = Ollama.make({ host: fake.url })
      const notJson = yield* failure(model.chat(request()))
      expect(notJson).toMatchObject({ _tag: "LlmRequestFailed", status: 502, transient: true })
      expect(notJson.reason).toMatch(/^malformed answer from Ollama: /)

      fake.setHandler(() => ({ raw: JSON.stringify({ model: "llama3.2:3b", done: true, message: { content: 42 } }) }))
      const wrongShape = yield* failure(model.chat(request()))
      expect(wrongShape).toMatchObject({ _tag: "LlmRequestFailed", status: 502 })
      expect(wrongShape.reason).toContain("message.content")

      // A stream that ends without its `done` line.
      fake.setHandler(() => ({ raw: `${JSON.stringify({ message: { role: "assistant", content: "half" }, done: false })}\n` }))
      const cut = yield* failure(collect(model.chatStream(request())))
      expect(cut).toMatchObject({ _tag: "LlmRequestFailed", status: 502 })
    }))

  it.scoped("interrupting a stream aborts the request: the server sees the client hang up", () =>
    Effect.gen(function*() {
      const fake = yield* FakeOllama.start(() => ({ chunks: ["first ", "second"], chunkDelayMillis: 30_000 }))
      const model = Ollama.make({ host: fake.url })
      // A limit far beyond the wait for the disconnect, so that only the interruption can explain it.
      const request = (overrides: Partial<ChatRequest> = {}) => requestWith({ timeoutMillis: 120_000, ...overrides })
      const first = yield* collect(model.chatStream(request()).pipe(Stream.take(1)))
      expect(first).toEqual([{ _tag: "Text", text: "first " }])
      yield* fake.awaitDisconnects(1)

      // And calls interrupted before the first byte, streamed or not.
      fake.setHandler(() => ({ content: "never", delayMillis: 30_000 }))
      const callsSoFar = (n: number) =>
        Effect.promise(async () => {
          while (fake.calls() < n) await new Promise((r) => setTimeout(r, 10))
        })
      const streaming = yield* Effect.fork(collect(model.chatStream(request())))
      yield* callsSoFar(2)
      yield* Fiber.interrupt(streaming)
      yield* fake.awaitDisconnects(2)
      const chatting = yield* Effect.fork(model.chat(request()))
      yield* callsSoFar(3)
      yield* Fiber.interrupt(chatting)
      yield* fake.awaitDisconnects(3)
    }))

  it.scoped("probe: the server's model names; unavailable when nothing answers", () =>
    Effect.gen(function*() {
      const fake = yield* FakeOllama.start(undefined, { models: ["llama3.2:3b", "qwen2.5:7b-instruct"] })
      expect(yield* Ollama.probe(fake.url)).toEqual(["llama3.2:3b", "qwen2.5:7b-instruct"])
      const url = yield* FakeOllama.unusedUrl
      expect(yield* failure(Ollama.probe(url, 1_000))).toEqual({
        _tag: "LlmUnavailable",
        model: "(any)",
        reason: `connect ECONNREFUSED ${new URL(url).host}`
      })
    }))

  it.scoped("probe: a server that accepts but never answers is unavailable after the probe's limit", () =>
    Effect.gen(function*() {
      const silent = yield* Effect.acquireRelease(
        Effect.async<{ server: net.Server; sockets: Set<net.Socket> }>((resume) => {
          const sockets = new Set<net.Socket>()
          const server = net.createServer((socket) => void sockets.add(socket))
          server.listen(0, "127.0.0.1", () => resume(Effect.succeed({ server, sockets })))
        }),
        ({ server, sockets }) =>
          Effect.async<void>((resume) => {
            for (const socket of sockets) socket.destroy()
            server.close(() => resume(Effect.void))
          })
      )
      const { port } = silent.server.address() as net.AddressInfo
      expect(yield* failure(Ollama.probe(`http://127.0.0.1:${port}`, 200))).toEqual({
        _tag: "LlmUnavailable",
        model: "(any)",
        reason: "no answer within 200 ms"
      })
    }))
})
