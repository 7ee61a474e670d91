"""A second, independent implementation of the transformer format (docs/MODEL_FORMAT.md
section 12) in plain Python (standard library only), written from the page, used to cross-check
the Rust reference interpreter (primitives/src/lm/).

Usage: python3 verity_lm_ref.py DIR
where DIR holds an lm_golden.json in the format of primitives/testdata/ (the committed golden
vectors, or random tiny transformers written by the `golden` example). For every case it decodes
the .vlm file (structure, weight chunks against `weights_root`, model id), runs the generation
with the exact integer semantics of every op, recomputes every step hash, position root and the
job root, and asserts equality with the JSON (exit status 1 and the first mismatch otherwise).

No floating point anywhere: Python ints are exact, and every width/saturation/rounding rule of
the page is applied explicitly.
"""
import hashlib, json, math, os, struct, sys, time

I32_MIN, I32_MAX = -2**31, 2**31 - 1
I128_MIN, I128_MAX = -2**127, 2**127 - 1


def b2(data):
    return hashlib.blake2b(data, digest_size=32).digest()


# ---------------------------------------------------------------- BLAKE3, keyed (section 12.8)
# The BLAKE3 specification's hash in keyed mode (32-byte output), written from the paper:
# 1,024-byte chunks of 64-byte blocks, chunk chaining values merged into a binary tree whose
# left subtree holds the largest power of two of chunks that leaves at least one on the right.

B3_IV = [0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB,
         0x5BE0CD19]
B3_PERM = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8]
CHUNK_START, CHUNK_END, PARENT, ROOT, KEYED_HASH = 1, 2, 4, 8, 16
M32 = 0xFFFFFFFF


def b3_compress(cv, block, counter, block_len, flags):
    m = list(struct.unpack('<16I', block))
    v = cv[:] + B3_IV[:4] + [counter & M32, counter >> 32, block_len, flags]
    rot = lambda x, n: ((x >> n) | (x << (32 - n))) & M32

    def g(a, b, c, d, x, y):
        v[a] = (v[a] + v[b] + x) & M32; v[d] = rot(v[d] ^ v[a], 16)
        v[c] = (v[c] + v[d]) & M32; v[b] = rot(v[b] ^ v[c], 12)
        v[a] = (v[a] + v[b] + y) & M32; v[d] = rot(v[d] ^ v[a], 8)
        v[c] = (v[c] + v[d]) & M32; v[b] = rot(v[b] ^ v[c], 7)
    for r in range(7):
        g(0, 4, 8, 12, m[0], m[1]); g(1, 5, 9, 13, m[2], m[3])
        g(2, 6, 10, 14, m[4], m[5]); g(3, 7, 11, 15, m[6], m[7])
        g(0, 5, 10, 15, m[8], m[9]); g(1, 6, 11, 12, m[10], m[11])
        g(2, 7, 8, 13, m[12], m[13]); g(3, 4, 9, 14, m[14], m[15])
        if r < 6: m = [m[i] for i in B3_PERM]
    return [v[i] ^ v[i + 8] for i in range(8)]


def b3_keyed(key, data):
    k = list(struct.unpack('<8I', key))
    chunks = [data[i:i + 1024] for i in range(0, len(data), 1024)] or [b'']

    def chunk_cv(ci, chunk, root):
        cv = k
        blocks = [chunk[i:i + 64] for i in range(0, len(chunk), 64)] or [b'']
        for bi, blk in enumerate(blocks):
            f = KEYED_HASH | (CHUNK_START if bi == 0 else 0)
            if bi == len(blocks) - 1: f |= CHUNK_END | (ROOT if root else 0)
            cv = b3_compress(cv, blk.ljust(64, b'\0'), ci, len(blk), f)
        return cv

    def subtree(lo, hi, root):  # the chaining value of chunks lo..hi
        if hi - lo == 1: return chunk_cv(lo, chunks[lo], root)
        left = 1 << ((hi - lo - 1).bit_length() - 1)
        block = struct.pack('<16I', *(subtree(lo, lo + left, False) + subtree(lo + left, hi, False)))
        return b3_compress(k, block, 0, 64, KEYED_HASH | PARENT | (ROOT if root else 0))
    return struct.pack('<8I', *subtree(0, len(chunks), True))


LM_STEP_KEY = b"verity/lm/step/v2".ljust(32, b'\0')
LM_NODE_KEY = b"verity/lm/node/v2".ljust(32, b'\0')


# ---------------------------------------------------------------- SCALE reader (section 2)

class Reader:
    def __init__(s, b): s.b, s.i = b, 0
    def take(s, n):
        if s.i + n > len(s.b): raise ValueError("header too short")
        v = s.b[s.i:s.i + n]; s.i += n; return v
    def u8(s): return s.take(1)[0]
    def u32(s): return struct.unpack('<I', s.take(4))[0]
    def u64(s): return struct.unpack('<Q', s.take(8))[0]
    def compact(s):  # canonical (shortest) form only
        b0 = s.u8(); mode = b0 & 3
        if mode == 0: return b0 >> 2
        if mode == 1:
            v = (b0 | s.u8() << 8) >> 2
            if v < 64: raise ValueError("non-canonical compact")
            return v
        if mode == 2:
            v = struct.unpack('<I', bytes([b0]) + s.take(3))[0] >> 2
            if v < 1 << 14: raise ValueError("non-canonical compact")
            return v
        m = (b0 >> 2) + 4; raw = s.take(m); v = int.from_bytes(raw, 'little')
        if v < 1 << 30 or raw[-1] == 0: raise ValueError("non-canonical compact")
        return v
    def vec(s, f): return [f() for _ in range(s.compact())]


# ---------------------------------------------------------------- numbers (12.1)

def sat(v):
    return min(max(v, I32_MIN), I32_MAX)

def sat128(v):
    return min(max(v, I128_MIN), I128_MAX)

def div_round(n, d):
    """n / d rounded to nearest, ties away from zero; 0 for d <= 0."""
    if d <= 0: return 0
    q, r = divmod(abs(n), d)
    v = q + (1 if 2 * r >= d else 0)
    return -v if n < 0 else v

def fp16_exact(bits):
    """An fp16 as an exact integer number of 2^-24; inf/NaN read as 0."""
    e, f, s = (bits >> 10) & 31, bits & 1023, bits >> 15
    if e == 31: return 0
    v = f if e == 0 else (1024 + f) << (e - 1)
    return -v if s else v


# ---------------------------------------------------------------- fixed-point functions (12.2)

ONE = 2**32
LN2 = 2977044472
HALF_PI = 6746518852
TWO_PI = 4 * HALF_PI

def exp_neg(r):
    """e^(-r / 2^32) in Q32, r >= 0 in Q32."""
    n, f = divmod(r, LN2)
    t = ONE; s = ONE
    for k in range(1, 13):
        t = t * f // (k * 2**32)
        s = s - t if k % 2 == 1 else s + t
    return 0 if n >= 64 else s >> n

def cos_sin(a):
    """(cos, sin) of a >= 0 radians in Q32."""
    a = a % TWO_PI
    q, x = divmod(a, HALF_PI)
    x2 = x * x // 2**32
    t = x; s = x
    for i, k in enumerate(range(3, 18, 2)):
        t = t * x2 // (k * (k - 1) * 2**32)
        s = s - t if i % 2 == 0 else s + t
    t = ONE; c = ONE
    for i, k in enumerate(range(2, 17, 2)):
        t = t * x2 // (k * (k - 1) * 2**32)
        c = c - t if i % 2 == 0 else c + t
    return [(c, s), (-s, c), (-c, -s), (s, -c)][q]


# ---------------------------------------------------------------- block-quantized weights (12.3)

Q8_0, Q4_0, Q4_1 = 0, 1, 2
BLOCK_BYTES = {Q8_0: 34, Q4_0: 18, Q4_1: 20}

def decode_block(fmt, b):
    """One block of 32 elements -> (D, M, [w_0..w_31]); D, M in units of 2^-24."""
    d = fp16_exact(struct.unpack('<H', b[0:2])[0])
    if fmt == Q8_0:
        return d, 0, list(struct.unpack('<32b', b[2:34]))
    if fmt == Q4_0:
        qs = b[2:18]
        return d, 0, [(qs[j] & 15) - 8 for j in range(16)] + [(qs[j] >> 4) - 8 for j in range(16)]
    m = fp16_exact(struct.unpack('<H', b[2:4])[0])
    qs = b[4:20]
    return d, m, [qs[j] & 15 for j in range(16)] + [qs[j] >> 4 for j in range(16)]

def decode_matrix(fmt, data, rows, K):
    """A chunk of `rows` rows of length K -> list of rows, each a list of blocks."""
    bb = BLOCK_BYTES[fmt]; nb = K // 32
    assert len(data) == rows * nb * bb
    return [[decode_block(fmt, data[(r * nb + j) * bb:(r * nb + j + 1) * bb]) for j in range(nb)]
            for r in range(rows)]

def act_qmax(h):
    """The activations' levels (12.3): 127 in header version 1, 16383 in version 2."""
    return 127 if h['version'] == 1 else 16383

def quantize_activations(x, qmax):
    """Per block of 32: (amax_b, [q_j]) with q_j = div_round(qmax x_j, amax_b)."""
    out = []
    for b in range(0, len(x), 32):
        blk = x[b:b + 32]
        amax = max(abs(v) for v in blk)
        out.append((amax, [0] * 32 if amax == 0 else [div_round(qmax * v, amax) for v in blk]))
    return out

def matmul(h, rows, x, residual=None):
    """y_r = sat(residual_r + div_round(acc_r, qmax * 2^24)) for every decoded row."""
    qmax = act_qmax(h)
    xq = quantize_activations(x, qmax)
    assert len(rows[0]) == len(xq)
    y = []
    for r, row in enumerate(rows):
        acc = 0
        for (d, m, w), (amax, q) in zip(row, xq):
            s_b = sum(qj * wj for qj, wj in zip(q, w))
            a_b = sum(q)
            acc += amax * (d * s_b + m * a_b)
        res = residual[r] if residual is not None else 0
        y.append(sat(res + div_round(acc, qmax * 2**24)))
    return y

def dequantize_row(row):
    """Embedding lookup: element j = sat(div_round(D * w_j + M, 2^8)) (Q24 -> Q16)."""
    return [sat(div_round(d * w + m, 2**8)) for d, m, ws in row for w in ws]


# ---------------------------------------------------------------- the header (12.5)

U32_FIELDS = ['version', 'dim', 'n_layers', 'n_heads', 'n_kv_heads', 'head_dim', 'ffn_dim',
              'vocab', 'max_context', 'norm_eps', 'attn_scale_q16']
LAYER_MATS = ['wq', 'wk', 'wv', 'wo', 'gate', 'up', 'down']

def fmt_byte(r):
    f = r.u8()
    if f not in BLOCK_BYTES: raise ValueError("unknown block format %d" % f)
    return f

def decode_header(hb):
    r = Reader(hb); h = {}
    for name in U32_FIELDS: h[name] = r.u32()
    h['rope_inv_freq'] = r.vec(r.u64)
    h['embedding'] = fmt_byte(r)
    h['layers'] = r.vec(lambda: dict(zip(LAYER_MATS, [fmt_byte(r) for _ in LAYER_MATS])))
    h['chunk_rows'] = r.u32()
    h['vocab_chunk_rows'] = r.u32()
    h['attn_block'] = r.u32()
    h['eos_tokens'] = r.vec(r.u32)
    h['tokenizer_hash'] = r.take(32)
    h['chat_template_hash'] = r.take(32)
    h['weights_root'] = r.take(32)
    if r.i != len(hb): raise ValueError("trailing bytes after the header")
    return h

def check_header(h):
    """The structural rules of 12.5 and the accumulator bounds of 12.10."""
    D, L, H, G, hd = h['dim'], h['n_layers'], h['n_heads'], h['n_kv_heads'], h['head_dim']
    F, V, c, vc = h['ffn_dim'], h['vocab'], h['chunk_rows'], h['vocab_chunk_rows']
    rules = [
        ('version', h['version'] in (1, 2)),
        ('chunk_rows', c >= 1), ('vocab_chunk_rows', vc >= 1), ('attn_block', h['attn_block'] >= 1),
        ('dim', D >= 1 and D % 32 == 0 and D % c == 0),
        ('n_layers', L >= 1),
        ('n_heads', H >= 1 and (H * hd) % 32 == 0),
        ('n_kv_heads', G >= 1 and H % G == 0),
        ('head_dim', hd >= 2 and hd % 2 == 0),
        ('ffn_dim', F >= 1 and F % 32 == 0 and F % c == 0),
        ('vocab', V >= 1 and V % vc == 0),
        ('max_context', 1 <= h['max_context'] <= 2**24),
        ('norm_eps', h['norm_eps'] >= 1),
        ('rope_inv_freq', len(h['rope_inv_freq']) == hd // 2 and all(f <= 2**32 for f in h['rope_inv_freq'])),
        ('layers', len(h['layers']) == L),
        ('eos_tokens', 1 <= len(h['eos_tokens']) <= 16 and all(t < V for t in h['eos_tokens'])),
    ]
    for K in (D, H * hd, F):
        rules.append(('matmul bound', (K // 32) * 2**(91 if h['version'] == 1 else 98) <= I128_MAX))
    rules += [('rmsnorm bound', (D * 2**62 + 2**32) * 2**32 < 2**128),
              ('score bound', hd * 2**94 <= I128_MAX),
              ('attention bound', h['max_context'] * 2**63 <= I128_MAX),
              ('select bound', V * 2**96 < 2**128)]
    for name, ok in rules:
        if not ok: raise ValueError("header rule violated: " + name)


# ---------------------------------------------------------------- weight chunks (12.6)

def chunk_list(h):
    """[(name, kind, rows, K, fmt)] in the order of weights_root; kind 'mat' or 'norm'."""
    D, L, H, G, hd = h['dim'], h['n_layers'], h['n_heads'], h['n_kv_heads'], h['head_dim']
    F, V, c, vc = h['ffn_dim'], h['vocab'], h['chunk_rows'], h['vocab_chunk_rows']
    out = [(('Embedding', k), 'mat', vc, D, h['embedding']) for k in range(V // vc)]
    for l in range(L):
        f = h['layers'][l]
        out.append((('AttnNorm', l), 'norm', D, 0, None))
        out += [(('Wq', l, i), 'mat', hd, D, f['wq']) for i in range(H)]
        out += [(('Wk', l, i), 'mat', hd, D, f['wk']) for i in range(G)]
        out += [(('Wv', l, i), 'mat', hd, D, f['wv']) for i in range(G)]
        out += [(('Wo', l, k), 'mat', c, H * hd, f['wo']) for k in range(D // c)]
        out.append((('FfnNorm', l), 'norm', D, 0, None))
        out += [(('Gate', l, k), 'mat', c, D, f['gate']) for k in range(F // c)]
        out += [(('Up', l, k), 'mat', c, D, f['up']) for k in range(F // c)]
        out += [(('Down', l, k), 'mat', c, F, f['down']) for k in range(D // c)]
    out.append((('OutputNorm',), 'norm', D, 0, None))
    return out

def chunk_len(kind, rows, K, fmt):
    return 4 * rows if kind == 'norm' else rows * (K // 32) * BLOCK_BYTES[fmt]


# ---------------------------------------------------------------- Merkle rule (section 8)

def merkle_root(hashes):
    if not hashes: return bytes(32)
    lvl = [b2(b'\x00' + x) for x in hashes]
    while len(lvl) > 1:
        lvl = [b2(b'\x01' + lvl[i] + lvl[i + 1]) if i + 1 < len(lvl) else lvl[i]
               for i in range(0, len(lvl), 2)]
    return lvl[0]


def lm_tree_root(hashes):
    # position and job trees (12.8): the hashes are the leaves, nodes keyed BLAKE3 of l || r
    if not hashes: return bytes(32)
    lvl = list(hashes)
    while len(lvl) > 1:
        lvl = [b3_keyed(LM_NODE_KEY, lvl[i] + lvl[i + 1]) if i + 1 < len(lvl) else lvl[i]
               for i in range(0, len(lvl), 2)]
    return lvl[0]


# ---------------------------------------------------------------- the model file (12.6)

def read_model(b):
    """Decode and verify a .vlm file -> (header, header bytes, {chunk name: decoded chunk})."""
    if b[:8] != b"VRTYLMDL": raise ValueError("bad magic")
    if struct.unpack('<I', b[8:12])[0] != 1: raise ValueError("bad file version")
    L = struct.unpack('<I', b[12:16])[0]
    hb = b[16:16 + L]
    if len(hb) != L: raise ValueError("short header")
    h = decode_header(hb)
    check_header(h)
    pos, hashes, chunks = 16 + L, [], {}
    for name, kind, rows, K, fmt in chunk_list(h):
        n = chunk_len(kind, rows, K, fmt)
        data = b[pos:pos + n]; pos += n
        if len(data) != n: raise ValueError("short chunk %r" % (name,))
        hashes.append(b2(data))
        if kind == 'norm':
            chunks[name] = list(struct.unpack('<%di' % rows, data))
        else:
            chunks[name] = decode_matrix(fmt, data, rows, K)
    if pos != len(b): raise ValueError("bytes after the last chunk")
    if merkle_root(hashes) != h['weights_root']: raise ValueError("weights_root mismatch")
    return h, hb, chunks


# ---------------------------------------------------------------- the ops (12.4)

def op_embed(h, W, tok):
    vc = h['vocab_chunk_rows']
    return dequantize_row(W[('Embedding', tok // vc)][tok % vc])

def op_rmsnorm(h, g, x):
    D = len(x)
    ss = sum(v * v for v in x)
    ms = ss // D + h['norm_eps']
    r = math.isqrt(ms * 2**32)
    return [sat(div_round(xi * gi * 2**16, r)) for xi, gi in zip(x, g)]

def rope(h, y, t):
    out = list(y)
    for i in range(len(y) // 2):
        c, s = cos_sin(t * h['rope_inv_freq'][i])
        a, b = y[2 * i], y[2 * i + 1]
        out[2 * i] = sat(div_round(a * c - b * s, 2**32))
        out[2 * i + 1] = sat(div_round(a * s + b * c, 2**32))
    return out

def op_q_or_k(h, rows, x, t):
    return rope(h, matmul(h, rows, x), t)

def op_v(h, rows, x):
    return matmul(h, rows, x)

EMPTY_PART = (I32_MIN, 0, None)

def op_attn_part(h, q, keys, values):
    """(m_b, S_b, [o_b,i]) over the block's keys/values (empty block: EMPTY_PART)."""
    if not keys: return EMPTY_PART
    z = [sat(div_round(sum(qi * ki for qi, ki in zip(q, k)) * h['attn_scale_q16'], 2**32)) for k in keys]
    m = max(z)
    e = [exp_neg((m - zs) * 2**16) for zs in z]
    S = sum(e)
    N = [sum(es * v[i] for es, v in zip(e, values)) for i in range(len(q))]
    return (m, S, [sat(div_round(n, S)) for n in N])

def op_attn(h, parts):
    hd = h['head_dim']
    live = [p for p in parts if p[1] > 0]
    if not live: return [0] * hd
    m = max(p[0] for p in live)
    W, N = 0, [0] * hd
    for mb, Sb, Ob in live:
        f = exp_neg((m - mb) * 2**16)
        w = div_round(sat128(Sb * f), 2**32)
        W = sat128(W + w)
        for i in range(hd):
            N[i] = sat128(N[i] + sat128(w * Ob[i]))
    return [sat(div_round(n, W)) for n in N]

def op_oproj(h, rows, attn_concat, residual):
    return matmul(h, rows, attn_concat, residual)

def op_gate_up(h, gate_rows, up_rows, x):
    gate, up = matmul(h, gate_rows, x), matmul(h, up_rows, x)
    out = []
    for g, u in zip(gate, up):
        E = exp_neg(abs(g) * 2**16)
        Wt = 2**32 if g >= 0 else E
        out.append(sat(div_round(g * u * Wt, 2**16 * (2**32 + E))))
    return out

def op_down(h, rows, hidden, residual):
    return matmul(h, rows, hidden, residual)

def op_head(h, rows, x):
    return matmul(h, rows, x)

def op_select(h, logits, params, t):
    temp, top_k, top_p, seed = params
    V = len(logits)
    if temp == 0:
        best = 0
        for j in range(1, V):
            if logits[j] > logits[best]: best = j
        return best
    order = sorted(range(V), key=lambda j: (-logits[j], j))
    if top_k != 0 and top_k < V: order = order[:top_k]
    m = logits[order[0]]
    w = [exp_neg(min((m - logits[j]) * 2**32 // temp, 2**64 - 1)) for j in order]
    Wsum = sum(w)
    keep = len(order); C = 0
    for n, wj in enumerate(w):
        C += wj
        if C * 2**16 >= top_p * Wsum: keep = n + 1; break
    Wk = sum(w[:keep])
    u = int.from_bytes(b2(b"verity/lm/sample/v1" + seed + struct.pack('<I', t))[:8], 'little')
    r = u * Wk // 2**64
    run = 0
    for j, wj in zip(order[:keep], w[:keep]):
        run += wj
        if run > r: return j
    raise AssertionError("no candidate selected")  # unreachable: the kept sum exceeds r


# ---------------------------------------------------------------- encodings and commitments (12.1, 12.8)

def enc_i32s(v):
    return struct.pack('<%di' % len(v), *v)

def enc_part(h, p):
    m, S, O = p
    if O is None: O = [0] * h['head_dim']
    return struct.pack('<iQ', m, S) + enc_i32s(O)

def step_hash(out):
    return b3_keyed(LM_STEP_KEY, out)


# ---------------------------------------------------------------- generation (12.7)

def run_position(h, W, t, tok, P, kv, params):
    """All ops of position t in op-index order -> (list of output bytes, selected token or None).
    kv[l][g] = (keys, values) lists over positions, appended here."""
    D, L, H, G, hd = h['dim'], h['n_layers'], h['n_heads'], h['n_kv_heads'], h['head_dim']
    F, V, c, vc, B = h['ffn_dim'], h['vocab'], h['chunk_rows'], h['vocab_chunk_rows'], h['attn_block']
    n_parts = min(t // B + 1, -(-h['max_context'] // B))  # P(t): the blocks holding 0..=t
    outs = []
    x = op_embed(h, W, tok); outs.append(enc_i32s(x))
    for l in range(L):
        xn = op_rmsnorm(h, W[('AttnNorm', l)], x); outs.append(enc_i32s(xn))
        qs = [op_q_or_k(h, W[('Wq', l, i)], xn, t) for i in range(H)]
        ks = [op_q_or_k(h, W[('Wk', l, i)], xn, t) for i in range(G)]
        vs = [op_v(h, W[('Wv', l, i)], xn) for i in range(G)]
        outs += [enc_i32s(v) for v in qs + ks + vs]
        for g in range(G):
            kv[l][g][0].append(ks[g]); kv[l][g][1].append(vs[g])
        attn = []
        for hh in range(H):
            keys, values = kv[l][hh // (H // G)]
            parts = []
            for b in range(n_parts):
                lo, hi = b * B, min(b * B + B - 1, t)
                parts.append(op_attn_part(h, qs[hh], keys[lo:hi + 1], values[lo:hi + 1]))
            outs += [enc_part(h, p) for p in parts]
            attn.append(op_attn(h, parts))
        outs += [enc_i32s(a) for a in attn]
        attn_concat = [v for a in attn for v in a]
        oproj = []
        for k in range(D // c):
            y = op_oproj(h, W[('Wo', l, k)], attn_concat, x[k * c:(k + 1) * c])
            outs.append(enc_i32s(y)); oproj += y
        fn = op_rmsnorm(h, W[('FfnNorm', l)], oproj); outs.append(enc_i32s(fn))
        hidden = []
        for k in range(F // c):
            y = op_gate_up(h, W[('Gate', l, k)], W[('Up', l, k)], fn)
            outs.append(enc_i32s(y)); hidden += y
        x = []
        for k in range(D // c):
            y = op_down(h, W[('Down', l, k)], hidden, oproj[k * c:(k + 1) * c])
            outs.append(enc_i32s(y)); x += y
    if t < P - 1:
        return outs, None
    xn = op_rmsnorm(h, W[('OutputNorm',)], x); outs.append(enc_i32s(xn))
    logits = []
    for k in range(V // vc):
        y = op_head(h, W[('Embedding', k)], xn); outs.append(enc_i32s(y)); logits += y
    tok = op_select(h, logits, params, t); outs.append(struct.pack('<I', tok))
    return outs, tok

def generate(h, W, prompt, params, max_new_tokens):
    """-> (generated tokens, step hashes [t][i])."""
    P = len(prompt)
    assert 1 <= P <= h['max_context'] and all(x < h['vocab'] for x in prompt) and max_new_tokens >= 1
    kv = [[([], []) for _ in range(h['n_kv_heads'])] for _ in range(h['n_layers'])]
    tokens, hashes, t = [], [], 0
    while True:
        tok = prompt[t] if t < P else tokens[-1]
        outs, sel = run_position(h, W, t, tok, P, kv, params)
        hashes.append([step_hash(o) for o in outs])
        if sel is not None:
            tokens.append(sel)
            if sel in h['eos_tokens'] or len(tokens) == max_new_tokens or t + 1 == h['max_context']:
                return tokens, hashes
        t += 1


# ---------------------------------------------------------------- golden check

class Mismatch(Exception):
    pass

def check_case(d, c):
    h, hb, W = read_model(open(os.path.join(d, c['model_file']), 'rb').read())
    if b2(hb).hex() != c['model_id']: raise Mismatch("model id")
    params = (c['temperature_q16'], c['top_k'], c['top_p_q16'], bytes.fromhex(c['seed']))
    tokens, hashes = generate(h, W, c['prompt'], params, c['max_new_tokens'])
    want = c['step_hashes']
    for t in range(min(len(hashes), len(want))):
        if len(hashes[t]) != len(want[t]):
            raise Mismatch("position %d: %d ops, expected %d" % (t, len(hashes[t]), len(want[t])))
        for i, (x, y) in enumerate(zip(hashes[t], want[t])):
            if x.hex() != y: raise Mismatch("position %d, op %d: step hash differs" % (t, i))
    if len(hashes) != len(want):
        raise Mismatch("%d positions, expected %d" % (len(hashes), len(want)))
    if tokens != c['tokens']: raise Mismatch("tokens %s, expected %s" % (tokens, c['tokens']))
    roots = [lm_tree_root(hs) for hs in hashes]
    for t, (x, y) in enumerate(zip(roots, c['position_roots'])):
        if x.hex() != y: raise Mismatch("position %d: position root differs" % t)
    if len(roots) != len(c['position_roots']): raise Mismatch("position root count")
    if lm_tree_root(roots).hex() != c['job_root']: raise Mismatch("job root")
    return len(hashes), sum(len(x) for x in hashes)

def main():
    if len(sys.argv) != 2:
        sys.exit("usage: python3 verity_lm_ref.py DIR")
    d = sys.argv[1]
    doc = json.load(open(os.path.join(d, 'lm_golden.json')))
    start = time.perf_counter(); n_pos = n_ops = 0
    for c in doc['cases']:
        t0 = time.perf_counter()
        try:
            p, o = check_case(d, c)
        except Mismatch as e:
            print("MISMATCH in case %s: %s" % (c['name'], e))
            sys.exit(1)
        except (ValueError, AssertionError) as e:
            print("ERROR in case %s: invalid model file or job: %s" % (c['name'], e or type(e).__name__))
            sys.exit(1)
        n_pos += p; n_ops += o
        print("ok %-14s positions %2d  ops %5d  %.2f s" % (c['name'], p, o, time.perf_counter() - t0))
    print("all %d cases ok: %d positions, %d steps, %.1f s" %
          (len(doc['cases']), n_pos, n_ops, time.perf_counter() - start))

if __name__ == '__main__':
    main()
