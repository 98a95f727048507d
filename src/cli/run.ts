// Runs the program and turns failures into one line on stderr and an exit code. One convention for
// every command (README, "Exit codes"): 0 done; 1 refused or failed (a server's or a check's stable
// error code); 2 usage (a missing or malformed flag, an unreadable input file). With `--json`
// anywhere on the command line, the error is JSON on stderr: {"error":{"code","message"}}.
// Never a stack trace.
import { CommanderError, type Command } from 'commander';
import { ProtocolError } from '../protocol/errors.js';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/** A failure the CLI reports: `code` is a spec error code or a CLI-level one (usage, io_error…). */
export class CliError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly exitCode = EXIT_FAILED,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** A usage error: exit 2, code `usage`. */
export function usage(message: string): CliError {
  return new CliError('usage', message, EXIT_USAGE);
}

/** Whether the command line asks for JSON output (then errors are JSON too). */
export function wantsJson(argv: readonly string[]): boolean {
  const args = argv.slice(2);
  const end = args.indexOf('--');
  return (end < 0 ? args : args.slice(0, end)).includes('--json');
}

function report(code: string, message: string, json: boolean): void {
  if (json) process.stderr.write(`${JSON.stringify({ error: { code, message } })}\n`);
  else process.stderr.write(`error: ${code}: ${message}\n`);
}

/**
 * Settings every command must inherit: call before any subcommand is created (commander copies
 * them at creation), so a subcommand's usage error reaches runCli instead of exiting by itself.
 */
export function configureProgram(program: Command, argv: readonly string[]): void {
  const json = wantsJson(argv);
  program.exitOverride();
  if (json) {
    program.configureOutput({
      outputError: (text) => report('usage', text.replace(/^error:\s*/, '').trim(), true),
    });
  } else {
    program.showHelpAfterError();
  }
}

export async function runCli(program: Command, argv: string[]): Promise<void> {
  program.exitOverride();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version land here with 0; every parse error (unknown option, missing
      // argument or mandatory option) is a usage error, already printed by commander.
      process.exitCode = err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
      return;
    }
    const { code, message, exitCode } = describeFailure(err);
    report(code, message, wantsJson(argv));
    process.exitCode = exitCode;
  }
}

function describeFailure(err: unknown): { code: string; message: string; exitCode: number } {
  if (err instanceof CliError) return { code: err.code, message: err.message, exitCode: err.exitCode };
  if (err instanceof ProtocolError) return { code: err.code, message: err.message, exitCode: EXIT_FAILED };
  const message = err instanceof Error ? err.message.split('\n')[0]! : String(err);
  return { code: 'internal_error', message, exitCode: EXIT_FAILED };
}
