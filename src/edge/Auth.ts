/**
 * Authentication at the edge: an API key (bearer header, or `?token=` where a browser's
 * EventSource cannot set headers) becomes the `Principal` it stands for, or `Unauthorized`.
 * The service is a Tag so the server, the SSE endpoint and the RPC handlers share one, and tests
 * can give their own.
 */
import { Context, Duration, Effect } from "effect"
import type { Principal, Unauthorized } from "../../schemas/Auth.js"
import { RunNotFound, type Unavailable } from "../../schemas/Rpc.js"

export interface AuthService {
  /** The principal of a presented API key (as typed: `sk_…`), `Unauthorized`, or `Unavailable` when it cannot be checked. */
  readonly authenticate: (key: string) => Effect.Effect<Principal, Unauthorized | Unavailable>
  /**
   * As `authenticate`, but from the database whatever an implementation caches: for the requests
   * that must not act on a key revoked or a user disabled a moment ago elsewhere (starting a run,
   * answering an approval, administration — `RpcAuth.ts`).
   */
  readonly authenticateNow: (key: string) => Effect.Effect<Principal, Unauthorized | Unavailable>
  /**
   * Forget what is remembered of `userId`'s keys, here and in the other processes it can tell: after
   * a change to the user (disabled, enabled, a new role) or to one of their keys (revoked) is
   * committed, so that the next request with their keys is answered as the database now says.
   */
  readonly forgetUser: (userId: string) => Effect.Effect<void>
  /**
   * An effect that completes at the first forgetting (here, or told by another process) after this
   * call — not after it is run: a stream asks for it before it checks its key, so that a forgetting
   * during the check wakes it again.
   */
  readonly nextChange: () => Effect.Effect<void>
  /**
   * Whose key `key` is, as far as known without asking the database (a request that presented it
   * was just authenticated: its answer is cached), or undefined — for the request's log line, which
   * names its user (Http.ts). Absent: nobody is named.
   */
  readonly holder?: (key: string) => Effect.Effect<Principal | undefined>
}

export class Authenticator extends Context.Tag("swarm/edge/Authenticator")<Authenticator, AuthService>() {}

/**
 * How often a stream checks again the key it was opened with. A request is authenticated once,
 * but a stream of a run's events may last for hours: without a check, a revoked key or a disabled
 * user's would go on receiving, and an admin demoted would go on watching others' runs. A stream
 * also checks at once whenever the authenticator forgets a user (`AuthService.nextChange`): a
 * revocation or a demotion made through this server, or one another server tells it of through
 * Redis, ends the stream at once. Every 15 s (an SSE heartbeat's period) is for the rest — a change
 * made through another server without Redis — and costs little: the authenticator caches its
 * answers for 30 s (AuthLive.ts), so most checks are a cache hit, and such a change ends the
 * stream within 45 s (the 30 s the last answer is reused, then the next check).
 */
export const RECHECK = Duration.seconds(15)

/** `RECHECK` unless a test gives a shorter one: the RPC streams and the SSE routes read it (an SSE route's own option wins). */
export class Recheck extends Context.Reference<Recheck>()("swarm/edge/Auth/Recheck", {
  defaultValue: (): Duration.Duration => RECHECK
}) {}

/**
 * Fails with `Unauthorized` once `key` no longer authenticates, checked every `every` and whenever
 * the authenticator forgets a user (`nextChange`), or with what
 * `access` fails with once the principal the key stands for now may no longer have what the stream
 * gives (its role changed); never succeeds (a stream stops with it by `Stream.interruptWhen`). A
 * database that cannot answer (`Unavailable`) is no refusal: the stream goes on, and the next
 * check asks again.
 */
export const refusal = <E = never>(
  auth: AuthService,
  key: string,
  every: Duration.DurationInput,
  access: (principal: Principal) => Effect.Effect<void, E> = () => Effect.void
): Effect.Effect<never, Unauthorized | E> => {
  // Asked anew each time: an authenticator may decide when it is called, not when its answer runs.
  const check = Effect.suspend(() => auth.authenticate(key)).pipe(
    Effect.catchTag("Unavailable", () => Effect.succeed(undefined)),
    Effect.flatMap((principal) => (principal === undefined ? Effect.void : access(principal)))
  )
  return Effect.suspend(() => {
    let woken = auth.nextChange()
    // The next wake-up is taken before the check: a user forgotten while the key is checked is checked again.
    const renew = Effect.sync(() => {
      woken = auth.nextChange()
    })
    // Checked once at the start too: a user forgotten between the request's check and this wait
    // (the stream not yet pulled) would otherwise wait for the next change, or `every`.
    return Effect.zipRight(
      check,
      Effect.forever(Effect.race(Effect.sleep(every), Effect.suspend(() => woken)).pipe(Effect.zipRight(renew), Effect.zipRight(check)))
    )
  })
}

/** Whether `principal` may see what `owner` owns (a run, its events, its chat): its owner does, and an admin. */
export const maySee = (principal: Principal, owner: string): boolean => principal.role === "admin" || principal.userId === owner

/**
 * `refusal` for a stream of the run `ref` (as the caller named it) that `owner` owns: once the key's
 * principal may no longer see the run — an admin demoted — it fails with the answer a request for
 * the run gets now, `RunNotFound`, the same as for a run that does not exist. The check is a
 * comparison with the principal the authenticator gives (mostly from its cache): no query per stream.
 */
export const runRefusal = (
  auth: AuthService,
  key: string,
  every: Duration.DurationInput,
  run: { readonly ref: string; readonly owner: string }
): Effect.Effect<never, Unauthorized | RunNotFound> =>
  refusal(auth, key, every, (principal) => (maySee(principal, run.owner) ? Effect.void : Effect.fail(new RunNotFound({ run: run.ref }))))
