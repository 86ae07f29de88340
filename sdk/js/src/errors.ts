/**
 * Typed errors for every error code of the wire contract (docs/protocol.md, "Errors").
 *
 * One class per code, all under `HubError` (code, message, details). A code the SDK does not
 * know (an extension's own, like `HANDLER_ERROR`) becomes `CommandFailedError` carrying that
 * code, so callers can always `catch (e) { if (e instanceof HubError) e.code }`. The names
 * follow the Python SDK (`semantest.client.errors`) with JavaScript's `Error` suffix.
 */

import type { ErrorBody, Result } from "./messages.js";

export interface HubErrorInit {
  code?: string;
  details?: unknown;
  /** The event the hub refused (`command`, `session:join`, ...), when it said. */
  event?: string;
  /** The command id, when the error is about one command. */
  commandId?: string;
  /** The whole result, when a command ended with this error. */
  result?: Result;
}

/** An answer from the hub or an extension that means "no": `code` says why. */
export class HubError extends Error {
  static readonly code: string = "INTERNAL";
  readonly code: string;
  readonly details: unknown;
  readonly event: string | undefined;
  readonly commandId: string | undefined;
  readonly result: Result | undefined;

  constructor(message: string, init: HubErrorInit = {}) {
    super(message);
    this.name = new.target.name;
    this.code = init.code ?? (new.target as typeof HubError).code;
    this.details = init.details;
    this.event = init.event;
    this.commandId = init.commandId;
    this.result = init.result;
  }

  override toString(): string {
    return `${this.name} ${this.code}: ${this.message}`;
  }
}

export class AuthRequiredError extends HubError {
  static override readonly code = "AUTH_REQUIRED";
}
export class AuthInvalidError extends HubError {
  static override readonly code = "AUTH_INVALID";
}
export class AuthExpiredError extends HubError {
  static override readonly code = "AUTH_EXPIRED";
}
export class ForbiddenError extends HubError {
  static override readonly code = "FORBIDDEN";
}
export class ValidationFailedError extends HubError {
  static override readonly code = "VALIDATION_FAILED";
}
export class PayloadTooLargeError extends HubError {
  static override readonly code = "PAYLOAD_TOO_LARGE";
}
export class RateLimitedError extends HubError {
  static override readonly code = "RATE_LIMITED";

  /** Milliseconds to wait before trying again, when the hub said. */
  get retryAfter(): number | undefined {
    const after = (this.details as { retryAfter?: unknown } | undefined)?.retryAfter;
    return typeof after === "number" ? after : undefined;
  }
}
export class TooManyConnectionsError extends HubError {
  static override readonly code = "TOO_MANY_CONNECTIONS";
}
export class NoExtensionError extends HubError {
  static override readonly code = "NO_EXTENSION";
}
export class CommandTimeoutError extends HubError {
  static override readonly code = "TIMEOUT";
}
export class ExtensionDisconnectedError extends HubError {
  static override readonly code = "EXTENSION_DISCONNECTED";
}
export class CancelledError extends HubError {
  static override readonly code = "CANCELLED";
}
export class SessionNotFoundError extends HubError {
  static override readonly code = "SESSION_NOT_FOUND";
}
export class UnknownEventError extends HubError {
  static override readonly code = "UNKNOWN_EVENT";
}
/** The hub cannot be reached now (or a gateway is draining): trying again later may work. */
export class UnavailableError extends HubError {
  static override readonly code = "UNAVAILABLE";
}
export class InternalError extends HubError {
  static override readonly code = "INTERNAL";
}
/** An extension's own error code (not one of the hub's): `code` is what it sent. */
export class CommandFailedError extends HubError {
  static override readonly code = "COMMAND_FAILED";
}
/** This SDK object was closed (`hub.close()`, `worker.close()`) while something waited on it. */
export class ClosedError extends HubError {
  static override readonly code = "CLOSED";
}

const BY_CODE: ReadonlyMap<string, typeof HubError> = new Map(
  [
    AuthRequiredError, AuthInvalidError, AuthExpiredError, ForbiddenError, ValidationFailedError,
    PayloadTooLargeError, RateLimitedError, TooManyConnectionsError, NoExtensionError,
    CommandTimeoutError, ExtensionDisconnectedError, CancelledError, SessionNotFoundError,
    UnknownEventError, UnavailableError, InternalError,
  ].map((cls) => [cls.code, cls]),
);

/** Refusals of a handshake that trying again cannot change. */
export const FATAL_ON_CONNECT: ReadonlySet<string> = new Set([
  "AUTH_REQUIRED", "AUTH_INVALID", "AUTH_EXPIRED", "FORBIDDEN", "VALIDATION_FAILED",
]);

/** The error for an `error` body (`{code, message, details?, event?, id?, retryAfter?}`). */
export function errorFromWire(body: unknown, result?: Result): HubError {
  if (typeof body !== "object" || body === null) {
    return new InternalError(`malformed error from the hub: ${JSON.stringify(body)}`);
  }
  const wire = body as ErrorBody & { retryAfter?: unknown };
  const code = typeof wire.code === "string" && wire.code ? wire.code : "INTERNAL";
  const cls = BY_CODE.get(code) ?? CommandFailedError;
  const details = wire.details ?? (wire.retryAfter !== undefined
    ? { retryAfter: wire.retryAfter } : undefined);
  return new cls(typeof wire.message === "string" && wire.message ? wire.message : code, {
    code, details, event: wire.event, commandId: wire.id, result,
  });
}
