/**
 * The clients of bench/edge.ts, in a process of their own so that they do not share the server's
 * event loop (on this 2-core machine: the server on one core, the clients on the other). Plain
 * `node:http`, no Effect, so that the client side costs as little as it can.
 *
 *   rpc <base> <seconds> <json requests>   every client loops over its requests; prints one JSON summary
 *   sse <base> <key> <run> <subscribers> [reconnect]
 *                                          opens the subscribers, prints {"ready":…} once each has
 *                                          event 1, then {"done":…} when every stream has ended;
 *                                          with `reconnect`, one told `overflow` comes back (EventSource)
 *
 * Requests for `rpc`: `{ clients: [{ key, calls: [{ tag, payload }] }], pauseMs }`.
 */
import * as Http from "node:http"

const [mode, ...args] = process.argv.slice(2)

const out = (value: unknown) => process.stdout.write(JSON.stringify(value) + "\n")

/** Nearest-rank percentile of an ascending-sorted sample. */
const percentile = (sorted: Float64Array, q: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!

// --- RPC over HTTP ------------------------------------------------------------------------------

interface RpcPlan {
  readonly clients: ReadonlyArray<{ readonly key: string; readonly calls: ReadonlyArray<{ readonly tag: string; readonly payload: unknown }> }>
  /** Think time between a client's calls (0: back to back). */
  readonly pauseMs: number
}

const rpc = async (base: string, seconds: number, plan: RpcPlan) => {
  const url = new URL("/rpc", base)
  const latencies: Array<number> = []
  const byTag = new Map<string, Array<number>>()
  let failures = 0
  let firstFailure: string | undefined
  let requestId = 0
  const deadline = performance.now() + seconds * 1000

  /** One call: the ndjson request line out, the ndjson lines back until the request's Exit. */
  const call = (agent: Http.Agent, key: string, tag: string, payload: unknown) =>
    new Promise<{ ok: boolean; text: string }>((resolve, reject) => {
      const id = String(++requestId)
      const body = JSON.stringify({ _tag: "Request", id, tag, payload, headers: [["authorization", `Bearer ${key}`]] }) + "\n"
      const request = Http.request(url, {
        method: "POST",
        agent,
        headers: { "content-type": "application/ndjson", "content-length": Buffer.byteLength(body) }
      }, (response) => {
        let text = ""
        response.setEncoding("utf8")
        response.on("data", (chunk: string) => (text += chunk))
        response.on("end", () => resolve({ ok: response.statusCode === 200 && text.includes(`"exit":{"_tag":"Success"`), text }))
        response.on("error", reject)
      })
      request.on("error", reject)
      request.end(body)
    })

  const client = async (index: number) => {
    const { calls, key } = plan.clients[index]!
    // Its own keep-alive connection: one operator's CLI or dashboard, not a pool shared with others.
    const agent = new Http.Agent({ keepAlive: true, maxSockets: 1 })
    let i = index
    while (performance.now() < deadline) {
      const { payload, tag } = calls[i++ % calls.length]!
      const t0 = performance.now()
      const { ok, text } = await call(agent, key, tag, payload)
      const ms = performance.now() - t0
      if (!ok) {
        failures++
        firstFailure ??= `${tag}: ${text.slice(0, 300)}`
      } else {
        latencies.push(ms)
        let list = byTag.get(tag)
        if (list === undefined) byTag.set(tag, (list = []))
        list.push(ms)
      }
      if (plan.pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, plan.pauseMs))
    }
    agent.destroy()
  }

  const t0 = performance.now()
  await Promise.all(plan.clients.map((_, i) => client(i)))
  const elapsed = (performance.now() - t0) / 1000
  const summary = (values: Array<number>) => {
    const sorted = Float64Array.from(values).sort()
    return { count: sorted.length, p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), p999: percentile(sorted, 0.999), max: sorted.at(-1) ?? NaN }
  }
  out({
    ...summary(latencies),
    perSecond: latencies.length / elapsed,
    failures,
    firstFailure,
    byTag: Object.fromEntries([...byTag.entries()].map(([tag, values]) => [tag, summary(values)]))
  })
}

// --- SSE ----------------------------------------------------------------------------------------

const ID = Buffer.from("\nid: ")
const END = Buffer.from("event: end\n")
const OVERFLOW = Buffer.from("event: overflow\n")

/**
 * With `reconnect`, a subscriber told `overflow` comes back as an EventSource does: after the
 * stream's `retry:` (1 s), with `Last-Event-ID`, reading its gap from the database, until `end`.
 */
const sse = async (base: string, key: string, run: string, subscribers: number, reconnect: boolean) => {
  const url = new URL(`/v1/runs/${encodeURIComponent(run)}/events`, base)
  let ready = 0
  let done = 0
  let overflows = 0
  let reconnects = 0
  let events = 0
  let bytes = 0
  const lastIds: Array<number> = []
  const finished = new Promise<void>((resolveAll) => {
    for (let s = 0; s < subscribers; s++) {
      let seenFirst = false
      let last = 0
      const connect = () => {
        let tail = Buffer.alloc(0)
        let overflowed = false
        const headers: Record<string, string> = { authorization: `Bearer ${key}` }
        if (last > 0) headers["last-event-id"] = String(last)
        const request = Http.get(url, { agent: false, headers }, (response) => {
          if (response.statusCode === 204) {
            response.resume()
            lastIds[s] = last
            if (++done === subscribers) resolveAll()
            return
          }
          if (response.statusCode !== 200) {
            process.stderr.write(`subscriber ${s}: status ${response.statusCode}\n`)
            process.exit(1)
          }
          response.on("data", (chunk: Buffer) => {
            bytes += chunk.length
            // Only the frames' ids are looked at (a byte search, no decoding): what a reader needs to resume.
            const buffer = tail.length === 0 ? chunk : Buffer.concat([tail, chunk])
            let at = 0
            let lastFrame = -1
            for (;;) {
              const i = buffer.indexOf(ID, at)
              if (i < 0) break
              const nl = buffer.indexOf(10, i + ID.length)
              if (nl < 0) break
              last = Number(buffer.toString("latin1", i + ID.length, nl))
              events++
              lastFrame = nl
              at = nl
            }
            if (buffer.indexOf(OVERFLOW) >= 0) {
              overflows++
              overflowed = true
            }
            if (buffer.indexOf(END) >= 0 || buffer.indexOf(OVERFLOW) >= 0) lastIds[s] = last
            tail = Buffer.from(buffer.subarray(lastFrame < 0 ? Math.max(0, buffer.length - 64) : lastFrame))
            if (!seenFirst && last >= 1) {
              seenFirst = true
              if (++ready === subscribers) out({ ready })
            }
          })
          response.on("end", () => {
            if (overflowed && reconnect) {
              reconnects++
              setTimeout(connect, 1_000)
              return
            }
            lastIds[s] ??= last
            if (++done === subscribers) resolveAll()
          })
        })
        request.on("error", (error) => {
          process.stderr.write(`subscriber ${s}: ${error.message}\n`)
          process.exit(1)
        })
      }
      connect()
    }
  })
  await finished
  const sorted = Float64Array.from(lastIds).sort()
  out({ done, events, bytes, overflows, reconnects, lastIdMin: sorted[0], lastIdMax: sorted.at(-1) })
}

if (mode === "rpc") {
  await rpc(args[0]!, Number(args[1]), JSON.parse(args[2]!) as RpcPlan)
} else if (mode === "sse") {
  await sse(args[0]!, args[1]!, args[2]!, Number(args[3]), args[4] === "reconnect")
} else {
  process.stderr.write(`usage: edgeClients.ts rpc|sse …\n`)
  process.exit(2)
}
