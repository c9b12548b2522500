/**
 * The server side of `traces.get` (schemas/Rpc.ts): a run's traced rounds from this process's
 * in-process span store (src/telemetry/SpanStore.ts). The run must be the principal's (an admin
 * sees every run): "not yours" is `RunNotFound`, as for `runs.get`. A server started without
 * telemetry holds no spans and says so in the answer's `store`.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import type { Principal } from "../../schemas/Auth.js"
import { CurrentPrincipal, TraceRpcs } from "../../schemas/Rpc.js"
import * as Runs from "../store/Runs.js"
import { Telemetry } from "../telemetry/Telemetry.js"
import { unavailable } from "./Unavailable.js"

const ownerFilter = (principal: Principal) => (principal.role === "admin" ? undefined : principal.userId)

export const TraceHandlers = TraceRpcs.toLayer(Effect.gen(function*() {
  const context = yield* Effect.context<SqlClient.SqlClient>()
  const telemetry = yield* Effect.serviceOption(Telemetry)
  return {
    "traces.get": ({ round, run }) =>
      Effect.flatMap(CurrentPrincipal, (principal) =>
        unavailable(Effect.map(Runs.getSummary(run, ownerFilter(principal)), (found) =>
          telemetry._tag === "Some"
            ? telemetry.value.store.query(found.id, round, telemetry.value.info.description)
            : {
              run: found.id,
              store: { description: "this server keeps no spans: it runs without telemetry", capacity: 0, spans: 0 },
              rounds: [],
              trace: null
            }))).pipe(Effect.provide(context))
  }
}))
