/**
 * The llm_analyst's prompt: its instructions (the system message, made once per config and symbol)
 * say the symbol, horizon, shorting rule and persona of the round they are sent in, and their
 * prepared JSON is `JSON.stringify` of the message.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { analyst, Config } from "../../agents/analysts/LlmSingle.js"
import { BriefTracker } from "../../agents/analysts/MarketBrief.js"
import type { Thinking } from "../../agents/LlmAnalyst.js"
import type { AgentId, RoundId } from "../../schemas/Ids.js"
import type { Message } from "../../schemas/Llm.js"
import { PreparedMessage } from "../../src/llm/PreparedMessage.js"
import * as Synthetic from "../../src/market/Synthetic.js"

const market = Synthetic.generate(Synthetic.sampleConfig)
const bars = market.bars.get([...market.bars.keys()][0]!)!

/** The messages `think` asks with, for a brief of `symbol` after `count` bars. */
const messagesOf = (config: Config, symbol: string, allowShort: boolean, count: number): ReadonlyArray<Message> => {
  const tracker = new BriefTracker(config.bars)
  for (let i = 0; i < count; i++) tracker.update({ ...bars[i]!, symbol: symbol as never })
  let asked: ReadonlyArray<Message> | undefined
  const thinking: Thinking<Config> = {
    agent: "analyst" as AgentId,
    round: `${symbol}@${bars[count - 1]!.ts}` as RoundId,
    brief: tracker.brief(undefined),
    config,
    allowShort,
    session: {
      generate: (ask) => Effect.sync(() => (asked = ask.messages)).pipe(Effect.as({ value: undefined, call: undefined as never })),
      peek: () => undefined
    },
    reason: () => {}
  }
  Effect.runSync(analyst.think(thinking))
  return asked!
}

const expected = (symbol: string, horizon: number, allowShort: boolean, persona?: string) =>
  `You are a trading analyst in a swarm of agents. Read the market brief and say where ${symbol} goes over the next ${horizon} bars. ` +
  `Answer only a JSON object {"direction", "confidence", "rationale"}: ` +
  (allowShort ? `"direction" is "long", "short" or "flat".` : `"direction" is "long" or "flat" (this strategy does not sell short).`) +
  ` "confidence" is from 0 to 1. The rationale cites the numbers you used, in at most three sentences.${persona === undefined ? "" : ` ${persona}`}`

describe("llm_analyst's instructions", () => {
  it("say each round's symbol, horizon, shorting rule and persona, their JSON that of the message", () => {
    const decode = Schema.decodeUnknownSync(Config)
    const configs = [decode({}), decode({ horizon: 3, persona: `Be "careful"\\ and brief.` })]
    for (const config of configs) {
      for (const allowShort of [false, true]) {
        for (const symbol of ["AAA", "BBB", `Q"UOTE`]) {
          for (const count of [40, 41, 42]) {
            const [system, user] = messagesOf(config, symbol, allowShort, count)
            expect(system!.role).toBe("system")
            expect(system!.content).toBe(expected(symbol, config.horizon, allowShort, config.persona))
            expect(PreparedMessage.json(system!)).toBe(JSON.stringify({ role: "system", content: system!.content }))
            expect(PreparedMessage.json(user!)).toBe(JSON.stringify({ role: "user", content: user!.content }))
            expect(user!.content).toContain(`Market brief for ${symbol} as of ${new Date(bars[count - 1]!.ts).toISOString()}`)
          }
        }
      }
    }
  })
})
