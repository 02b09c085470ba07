// ESLint (flat config): typescript-eslint with type information, import-x for cycles and
// duplicates, and the layer fences. The arrows run one way:
//   workflows → shared;  activities → shared + config;  config → shared;  workers, cli → anything.
// tests/lint/fences.test.ts checks that a crossing and a cycle are reported.
import js from '@eslint/js';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';
import { importX } from 'eslint-plugin-import-x';
import tseslint from 'typescript-eslint';

/** A `@typescript-eslint/no-restricted-imports` rule (type-only imports are fenced too). */
const fence = (...patterns) => ['error', { patterns: patterns.map(([regex, message]) => ({ regex, message })) }];

export default tseslint.config(
  { ignores: ['dist/', 'lib/', 'node_modules/', 'tests/replay/fixtures/', '.scratch/', '.cache/'] },
  js.configs.recommended,
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.recommended],
    plugins: { 'import-x': importX },
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    settings: {
      ...importX.flatConfigs.typescript.settings,
      'import-x/resolver': undefined,
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: 'tsconfig.json' })],
    },
    rules: {
      // node:test's describe/it return promises the runner itself awaits.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite'] },
          ],
        },
      ],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      'import-x/no-cycle': 'error',
      'import-x/no-duplicates': 'error',
      'import-x/first': 'error',
      // Async generators cannot be arrow functions: `self` is how they reach their object.
      '@typescript-eslint/no-this-alias': ['error', { allowedNames: ['self'] }],
    },
  },
  {
    // Workflow code is replayed in Temporal's sandbox: deterministic, no Node built-ins, no I/O.
    // It imports the workflow SDK, the shared layer and other workflow files, nothing else (not
    // even types: what a workflow needs from elsewhere belongs in shared/).
    files: ['workflows/**/*.ts'],
    rules: {
      'import-x/no-nodejs-modules': 'error',
      '@typescript-eslint/no-restricted-imports': fence([
        '^(?!@temporalio/(workflow|common)(/|$)|\\.\\./shared(/|$)|\\./(?!\\.))',
        'workflows/ imports only @temporalio/workflow, @temporalio/common, ../shared/ and other workflow files',
      ]),
    },
  },
  {
    // The shared layer depends on nothing of ours and on almost nothing else: workflows import it.
    files: ['shared/**/*.ts'],
    rules: {
      'import-x/no-nodejs-modules': 'error',
      '@typescript-eslint/no-restricted-imports': fence([
        '^(?!@temporalio/(workflow|common)(/|$)|zod(/|$)|multiformats(/|$)|\\./(?!\\.))',
        'shared/ imports only @temporalio/common, @temporalio/workflow, zod, multiformats and other shared files',
      ]),
    },
  },
  {
    files: ['activities/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': fence([
        '^((\\.\\./)+(workflows|workers|cli)|provenant)(/|$)',
        'activities/ imports shared/ and config/, never workflows/, workers/ or cli/',
      ]),
    },
  },
  {
    files: ['config/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': fence([
        '^((\\.\\./)+(activities|workflows|workers|cli)|provenant)(/|$)',
        'config/ imports only shared/ (and libraries)',
      ]),
    },
  },
  {
    files: ['**/*.{js,mjs,cjs}'],
    languageOptions: {
      globals: {
        console: 'readonly',
        process: 'readonly',
        URL: 'readonly',
        Buffer: 'readonly',
        setTimeout: 'readonly',
      },
    },
  },
);
