// Runs the JavaScript suite: one recoverite server for it, and `node --test`
// started with NODE_EXTRA_CA_CERTS naming the server's CA certificate (Node
// reads it only at start), as a user of the SDK would set it.

import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { startServer } from "./harness.mjs";

const here = new URL(".", import.meta.url).pathname;
const server = await startServer();
let status = 1;
try {
  const tests = readdirSync(here).filter((f) => f.endsWith(".test.mjs")).map((f) => join(here, f));
  const r = spawnSync(process.execPath, ["--test", "--test-concurrency=1", ...tests], {
    stdio: "inherit",
    env: { ...process.env, NODE_EXTRA_CA_CERTS: server.conn.caCertFile, RECOVERITE_CONNECTION: join(server.dir, "connection.json") },
  });
  status = r.status ?? 1;
} finally {
  await server.stop();
}
process.exit(status);
