import { Cause } from "effect"

/**
 * A one-line account of a failure for events and dead letters: the error or defect messages,
 * without stack traces (they differ between machines, and events must be reproducible).
 */
export const renderCause = (cause: Cause.Cause<unknown>): string => {
  const parts: Array<string> = []
  for (const failure of Cause.failures(cause)) parts.push(describe(failure))
  for (const defect of Cause.defects(cause)) parts.push(describe(defect))
  if (parts.length === 0 && Cause.isInterrupted(cause)) return "interrupted"
  return parts.length === 0 ? "unknown failure" : parts.join("; ")
}

const describe = (error: unknown): string => {
  if (typeof error === "object" && error !== null && "_tag" in error) {
    const message = "message" in error && typeof error.message === "string" && error.message !== "" ? `: ${error.message}` : ""
    return `${String(error._tag)}${message}`
  }
  if (error instanceof Error) return `${error.name}: ${error.message}`
  return String(error)
}
