// Starts a local D1 (miniflare, workerd) behind worker.mjs and prints its URL as one
// JSON line on stdout; stops when stdin closes (the test fixture's process ends).
// Usage: node server.mjs PERSIST_DIR TOKEN
import { Miniflare } from "miniflare";
import { fileURLToPath } from "node:url";

const [persist, token] = process.argv.slice(2);
const mf = new Miniflare({
  modules: true,
  scriptPath: fileURLToPath(new URL("./worker.mjs", import.meta.url)),
  compatibilityDate: "2026-07-01",
  d1Databases: { DB: "workflow-test" },
  d1Persist: persist,
  bindings: { TOKEN: token },
  host: "127.0.0.1",
  port: 0,
});
const url = await mf.ready;
process.stdout.write(JSON.stringify({ url: url.href }) + "\n");
const stop = async () => {
  await mf.dispose();
  process.exit(0);
};
process.stdin.on("end", stop);
process.stdin.resume();
process.on("SIGTERM", stop);
