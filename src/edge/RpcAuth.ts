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
 * The procedures whose key is checked in the database on every request, not in the edge's cache:
 * those that set money or power going — starting or resuming a run, answering an approval, a
 * strategy's webhook secret, and administration. They are rare, and a key revoked or a user
 * disabled through another server a moment ago (without Redis to tell this one: AuthLive.ts) must
 * not do them. Every other procedure — the reads a dashboard polls, above all — keeps the cache.
 */
export const fromDatabase = (tag: string): boolean => tag.startsWith("admin.") || FROM_DATABASE.has(tag)

const FROM_DATABASE: ReadonlySet<string> = new Set(["runs.start", "runs.resume", "approvals.approve", "approvals.reject", "webhooks.secret", "webhooks.rotate"])

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
