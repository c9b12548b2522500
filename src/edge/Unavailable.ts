/**
 * What an RPC client sees of the store failing under a procedure (the database down, a row that
 * does not decode, a run's data gone): `Unavailable` with the reason — never a defect or a stack.
 */
import { Effect } from "effect"
import { Unavailable } from "../../schemas/Rpc.js"

type StoreFailure = { readonly _tag: "StoreError" | "CorruptRecord" | "DataChanged"; readonly message: string }

const isStoreFailure = (error: unknown): error is StoreFailure =>
  typeof error === "object" && error !== null && "_tag" in error &&
  (error._tag === "StoreError" || error._tag === "CorruptRecord" || error._tag === "DataChanged")

export const unavailable = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, Exclude<E, StoreFailure> | Unavailable, R> =>
  Effect.catchIf(effect, isStoreFailure, (error) => Effect.fail(new Unavailable({ reason: error.message }))) as Effect.Effect<
    A,
    Exclude<E, StoreFailure> | Unavailable,
    R
  >
