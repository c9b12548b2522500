/**
 * `GET /v1/runs/:id/chat`: a run's chat with the system agent as Server-Sent Events, live — every
 * answer as it is produced, whoever asked (over RPC) — for a dashboard beside the run's events.
 *
 *   id: <question>.<index>      the question's message number and the chunk's place in its answer
 *   event: question | token | tool | done | error
 *   data: the chunk as JSON (schemas/Chat.ts `ChatChunk`)
 *
 * Auth and answers as the run's events (Sse.ts): `Authorization: Bearer <key>` or `?token=`, and
 * one 404 for a run that does not exist or is not the caller's. A client connecting mid-answer gets
 * that answer from its start; one reconnecting with `Last-Event-ID` gets what it had not — the rest
 * of that answer and every answer since, ended within the last 10 minutes or in progress — as
 * `chat.follow` does over RPC (ChatFollow.ts); where the server no longer holds all of it, an
 * `event: missed` (no id; `{ after, reason }`) says so first, and `chat.history` has every answer.
 * A client more than its buffer behind is told so
 * (`event: overflow`) and disconnected, as is one watching an answer given on another server of which
 * this server missed chunks (never shown an answer with words missing: SystemAgent.ts `Feed`).
 * Heartbeats keep proxies open. A client that stops reading but keeps its connection open is
 * disconnected once a write has waited `WRITE_STALL` (30 s), as the run's events' is (WriteStall.ts):
 * told so first (`event: overflow`, with the last chunk it was sent) if it takes that within
 * `STALL_GRACE`, then its connection destroyed — it holds no watcher, fiber or buffer for long.
 *
 * The key is checked again while the stream lasts, as the run's events' is (`Auth.runRefusal`): once
 * it no longer authenticates — revoked, or its user disabled — the client is told so with the same
 * frame (`event: error`, `{ error: "Unauthorized", reason, lastEventId }`) and disconnected; once its
 * user may no longer see the run (an admin demoted), with the 404's body (`RunNotFound`).
 */
import { HttpLayerRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { Duration, Effect, Schedule, Schema, Stream } from "effect"
import { SystemAgent } from "../../agents/system/SystemAgent.js"
import type { Principal } from "../../schemas/Auth.js"
import { ChatChunk, type ChatMissed, positionOf } from "../../schemas/Chat.js"
import * as Runs from "../store/Runs.js"
import * as Auth from "./Auth.js"
import * as ChatFollow from "./ChatFollow.js"
import * as Follow from "./Follow.js"
import { heartbeatFrame, keyOf, refusals, refusedFrame } from "./Sse.js"
import * as WriteStall from "./WriteStall.js"

export const path = "/v1/runs/:id/chat"

export interface Options {
  /** A `: heartbeat` comment this often. Default 15 s. */
  readonly heartbeat?: Duration.DurationInput
  /** The reconnection delay advised to EventSource clients (`retry:`). Default 1 s. */
  readonly retry?: Duration.DurationInput
  /** How often the client's key is checked again while the stream lasts. Default: the route's `Auth.Recheck` (15 s). */
  readonly recheck?: Duration.DurationInput
  /** How long a write may wait for the client's socket to drain before the client is disconnected. Default `WRITE_STALL` (30 s). */
  readonly stall?: Duration.DurationInput
}

const encoder = new TextEncoder()
const encodeChunk = Schema.encodeSync(ChatChunk)

const EVENT: { readonly [K in ChatChunk["_tag"]]: string } = {
  Asked: "question",
  Token: "token",
  ToolUsed: "tool",
  Done: "done",
  Failed: "error"
}

/** A chunk's frame: JSON has no raw line breaks, so `data:` is one line. */
export const chunkFrame = (chunk: ChatChunk): string =>
  `id: ${chunk.question}.${chunk.index}\nevent: ${EVENT[chunk._tag]}\ndata: ${JSON.stringify(encodeChunk(chunk))}\n\n`

/** The notice that what came after the client's `Last-Event-ID` is not all here: no id (the client's stays where it was). */
const missedFrame = (missed: ChatMissed): string => `event: missed\ndata: ${JSON.stringify({ after: missed.after, reason: missed.reason })}\n\n`

/** The notice of a client disconnected because a write to it stalled: where it was (`null`: no chunk sent, nor resumed after). */
export const stalledFrame = (stall: Duration.Duration, lastEventId: string | null): string =>
  `event: overflow\ndata: ${
    JSON.stringify({
      reason: `this client read nothing for ${Duration.format(stall)} while its connection was full and is disconnected: ` +
        `reconnect${lastEventId === null ? "" : ` with Last-Event-ID: ${lastEventId}`} to read on (chat.history has every answer)`,
      lastEventId
    })
  }\n\n`

/** A frame, and the chunk it carries, if any (`<question>.<index>`). */
interface Piece {
  readonly text: string
  readonly id?: string
}

/** The handler, with its services given. */
export const handler = (
  deps: { readonly auth: Auth.Authenticator["Type"]; readonly sql: SqlClient.SqlClient; readonly agent: SystemAgent["Type"] },
  options: Options = {}
) => {
  const heartbeat = Duration.decode(options.heartbeat ?? "15 seconds")
  const retry = Math.max(0, Math.round(Duration.toMillis(Duration.decode(options.retry ?? "1 second"))))
  const recheck = Duration.decode(options.recheck ?? Auth.RECHECK)
  const stall = Duration.decode(options.stall ?? WriteStall.WRITE_STALL)
  return Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const search = yield* HttpServerRequest.ParsedSearchParams
    const id = (yield* HttpLayerRouter.params).id ?? ""
    const key = yield* keyOf(request.headers, search)
    const principal: Principal = yield* deps.auth.authenticate(key)
    // `Last-Event-ID: <question>.<index>`: where a reconnecting client stopped (absent: nowhere).
    const last = yield* ChatFollow.position(request.headers["last-event-id"], "Last-Event-ID")
    // Under a permit of the followers' reads, as the run events' connections take one (Sse.ts
    // `connectReads`): every dashboard reconnects at once after a restart.
    const run = yield* Runs.getSummary(id, principal.role === "admin" ? undefined : principal.userId).pipe(
      Follow.catchUpReads.withPermits(1),
      Effect.provideService(SqlClient.SqlClient, deps.sql)
    )
    // Where a client reconnecting with a valid key would resume: the last chunk sent, else where it resumed after.
    let lastSent: string | null = last === undefined ? null : positionOf(last)
    // Subscribed before the first byte goes out: a client that has read `retry:` misses nothing.
    const body = Stream.unwrapScoped(Effect.map(ChatFollow.follow(deps.agent, run.id, last), (chunks) => {
      const frames = chunks.pipe(
        Stream.map((chunk): Piece => {
          if (chunk._tag === "Missed") return { text: missedFrame(chunk) }
          lastSent = positionOf(chunk)
          return { text: chunkFrame(chunk), id: lastSent }
        }),
        Stream.catchAll((overflow) =>
          Stream.make<[Piece]>({
            text: `event: overflow\ndata: ${
              JSON.stringify({
                reason: overflow.lostFrom === undefined
                  ? `${overflow.message}: reconnect with the last id had to read on (chat.history has every answer)`
                  : `${overflow.message}: reconnect, and read what was missed with chat.history`
              })
            }\n\n`
          })
        )
      )
      const beats = Stream.fromSchedule(Schedule.spaced(heartbeat)).pipe(Stream.as<Piece>({ text: heartbeatFrame }))
      const live = Stream.merge(frames, beats, { haltStrategy: "left" }).pipe(
        Stream.interruptWhen(Auth.runRefusal(deps.auth, key, recheck, { ref: id, owner: run.owner })),
        Stream.catchAll((stopped) => Stream.unwrap(Effect.map(refusedFrame("SSE chat", stopped, run.id, lastSent), (text) => Stream.make<[Piece]>({ text }))))
      )
      return Stream.concat(Stream.make<[Piece]>({ text: `retry: ${retry}\n\n` }), live)
    }))
    /** The last chunk written to the client: what the stall's notice says it has. */
    let written: string | null = last === undefined ? null : positionOf(last)
    const bytes = WriteStall.bounded(WriteStall.nodeResponse(request), stall, body, {
      bytes: (piece) => encoder.encode(piece.text),
      written: (piece) => {
        if (piece.id !== undefined) written = piece.id
      },
      stalled: (stalledMillis) =>
        Effect.as(
          Effect.logInfo("SSE chat: a write to the client waited too long for its socket to drain; the client is disconnected").pipe(
            Effect.annotateLogs({ run: run.id, after: written, stalledMillis })
          ),
          encoder.encode(stalledFrame(stall, written))
        )
    })
    return HttpServerResponse.stream(bytes, {
      contentType: "text/event-stream",
      headers: { "cache-control": "no-cache", "x-accel-buffering": "no" }
    })
  }).pipe(
    Effect.catchTags(refusals("SSE chat")),
    Effect.withSpan("ChatSse.chat")
  )
}

/** The route, its services taken from the layer's context. */
export const route = (options: Options = {}) =>
  HttpLayerRouter.use((router) =>
    Effect.gen(function*() {
      const auth = yield* Auth.Authenticator
      const sql = yield* SqlClient.SqlClient
      const agent = yield* SystemAgent
      const recheck = yield* Auth.Recheck
      yield* router.add("GET", path, handler({ auth, sql, agent }, { ...options, recheck: options.recheck ?? recheck }))
    })
  )
