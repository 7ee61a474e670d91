// Foundation: the standard subcommands of verity-node work on a real database.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, existsSync, statSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNode, waitFor, finalizedNumber, runNodeCmd } from '../lib/node.js';

test('key generate / inspect', () => {
  const out = JSON.parse(runNodeCmd(['key', 'generate', '--scheme', 'sr25519', '--output-type', 'json']));
  assert.match(out.ss58Address, /^5/);
  const again = JSON.parse(runNodeCmd(['key', 'inspect', '--output-type', 'json', out.secretPhrase]));
  assert.equal(again.ss58Address, out.ss58Address);
});

test('export-blocks and purge-chain on a ParityDB database', { timeout: 180_000 }, async () => {
  const base = mkdtempSync(join(tmpdir(), 'verity-db-'));
  try {
    const node = await startNode('dev-db', ['--dev'], { basePath: base });
    await waitFor('finalized #3', async () => (await finalizedNumber(node.rpcPort)) >= 3, { timeoutMs: 90_000 });
    const { code } = await node.stop();
    assert.equal(code, 0);

    const dbRoot = join(base, 'chains', 'verity_dev');
    assert.ok(existsSync(join(dbRoot, 'paritydb')), `ParityDB directory exists (have: ${readdirSync(dbRoot)})`);

    const file = join(base, 'blocks.json');
    runNodeCmd(['export-blocks', '--dev', '--base-path', base, '--from', '0', '--to', '3', file]);
    assert.ok(statSync(file).size > 100, 'blocks exported');

    runNodeCmd(['purge-chain', '--dev', '--base-path', base, '-y']);
    assert.ok(!existsSync(join(dbRoot, 'paritydb', 'full')), 'database removed');
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});
