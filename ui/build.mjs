// Builds the console into dist/ (index.html, app.js, app.css) with esbuild. The output depends
// only on app/ and the locked packages, so a rebuild of the same source is byte-identical.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'dist');
mkdirSync(dist, { recursive: true });

await build({
  entryPoints: [join(here, 'app/main.jsx')],
  outfile: join(dist, 'app.js'),
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['chrome110', 'firefox115', 'safari16'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  legalComments: 'eof',
  sourcemap: false,
  logLevel: 'warning',
});

// Styles: uPlot's, then ours (so ours win).
const css = [readFileSync(join(here, 'node_modules/uplot/dist/uPlot.min.css'), 'utf8'), readFileSync(join(here, 'app/style.css'), 'utf8')].join('\n');
const out = await build({ stdin: { contents: css, loader: 'css' }, write: false, minify: true, logLevel: 'warning' });
writeFileSync(join(dist, 'app.css'), out.outputFiles[0].contents);
copyFileSync(join(here, 'app/index.html'), join(dist, 'index.html'));
