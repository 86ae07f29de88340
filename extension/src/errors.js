// The error codes a command result can carry (docs/extension.md lists them with their meaning).
// A handler throws CommandError; anything else the browser throws becomes BROWSER_ERROR.

export class CommandError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

export const Code = Object.freeze({
  VALIDATION_FAILED: 'VALIDATION_FAILED',
  UNKNOWN_COMMAND: 'UNKNOWN_COMMAND',
  FORBIDDEN: 'FORBIDDEN',
  NOT_FOUND: 'NOT_FOUND',
  TIMEOUT: 'TIMEOUT',
  NAVIGATION_FAILED: 'NAVIGATION_FAILED',
  EVALUATION_FAILED: 'EVALUATION_FAILED',
  DOWNLOAD_FAILED: 'DOWNLOAD_FAILED',
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  BROWSER_ERROR: 'BROWSER_ERROR',
});

/** The `error` object of a failed result. */
export function errorOf(thrown) {
  if (thrown instanceof CommandError) return { code: thrown.code, message: thrown.message };
  const message = String(thrown?.message ?? thrown);
  // Pages the extension may not script (chrome://, the Web Store, hosts outside its permissions).
  if (/Cannot access|cannot be scripted|Missing host permission/i.test(message)) {
    return { code: Code.FORBIDDEN, message: `the extension may not access this page: ${message}` };
  }
  return { code: Code.BROWSER_ERROR, message };
}
