/**
 * `@semantest/client`: the Semantest hub's JavaScript/TypeScript SDK for Node (20+) and browsers.
 *
 * ```ts
 * const hub = await Hub.connect("http://localhost:3000", { apiKey });
 * const page = await hub.run("NAVIGATE", { url: "https://example.com" }, { timeout: 10_000 });
 * ```
 * See docs/sdk.md for the whole surface, and docs/protocol.md for the wire contract.
 */

export { Hub, type HubOptions } from "./hub.js";
export { CommandHandle, type RunOptions } from "./commands.js";
export { Session } from "./sessions.js";
export { Subscription, type SubscribeOptions } from "./channels.js";
export {
  CommandError, HANDLER_ERROR, UNKNOWN_COMMAND, Worker, type CommandContext, type Handler,
  type WorkerOptions,
} from "./worker.js";
export type { ConnectOptions, Credentials } from "./link.js";
export type {
  ChannelMessage, CommandMessage, Completed, CommandParams, CommandTypes, DataOf, DeliveredCommand, ErrorBody,
  ParamsOf, Permission, Pong, Progress, Result, ResultMetadata,
} from "./messages.js";
export {
  AuthExpiredError, AuthInvalidError, AuthRequiredError, CancelledError, ClosedError,
  CommandFailedError, CommandTimeoutError, errorFromWire, ExtensionDisconnectedError,
  ForbiddenError, HubError, InternalError, NoExtensionError, PayloadTooLargeError,
  RateLimitedError, SessionNotFoundError, TooManyConnectionsError, UnavailableError,
  UnknownEventError, ValidationFailedError, type HubErrorInit,
} from "./errors.js";
