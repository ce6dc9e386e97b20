// ESLint (typescript-eslint) over lib/, scripts/ and test/, with the formatting checked by
// @stylistic's rules (`npm run lint -- --fix` applies them). Prettier was tried and left out:
// it rewrites most files and expands one-line members, against this code's compact style.
// Functions in lib/ stay under 80 lines: a longer one is doing several things.
import js from '@eslint/js';
import stylistic from '@stylistic/eslint-plugin';
import tseslint from 'typescript-eslint';

const FORMAT = {
  '@stylistic/indent': ['error', 2, { SwitchCase: 1, ignoredNodes: ['TemplateLiteral *'], flatTernaryExpressions: true, offsetTernaryExpressions: true }],
  '@stylistic/quotes': ['error', 'single', { avoidEscape: true }],
  '@stylistic/semi': ['error', 'always'],
  '@stylistic/comma-dangle': ['error', 'always-multiline'],
  '@stylistic/brace-style': ['error', '1tbs', { allowSingleLine: true }],
  '@stylistic/no-trailing-spaces': 'error',
  '@stylistic/eol-last': 'error',
  '@stylistic/max-len': ['error', { code: 200, ignoreStrings: true, ignoreTemplateLiterals: true, ignoreRegExpLiterals: true, ignoreComments: true }],
  '@stylistic/keyword-spacing': 'error',
  '@stylistic/space-before-blocks': 'error',
  '@stylistic/arrow-parens': ['error', 'always'],
  '@stylistic/no-multiple-empty-lines': ['error', { max: 1 }],
};

// lib/ reaches the package's scripts/ files only through lib/torchscript/package-scripts.ts, which
// declares each one's path and type: a path built to scripts/ anywhere else bypasses the layers
// (dependency-cruiser sees no import in a require of a computed path).
const NO_SCRIPTS_PATH = {
  selector: "CallExpression[callee.object.name='path'][callee.property.name=/^(join|resolve)$/] > Literal[value=/^scripts(\\/|$)/]",
  message: "Reach scripts/ through lib/torchscript/package-scripts.ts (libtorchScript(), setupScript(), pythonScriptPath(), ...), which declares the package's script files and their types.",
};

export default tseslint.config(
  { ignores: ['dist/**', 'build/**', 'node_modules/**', 'prebuilds/**', '.torchgraph/**', 'lib/core/ops/schemas-table.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  { plugins: { '@stylistic': stylistic }, rules: FORMAT },
  {
    languageOptions: { globals: { require: 'readonly', module: 'writable', process: 'readonly', __dirname: 'readonly', console: 'readonly', Buffer: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // The setup scripts are CommonJS files that TS code requires by path.
      '@typescript-eslint/no-require-imports': ['error', { allow: ['/scripts/[\\w.-]+\\.js$'] }],
    },
  },
  {
    // The setup and packaging scripts are plain CommonJS run by node.
    files: ['scripts/**/*.js'],
    languageOptions: { sourceType: 'commonjs' },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // The report-contract tests mutate arbitrary paths of untyped JSON.
    files: ['test/unit/report-json.test.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    // In lib/, no line over 140 characters, strings and comments included (issue #26): a longer
    // line is usually a function squeezed onto one.
    files: ['lib/**/*.ts'],
    rules: {
      'max-lines-per-function': ['error', { max: 80, skipBlankLines: true, skipComments: true }],
      '@stylistic/max-len': ['error', { code: 140, ignoreRegExpLiterals: true }],
      'no-restricted-syntax': ['error', NO_SCRIPTS_PATH],
    },
  },
  {
    // The one module that declares the package's scripts/ files and their types.
    files: ['lib/torchscript/package-scripts.ts'],
    rules: { 'no-restricted-syntax': 'off' },
  },
  {
    // Passes and analyses read an op's arguments by schema name (issue #26): `n.inputs[3]` says
    // nothing of which argument it is, and silently reads another one on a different overload.
    // (A later block's no-restricted-syntax replaces an earlier one's, so NO_SCRIPTS_PATH again.)
    files: ['lib/fusion/**/*.ts', 'lib/analysis/**/*.ts'],
    rules: {
      'no-restricted-syntax': ['error', NO_SCRIPTS_PATH, {
        selector: "MemberExpression[object.property.name='inputs'][computed=true][property.type='Literal']",
        message: "Read an argument by its schema name: n.arg('name') (an op our passes emit needs its schema in lib/core/ops/schemas-table.ts). The first input of any op is dataInput(n), a graph's module moduleSelf(g), a prim::GetAttr's object getAttrObject(n) (lib/core/ir).",
      }],
    },
  },
);
