/**
 * What the webhooks keep (migrations/0002_webhooks.ts): each strategy's webhook secret — only its
 * SHA-256 and a prefix; the secret itself is shown once, when made or rotated — and the keys of the
 * alerts each strategy accepted, so a repeat is acknowledged and not delivered twice, across
 * restarts and processes.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto"
import { SqlClient } from "@effect/sql"
import { Effect, Exit, Option, Schema } from "effect"
import { arrivalOrder, canonicalSignal, ExternalSignal } from "../../schemas/ExternalSignal.js"
import type { RunId, StrategyId } from "../../schemas/Ids.js"
import * as RecordedSignals from "./RecordedSignals.js"
import * as Strategies from "./Strategies.js"
import { storeError } from "./StoreError.js"
import { transaction } from "./Transaction.js"

/** `whsec_` + 43 characters of base64url (32 random bytes). */
const SHAPE = /^whsec_[A-Za-z0-9_-]{43}$/
/** What is kept in clear: `whsec_` and 6 characters (36 bits: tells secrets apart, gives nothing away). */
export const PREFIX_LENGTH = 12

/** Whether `secret` has the shape of one we make: anything else goes no further than this. */
export const wellFormed = (secret: string): boolean => secret.length === 49 && SHAPE.test(secret)

const hash = (secret: string): Buffer => createHash("sha256").update(secret, "utf8").digest()

/** Compared against when the strategy has no secret, so that case takes as long as a wrong secret. */
const NO_SECRET = Buffer.alloc(32)

const newSecret = () => {
  const secret = `whsec_${randomBytes(32).toString("base64url")}`
  return { secret, hash: hash(secret).toString("hex"), prefix: secret.slice(0, PREFIX_LENGTH) }
}

export interface Secret {
  readonly strategyId: StrategyId
  /** The secret, when it was made by this call; null otherwise (it is not kept). */
  readonly secret: string | null
  readonly prefix: string
  readonly createdAt: Date
}

/** The webhook secret of `owner`'s strategy `ref`: made (and given) on the first ask. */
export const ensureSecret = Effect.fn("Webhooks.ensureSecret")(function*(owner: string, ref: string) {
  const sql = yield* SqlClient.SqlClient
  const found = yield* Strategies.find(owner, ref)
  const made = newSecret()
  const [inserted] = yield* sql<{ createdAt: Date }>`
    insert into webhook_secrets (strategy_id, secret_hash, prefix) values (${found.id}, ${made.hash}, ${made.prefix})
    on conflict (strategy_id) do nothing returning created_at`
  if (inserted !== undefined) return { strategyId: found.id, secret: made.secret, prefix: made.prefix, createdAt: inserted.createdAt } satisfies Secret
  const [row] = yield* sql<{ prefix: string; createdAt: Date }>`
    select prefix, coalesce(rotated_at, created_at) as created_at from webhook_secrets where strategy_id = ${found.id}`
  return { strategyId: found.id, secret: null, prefix: row!.prefix, createdAt: row!.createdAt } satisfies Secret
}, storeError("read a webhook secret"))

/** A new secret for `owner`'s strategy `ref`; the old one stops working at once. */
export const rotateSecret = Effect.fn("Webhooks.rotateSecret")(function*(owner: string, ref: string) {
  const sql = yield* SqlClient.SqlClient
  const found = yield* Strategies.find(owner, ref)
  const made = newSecret()
  const [row] = yield* sql<{ createdAt: Date }>`
    insert into webhook_secrets (strategy_id, secret_hash, prefix) values (${found.id}, ${made.hash}, ${made.prefix})
    on conflict (strategy_id) do update set secret_hash = excluded.secret_hash, prefix = excluded.prefix, rotated_at = now()
    returning coalesce(rotated_at, created_at) as created_at`
  return { strategyId: found.id, secret: made.secret, prefix: made.prefix, createdAt: row!.createdAt } satisfies Secret
}, storeError("rotate a webhook secret"))

/**
 * Whether `presented` is the webhook secret of the (not deleted) strategy `strategyId` of an
 * enabled user: a disabled user's webhooks are refused as their API keys are. The hashes are
 * compared in constant time, and a strategy without a secret (or none at all) is compared against
 * a dummy: every refusal costs the same and says nothing.
 */
export const verifySecret = Effect.fn("Webhooks.verifySecret")(function*(strategyId: string, presented: string) {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<{ secretHash: string }>`
    select w.secret_hash from webhook_secrets w join strategies s on s.id = w.strategy_id join users u on u.id = s.owner_id
    where w.strategy_id = ${strategyId} and s.deleted_at is null and u.disabled_at is null`
  const expected = row === undefined ? NO_SECRET : Buffer.from(row.secretHash, "hex")
  const same = timingSafeEqual(expected, hash(presented))
  return same && row !== undefined && wellFormed(presented)
}, storeError("check a webhook secret"))

export interface Claimed {
  /** True when the key was taken already: a repeat, not delivered again. */
  readonly duplicate: boolean
  /** The runs the alert went to (a repeat: the runs the first one reached). */
  readonly runs: ReadonlyArray<string>
}

/**
 * Take alert `key` of `strategyId` and, if it is new, `deliver` it — in one transaction: a
 * delivery that fails (no run to take it) releases the key, so the alert can be sent again; a key
 * taken already (even by another process, even a moment ago) is a repeat and is not delivered.
 *
 * The delivery is staged: `settle` is told whether the transaction committed, and only then does a
 * run take the alert (`settle(true)`); a failed commit releases the key and drops the alert
 * (`settle(false)`), so the sender's retry is the one delivery. Whole, whatever the caller does:
 * a sender that went away after the delivery must not release the key (its retry would be
 * delivered a second time).
 */
export const claimAlert = <E>(
  strategyId: StrategyId,
  key: string,
  deliver: Effect.Effect<{
    readonly runs: ReadonlyArray<RunId>
    readonly signal: ExternalSignal
    readonly settle?: ((delivered: boolean) => void) | undefined
  }, E>
) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    let settle: ((delivered: boolean) => void) | undefined
    const claim = transaction(sql, Effect.gen(function*() {
      // The unique key serialises twins: the second insert waits for the first to commit, then finds it.
      const claimed = yield* sql`
        insert into webhook_alerts (strategy_id, alert_key, runs) values (${strategyId}, ${key}, '[]'::jsonb)
        on conflict (strategy_id, alert_key) do nothing returning alert_key`
      if (claimed.length === 0) {
        const [row] = yield* sql<{ runs: unknown }>`select runs from webhook_alerts where strategy_id = ${strategyId} and alert_key = ${key}`
        const runs = Array.isArray(row?.runs) ? row.runs.map(String) : []
        return { duplicate: true, runs } satisfies Claimed
      }
      const delivered = yield* deliver
      settle = delivered.settle
      const { runs, signal } = delivered
      // The signal too: put back in a run's inbox if the run had not taken it when the server stopped (`pendingSignals`).
      yield* sql`update webhook_alerts set runs = ${JSON.stringify(runs)}::jsonb, signal = ${JSON.stringify(signal)}::jsonb
        where strategy_id = ${strategyId} and alert_key = ${key}`
      return { duplicate: false, runs } satisfies Claimed
    }))
    return yield* Effect.uninterruptible(Effect.onExit(claim, (exit) => Effect.sync(() => settle?.(Exit.isSuccess(exit)))))
  }).pipe(storeError("record a webhook alert"), Effect.withSpan("Webhooks.claimAlert"))

const decodeSignal = Schema.decodeUnknownOption(ExternalSignal)
const decodeSignalJson = Schema.decodeUnknownOption(Schema.parseJson(ExternalSignal))

/**
 * The signals of alerts delivered to `run` that it has not recorded (`recorded`: the alert ids its
 * events hold), in arrival order (`arrivalOrder`): what its inbox held when its process stopped.
 */
export const pendingSignals = Effect.fn("Webhooks.pendingSignals")(function*(strategyId: StrategyId, run: RunId, recorded: ReadonlySet<string>) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ signal: unknown }>`
    select signal from webhook_alerts
    where strategy_id = ${strategyId} and signal is not null and runs @> ${JSON.stringify([run])}::jsonb`
  const signals: Array<ExternalSignal> = []
  for (const row of rows) {
    // A row that does not decode (edited by hand) is left out: the run goes on without it.
    const signal = typeof row.signal === "string" ? decodeSignalJson(row.signal) : decodeSignal(row.signal)
    if (Option.isSome(signal) && !recorded.has(signal.value.alertId)) signals.push(canonicalSignal(signal.value))
  }
  return signals.sort(arrivalOrder)
}, storeError("read a run's undelivered alerts"))

/** The alerts delivered to paper run `run` that its events hold neither as taken nor as not applied. */
export const pendingOf = (run: { readonly id: RunId; readonly strategyId: StrategyId }) =>
  Effect.gen(function*() {
    const taken = new Set<string>()
    for (const signals of (yield* RecordedSignals.read(run.id)).values()) for (const signal of signals) taken.add(signal.alertId)
    for (const signal of yield* RecordedSignals.readNotApplied(run.id)) taken.add(signal.alertId)
    return yield* pendingSignals(run.strategyId, run.id, taken)
  })
