/** The actor kernel: mailboxes, envelopes, refs, tell/ask, the system, dead letters and lifecycle. */
export * as Actor from "./Actor.js"
export * as ActorRef from "./ActorRef.js"
export * as ActorSystem from "./ActorSystem.js"
export * as Envelope from "./Envelope.js"
export * as Mailbox from "./Mailbox.js"
