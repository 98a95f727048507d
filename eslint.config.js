// @ts-check
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'src/server/glpi/inventory-validator.generated.ts',
      'dist/**',
      'node_modules/**',
      '.wrangler/**',
      'migrations/**',
      '.latchkey/**',
      'coverage/**',
    ],
  },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': ['error', { allow: ['error'] }],
      eqeqeq: ['error', 'always'],
    },
  },
  {
    // The CLI, the benchmarks, the vector generator and tests print to stdout by design.
    files: ['src/cli/**', 'bench/**', 'spec/**', 'scripts/**', 'test/**', '.ci/**'],
    rules: { 'no-console': 'off' },
  },
  {
    // The protocol core is pure: no Node built-ins, no I/O, no process globals.
    files: ['src/protocol/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: ['fs', 'path', 'crypto', 'buffer', 'zlib', 'os'],
          patterns: ['node:*', '**/server/**', '**/db/**', '**/agent/**', '**/relay/**', '**/cli/**', '**/runtime/**'],
        },
      ],
      'no-restricted-globals': ['error', 'process', 'Buffer', 'setTimeout', 'setInterval', 'fetch'],
      // The clock comes in through ProtocolContext.now; Date.now() inside the core is a bug.
      'no-restricted-properties': ['error', { object: 'Date', property: 'now' }],
    },
  },
  {
    // The server runs on Node and on Workers: whatever is runtime-specific comes in through
    // ServerConfig (src/server/compose.ts), and the clock and randomness through ctx.
    files: ['src/server/**'],
    rules: {
      'no-restricted-imports': ['error', { patterns: ['node:*', '**/runtime/**', '**/cli/**', '**/agent/**'] }],
      'no-restricted-properties': ['error', { object: 'Date', property: 'now' }],
      'no-restricted-syntax': [
        'error',
        { selector: "NewExpression[callee.name='Date'][arguments.length=0]", message: 'Use the injected clock: new Date(ctx.now()).' },
        { selector: "MemberExpression[property.name='randomUUID']", message: 'Use the injected randomness (ctx.random).' },
      ],
    },
  },
  {
    // The agent runs without the server runtime; what both need lives in src/node/ or src/protocol/.
    files: ['src/agent/**'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['**/runtime/**'] }] },
  },
);
