// Copies the front-end files the screens use from node_modules into web/static/dist.
// No bundler: htmx and Pico ship ready-made minified files. dist/ is gitignored, so
// no third-party file is ever committed; `npm ci && npm run build` recreates it.
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "web", "static", "dist");

// Keep this list in step with web/assets.py, which checks these names at start-up.
const files = {
  "htmx.min.js": "node_modules/htmx.org/dist/htmx.min.js",
  "pico.min.css": "node_modules/@picocss/pico/css/pico.min.css",
};

rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });
for (const [name, source] of Object.entries(files)) {
  copyFileSync(join(root, source), join(dist, name));
  console.log(`web/static/dist/${name} <- ${source}`);
}
