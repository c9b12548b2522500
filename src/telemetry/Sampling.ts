/**
 * Which rounds are traced. A round's trace (the coordinator's span, a span per agent message, the
 * verdicts, the LLM calls) costs tens of microseconds of span objects; a backtest replays thousands
 * of rounds a second, so tracing them all would cost it most of its speed. The coordinator decides
 * once per cycle (every symbol's round at one timestamp) with a `RoundSampler`, and an unsampled
 * round creates no span object at all: its messages carry no trace context, so no agent opens one.
 *
 * The rate is a fraction of cycles: 1 traces every one (the default for paper runs, which go at a
 * few bars a second), 0 none (the default for backtests), 0.0001 one in 10,000. Sampling is by count,
 * not by chance — every n-th cycle from the first — so that tracing draws nothing from the run's
 * seeded `Random` and the same run traces the same rounds every time.
 *
 * Configuration (read once, by the telemetry layer): `SWARM_TRACE_SAMPLE` for backtests and
 * replays, `SWARM_TRACE_SAMPLE_PAPER` for paper runs; `Backtest.Options.traceRounds` overrides both
 * for one run.
 */
import { Config, ConfigError, Context, Either } from "effect"

/** Decides, once per coordinator cycle, whether that cycle is traced. */
export interface RoundSampler {
  readonly sample: () => boolean
}

/** Every cycle. */
export const always: RoundSampler = { sample: () => true }

/**
 * Every `1 / rate`-th cycle, the first one included (so a short run asked to trace shows a round);
 * undefined for a rate of 0 (nothing traced: the coordinator does not even count).
 */
export const sampler = (rate: number): RoundSampler | undefined => {
  if (!(rate > 0)) return undefined
  if (rate >= 1) return always
  const every = Math.max(1, Math.round(1 / rate))
  let seen = 0
  return {
    sample: () => {
      const sampled = seen === 0
      if (++seen === every) seen = 0
      return sampled
    }
  }
}

export interface Rates {
  /** Fraction of a paper run's cycles traced. */
  readonly paper: number
  /** Fraction of a backtest's (or a replay's) cycles traced. */
  readonly backtest: number
}

export const defaultRates: Rates = { paper: 1, backtest: 0 }

/** The process's sampling rates; the defaults unless the telemetry layer read others. */
export class TraceSampling extends Context.Reference<TraceSampling>()("swarm/telemetry/TraceSampling", {
  defaultValue: (): Rates => defaultRates
}) {}

const rate = (name: string, fallback: number) =>
  Config.number(name).pipe(
    Config.mapOrFail((r) =>
      r >= 0 && r <= 1
        ? Either.right(r)
        : Either.left(ConfigError.InvalidData([], `must be a fraction between 0 and 1, not ${r} (1 traces every round, 0.0001 one in 10,000)`))
    ),
    Config.withDefault(fallback)
  )

export const backtestRate = rate("SWARM_TRACE_SAMPLE", defaultRates.backtest)
export const paperRate = rate("SWARM_TRACE_SAMPLE_PAPER", defaultRates.paper)

/** `SWARM_TRACE_SAMPLE` (backtests, default 0) and `SWARM_TRACE_SAMPLE_PAPER` (default 1). */
export const config: Config.Config<Rates> = Config.all({ backtest: backtestRate, paper: paperRate })
