// The CLI's exit-code contract (DESIGN.md): 0 ok, 1 user error, 2 infrastructure error.
// Commands throw these; src/cli/main.ts maps them to exit codes and prints no stack trace for UserError.

export const EXIT_OK = 0;
export const EXIT_USER = 1;
export const EXIT_INFRA = 2;

/** Something the user can fix: a bad config, a missing file, a wrong flag. Printed as its message alone. */
export class UserError extends Error {
  override readonly name = "UserError";
}

/** Something outside the user's input failed: a tool is missing, a service refused, the network. */
export class InfraError extends Error {
  override readonly name = "InfraError";
}
