/**
 * Authentication at the edge: an API key (bearer header, or `?token=` where a browser's
 * EventSource cannot set headers) becomes the `Principal` it stands for, or `Unauthorized`.
 * The service is a Tag so the server, the SSE endpoint and the RPC handlers share one, and tests
 * can give their own.
 */
import { Context, type Effect } from "effect"
import type { Principal, Unauthorized } from "../../schemas/Auth.js"
import type { Unavailable } from "../../schemas/Rpc.js"

export interface AuthService {
  /** The principal of a presented API key (as typed: `sk_…`), `Unauthorized`, or `Unavailable` when it cannot be checked. */
  readonly authenticate: (key: string) => Effect.Effect<Principal, Unauthorized | Unavailable>
}

export class Authenticator extends Context.Tag("swarm/edge/Authenticator")<Authenticator, AuthService>() {}
