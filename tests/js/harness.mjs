// Starts a recoverite server of its own and connects the Azure SDK for
// JavaScript to it the way a user would: the connection file's endpoint,
// authority and CA certificate, nothing else changed.

import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, existsSync, readFileSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

const BIN = process.env.RECOVERITE_BIN ?? new URL("../../target/debug/recoverite", import.meta.url).pathname;

export async function startServer() {
  const dir = mkdtempSync(join(tmpdir(), "recoverite-js-"));
  const log = openSync(join(dir, "server.log"), "a");
  const proc = spawn(BIN, ["serve", "--data-dir", dir, "--port", "0", "--dns-port", "0"], { stdio: ["ignore", log, log] });
  const file = join(dir, "connection.json");
  const deadline = Date.now() + 30000;
  while (!existsSync(file)) {
    if (proc.exitCode !== null) throw new Error(readFileSync(join(dir, "server.log"), "utf8"));
    if (Date.now() > deadline) throw new Error("recoverite did not write connection.json");
    await sleep(20);
  }
  const conn = JSON.parse(readFileSync(file, "utf8"));
  return {
    dir,
    conn,
    // Its data (disk images) goes with it.
    stop: () => new Promise((resolve) => {
      proc.once("exit", () => { rmSync(dir, { recursive: true, force: true }); resolve(); });
      proc.kill("SIGTERM");
    }),
  };
}

// The connection of the server run.mjs started for this suite.
export function connection() {
  return JSON.parse(readFileSync(process.env.RECOVERITE_CONNECTION, "utf8"));
}

export function qemuIo(uri, ...cmds) {
  const args = ["-f", "raw", ...cmds.flatMap((c) => ["-c", c]), uri];
  try {
    const out = execFileSync("qemu-io", args, { encoding: "utf8", timeout: 120000 });
    return { ok: !out.includes("Pattern verification failed"), out };
  } catch (e) {
    return { ok: false, out: String(e.stdout ?? "") + String(e.stderr ?? "") };
  }
}
