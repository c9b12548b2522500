/**
 * A bound on how long a streamed response may wait for its client to read: the server's streams
 * (a run's events and its chat over SSE, the RPC endpoint's answers over HTTP) hold no connection,
 * fiber, subscription or buffer for long on behalf of a client that stopped reading but keeps its
 * connection open — a frozen tab, a peer gone without a word, a CLI piped into a paused pager.
 *
 * The platform (@effect/platform-node) writes a response stream's pieces as they come and, once
 * the socket is full, pulls the next only on `drain`: a client that stops reading stops the stream
 * there, for ever. `bounded` ends it once a write has waited `stall` (`WRITE_STALL`): the client's
 * notice (what the stream says about it) is queued behind what it has yet to read, and the
 * connection destroyed `STALL_GRACE` later unless the client read it all meanwhile (then the
 * response ends cleanly). Destroyed, the response's fiber is interrupted (the platform does so for
 * a connection that closes before the response ended), and what the stream held goes with it.
 */
import type { HttpServerRequest } from "@effect/platform"
import { NodeHttpServerRequest } from "@effect/platform-node"
import { Deferred, Duration, Effect, Schedule, Stream } from "effect"
import type * as NodeHttp from "node:http"

/**
 * How long a write to a client may wait for its socket to drain: a client that stopped reading but
 * keeps its connection open is disconnected then. Its subscription overflowed long before (the run
 * never waits for it), but the write would wait for ever, holding the connection, the stream and
 * what it buffered. Long enough for a slow link to take a burst (a page of 1,000 events, about a
 * megabyte, at 40 kB/s), short beside a dashboard's life.
 */
export const WRITE_STALL = Duration.seconds(30)

/**
 * A client disconnected for a stalled write: how long its connection is left to take the notice
 * (queued behind what it has not read) before it is destroyed. One that reads again in time gets
 * it and a clean end; the others lose only what they never read.
 */
export const STALL_GRACE = Duration.seconds(1)

/** The Node response under `request`, when the server is Node's (Http.listen): its socket is what a write waits for. */
export const nodeResponse = (request: HttpServerRequest.HttpServerRequest): NodeHttp.ServerResponse | undefined => {
  try {
    const res = NodeHttpServerRequest.toServerResponse(request) as NodeHttp.ServerResponse | undefined
    return res !== undefined && typeof res.write === "function" && "writableNeedDrain" in res ? res : undefined
  } catch {
    return undefined
  }
}

export interface Bound<A> {
  /** The bytes of an item, as the platform writes them. */
  readonly bytes: (item: A) => Uint8Array
  /** An item handed to the platform (written at once): what the notice will say the client has. */
  readonly written?: (item: A) => void
  /**
   * A write has waited `stall` (for `stalledMillis`): the notice to queue for the client, if any
   * (logging why is the caller's). Items not yet written are not: the notice says where the client is.
   */
  readonly stalled: (stalledMillis: number) => Effect.Effect<Uint8Array | undefined>
  /**
   * Whether `stalled` also ends `items` (the RPC endpoint's: it ends the connection's queue of
   * answers; a run's SSE stream's: it ends the run's events, Sse.ts), so that `items` need not be raced against the cut: that race, set up for each stream,
   * cost more than all the rest of the bound — and every RPC answer over HTTP is such a stream.
   */
  readonly endsItems?: boolean
}

/**
 * `items` written to `res` with a bound on how long a write may wait for the socket to drain, as
 * the module's comment says. Without a Node response (another platform) or with an infinite
 * `stall`, `items` as they are.
 */
export const bounded = <A, E, R>(
  res: NodeHttp.ServerResponse | undefined,
  stall: Duration.Duration,
  items: Stream.Stream<A, E, R>,
  bound: Bound<A>
): Stream.Stream<Uint8Array, E, R> => {
  const stallMillis = Duration.toMillis(stall)
  if (res === undefined || !Number.isFinite(stallMillis)) return Stream.map(items, bound.bytes)
  return Stream.unwrapScoped(Effect.gen(function*() {
    /** When the last piece went to the platform, which writes it at once: a stall starts there. */
    let lastWrite = performance.now()
    let cut = false
    const cutSignal = yield* Deferred.make<void>()
    const check = Effect.suspend(() => {
      if (cut || !res.writableNeedDrain || performance.now() - lastWrite < stallMillis) return Effect.void
      cut = true
      return Effect.flatMap(bound.stalled(Math.round(performance.now() - lastWrite)), (notice) => {
        if (notice !== undefined && !res.destroyed) res.write(notice)
        const destroy = setTimeout(() => res.destroy(), Duration.toMillis(STALL_GRACE))
        res.once("close", () => clearTimeout(destroy))
        return Deferred.succeed(cutSignal, undefined)
      })
    })
    yield* Effect.forkScoped(Effect.repeat(check, Schedule.spaced(Duration.millis(Math.max(1, stallMillis / 4)))))
    return (bound.endsItems === true ? items : Stream.interruptWhenDeferred(items, cutSignal)).pipe(
      // An item ready when the cut came is not written: the notice said where the client is.
      Stream.takeWhile(() => !cut),
      Stream.map((item) => {
        lastWrite = performance.now()
        bound.written?.(item)
        return bound.bytes(item)
      })
    )
  }))
}
