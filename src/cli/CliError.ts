/**
 * The command line's own failures, beside those of the modules it drives (strategy files, CSV,
 * agents, the backtest): each names what to fix (`field`: a flag or a path) and why.
 */
import { type ConfigError, Schema } from "effect"

/** A flag with a value the command cannot use (`--from`, `--seed`, …). Exit code 2. */
export class UsageError extends Schema.TaggedError<UsageError>()("UsageError", {
  field: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `${this.field}: ${this.reason}`
  }
}

/**
 * A bad setting as a `UsageError` naming it alone: `PORT: Expected a network port value but
 * received "abc"` — not Effect's `(Invalid data at PORT: "…")`, nor every setting read together.
 * Several at once are joined, each named.
 */
export const fromConfigError = (error: ConfigError.ConfigError): UsageError => {
  const parts: Array<{ readonly field: string; readonly reason: string }> = []
  const walk = (e: ConfigError.ConfigError): void => {
    if (e._op === "And" || e._op === "Or") {
      walk(e.left)
      walk(e.right)
    } else {
      parts.push({ field: e.path.length === 0 ? "configuration" : e.path.join("."), reason: e.message })
    }
  }
  walk(error)
  const [first] = parts
  if (parts.length === 1 && first !== undefined) return new UsageError(first)
  return new UsageError({ field: "configuration", reason: parts.map((p) => `${p.field}: ${p.reason}`).join("; ") })
}

/** `--out` could not be created or written. */
export class OutputError extends Schema.TaggedError<OutputError>()("OutputError", {
  path: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `${this.path}: ${this.reason}`
  }
}

/** The run ran and ended `failed`: its report has been printed, the process exits 1. */
export class RunFailed extends Schema.TaggedError<RunFailed>()("RunFailed", {
  run: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `run ${this.run} failed: ${this.reason}`
  }
}

/** `swarm audit verify`: a run's event chain does not verify from `position` on. Exit code 1. */
export class AuditFailed extends Schema.TaggedError<AuditFailed>()("AuditFailed", {
  run: Schema.String,
  position: Schema.Number,
  reason: Schema.String
}) {
  override get message(): string {
    return `run ${this.run}: the audit chain does not verify at entry ${this.position}: ${this.reason}`
  }
}

/** `swarm resume` without a run: some of the unfinished runs could not be resumed (each was reported). Exit code 1. */
export class ResumeFailed extends Schema.TaggedError<ResumeFailed>()("ResumeFailed", {
  failed: Schema.Number,
  total: Schema.Number
}) {
  override get message(): string {
    return `${this.failed} of ${this.total} unfinished runs could not be resumed`
  }
}

/** The server could not start (the port is taken, say) or could not make its first-start demo. */
export class ServeFailed extends Schema.TaggedError<ServeFailed>()("ServeFailed", {
  reason: Schema.String
}) {}

/**
 * A server that could not be reached, could not do what was asked for a reason of its own
 * (`Unavailable`), or did not answer as a Swarm server does. Exit code 1: nothing the command's
 * input can fix. Refusals that the input can fix (an unknown run, a refused key) are `UsageError`s.
 */
export class RemoteFailed extends Schema.TaggedError<RemoteFailed>()("RemoteFailed", {
  field: Schema.String,
  reason: Schema.String,
  /** The server could not be reached, or could not do it now: trying again later may work (exit 3). */
  unavailable: Schema.optional(Schema.Boolean)
}) {
  override get message(): string {
    return `${this.field}: ${this.reason}`
  }
}
