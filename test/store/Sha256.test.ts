import { createHash } from "node:crypto"
import { describe, expect, it } from "@effect/vitest"
import { sha256Hex } from "../../src/internal/sha256.js"
import { GENESIS, linkHash } from "../../src/store/RunRecorder.js"

const reference = (text: string) => createHash("sha256").update(text, "utf8").digest("hex")

describe("sha256Hex", () => {
  it("is createHash's SHA-256 of the string's UTF-8, as lowercase hex", () => {
    const texts = ["", "abc", "a\nb", "é, 株, 🙂", "\ud800 lone surrogate", "x".repeat(100_000), JSON.stringify({ _tag: "RunStarted", seq: 1 })]
    for (const text of texts) expect(sha256Hex(text)).toBe(reference(text))
    expect(sha256Hex("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
  })

  it("links the hash chain as SHA-256 of the previous hash, a newline and the line", () => {
    const line = "{\"_tag\":\"RunStarted\"}"
    const first = linkHash(GENESIS, line)
    expect(first).toBe(createHash("sha256").update(GENESIS).update("\n").update(line).digest("hex"))
    expect(linkHash(first, line)).toBe(reference(`${first}\n${line}`))
  })
})
