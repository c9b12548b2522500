/**
 * The server side of `WebhookRpcs` (schemas/Webhook.ts): a strategy's owner gets its webhook — the
 * path and, the first time, the secret — and rotates the secret. Only the owner: another user's
 * strategy is `StrategyNotFound`, as one that does not exist.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { CurrentPrincipal } from "../../schemas/Rpc.js"
import { webhookPath, type WebhookSecret, WebhookRpcs } from "../../schemas/Webhook.js"
import * as WebhookStore from "../store/Webhooks.js"
import { unavailable } from "./Unavailable.js"

const answer = (secret: WebhookStore.Secret): WebhookSecret => ({
  strategy: secret.strategyId,
  path: webhookPath(secret.strategyId),
  secret: secret.secret,
  prefix: secret.prefix,
  createdAt: secret.createdAt
})

export const WebhookHandlers = WebhookRpcs.toLayer(Effect.gen(function*() {
  const context = yield* Effect.context<SqlClient.SqlClient>()
  return {
    "webhooks.secret": ({ strategy }) =>
      Effect.flatMap(CurrentPrincipal, (p) => unavailable(Effect.map(WebhookStore.ensureSecret(p.userId, strategy), answer))).pipe(
        Effect.provide(context)
      ),
    "webhooks.rotate": ({ strategy }) =>
      Effect.flatMap(CurrentPrincipal, (p) => unavailable(Effect.map(WebhookStore.rotateSecret(p.userId, strategy), answer))).pipe(
        Effect.provide(context)
      )
  }
}))
