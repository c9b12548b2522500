/**
 * The bytes of a burst of run events (Sse.burstBytes): byte for byte the frames of its events, in
 * order, however they were encoded — a live run's consecutive frames one view of its slab, not a
 * copy per client.
 */
import { describe, expect, it } from "@effect/vitest"
import type { BusEvent } from "../../src/bus/EventBus.js"
import * as Sse from "../../src/edge/Sse.js"

const event = (seq: number, size = 40): BusEvent => ({
  seq,
  tag: seq % 2 === 0 ? "OrderPlaced" : "Opinion",
  json: JSON.stringify({ seq, note: "é€".repeat(Math.max(1, Math.floor(size / 4))) })
})

const expected = (events: ReadonlyArray<BusEvent>) => Buffer.from(events.map((e) => Sse.eventFrame(e.seq, e.tag, e.json)).join(""), "utf8")

const bytes = (views: ReadonlyArray<Uint8Array>) => Buffer.concat(views.map((v) => Buffer.from(v.buffer, v.byteOffset, v.length)))

describe("SSE frames", () => {
  it("a live run's burst is one view of the frames as encoded, byte for byte; another client's burst of the same events shares it", () => {
    const run = `run_frames_${Math.random()}`
    // About 10 kB of frames: within a run's first slab.
    const events = Array.from({ length: 100 }, (_, i) => event(i + 1))
    // Encoded in bursts as clients ask, in order: consecutive frames lie side by side.
    Sse.burstBytes(run, events.slice(0, 50))
    Sse.burstBytes(run, events.slice(50))
    const views = Sse.burstBytes(run, events.slice(10, 90))
    expect(views.length).toBe(1)
    expect(bytes(views).equals(expected(events.slice(10, 90)))).toBe(true)
    const again = Sse.burstBytes(run, events.slice(10, 90))
    expect([again.length, again[0]!.buffer, again[0]!.byteOffset]).toEqual([1, views[0]!.buffer, views[0]!.byteOffset])
  })

  it("runs encoded in turn, large frames and frames encoded out of order: every byte in order, in few pieces", () => {
    const a = `run_frames_a_${Math.random()}`
    const b = `run_frames_b_${Math.random()}`
    const ofA = Array.from({ length: 3_000 }, (_, i) => event(i + 1, i % 500 === 7 ? 200_000 : 40))
    const ofB = Array.from({ length: 3_000 }, (_, i) => event(i + 1))
    // Interleaved: each run's frames still lie side by side in slabs of its own.
    for (let i = 0; i < 3_000; i += 100) {
      Sse.burstBytes(a, ofA.slice(i, i + 100))
      Sse.burstBytes(b, ofB.slice(i, i + 100))
    }
    const all = Sse.burstBytes(a, ofA)
    expect(bytes(all).equals(expected(ofA))).toBe(true)
    expect(all.length).toBe(1) // more stretches than a few (the large frames, the slabs' ends): one copy
    const plain = Sse.burstBytes(b, ofB.slice(0, 20))
    expect(plain.length).toBe(1)
    expect(bytes(plain).equals(expected(ofB.slice(0, 20)))).toBe(true)
    // Out of order (a page of the database read after the live events): still every byte in order.
    const shuffled = [...ofB.slice(2_000, 2_010), ...ofB.slice(100, 110)]
    expect(bytes(Sse.burstBytes(b, shuffled)).equals(expected(shuffled))).toBe(true)
  })
})
