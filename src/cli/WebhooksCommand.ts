/**
 * `swarm webhooks secret | rotate <strategy> [--json]`: a strategy's TradingView webhook on a
 * server (docs/webhooks.md) — its URL and, the first time or on a rotation, its secret, shown that
 * once (the server keeps only its hash). The `webhooks.secret` and `webhooks.rotate` procedures.
 */
import { Command } from "@effect/cli"
import { Effect, Schema } from "effect"
import { type WebhookSecret, WebhookSecret as WebhookSecretSchema } from "../../schemas/Rpc.js"
import { json } from "./Flags.js"
import type { Io } from "./Io.js"
import * as Remote from "./Remote.js"
import { strategyArg, strategyRef } from "./StrategiesCommand.js"
import type { Wiring } from "./Wiring.js"

/** The answer with the webhook's whole URL on the server it came from. */
const WebhookJson = Schema.extend(WebhookSecretSchema, Schema.Struct({ url: Schema.String }))

export const webhookJson = (server: string, webhook: WebhookSecret): string =>
  `${JSON.stringify(Schema.encodeSync(WebhookJson)({ ...webhook, url: `${server}${webhook.path}` }), null, 2)}\n`

/** The webhook in lines: where TradingView posts, and the secret when it is shown (else how to get a new one). */
export const webhookView = (server: string, ref: string, webhook: WebhookSecret, rotated: boolean): string => {
  const secret = webhook.secret === null
    ? `secret   ${webhook.prefix}… (shown only when made: \`swarm webhooks rotate ${ref}\` makes a new one, and the old one stops working)\n`
    : `secret   ${webhook.secret}\n         shown this once: only its hash is kept${rotated ? "; the old secret no longer works" : ""}\n`
  return `webhook of strategy ${webhook.strategy}\nurl      ${server}${webhook.path}\n${secret}`
}

const make = (name: "secret" | "rotate", io: Io, wiring: Wiring) =>
  Command.make(name, {
    strategy: strategyArg,
    json: json("Print the webhook as one JSON document on stdout: strategy, path, url, secret (null once shown), prefix, createdAt."),
    ...Remote.options
  }, (flags) =>
    Effect.gen(function*() {
      const ref = yield* strategyRef("<strategy>", flags.strategy)
      yield* Remote.withRemote(flags, wiring)((remote) =>
        Effect.gen(function*() {
          const webhook = yield* (name === "secret" ? remote.client.webhooks.secret({ strategy: ref }) : remote.client.webhooks.rotate({ strategy: ref })).pipe(
            remote.call("strategy")
          )
          const server = remote.target.server.replace(/\/+$/, "")
          io.stdout(flags.json ? webhookJson(server, webhook) : webhookView(server, ref, webhook, name === "rotate"))
        })
      )
    }).pipe(Effect.withSpan(`swarm.webhooks.${name}`)))

export const command = (io: Io, wiring: Wiring) =>
  Command.make("webhooks").pipe(
    Command.withDescription("A strategy's TradingView webhook: its URL and secret (docs/webhooks.md)."),
    Command.withSubcommands([
      make("secret", io, wiring).pipe(
        Command.withDescription("The strategy's webhook URL, and its secret the first time it is asked for (made then; shown once).")
      ),
      make("rotate", io, wiring).pipe(
        Command.withDescription("A new webhook secret for the strategy, shown once; the old one stops working at once.")
      )
    ])
  )
