/**
 * A fake Ollama on a loopback port, speaking the real HTTP API closely enough for the `ollama`
 * client: `GET /api/tags`, `POST /api/chat` (one JSON answer or an ndjson stream, tool calls, error
 * bodies). Each test scripts its answers with a handler and reads back what the client sent.
 *
 *   const fake = yield* FakeOllama.start((request) => ({ content: "long", tokensIn: 7 }))
 *   // ... talk to fake.url ...
 *   expect(fake.requests[0]?.options?.num_predict).toBe(64)
 *   yield* fake.awaitDisconnects(1)   // the client went away before the answer ended
 *
 * Timers and disconnects are real (wall-clock), so it works the same under `it.effect` and `it.live`.
 */
import * as http from "node:http"
import type { AddressInfo, Socket } from "node:net"
import { Effect, type Scope } from "effect"
import type { ChatRequest as ReceivedChat } from "ollama"

export type { ReceivedChat }

/** What the fake answers to one chat request. Every field is optional. */
export interface ChatReply {
  /** The answer's text (default: the `chunks` joined, else an echo of the last message). */
  readonly content?: string
  /** Tool calls the "model" makes, sent as Ollama does: `message.tool_calls: [{ function: { name, arguments } }]`. */
  readonly toolCalls?: ReadonlyArray<{ readonly name: string; readonly arguments: Record<string, unknown> }>
  /** Wait this long before answering at all (not even headers). */
  readonly delayMillis?: number
  /** Streaming only: the pause between two lines of the stream. */
  readonly chunkDelayMillis?: number
  /** An error status (404, 500, ...), answered with Ollama's `{"error": ...}` body. */
  readonly status?: number
  /** The error message for `status` (default: Ollama's own words for 404, a generic one otherwise). */
  readonly error?: string
  /** Streaming only: after the chunks, an `{"error": ...}` line instead of the final `done` line. */
  readonly streamError?: string
  /** `prompt_eval_count`; `null` leaves it out, as Ollama does when the prompt was cached. */
  readonly tokensIn?: number | null
  /** `eval_count`; `null` leaves it out. */
  readonly tokensOut?: number | null
  /** Streaming only: the content pieces, in order (default: `content` split after each word). */
  readonly chunks?: ReadonlyArray<string>
  /** Answer this body verbatim, with `status` (default 200) and `contentType` (a malformed answer, a proxy's error page). */
  readonly raw?: string
  /** With `raw`: its content type (default: Ollama's for the request). */
  readonly contentType?: string
  /** Streaming only: after the chunks, this piece again and again, never a `done` line, until the client goes away. */
  readonly endless?: string
}

export type ChatHandler = (request: ReceivedChat) => ChatReply | Promise<ChatReply>

export interface StartOptions {
  /** The models `/api/tags` lists (default: `llama3.2:3b`, `qwen2.5:7b`). */
  readonly models?: ReadonlyArray<string>
}

export interface FakeOllama {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string
  /** Every chat request body received, parsed, in arrival order. */
  readonly requests: Array<ReceivedChat>
  /** Chat calls received (bodies that did not parse included). */
  readonly calls: () => number
  /** Model lists asked for (`GET /api/tags`, what a probe does). */
  readonly listings: () => number
  /** Chat answers the client walked away from before they ended (an abort, a timeout, an interrupted stream). */
  readonly disconnects: () => number
  /** Waits (wall-clock, at most `withinMillis`) until at least `count` disconnects were seen; dies otherwise. */
  readonly awaitDisconnects: (count: number, withinMillis?: number) => Effect.Effect<void>
  readonly setHandler: (handler: ChatHandler) => void
  readonly setModels: (models: ReadonlyArray<string>) => void
}

/** Echoes the last message, briefly (the default handler, and the content of a reply that has none). */
export const echo = (request: ReceivedChat): ChatReply & { readonly content: string } => {
  const last = request.messages?.at(-1)?.content ?? ""
  return { content: `echo: ${last.slice(0, 60)}` }
}

/** Pieces of a text as a model streams them: each word with the whitespace after it. */
export const pieces = (text: string): Array<string> => text.match(/\S+\s*|\s+/g) ?? []

const notFound = (model: string) => `model "${model}" not found, try pulling it first`

const tagOf = (name: string) => ({
  name,
  model: name,
  modified_at: "2025-01-01T00:00:00.000000000Z",
  size: 2_019_393_189,
  digest: "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
  details: {
    parent_model: "",
    format: "gguf",
    family: "llama",
    families: ["llama"],
    parameter_size: "3.2B",
    quantization_level: "Q4_K_M"
  }
})

/** Starts a fake Ollama for the scope; closing the scope closes it and cuts every open connection. */
export const start = (
  handler: ChatHandler = echo,
  options: StartOptions = {}
): Effect.Effect<FakeOllama, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<{ fake: FakeOllama; close: () => Promise<void> }>((resume) => {
      let current = handler
      let models: ReadonlyArray<string> = options.models ?? ["llama3.2:3b", "qwen2.5:7b"]
      let calls = 0
      let listings = 0
      let disconnects = 0
      const requests: Array<ReceivedChat> = []
      const sockets = new Set<Socket>()
      const timers = new Set<ReturnType<typeof setTimeout>>()
      const waiters = new Set<() => void>()

      const sleep = (millis: number) =>
        new Promise<void>((done) => {
          const timer = setTimeout(() => {
            timers.delete(timer)
            done()
          }, millis)
          timers.add(timer)
        })

      const json = (res: http.ServerResponse, status: number, body: unknown) => {
        res.writeHead(status, { "content-type": "application/json; charset=utf-8" })
        res.end(JSON.stringify(body))
      }

      const chat = async (res: http.ServerResponse, text: string) => {
        let closed = false
        // A response that closes before it finished is a client that went away.
        res.on("close", () => {
          closed = true
          if (!res.writableFinished) {
            disconnects++
            for (const wake of waiters) wake()
          }
        })
        // Not `req.destroyed`: a request is destroyed as soon as its body has been read.
        const gone = () => closed || res.destroyed || res.writableEnded
        let request: ReceivedChat
        try {
          request = JSON.parse(text) as ReceivedChat
        } catch {
          return json(res, 400, { error: "invalid character in request body" })
        }
        requests.push(request)
        let reply: ChatReply
        try {
          reply = await current(request)
        } catch (e) {
          return json(res, 500, { error: `fake handler failed: ${String(e)}` })
        }
        if (reply.delayMillis) await sleep(reply.delayMillis)
        if (gone()) return
        if (reply.raw !== undefined) {
          res.writeHead(reply.status ?? 200, {
            "content-type": reply.contentType ?? (request.stream === false ? "application/json" : "application/x-ndjson")
          })
          return res.end(reply.raw)
        }
        if (reply.status !== undefined && reply.status >= 400) {
          const message = reply.error ?? (reply.status === 404 ? notFound(request.model) : `fake failure ${reply.status}`)
          return json(res, reply.status, { error: message })
        }
        const content = reply.content ?? reply.chunks?.join("") ?? echo(request).content
        const promptChars = (request.messages ?? []).reduce((sum, m) => sum + m.content.length, 0)
        const tokensIn = reply.tokensIn === undefined ? Math.max(1, Math.ceil(promptChars / 4)) : reply.tokensIn
        const tokensOut = reply.tokensOut === undefined ? Math.max(1, (reply.chunks ?? pieces(content)).length) : reply.tokensOut
        const toolCalls = reply.toolCalls?.map((call) => ({ function: { name: call.name, arguments: call.arguments } }))
        const createdAt = new Date().toISOString()
        const counts = {
          done_reason: "stop",
          total_duration: 123_456_789,
          load_duration: 1_234_567,
          ...(tokensIn === null ? {} : { prompt_eval_count: tokensIn }),
          prompt_eval_duration: 12_345_678,
          ...(tokensOut === null ? {} : { eval_count: tokensOut }),
          eval_duration: 98_765_432
        }
        // The client always says `stream`; the real server streams when it is left out.
        if (request.stream === false) {
          return json(res, 200, {
            model: request.model,
            created_at: createdAt,
            message: { role: "assistant", content, ...(toolCalls ? { tool_calls: toolCalls } : {}) },
            done: true,
            ...counts
          })
        }
        res.writeHead(200, { "content-type": "application/x-ndjson" })
        const lines: Array<unknown> = (reply.chunks ?? pieces(content)).map((piece) => ({
          model: request.model,
          created_at: createdAt,
          message: { role: "assistant", content: piece },
          done: false
        }))
        if (toolCalls) {
          lines.push({ model: request.model, created_at: createdAt, message: { role: "assistant", content: "", tool_calls: toolCalls }, done: false })
        }
        lines.push(
          reply.streamError !== undefined
            ? { error: reply.streamError }
            : { model: request.model, created_at: createdAt, message: { role: "assistant", content: "" }, done: true, ...counts }
        )
        if (reply.endless !== undefined) {
          // A model that never stops: as fast as the client reads (no faster), until it hangs up.
          for (const line of lines.slice(0, -1)) res.write(`${JSON.stringify(line)}\n`)
          const piece = `${JSON.stringify({ model: request.model, created_at: createdAt, message: { role: "assistant", content: reply.endless }, done: false })}\n`
          while (!gone()) {
            if (reply.chunkDelayMillis) await sleep(reply.chunkDelayMillis)
            if (!res.write(piece)) {
              await new Promise<void>((drained) => {
                const wake = () => {
                  res.off("drain", wake)
                  res.off("close", wake)
                  drained()
                }
                res.on("drain", wake)
                res.on("close", wake)
              })
            }
          }
          return
        }
        for (const [i, line] of lines.entries()) {
          if (i > 0 && reply.chunkDelayMillis) await sleep(reply.chunkDelayMillis)
          if (gone()) return
          res.write(`${JSON.stringify(line)}\n`)
        }
        res.end()
      }

      const server = http.createServer((req, res) => {
        const body: Array<Buffer> = []
        req.on("data", (part: Buffer) => body.push(part))
        req.on("end", () => {
          const text = Buffer.concat(body).toString("utf8")
          if (req.method === "GET" && req.url === "/api/tags") {
            listings++
            return json(res, 200, { models: models.map(tagOf) })
          }
          if (req.method === "GET" && req.url === "/api/version") return json(res, 200, { version: "0.12.0" })
          if (req.method === "POST" && req.url === "/api/chat") {
            calls++
            return void chat(res, text).catch(() => res.destroy())
          }
          json(res, 404, { error: "404 page not found" })
        })
      })
      server.on("connection", (socket) => {
        sockets.add(socket)
        socket.on("close", () => sockets.delete(socket))
      })

      const close = () =>
        new Promise<void>((done) => {
          for (const timer of timers) clearTimeout(timer)
          for (const socket of sockets) socket.destroy()
          server.close(() => done())
        })

      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as AddressInfo
        const fake: FakeOllama = {
          url: `http://127.0.0.1:${port}`,
          requests,
          calls: () => calls,
          listings: () => listings,
          disconnects: () => disconnects,
          awaitDisconnects: (count, withinMillis = 5_000) =>
            Effect.promise(() =>
              new Promise<void>((done, fail) => {
                const check = () => {
                  if (disconnects < count) return
                  clearTimeout(timer)
                  waiters.delete(check)
                  done()
                }
                const timer = setTimeout(() => {
                  waiters.delete(check)
                  fail(new Error(`the fake Ollama saw ${disconnects} disconnects within ${withinMillis} ms, expected ${count}`))
                }, withinMillis)
                waiters.add(check)
                check()
              })
            ),
          setHandler: (next) => {
            current = next
          },
          setModels: (next) => {
            models = next
          }
        }
        resume(Effect.succeed({ fake, close }))
      })
    }),
    ({ close }) => Effect.promise(close)
  ).pipe(Effect.map(({ fake }) => fake))

/** The URL of a loopback port that nothing listens on (a server was there a moment ago). */
export const unusedUrl: Effect.Effect<string> = Effect.async<string>((resume) => {
  const server = http.createServer()
  server.listen(0, "127.0.0.1", () => {
    const { port } = server.address() as AddressInfo
    server.close(() => resume(Effect.succeed(`http://127.0.0.1:${port}`)))
  })
})
