/**
 * Choosing the backend at start-up: Ollama when it answers (saying which models it has), the
 * offline model when it does not or when told to (saying so plainly); `OLLAMA_HOST` read as Ollama's
 * own client reads it, and refused by name when it is not an address. The offline model answers with
 * the caller's deterministic answer, streamed in pieces that add up to it exactly.
 */
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, ConfigProvider, Effect, Either, Stream } from "effect"
import type { ToolCall } from "../../schemas/Llm.js"
import * as Backends from "../../src/llm/Backends.js"
import { type ChatRequest, LanguageModel } from "../../src/llm/LanguageModel.js"
import * as Offline from "../../src/llm/Offline.js"
import * as FakeOllama from "./FakeOllama.js"

const request = (content: string, toolCalls?: ReadonlyArray<ToolCall>): ChatRequest => ({
  model: "llama3.2:3b",
  messages: [{ role: "user", content: "AAPL?" }],
  timeoutMillis: 5_000,
  offline: () => (toolCalls === undefined ? { content } : { content, toolCalls })
})

const offlineRole = "LLM agents answer with the deterministic offline analyst"

/** Reads `Backends.config` from these variables alone. */
const configFrom = (env: Record<string, string>) =>
  Effect.either(Backends.config).pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))

describe("Backends.select", () => {
  it.scoped("Ollama answers: the Ollama backend, naming its models, and the layer talks to it", () =>
    Effect.gen(function*() {
      const fake = yield* FakeOllama.start(() => ({ content: "from ollama" }))
      const selected = yield* Backends.select({ host: fake.url })
      expect(selected.info).toEqual({ kind: "ollama", description: `ollama at ${fake.url} (2 models: llama3.2:3b, qwen2.5:7b)` })
      expect(selected.models).toEqual(["llama3.2:3b", "qwen2.5:7b"])
      const model = yield* Effect.provide(LanguageModel, selected.layer)
      expect(model.backend).toEqual(selected.info)
      expect((yield* model.chat(request("offline answer"))).content).toBe("from ollama")
      expect(fake.calls()).toBe(1)
    }))

  it.scoped("the description counts models, lists a few, and says when there are none", () =>
    Effect.gen(function*() {
      const fake = yield* FakeOllama.start(undefined, { models: ["llama3.2:3b"] })
      expect((yield* Backends.select({ host: fake.url })).info.description).toBe(`ollama at ${fake.url} (1 model: llama3.2:3b)`)
      fake.setModels(["a:1b", "b:1b", "c:1b", "d:1b", "e:1b", "f:1b", "g:1b"])
      expect((yield* Backends.select({ host: fake.url })).info.description)
        .toBe(`ollama at ${fake.url} (7 models: a:1b, b:1b, c:1b, d:1b, e:1b, …)`)
      fake.setModels([])
      const none = yield* Backends.select({ host: fake.url })
      expect(none.info.kind).toBe("ollama")
      expect(none.info.description).toBe(`ollama at ${fake.url} (no models pulled yet: \`ollama pull llama3.2:3b\`)`)
    }))

  it.scoped("no Ollama: the offline backend, saying why, and it answers offline", () =>
    Effect.gen(function*() {
      const url = yield* FakeOllama.unusedUrl
      const selected = yield* Backends.select({ host: url, probeTimeoutMillis: 1_000 })
      expect(selected.info).toEqual({
        kind: "offline",
        description: `offline: no Ollama at ${url} (connect ECONNREFUSED ${new URL(url).host}); ${offlineRole}`
      })
      expect(selected.models).toEqual([])
      const model = yield* Effect.provide(LanguageModel, selected.layer)
      expect(model.backend).toEqual(selected.info)
      expect(yield* model.chat(request("flat: no edge"))).toEqual({ content: "flat: no edge", toolCalls: [], tokensIn: 0, tokensOut: 0 })
    }))

  it.scoped("forced offline: Ollama is not even asked", () =>
    Effect.gen(function*() {
      const fake = yield* FakeOllama.start()
      const selected = yield* Backends.select({ host: fake.url, forceOffline: true })
      expect(selected.info.kind).toBe("offline")
      expect(selected.info.description).toBe(`offline: forced by SWARM_LLM=offline, Ollama at ${fake.url} not asked; ${offlineRole}`)
      expect(fake.listings()).toBe(0)
      yield* Backends.select({ host: fake.url })
      expect(fake.listings()).toBe(1)
    }))

  it.scoped("OLLAMA_HOST with a user and password (an auth proxy): sent as a Basic header, the password shown nowhere", () =>
    Effect.gen(function*() {
      // A proxy in front of Ollama that wants Basic credentials.
      const expected = `Basic ${Buffer.from("u:OllS3cret").toString("base64")}`
      const seen: Array<string | undefined> = []
      const proxy = http.createServer((req, res) => {
        seen.push(req.headers.authorization)
        req.resume()
        req.on("end", () => {
          if (req.headers.authorization !== expected) return void res.writeHead(401).end("{}")
          res.writeHead(200, { "content-type": "application/json" })
          if (req.url === "/api/tags") return void res.end(JSON.stringify({ models: [{ name: "llama3.2:3b" }] }))
          res.end(JSON.stringify({ model: "llama3.2:3b", created_at: "2026-01-01T00:00:00Z", message: { role: "assistant", content: "through the proxy" }, done: true }))
        })
      })
      yield* Effect.acquireRelease(
        Effect.async<void>((resume) => void proxy.listen(0, "127.0.0.1", () => resume(Effect.void))),
        () => Effect.async<void>((resume) => void proxy.close(() => resume(Effect.void)))
      )
      const port = (proxy.address() as AddressInfo).port
      const host = Either.getOrThrow(Backends.parseHost(`http://u:OllS3cret@127.0.0.1:${port}`))
      const selected = yield* Backends.select({ host })
      expect(selected.info).toEqual({ kind: "ollama", description: `ollama at http://u:***@127.0.0.1:${port} (1 model: llama3.2:3b)` })
      const model = yield* Effect.provide(LanguageModel, selected.layer)
      expect(JSON.stringify(model.backend)).not.toContain("OllS3cret")
      expect((yield* model.chat(request("offline answer"))).content).toBe("through the proxy")
      expect(seen).toEqual([expected, expected])
      // Forced offline, and a malformed value: still masked.
      expect((yield* Backends.select({ host, forceOffline: true })).info.description).not.toContain("OllS3cret")
      const bad = yield* configFrom({ OLLAMA_HOST: "ftp://u:OllS3cret@x" })
      expect(Either.isLeft(bad) && String(bad.left)).toContain("ftp://u:***@x")
      expect(String(Either.isLeft(bad) && bad.left)).not.toContain("OllS3cret")
      // A password whose percent-escapes are malformed is sent as written: before, decoding it threw,
      // and the whole start died with an internal error.
      const odd = Either.getOrThrow(Backends.parseHost(`http://u:p%ZZ@127.0.0.1:${port}`))
      const oddly = yield* Backends.select({ host: odd })
      // (The proxy refuses these credentials: the offline model answers, saying why.)
      expect(oddly.info.description).toContain(`offline: no Ollama at http://u:***@127.0.0.1:${port}`)
      expect(seen.at(-1)).toBe(`Basic ${Buffer.from("u:p%ZZ").toString("base64")}`)
    }))

  it.effect("fromConfig: SWARM_LLM=offline selects offline without a server", () =>
    Effect.gen(function*() {
      const selected = yield* Backends.fromConfig.pipe(
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["SWARM_LLM", "offline"]])))
      )
      expect(selected.info.kind).toBe("offline")
      expect(selected.info.description).toContain("at http://127.0.0.1:11434 not asked")
    }))
})

describe("Backends.config", () => {
  it.effect("defaults: the local Ollama, auto", () =>
    Effect.gen(function*() {
      expect(yield* configFrom({})).toEqual(Either.right({ host: "http://127.0.0.1:11434", forceOffline: false }))
      expect(yield* configFrom({ OLLAMA_HOST: "  " })).toEqual(Either.right({ host: "http://127.0.0.1:11434", forceOffline: false }))
      expect(yield* configFrom({ SWARM_LLM: "offline" })).toEqual(Either.right({ host: "http://127.0.0.1:11434", forceOffline: true }))
    }))

  it.effect("OLLAMA_HOST as Ollama reads it: bare host:port, bare host, :port, full URLs", () =>
    Effect.gen(function*() {
      const host = (value: string) =>
        Effect.map(configFrom({ OLLAMA_HOST: value }), Either.map((c) => c.host))
      expect(yield* host("http://gpu-box:11434")).toEqual(Either.right("http://gpu-box:11434"))
      expect(yield* host("10.0.0.5:8080")).toEqual(Either.right("http://10.0.0.5:8080"))
      expect(yield* host("ollama")).toEqual(Either.right("http://ollama:11434"))
      expect(yield* host("localhost:11434")).toEqual(Either.right("http://localhost:11434"))
      expect(yield* host(":9999")).toEqual(Either.right("http://127.0.0.1:9999"))
      expect(yield* host("https://llm.example.com/ollama/")).toEqual(Either.right("https://llm.example.com/ollama"))
      expect(yield* host("http://[::1]:11434")).toEqual(Either.right("http://[::1]:11434"))
    }))

  it.effect("a malformed OLLAMA_HOST or SWARM_LLM is a ConfigError naming the variable", () =>
    Effect.gen(function*() {
      for (const bad of ["http://exa mple:11434", "localhost:port", "ftp://files.example.com", "http://"]) {
        const result = yield* configFrom({ OLLAMA_HOST: bad })
        expect(Either.isLeft(result), bad).toBe(true)
        if (Either.isLeft(result)) {
          expect(String(result.left)).toContain("OLLAMA_HOST")
          expect(String(result.left)).toContain(bad)
        }
      }
      const mode = yield* configFrom({ SWARM_LLM: "sometimes" })
      expect(Either.isLeft(mode)).toBe(true)
      if (Either.isLeft(mode)) expect(String(mode.left)).toContain("SWARM_LLM")
    }))
})

describe("Offline backend", () => {
  const model = Offline.make()

  it.effect("chat answers with the request's offline answer, free of tokens", () =>
    Effect.gen(function*() {
      expect(model.backend).toEqual({ kind: "offline", description: Offline.defaultDescription })
      expect(yield* model.chat(request("long AAPL, 0.62"))).toEqual({ content: "long AAPL, 0.62", toolCalls: [], tokensIn: 0, tokensOut: 0 })
      const calls = [{ name: "get_quote", arguments: { symbol: "AAPL" } }]
      expect(yield* model.chat(request("", calls))).toEqual({ content: "", toolCalls: calls, tokensIn: 0, tokensOut: 0 })
    }))

  it.effect("chatStream: word-sized pieces that concatenate to the answer exactly, then tool calls, then Done", () =>
    Effect.gen(function*() {
      for (const content of ["Long AAPL: momentum and volume agree.", "  leading and trailing  ", "two\nlines\n\n", "word", "", "   "]) {
        const chunks = Chunk.toReadonlyArray(yield* Stream.runCollect(model.chatStream(request(content))))
        const texts = chunks.flatMap((c) => (c._tag === "Text" ? [c.text] : []))
        expect(texts.join("")).toBe(content)
        expect(texts.every((t) => t !== "")).toBe(true)
        expect(chunks.at(-1)).toEqual({ _tag: "Done", tokensIn: 0, tokensOut: 0 })
      }
      const pieces = yield* Stream.runCollect(model.chatStream(request("Long AAPL: momentum.")))
      expect(Chunk.toReadonlyArray(pieces)).toEqual([
        { _tag: "Text", text: "Long " },
        { _tag: "Text", text: "AAPL: " },
        { _tag: "Text", text: "momentum." },
        { _tag: "Done", tokensIn: 0, tokensOut: 0 }
      ])
      const calls = [{ name: "get_quote", arguments: { symbol: "AAPL" } }]
      const withTools = yield* Stream.runCollect(model.chatStream(request("Checking.", calls)))
      expect(Chunk.toReadonlyArray(withTools)).toEqual([
        { _tag: "Text", text: "Checking." },
        { _tag: "ToolCalls", calls },
        { _tag: "Done", tokensIn: 0, tokensOut: 0 }
      ])
    }))
})
