/**
 * The numbered migrations, in order. Listed here rather than read from the directory so they load
 * the same way under every runner (the TypeScript loader, vitest, a bundle): add a file
 * `NNNN_name.ts` whose default export is an Effect, and a line below.
 */
import type { ResolvedMigration } from "@effect/sql/Migrator"
import { Effect } from "effect"

export const migrations: ReadonlyArray<ResolvedMigration> = [
  [1, "initial", Effect.promise(() => import("./0001_initial.js"))],
  [2, "webhooks", Effect.promise(() => import("./0002_webhooks.js"))],
  [3, "paper_speed", Effect.promise(() => import("./0003_paper_speed.js"))],
  [4, "chat", Effect.promise(() => import("./0004_chat.js"))],
  [5, "alert_signals", Effect.promise(() => import("./0005_alert_signals.js"))],
  [6, "cancelled_approvals", Effect.promise(() => import("./0006_cancelled_approvals.js"))],
  [7, "run_inputs_seal", Effect.promise(() => import("./0007_run_inputs_seal.js"))],
  [8, "approval_waits", Effect.promise(() => import("./0008_approval_waits.js"))],
  [9, "control_requests", Effect.promise(() => import("./0009_control_requests.js"))],
  [10, "control_audit", Effect.promise(() => import("./0010_control_audit.js"))],
  [11, "llm_answers", Effect.promise(() => import("./0011_llm_answers.js"))],
  [12, "agent_totals", Effect.promise(() => import("./0012_agent_totals.js"))],
  [13, "control_trading", Effect.promise(() => import("./0013_control_trading.js"))],
  [14, "partial_fills", Effect.promise(() => import("./0014_partial_fills.js"))],
  [15, "up_to_stop", Effect.promise(() => import("./0015_up_to_stop.js"))],
  [16, "waiting_runs", Effect.promise(() => import("./0016_waiting_runs.js"))]
]
