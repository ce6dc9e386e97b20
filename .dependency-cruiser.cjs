// The layer order of ARCHITECTURE.md: a file in lib/<layer>/ may import only its own layer and
// the layers before it in LAYERS; nothing may form a cycle.
const LAYERS = ['core', 'torchscript', 'program', 'transforms', 'fusion', 'analysis', 'report', 'pipeline', 'app'];

const upward = LAYERS.slice(0, -1).map((layer, i) => ({
  name: `${layer}-imports-upward`,
  comment: `lib/${layer}/ may import only ${LAYERS.slice(0, i + 1).join(', ')}`,
  severity: 'error',
  from: { path: `^lib/${layer}/` },
  to: { path: `^lib/(${LAYERS.slice(i + 1).join('|')})/` },
}));

module.exports = {
  forbidden: [
    // Type-only references (Graph <-> Node in the IR) erase at compile time and are not cycles.
    { name: 'no-circular', severity: 'error', from: {}, to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } } },
    ...upward,
    {
      name: 'only-index-at-lib-root',
      comment: 'every lib/ file lives in a layer folder; lib/index.ts is the public API',
      severity: 'error',
      from: { path: '^lib/[^/]+\\.ts$', pathNot: '^lib/index\\.ts$' },
      to: {},
    },
    {
      name: 'lib-imports-no-tests-or-scripts',
      severity: 'error',
      from: { path: '^lib/' },
      to: { path: '^(test|scripts)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: '^dist/' },
  },
};
