// Helpers to run real verity-node processes on loopback and talk to them over JSON-RPC.
import { spawn, execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync, createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const NODE_BIN = process.env.VERITY_NODE ?? join(REPO, 'target', 'release', 'verity-node');
export const LOG_DIR = process.env.VERITY_E2E_LOGS ?? mkdtempSync(join(tmpdir(), 'verity-e2e-logs-'));

/** A TCP port that was free a moment ago (the OS picks it). */
export function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Child processes (nodes, workers, gateways) still running: killed when the test process exits
 * without having stopped them (a test past its timeout whose promise never settles, ended by
 * `node --test --test-force-exit`), so that none outlives the suite.
 */
const running = new Set();
/** Directories the test process made for itself (imported models, a gateway's files): removed
 * when it exits, after the processes using them are killed. */
const scratch = new Set();
process.on('exit', () => {
  for (const p of running) {
    try { p.kill('SIGKILL'); } catch { /* already gone */ }
  }
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

/** Remove directory `dir` when the test process exits; returns `dir`. */
export function removeOnExit(dir) {
  scratch.add(dir);
  return dir;
}

/** Kill `proc` with the test process if it is still running then; returns `proc`. */
export function killOnExit(proc) {
  running.add(proc);
  proc.on('exit', () => running.delete(proc));
  return proc;
}

/** Write a child's stdout and stderr to `logFile` and keep its last 30 lines in memory too, so a
 * failure can say what the process said; returns a function giving those lines. */
export function captureOutput(proc, logFile) {
  const log = createWriteStream(logFile);
  let recent = [];
  const keep = (chunk) => {
    log.write(chunk);
    recent.push(...chunk.toString().split('\n').filter(Boolean));
    if (recent.length > 30) recent = recent.slice(-30);
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  return () => recent.join('\n');
}

/** `promise`'s value, or null after `ms`. The timer is cleared either way: a pending timer would
 * keep the test process alive for the rest of `ms` after the tests end. */
export async function within(promise, ms) {
  let timer;
  const deadline = new Promise((ok) => { timer = setTimeout(() => ok(null), ms); });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Poll `fn` until it returns a truthy value; fail with `what` after `timeoutMs`. */
export async function waitFor(what, fn, { timeoutMs = 60_000, everyMs = 500 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastErr;
  while (Date.now() < deadline) {
    try {
      // A poll that never answers (a dead node's polkadot.js query) ends at the deadline, so
      // the test fails with this message instead of waiting forever.
      const poll = fn();
      poll?.catch?.(() => {});
      const v = await within(poll, Math.max(deadline - Date.now(), 1));
      if (v) return v;
    } catch (e) {
      if (e.fatal) throw e;
      lastErr = e;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? ` (last error: ${lastErr.message})` : ''}`);
}

/** One JSON-RPC call over HTTP. */
export async function rpc(port, method, params = []) {
  const res = await fetch(`http://127.0.0.1:${port}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    signal: AbortSignal.timeout(5_000),
  });
  const body = await res.json();
  if (body.error) throw new Error(`${method}: ${JSON.stringify(body.error)}`);
  return body.result;
}

export async function finalizedNumber(port) {
  const hash = await rpc(port, 'chain_getFinalizedHead');
  const header = await rpc(port, 'chain_getHeader', [hash]);
  return parseInt(header.number, 16);
}

export async function bestNumber(port) {
  const header = await rpc(port, 'chain_getHeader');
  return parseInt(header.number, 16);
}

/**
 * Start verity-node with `args` plus loopback ports. Returns { rpcPort, p2pPort, proc, logFile, stop() }.
 * The node's output goes to a log file whose path is printed when a test fails.
 */
export async function startNode(name, args, { basePath } = {}) {
  const rpcPort = await freePort();
  const p2pPort = await freePort();
  // `--tmp` (the node makes and removes its own directory) excludes `--base-path`.
  const tmp = args.includes('--tmp');
  const ownBase = tmp ? null : (basePath ?? mkdtempSync(join(tmpdir(), `verity-${name}-`)));
  const logFile = join(LOG_DIR, `${name}-${rpcPort}.log`);
  const fullArgs = [
    ...args,
    ...(tmp ? [] : ['--base-path', ownBase]),
    '--rpc-port', String(rpcPort),
    '--listen-addr', `/ip4/127.0.0.1/tcp/${p2pPort}`,
    '--no-prometheus',
    '--no-telemetry',
    '--no-mdns',
  ];
  const proc = killOnExit(spawn(NODE_BIN, fullArgs, { stdio: ['ignore', 'pipe', 'pipe'] }));
  const recentOutput = captureOutput(proc, logFile);
  const exited = new Promise((ok) => proc.on('exit', (code, signal) => ok({ code, signal })));
  const node = {
    name, rpcPort, p2pPort, proc, logFile, basePath: ownBase, exited,
    recentOutput,
    /** SIGINT, then wait (bounded) for a clean exit; returns the exit status. */
    async stop({ timeoutMs = 30_000, keepBase = false } = {}) {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGINT');
      const res = await within(exited, timeoutMs);
      if (res === null) {
        proc.kill('SIGKILL');
        throw new Error(`${name} did not stop within ${timeoutMs} ms after SIGINT (log: ${logFile})`);
      }
      if (!keepBase && !basePath && ownBase) rmSync(ownBase, { recursive: true, force: true });
      return res;
    },
  };
  await waitFor(`${name} RPC on port ${rpcPort} (log: ${logFile})`, async () => {
    if (proc.exitCode !== null) {
      const e = new Error(`${name} exited with ${proc.exitCode}; its last output:\n${recentOutput()}`);
      e.fatal = true;
      throw e;
    }
    await rpc(rpcPort, 'system_health');
    return true;
  }, { timeoutMs: 180_000 }); // a loaded machine was seen taking 55 s to initialize genesis
  return node;
}

/** Run a verity-node subcommand to completion; returns stdout (throws with stderr on failure). */
export function runNodeCmd(args, opts = {}) {
  return execFileSync(NODE_BIN, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], timeout: 120_000, ...opts });
}
