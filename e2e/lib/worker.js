// Helpers to run real verity-worker processes (the inference worker beside a node) on loopback:
// an honest one, or the faulty one of the fraud tests (`verity-worker-faulty`, built only with
// the cargo feature `fault-injection`, with VERITY_WORKER_FAULT=substitute-weights: every model
// is executed with the weights of its last weighted op substituted, so its commitments are wrong
// from that step on while the model id stays the genuine one).
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO, LOG_DIR, captureOutput, freePort, killOnExit, rpc, waitFor, within } from './node.js';

export const WORKER_BIN = process.env.VERITY_WORKER ?? join(REPO, 'target', 'release', 'verity-worker');
export const FAULTY_WORKER_BIN =
  process.env.VERITY_WORKER_FAULTY ?? join(REPO, 'target', 'release', 'verity-worker-faulty');
/** The fault `verity-worker-faulty` injects by default (its environment variable's value):
 * classifiers' weights. `lm-weights` is the language models' (src/fault.rs). */
export const FAULT = 'substitute-weights';

/** The example models with their sample inputs (raw int8 files). */
export const EXAMPLES = {
  digits_cnn: { model: join(REPO, 'inference-worker/models/digits_cnn.vmodel'), input: join(REPO, 'inference-worker/models/digits_cnn.input') },
  digits_mlp: { model: join(REPO, 'inference-worker/models/digits_mlp.vmodel'), input: join(REPO, 'inference-worker/models/digits_mlp.input') },
  cnn: { model: join(REPO, 'primitives/testdata/cnn.vmodel'), input: join(REPO, 'primitives/testdata/cnn.input') },
  mlp: { model: join(REPO, 'primitives/testdata/mlp.vmodel'), input: join(REPO, 'primitives/testdata/mlp.input') },
};
export const DEFAULT_MODELS = Object.values(EXAMPLES).map((e) => e.model);

function binFor(faulty) {
  const bin = faulty ? FAULTY_WORKER_BIN : WORKER_BIN;
  if (!existsSync(bin)) {
    const how = faulty
      ? 'cargo build --release -p verity-worker --features fault-injection --bin verity-worker-faulty'
      : 'cargo build --release -p verity-worker';
    throw new Error(`${bin} not found (build it: ${how})`);
  }
  return bin;
}

/** The environment of a worker process: the fault variable set for the faulty one, unset otherwise. */
function workerEnv(faulty, fault = FAULT) {
  const env = { ...process.env };
  delete env.VERITY_WORKER_FAULT;
  if (faulty) env.VERITY_WORKER_FAULT = fault;
  return env;
}

/**
 * Start `verity-worker serve` (or `verity-worker-faulty serve` with `faulty`) on a free loopback
 * port, with a fresh model store in a temporary directory holding `models` (added with
 * `verity-worker model add`, which verifies each file), and the language models `textModels`
 * (`.vlm` paths, served for `generate`); `fault` is the faulty one's fault. Waits until it
 * answers `health`.
 * Returns { name, port, url, proc, logFile, storeDir, modelIds, exited, recentOutput(), rpc(), stop() };
 * `modelIds` maps each model path to its id (0x...).
 */
export async function startWorker(name, { faulty = false, fault = FAULT, models = DEFAULT_MODELS, textModels = [] } = {}) {
  const bin = binFor(faulty);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const storeDir = mkdtempSync(join(tmpdir(), `verity-worker-${name}-`));
  const modelIds = {};
  if (models.length > 0) {
    const out = execFileSync(WORKER_BIN, ['model', 'add', '--models', storeDir, ...models], {
      encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000, env: workerEnv(false),
    });
    for (const line of out.split('\n').filter(Boolean)) {
      const [id, ...path] = line.split(/\s+/);
      modelIds[path.join(' ')] = id;
    }
  }
  const logFile = join(LOG_DIR, `${name}-${port}.log`);
  const text = textModels.flatMap((m) => ['--text-model', m]);
  const proc = spawn(bin, ['serve', '--listen', `127.0.0.1:${port}`, '--models', storeDir, ...text], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: workerEnv(faulty, fault),
  });
  killOnExit(proc);
  const recentOutput = captureOutput(proc, logFile);
  const exited = new Promise((ok) => proc.on('exit', (code, signal) => ok({ code, signal })));
  const removeStore = () => rmSync(storeDir, { recursive: true, force: true });
  const worker = {
    name, port, url, proc, logFile, storeDir, modelIds, faulty, exited,
    recentOutput,
    /** One JSON-RPC call (execute, job, prove, models, health). */
    rpc: (method, params = []) => rpc(port, method, params),
    /** SIGINT, then wait (bounded) for the exit, then SIGKILL; returns the exit status. */
    async stop({ timeoutMs = 10_000 } = {}) {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGINT');
      const res = await within(exited, timeoutMs);
      if (res === null) {
        proc.kill('SIGKILL');
        await exited;
        removeStore();
        throw new Error(`${name} did not stop within ${timeoutMs} ms after SIGINT (log: ${logFile})`);
      }
      removeStore();
      return res;
    },
  };
  try {
    const health = await waitFor(`${name} health on ${url} (log: ${logFile})`, async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        const e = new Error(`${name} exited with ${proc.exitCode ?? proc.signalCode}; its last output:\n${recentOutput()}`);
        e.fatal = true;
        throw e;
      }
      return await rpc(port, 'health');
    }, { timeoutMs: 60_000, everyMs: 200 });
    // The faulty worker says so in `health`; an honest one has no `fault` field.
    if ((health.fault ?? null) !== (faulty ? fault : null)) {
      const e = new Error(`${name}: health reports fault ${JSON.stringify(health.fault)}, expected ${faulty ? fault : 'none'}`);
      e.fatal = true;
      throw e;
    }
  } catch (e) {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    await exited;
    removeStore();
    throw e;
  }
  return worker;
}

/**
 * `verity-worker run --model <modelPath> --input <inputPath> --json` (or the faulty binary with
 * `faulty`): returns the parsed JSON ({ model, backend, output, step_hashes, trace_root, timings }).
 */
export function workerRun(modelPath, inputPath, { faulty = false } = {}) {
  const out = execFileSync(binFor(faulty), ['run', '--model', modelPath, '--input', inputPath, '--json'], {
    encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000, env: workerEnv(faulty),
  });
  return JSON.parse(out);
}

/**
 * `verity-worker generate --json` (or the faulty binary with `fault`) on a `.vlm`: `{ prompt }`
 * or `{ chat }`, `maxTokens`, and `extra` arguments (sampling); returns the parsed JSON
 * ({ model, text, tokens, prompt_tokens, job_root, ... }). With `files` (a path prefix) it also
 * writes `<files>.json` (the commitment) and `<files>.reveal` (every step hash).
 */
export function workerGenerate(vlm, { prompt, chat, maxTokens, extra = [], fault = null, files = null }) {
  const args = ['generate', '--json', '--model', vlm, '--max-tokens', String(maxTokens), ...extra];
  args.push(...(chat !== undefined ? ['--chat', chat] : ['--prompt', prompt]));
  if (files) args.push('--commitment', `${files}.json`, '--reveal', `${files}.reveal`);
  const out = execFileSync(binFor(!!fault), args, {
    encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000, env: workerEnv(!!fault, fault ?? FAULT),
  });
  return JSON.parse(out);
}
