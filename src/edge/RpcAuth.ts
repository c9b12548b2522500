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

export const AuthenticatedLive = Layer.effect(
  Authenticated,
  Effect.map(Authenticator, (auth) =>
    Authenticated.of(({ headers }) => {
      const key = bearerKey(headers["authorization"])
      return key === undefined
        ? Effect.fail(new Unauthorized({ reason: "an API key is required: Authorization: Bearer <key>" }))
        : auth.authenticate(key)
    }))
)

/** A client's side of `Authenticated`: every request carries `key`. */
export const clientKey = (key: string) =>
  RpcMiddleware.layerClient(Authenticated, ({ request }) =>
    Effect.succeed({ ...request, headers: Headers.set(request.headers, "authorization", `Bearer ${key}`) }))
