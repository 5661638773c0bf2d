// Lint rules for src/, test/, bench/, fixtures/ and scripts/ (npm run lint, part of npm test).
// Formatting is Prettier's job (.prettierrc.json); ESLint only looks for mistakes. src/ is also
// linted with types (the rules a reviewer would otherwise have to catch by eye) and kept to files
// a newcomer can read whole; import cycles are madge's job (npm run lint).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'lib/', 'node_modules/', 'coverage/', 'src/distill/kernel/*-wasm.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        URL: 'readonly',
        performance: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setImmediate: 'readonly',
        AbortController: 'readonly',
        AbortSignal: 'readonly',
        WebAssembly: 'readonly',
        TextDecoder: 'readonly',
        TextEncoder: 'readonly',
        structuredClone: 'readonly',
        queueMicrotask: 'readonly',
        fetch: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
    },
  },
  // Type-aware rules on src/ only: on test/ and bench/ they would double the time of npm run lint
  // for little gain. A chosen subset of recommendedTypeChecked; its other rules (no-unsafe-*,
  // restrict-template-expressions, no-base-to-string, require-await: 21 findings) are left for later.
  {
    files: ['src/**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-unnecessary-type-assertion': 'error',
      // A switch over a union names every member, or says with `default` what the others do.
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      // Where the type checker cannot follow why a value is there, check it and throw an Error
      // naming what is missing, or give it a type that says it is always there.
      '@typescript-eslint/no-non-null-assertion': 'error',
      // A file a newcomer can read whole (400 lines of code, comments and blank lines not counted).
      'max-lines': ['error', { max: 400, skipBlankLines: true, skipComments: true }],
    },
  },
);
