// Language models in the end-to-end suite: imported (once per test process) from the models
// scripts/install-models.sh installed, registered on a test chain and served by Alice with
// examples/serve-text-models.js (as `make dev` does), and asked for with examples/generate.js.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO, removeOnExit } from './node.js';
import { WORKER_BIN } from './worker.js';

const run = promisify(execFile);

/** Where scripts/install-models.sh put the models (scripts/test.sh exports VERITY_MODELS). */
export const INSTALLED = process.env.VERITY_MODELS
  ?? join(process.env.VERITY_CACHE ?? join(homedir(), '.cache', 'verity'), 'models');

const SOURCES = {
  small: { file: 'glassllm-en.npz', name: 'glassllm-en' },
  smollm2: { file: 'SmolLM2-135M-Instruct.Q4_1.gguf', name: 'SmolLM2-135M-Instruct' },
};
let dir = null;
const imports = {};

/**
 * The language model `which` (`small`: glassllm, `smollm2`: SmolLM2-135M-Instruct), imported
 * with `verity-worker import` into a temporary directory once per process (removed when the
 * process exits: an imported SmolLM2 is 92 MB): { name, vlm, id }.
 */
export function textModel(which) {
  if (!imports[which]) {
    const { file, name } = SOURCES[which];
    const input = join(INSTALLED, file);
    if (!existsSync(input)) throw new Error(`${input} is not installed (bash scripts/install-models.sh)`);
    dir ??= removeOnExit(mkdtempSync(join(tmpdir(), 'verity-e2e-text-')));
    imports[which] = run(WORKER_BIN, ['import', input, '--out', join(dir, name), '--json'], { timeout: 600_000 })
      .then(({ stdout }) => {
        const r = JSON.parse(stdout);
        return { name, vlm: r.file, id: r.model.startsWith('0x') ? r.model : `0x${r.model}` };
      });
  }
  return imports[which];
}

/**
 * Register `models` ({ name, vlm }) on `node`'s chain (Ferdie publishes) and have Alice serve
 * them at `price` VRTY per position, with examples/serve-text-models.js; returns { name: id }
 * as the script printed them.
 */
export async function serveTextModels(node, models, price = '0.01') {
  const args = [join(REPO, 'examples', 'serve-text-models.js'), '--url', `ws://127.0.0.1:${node.rpcPort}`, '--price', price,
    ...models.map((m) => `${m.name}=${m.vlm}`)];
  const { stdout } = await run(process.execPath, args, { timeout: 180_000 });
  return Object.fromEntries(stdout.trim().split('\n').map((l) => l.split(' ')));
}

/**
 * examples/generate.js against `node` and `worker` with `args` and `--json`: resolves
 * { code, out (the parsed JSON line, if any), stderr }. Exit status 2 (closed without a result)
 * is an outcome, not an error.
 */
export async function generateExample(node, worker, args, timeoutMs = 900_000) {
  const all = [join(REPO, 'examples', 'generate.js'), '--url', `ws://127.0.0.1:${node.rpcPort}`, '--worker', worker.url, '--json', ...args];
  try {
    const { stdout, stderr } = await run(process.execPath, all, { timeout: timeoutMs });
    return { code: 0, out: JSON.parse(stdout.trim().split('\n').pop()), stderr };
  } catch (e) {
    if (e.code === 2) return { code: 2, out: e.stdout.trim() ? JSON.parse(e.stdout.trim().split('\n').pop()) : null, stderr: e.stderr };
    throw new Error(`examples/generate.js failed (${e.code}): ${e.stderr || e.message}`);
  }
}
