/**
 * What the HTTP edge adds to the metrics: the SSE streams open (`swarm.sse.subscribers`) — a run's
 * events and the chat's alike, recognised by their `text/event-stream` body — counted from the first
 * byte to the client leaving or the stream ending. A global router middleware, so no route knows.
 */
import { HttpBody, HttpLayerRouter, HttpServerResponse } from "@effect/platform"
import { Effect, Stream } from "effect"
import * as Metrics from "./Metrics.js"

export const sseSubscribers = HttpLayerRouter.middleware(
  (app: Effect.Effect<HttpServerResponse.HttpServerResponse, HttpLayerRouter.unhandled>) =>
    Effect.map(app, (response) => {
      const body = response.body
      if (body._tag !== "Stream" || !body.contentType.startsWith("text/event-stream")) return response
      const counted = Stream.acquireRelease(Effect.sync(() => Metrics.sseSubscriber(1)), () => Effect.sync(() => Metrics.sseSubscriber(-1))).pipe(
        Stream.flatMap(() => body.stream)
      )
      return HttpServerResponse.setBody(response, HttpBody.stream(counted, body.contentType, body.contentLength))
    }),
  { global: true }
)
