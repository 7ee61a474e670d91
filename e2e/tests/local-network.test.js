// Foundation: the chain-spec command regenerates the dev and local specs (plain and raw) from the
// runtime presets, and two validators (Alice, Bob) started from the generated raw local spec
// connect on loopback and finalize together.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO, startNode, waitFor, finalizedNumber, rpc, runNodeCmd } from '../lib/node.js';

const CODE_KEY = '0x3a636f6465'; // ":code"

test('chain specs regenerate from the presets, and a two-validator network finalizes', { timeout: 240_000 }, async () => {
  const out = mkdtempSync(join(tmpdir(), 'verity-specs-'));
  execFileSync('bash', [join(REPO, 'chain-spec', 'generate.sh'), out], { stdio: 'pipe', timeout: 120_000 });

  for (const chain of ['dev', 'local']) {
    const plain = JSON.parse(readFileSync(join(out, `${chain}.json`), 'utf8'));
    const raw = JSON.parse(readFileSync(join(out, `${chain}-raw.json`), 'utf8'));
    assert.equal(plain.properties.tokenSymbol, 'VRTY');
    assert.ok(plain.genesis.runtimeGenesis.code.length > 1000, `${chain}: plain spec carries the runtime`);
    const patch = plain.genesis.runtimeGenesis.patch;
    assert.equal(patch.aura.authorities.length, chain === 'dev' ? 1 : 2, `${chain}: aura authorities`);
    assert.equal(patch.balances.balances.length, 6, `${chain}: endowed accounts`);
    assert.ok(raw.genesis.raw.top[CODE_KEY], `${chain}: raw spec holds :code`);
  }

  // Validators need a network key of their own; Alice's is fixed so that Bob can name her as bootnode.
  const keyFile = join(out, 'alice.key');
  writeFileSync(keyFile, '0000000000000000000000000000000000000000000000000000000000000001');
  const bobKeyFile = join(out, 'bob.key');
  runNodeCmd(['key', 'generate-node-key', '--file', bobKeyFile]);
  const alicePeer = runNodeCmd(['key', 'inspect-node-key', '--file', keyFile]).trim();
  const spec = join(out, 'local-raw.json');

  const alice = await startNode('alice', ['--chain', spec, '--alice', '--validator', '--node-key-file', keyFile]);
  let bob;
  try {
    bob = await startNode('bob', ['--chain', spec, '--bob', '--validator', '--node-key-file', bobKeyFile,
      '--bootnodes', `/ip4/127.0.0.1/tcp/${alice.p2pPort}/p2p/${alicePeer}`]);
    for (const n of [alice, bob]) {
      await waitFor(`${n.name} to see a peer (log: ${n.logFile})`, async () => (await rpc(n.rpcPort, 'system_health')).peers >= 1);
    }
    // Both validators are needed for finality (2 of 2): finality advancing proves both take part.
    const first = await waitFor('finality #2 on Alice', async () => {
      const f = await finalizedNumber(alice.rpcPort);
      return f >= 2 ? f : 0;
    }, { timeoutMs: 90_000 });
    await waitFor(`finality to advance past #${first} on both nodes`, async () =>
      (await finalizedNumber(alice.rpcPort)) > first && (await finalizedNumber(bob.rpcPort)) > first,
    { timeoutMs: 90_000 });
    const [ha, hb] = await Promise.all([alice, bob].map((n) => rpc(n.rpcPort, 'chain_getBlockHash', [first])));
    assert.equal(ha, hb, 'both nodes finalized the same block');
  } finally {
    const stops = [alice.stop()];
    if (bob) stops.push(bob.stop());
    for (const { code } of await Promise.all(stops)) assert.equal(code, 0, 'clean exit');
    rmSync(out, { recursive: true, force: true });
  }
});
