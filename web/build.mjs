// Builds the web client with esbuild (docs/web.md, "Build"):
//   the app and its stylesheet, and the service worker, into the Django app's static
//   directory (webapp/static/webapp/dist/), served at /app/dist/ and /sw.js;
//   the test pages' bundle (the shared vectors runner) into web/build-tests/, which the
//   browser tests serve themselves: it is never shipped.
import { rm } from "node:fs/promises";
import * as esbuild from "esbuild";

const shipped = "../webapp/static/webapp/dist";
// Chunks are named by their hash: those of an earlier build would stay and be served.
await rm(`${shipped}/chunks`, { recursive: true, force: true });
const common = {
  bundle: true,
  minify: true,
  format: "esm",
  target: ["chrome111", "firefox115", "safari16.4"],
  legalComments: "none",
  logLevel: "warning",
  metafile: true,
};

const results = await Promise.all([
  // Split: code loaded on first use (the téléexpertise PDF and CDA writers,
  // with pdf-lib, fontkit and the fonts) is its own chunk, fetched when needed.
  esbuild.build({ ...common, splitting: true, chunkNames: "chunks/[name]-[hash]", loader: { ".ttf": "binary" }, entryPoints: { main: "src/main.ts" }, outdir: shipped }),
  esbuild.build({ ...common, format: "iife", entryPoints: { sw: "src/sw.ts" }, outdir: shipped }),
  esbuild.build({ ...common, entryPoints: { vectors: "tests/vectors.ts" }, outdir: "build-tests" }),
  esbuild.build({ ...common, entryPoints: { attachments: "tests/attachments_page.ts" }, outdir: "build-tests" }),
]);
for (const result of results) {
  for (const [file, info] of Object.entries(result.metafile.outputs)) {
    console.log(`${file.padEnd(48)} ${String(info.bytes).padStart(8)} bytes`);
  }
}
