/**
 * A server that stops talking mid-answer, as the CLI's `fetch` sees it: an answer's body that
 * brings nothing for `limit` is cut off, with undici's own code for a body that timed out
 * (`UND_ERR_BODY_TIMEOUT`). A Swarm server keeps a quiet answer alive with a line every 15 s
 * (src/edge/RpcKeepAlive.ts), so a body silent for several of those is a server gone (frozen, or
 * its machine unreachable), and `swarm runs watch` says it lost it well before fetch's own
 * 300 s — which, without the keep-alive, cut off the stream of a paused run that was merely quiet.
 */
import { Duration } from "effect"

/** How long an answer's body may bring nothing before the server counts as lost: four keep-alives missed. */
export const LIMIT = Duration.seconds(60)

/** What a body silent for too long fails with: an error as undici's body timeout makes it. */
export class Silent extends Error {
  readonly code = "UND_ERR_BODY_TIMEOUT"
  constructor(limit: Duration.Duration) {
    super(`nothing came for ${Duration.format(limit)}`)
  }
}

/** `body`, failing with `Silent` once it brings nothing for `limit`; cancelling it cancels `body`. */
const guarded = (body: ReadableStream<Uint8Array>, limit: Duration.Duration): ReadableStream<Uint8Array> => {
  const reader = body.getReader()
  const millis = Duration.toMillis(limit)
  return new ReadableStream<Uint8Array>({
    pull: (controller) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          const silent = new Silent(limit)
          controller.error(silent)
          reader.cancel(silent).catch(() => undefined)
          resolve()
        }, millis)
        reader.read().then(
          ({ done, value }) => {
            clearTimeout(timer)
            if (done) controller.close()
            else controller.enqueue(value)
            resolve()
          },
          (error: unknown) => {
            clearTimeout(timer)
            controller.error(error)
            resolve()
          }
        ).catch(() => resolve())
      }),
    cancel: (reason) => reader.cancel(reason)
  })
}

/** `fetch` whose answers' bodies are cut off once silent for `limit`. */
export const fetchWith = (limit: Duration.Duration, fetch: typeof globalThis.fetch = globalThis.fetch): typeof globalThis.fetch =>
  async (input, init) => {
    const response = await fetch(input, init)
    if (response.body === null) return response
    return new Response(guarded(response.body, limit), { status: response.status, statusText: response.statusText, headers: response.headers })
  }
