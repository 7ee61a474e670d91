// What the example scripts share: command-line options, connecting, VRTY amounts, the example
// models, decoding dispatch errors, and failing with one readable line.
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiPromise, WsProvider } from '@polkadot/api';
import { Keyring } from '@polkadot/keyring';
import { u8aToString } from '@polkadot/util';
import { cryptoWaitReady, decodeAddress } from '@polkadot/util-crypto';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DEFAULT_URL = 'ws://127.0.0.1:9944';
/** VRTY has 12 decimals. */
export const DECIMALS = 12;
const UNIT = 10n ** BigInt(DECIMALS);

const script = basename(process.argv[1] ?? 'example');
// polkadot.js logs connection trouble and warnings itself; the scripts report errors in one line
// of their own. VERITY_EXAMPLES_DEBUG=1 lets polkadot.js's messages through.
if (!process.env.VERITY_EXAMPLES_DEBUG) {
  console.warn = () => {};
  console.error = () => {};
}

/** Print `<script>: error: <message>` on stderr and exit with `code`. */
export function fail(message, code = 1) {
  process.stderr.write(`${script}: error: ${String(message).split('\n')[0]}\n`);
  process.exit(code);
}

/** Run `main`, turning any exception into one line and a non-zero exit. */
export function run(main) {
  main().then(
    (code) => process.exit(code ?? 0),
    (e) => fail(e?.message ?? e),
  );
}

/**
 * Parse `--name value` and `--flag` options. `spec` maps each option to its default: a string
 * (takes a value) or `false` (a flag); `_: []` collects positional arguments. `--help` prints
 * `usage` and exits 0.
 */
export function parseArgs(spec, usage) {
  const opts = { ...spec };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') {
      process.stdout.write(usage.trim() + '\n');
      process.exit(0);
    }
    // Positional arguments, where the spec takes them (`_: []`).
    if (Array.isArray(spec._) && !arg.startsWith('--')) {
      opts._ = [...opts._, arg];
      continue;
    }
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!m || !(m[1] in spec)) fail(`unknown argument ${arg} (see --help)`, 2);
    const name = m[1];
    if (spec[name] === false) {
      opts[name] = true;
    } else if (m[2] !== undefined) {
      opts[name] = m[2];
    } else if (i + 1 < argv.length) {
      opts[name] = argv[++i];
    } else {
      fail(`--${name} needs a value`, 2);
    }
  }
  return opts;
}

/**
 * The canonical header bytes of a Verity model file: a classifier (`VRTYMODL`,
 * docs/MODEL_FORMAT.md section 4) or a transformer (`VRTYLMDL`, section 12): magic, version 1,
 * header length (u32 LE), header, weights. Returns { header, kind: 'classifier' | 'text' }; the
 * model id is blake2-256 of the header.
 */
export function modelHeader(file) {
  const bytes = readFileSync(file);
  const magic = bytes.length >= 16 ? u8aToString(bytes.subarray(0, 8)) : '';
  const kind = { VRTYMODL: 'classifier', VRTYLMDL: 'text' }[magic];
  if (!kind) throw new Error(`${file} is not a Verity model file (no VRTYMODL or VRTYLMDL magic)`);
  if (bytes.readUInt32LE(8) !== 1) throw new Error(`${file}: unsupported file version ${bytes.readUInt32LE(8)}`);
  const len = bytes.readUInt32LE(12);
  if (16 + len > bytes.length) throw new Error(`${file}: header length ${len} exceeds the file`);
  return { header: bytes.subarray(16, 16 + len), kind };
}

/** Connect to a node; fails (no endless reconnecting) if it cannot be reached within `timeoutMs`. */
export async function connect(url, timeoutMs = 15_000) {
  if (!/^wss?:\/\//.test(url)) throw new Error(`--url must start with ws:// or wss:// (got ${url})`);
  const provider = new WsProvider(url, false);
  const connected = new Promise((ok, ko) => {
    provider.on('connected', ok);
    provider.on('error', () => ko(new Error(`cannot connect to ${url} (is a node running there?)`)));
  });
  const timer = new Promise((_, ko) => setTimeout(() => ko(new Error(`no answer from ${url} within ${timeoutMs / 1000} s`)), timeoutMs).unref());
  try {
    await Promise.race([provider.connect().then(() => connected), timer]);
    return await Promise.race([ApiPromise.create({ provider, noInitWarn: true, throwOnConnect: true }), timer]);
  } catch (e) {
    provider.disconnect().catch(() => {});
    throw e;
  }
}

/** A key pair from a secret URI (`//Alice`, a mnemonic, ...). */
export async function signer(seed) {
  await cryptoWaitReady();
  try {
    return new Keyring({ type: 'sr25519', ss58Format: 42 }).addFromUri(seed);
  } catch (e) {
    throw new Error(`bad --seed ${JSON.stringify(seed)}: ${e.message}`);
  }
}

/** An account from an SS58 address or a secret URI (`//Alice`). */
export async function account(addressOrSeed) {
  if (addressOrSeed.startsWith('//') || addressOrSeed.includes(' ')) return (await signer(addressOrSeed)).address;
  try {
    decodeAddress(addressOrSeed);
  } catch {
    throw new Error(`not an address or secret URI: ${addressOrSeed}`);
  }
  return new Keyring({ ss58Format: 42 }).encodeAddress(addressOrSeed);
}

/** `12.5` VRTY -> planck (bigint). */
export function parseVrty(text) {
  const m = /^(\d+)(?:\.(\d{1,12}))?$/.exec(String(text).trim());
  if (!m) throw new Error(`not an amount of VRTY: ${text}`);
  return BigInt(m[1]) * UNIT + BigInt((m[2] ?? '').padEnd(DECIMALS, '0'));
}

/** planck -> `12.5 VRTY` (exact, trailing zeros dropped). */
export function vrty(planck) {
  const v = BigInt(planck.toString());
  const sign = v < 0n ? '-' : '';
  const a = v < 0n ? -v : v;
  const frac = (a % UNIT).toString().padStart(DECIMALS, '0').replace(/0+$/, '');
  return `${sign}${a / UNIT}${frac ? '.' + frac : ''} VRTY`;
}

/** All registered models: [{ id, name, uri, record }]. */
export async function models(api) {
  const entries = await api.query.models.metadata.entries();
  const out = [];
  for (const [key, meta] of entries) {
    const id = key.args[0].toHex();
    const record = await api.query.models.models(id);
    if (record.isNone) continue;
    const m = meta.unwrap();
    out.push({ id, name: u8aToString(m.name), uri: u8aToString(m.uri), record: record.unwrap() });
  }
  return out;
}

/** A model by name (`digits-cnn`) or id (`0x` + 64 hex digits). */
export async function findModel(api, nameOrId) {
  const all = await models(api);
  const hit = all.find((m) => m.id === nameOrId.toLowerCase() || m.name === nameOrId);
  if (!hit) {
    const known = all.map((m) => `${m.name} ${m.id}`).join(', ') || 'none';
    throw new Error(`unknown model ${nameOrId} (registered: ${known})`);
  }
  return hit;
}

/** The sample input of an example model of the repository (`digits-cnn` -> digits_cnn.input). */
export function sampleInput(modelName) {
  const file = join(REPO, 'inference-worker', 'models', `${modelName.replace(/-/g, '_')}.input`);
  return existsSync(file) ? file : null;
}

/** `pallet.Error {fields} (doc)` for a dispatch error, e.g. `models.InvalidModel {"op":2,"reason":"TooManyMacs"} (...)`. */
export function dispatchErrorText(api, err) {
  if (!err.isModule) return err.toString();
  const mod = err.asModule;
  const { section, name, docs, args } = api.registry.findMetaError(mod);
  let fields = '';
  if (args.length > 0) {
    // The error's fields, decoded with the pallet's error type from the metadata.
    const pallet = api.registry.metadata.pallets.find((p) => p.index.eq(mod.index));
    const type = api.registry.createLookupType(pallet.errors.unwrap().type);
    fields = ` ${JSON.stringify(api.registry.createType(type, mod.error.toU8a()).value.toJSON())}`;
  }
  return `${section}.${name}${fields}${docs.length ? ` (${docs.join(' ').replace(/\s+/g, ' ').trim()})` : ''}`;
}

/** The events of block `n`, with its hash. */
export async function blockEvents(api, n) {
  const hash = await api.rpc.chain.getBlockHash(n);
  const events = await (await api.at(hash)).query.system.events();
  return { hash, events };
}

/**
 * Call `onBlock(number, events)` for every finalized block from `from` on, in order, without
 * skipping any (finalized-head notifications may jump several blocks). Returns an unsubscribe
 * function; `onBlock` returning `true` unsubscribes.
 */
export async function followFinalized(api, from, onBlock, onError) {
  let next = from;
  let busy = Promise.resolve();
  let stopped = false;
  const unsub = await api.rpc.chain.subscribeFinalizedHeads((header) => {
    const head = header.number.toNumber();
    busy = busy.then(async () => {
      while (!stopped && next <= head) {
        const { events } = await blockEvents(api, next);
        if (await onBlock(next, events)) {
          stopped = true;
          unsub();
        }
        next++;
      }
    }).catch((e) => {
      stopped = true;
      unsub();
      onError(e);
    });
  });
  return () => { stopped = true; unsub(); };
}
