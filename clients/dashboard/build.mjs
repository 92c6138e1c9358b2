// Bundles the dashboard into one folder the gateway serves at /dashboard/: index.html,
// dashboard.js (the page's TypeScript and uPlot, minified, headed by uPlot's licence) and
// dashboard-styles.css (the page's styles and uPlot's, headed the same). `npm run build`
// type-checks first and writes into the Python package; tests/integration/test_dashboard.py
// bundles into a temporary folder and compares.
import { copyFile, mkdir, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2];
if (!out) {
  console.error("usage: node build.mjs OUTDIR");
  process.exit(2);
}
await mkdir(out, { recursive: true });
const licence = await readFile(join(here, "node_modules", "uplot", "LICENSE"), "utf8");
const header = `/*! Includes uPlot (https://github.com/leeoniya/uPlot):\n${licence.trim()}\n*/`;
await build({
  absWorkingDir: here,
  entryPoints: { dashboard: "src/main.ts", "dashboard-styles": "src/dashboard.css" },
  outdir: out,
  bundle: true,
  minify: true,
  format: "esm",
  target: "es2022",
  legalComments: "eof",
  banner: { js: header, css: header },
  charset: "utf8",
  logLevel: "warning",
});
await copyFile(join(here, "src", "index.html"), join(out, "index.html"));
