import { constants } from 'node:os';

const errnoNames = new Map<number, string>();
for (const [name, value] of Object.entries(constants.errno)) {
  // Several names share a number (EWOULDBLOCK/EAGAIN); keep the first, which is the canonical one.
  if (!errnoNames.has(value)) errnoNames.set(value, name);
}

/** The symbolic name of an errno value, e.g. 1 → "EPERM". */
export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `errno ${errno}`;
}

/** A failed libc call or syscall, named after the call and the errno. */
export class SystemCallError extends Error {
  override readonly name = 'SystemCallError';
  /** The errno name, e.g. "EPERM". */
  readonly code: string;
  constructor(
    readonly syscall: string,
    readonly errno: number,
  ) {
    super(`${syscall}: ${errnoName(errno)}`);
    this.code = errnoName(errno);
  }
}

/** A reply from the kernel that does not parse: truncated, garbage lengths, unknown layout. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
}

/** Bad input from the user (arguments, filters): the CLI exits 2 on it. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export function isSystemCallError(error: unknown, ...codes: string[]): error is SystemCallError {
  return error instanceof SystemCallError && (codes.length === 0 || codes.includes(error.code));
}
