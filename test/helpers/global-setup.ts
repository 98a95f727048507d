// Builds dist/ once before the run, so tests that start real `latchkey` processes run the code under
// test (tsc is incremental: a no-op when nothing changed).
import { execFileSync } from 'node:child_process';

export default function setup(): void {
  execFileSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' });
}
