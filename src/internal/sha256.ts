/**
 * SHA-256 of a string, as lowercase hex, in one call: `crypto.hash` (Node 20.12 and 21.7 on) does
 * it without making a `Hash` object, half the cost of `createHash(…).update(…).digest("hex")` for
 * the few hundred bytes of an event line. Older Node 20 releases get `createHash`: same digest.
 */
import * as crypto from "node:crypto"

const oneShot: ((algorithm: string, data: string, encoding: "hex") => string) | undefined =
  typeof crypto.hash === "function" ? crypto.hash : undefined

export const sha256Hex: (text: string) => string = oneShot !== undefined
  ? (text) => oneShot("sha256", text, "hex")
  : (text) => crypto.createHash("sha256").update(text).digest("hex")
