// The order test files start in. vitest runs the longest files first when it has the durations of an
// earlier run (its cache, under node_modules/.vite); CI installs node_modules afresh, so it has none
// and would start the largest files (by bytes) first, which are not the slowest: a 90 s file started
// last keeps one worker busy alone at the end of the run. Without a cache, the files known to be slow
// (real processes, sleeps the scenario needs) start first, slowest first; then vitest's own order.
// Either way the files that start processes come before the in-process ones (see sort).
import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/** Slowest first (CI, 2 files at a time; refresh from coverage/vitest-results.json when it drifts). */
export const SLOW_FILES = [
  // From the loaded baseline of 2026-11-28 (a full run on the loaded 2-core machine, files over ~110 s); the process files
  // run first whatever their rank here (see sort), so the in-process ones rank among themselves.
  'test/provisioning/agents-import.test.ts',
  'test/server/admin-pagination.test.ts',
  'test/relay/relay-netns.test.ts',
  'test/cli/agent-run-renew-cli.test.ts',
  'test/cli/messaging-cli.test.ts',
  'test/relay/relay-rest.test.ts',
  'test/package/tarball.test.ts',
  'test/cli/rotation-cli.test.ts',
  'test/cli/agent-renew-crash.test.ts',
  'test/cli/forward-proxy-cli.test.ts',
  'test/enrollment/enroll.test.ts',
  'test/server/data-dir.test.ts',
  'test/relay/legacy-bridge.test.ts',
  'test/runtime/embedded-snapshot.test.ts',
  'test/enrollment/hardening.test.ts',
  'test/provisioning/key-request.test.ts',
];

export default class SlowFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const root = this.ctx.config.root;
    const path = (f: TestSpecification) => relative(root, f.moduleId);
    const measured = files.every((f) => this.ctx.cache.getFileTestResults(`${f.project.name}:${path(f)}`));
    const rank = (f: TestSpecification) => {
      const i = SLOW_FILES.indexOf(path(f));
      return i === -1 ? SLOW_FILES.length : i;
    };
    if (!measured) sorted.sort((a, b) => rank(a) - rank(b)); // stable: the rest keep vitest's order
    return sorted;
  }
}
