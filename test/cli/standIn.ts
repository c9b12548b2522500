/** A stand-in server for the CLI's remote commands (WatchBehind.test.ts, ChatResume.test.ts): `client`'s procedures, no network. */
import { Stream } from "effect"
import * as Remote from "../../src/cli/Remote.js"

/** Its address, as the commands name it in what they print. */
export const server = "http://swarm.test:7430"

/** A `Remote` whose client is `client` (the procedures a test gives), its streams' errors translated as a real one's are. */
export const standIn = (client: unknown): Remote.Remote => {
  const target = { server, serverFrom: "test", key: undefined, keyFrom: undefined }
  return {
    target,
    client,
    call: () => (request: unknown) => request,
    follow: (subject: string) => (stream: Stream.Stream<unknown, Remote.ServerError>) =>
      Stream.mapError(stream, Remote.translate(target as Parameters<typeof Remote.translate>[0], subject))
  } as unknown as Remote.Remote
}
