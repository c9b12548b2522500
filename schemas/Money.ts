/**
 * Money, exactly: an integer number of micro-units (10⁻⁶) of the account currency, held in a JS
 * number that must stay a safe integer (|x| ≤ 2⁵³−1 micros, about 9 billion units). Sums and
 * differences of safe integers are exact, so cash never drifts; a product with a price is rounded
 * to the nearest micro once, where the ledger says so (see src/trading/Money.ts).
 *
 * Books live in that range: a strategy starts with at most a ninth of it (`MAX_INITIAL_CASH` in
 * schemas/Strategy.ts, 1,000,000,000), the rest being room for gains and short sales' proceeds; an
 * order that would take cash past it is cut down or refused (the `money_range` gate), and marks
 * that take equity past it stop the run, saying so.
 */
import { ParseResult, Schema } from "effect"

export const Money = Schema.Number.pipe(
  Schema.int({ message: () => "money is an integer number of micro-units" }),
  Schema.filter((n) => Number.isSafeInteger(n) || "money must stay within ±2^53-1 micro-units"),
  Schema.brand("Money")
)
export type Money = typeof Money.Type

/**
 * A decimal amount of currency as people write it (`"10000"`, `"99.95"`), decoded to micros exactly
 * (in BigInt, then checked against the safe range), so every `Money` encodes to a string that
 * decodes back to it.
 */
export const MoneyFromDecimal = Schema.transformOrFail(
  Schema.String,
  Money,
  {
    strict: true,
    decode: (text, _, ast) => {
      const match = /^(-)?(\d{1,16})(?:\.(\d{1,6}))?$/.exec(text.trim())
      if (match === null) {
        return ParseResult.fail(
          new ParseResult.Type(ast, text, "expected a decimal amount with at most 6 decimals, e.g. \"10000\" or \"99.95\"")
        )
      }
      const exact = BigInt(match[2]!) * 1_000_000n + BigInt((match[3] ?? "").padEnd(6, "0"))
      if (exact > BigInt(Number.MAX_SAFE_INTEGER)) {
        return ParseResult.fail(new ParseResult.Type(ast, text, "amount too large: at most 9007199254.740991"))
      }
      const micros = Number(exact)
      // "-0" is zero, not a negative zero that Object.is would tell apart.
      return ParseResult.succeed((match[1] === "-" && micros !== 0 ? -micros : micros) as Money)
    },
    encode: (micros) => {
      const sign = micros < 0 ? "-" : ""
      const abs = Math.abs(micros)
      const units = Math.floor(abs / 1_000_000)
      const fraction = String(abs % 1_000_000).padStart(6, "0").replace(/0+$/, "")
      return ParseResult.succeed(`${sign}${units}${fraction === "" ? "" : `.${fraction}`}`)
    }
  }
)
