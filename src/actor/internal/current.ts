import { FiberRef } from "effect"
import type { ActorCell } from "./cell.js"

/** The actor whose fiber is running (inherited by fibers it forks); senders read it to sign envelopes. */
export const CurrentActor: FiberRef.FiberRef<ActorCell<any, any> | undefined> = FiberRef.unsafeMake<
  ActorCell<any, any> | undefined
>(undefined)
