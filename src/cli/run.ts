// Runs the program and turns failures into one line on stderr and a non-zero exit: the stable
// error code first (what scripts match on), then a human message. Never a stack trace.
import { CommanderError, type Command } from 'commander';
import { ProtocolError } from '../protocol/errors.js';

/** A failure the CLI reports: `code` is a spec error code or a CLI-level one (usage, io_error…). */
export class CliError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export async function runCli(program: Command, argv: string[]): Promise<void> {
  program.exitOverride();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version also land here, with exit code 0.
      process.exitCode = err.exitCode;
      return;
    }
    const { code, message, exitCode } = describeFailure(err);
    console.error(`error: ${code}: ${message}`);
    process.exitCode = exitCode;
  }
}

function describeFailure(err: unknown): { code: string; message: string; exitCode: number } {
  if (err instanceof CliError) return { code: err.code, message: err.message, exitCode: err.exitCode };
  if (err instanceof ProtocolError) return { code: err.code, message: err.message, exitCode: 1 };
  const message = err instanceof Error ? err.message.split('\n')[0]! : String(err);
  return { code: 'internal_error', message, exitCode: 1 };
}
