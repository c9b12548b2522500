/**
 * The `Authenticated` RPC middleware on both sides: the server reads the bearer key of every
 * request and provides its principal (or fails the request with `Unauthorized`); a client adds its
 * key to every request it sends.
 */
import { Headers } from "@effect/platform"
import { RpcMiddleware } from "@effect/rpc"
import { Effect, Layer } from "effect"
import { Unauthorized } from "../../schemas/Auth.js"
import { Authenticated } from "../../schemas/Rpc.js"
import { Authenticator } from "./Auth.js"

/** The key of an `Authorization: Bearer <key>` header, if the header is one. */
export const bearerKey = (header: string | undefined): string | undefined => {
  if (header === undefined) return undefined
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header)
  return match?.[1]
}

/**
 * The procedures whose key may be answered from the edge's cache (30 s, AuthLive.ts): the reads —
 * what a dashboard polls, above all. Every other procedure asks the database on each request:
 * whatever changes something (a strategy, a rule, a run's state, an approval, a webhook secret, a
 * chat that spends the run's model budget) and all of administration. They are rare, and a key
 * revoked or a user disabled through another server a moment ago (without Redis to tell this one)
 * must not do them. A procedure added later asks the database until it is listed here.
 */
const CACHED: ReadonlySet<string> = new Set([
  "strategies.get",
  "strategies.list",
  "rules.list",
  "runs.get",
  "runs.report",
  "runs.list",
  "runs.compare",
  "runs.verify",
  "runs.events",
  "runs.status",
  "approvals.pending",
  "leaderboard",
  "chat.follow",
  "chat.history",
  "chat.suggestions",
  "traces.get"
])

export const fromDatabase = (tag: string): boolean => tag.startsWith("admin.") || !CACHED.has(tag)

export const AuthenticatedLive = Layer.effect(
  Authenticated,
  Effect.map(Authenticator, (auth) =>
    Authenticated.of(({ headers, rpc }) => {
      const key = bearerKey(headers["authorization"])
      if (key === undefined) return Effect.fail(new Unauthorized({ reason: "an API key is required: Authorization: Bearer <key>" }))
      return fromDatabase(rpc._tag) ? auth.authenticateNow(key) : auth.authenticate(key)
    }))
)

/** A client's side of `Authenticated`: every request carries `key`. */
export const clientKey = (key: string) =>
  RpcMiddleware.layerClient(Authenticated, ({ request }) =>
    Effect.succeed({ ...request, headers: Headers.set(request.headers, "authorization", `Bearer ${key}`) }))
