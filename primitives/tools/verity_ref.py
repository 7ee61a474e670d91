"""A second, independent implementation of docs/MODEL_FORMAT.md in plain Python (no
dependencies), written from the page, used to cross-check the Rust reference interpreter.

Usage: python3 verity_ref.py DIR
where DIR holds a golden.json in the format of primitives/testdata/ (the committed golden
vectors, or random models written by
`cargo run -p verity-primitives --example golden --features testing -- random DIR COUNT`).
For every case it decodes and verifies the model file, recomputes every tensor, step hash and
the trace root, and asserts equality with the JSON.
"""
import hashlib, json, struct, sys, os

def b2(data): return hashlib.blake2b(data, digest_size=32).digest()

class R:
    def __init__(s, b): s.b, s.i = b, 0
    def take(s, n):
        if s.i + n > len(s.b): raise ValueError("short")
        v = s.b[s.i:s.i+n]; s.i += n; return v
    def u8(s): return s.take(1)[0]
    def i8(s): return struct.unpack('<b', s.take(1))[0]
    def u32(s): return struct.unpack('<I', s.take(4))[0]
    def i32(s): return struct.unpack('<i', s.take(4))[0]
    def compact(s):
        b0 = s.u8(); mode = b0 & 3
        if mode == 0: return b0 >> 2
        if mode == 1:
            v = (b0 | s.u8() << 8) >> 2
            assert v >= 64; return v
        if mode == 2:
            v = struct.unpack('<I', bytes([b0]) + s.take(3))[0] >> 2
            assert v >= 1 << 14; return v
        m = (b0 >> 2) + 4; v = int.from_bytes(s.take(m), 'little'); assert v >= 1 << 30; return v
    def vec(s, f): return [f() for _ in range(s.compact())]

def spec(r): return dict(shape=r.vec(r.u32), zp=r.i8(), scale=r.u32())
def requant(r): return (r.i32(), r.i8())

def op(r):
    k = r.u8(); p = None
    if k == 1: p = [r.u32() for _ in range(11)]
    elif k == 2: p = (r.u8(), requant(r), requant(r))
    elif k in (3, 4): p = [r.u32() for _ in range(8)]
    elif k == 7: p = r.u32()
    else: assert k in (0, 5, 6, 8)
    return dict(kind=k, p=p, inputs=r.vec(r.u32), out=spec(r), amin=r.i8(), amax=r.i8(),
                bias=r.vec(r.i32), rq=r.vec(lambda: requant(r)), wh=r.take(32), wl=r.u32())

def read_file(b):
    assert b[:8] == b"VRTYMODL" and struct.unpack('<I', b[8:12])[0] == 1
    L = struct.unpack('<I', b[12:16])[0]
    hb = b[16:16+L]; r = R(hb)
    h = dict(version=r.u32(), input=spec(r), ops=r.vec(lambda: op(r)))
    assert r.i == len(hb) and h['version'] == 1
    w, pos = [], 16 + L
    for o in h['ops']:
        w.append(b[pos:pos+o['wl']]); pos += o['wl']
        assert len(w[-1]) == o['wl'] and b2(w[-1]) == o['wh']
    assert pos == len(b)
    return h, hb, w

def tdiv(a, b):  # truncate toward zero
    q = abs(a) // abs(b); return q if (a >= 0) == (b > 0) else -q

def srdhm(a, b):
    if a == b == -2**31: return 2**31 - 1
    ab = a * b; nudge = 2**30 if ab >= 0 else 1 - 2**30
    return tdiv(ab + nudge, 2**31)

def rdbpot(x, e):
    e = min(e, 62); mask = (1 << e) - 1; rem = x & mask
    thr = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if rem > thr else 0)

def mbqm(x, m, s):
    if s > 0: return srdhm(max(-2**31, min(2**31 - 1, x * 2**s)), m)
    return rdbpot(srdhm(x, m), -s)

def clamp(v, lo, hi): return min(max(v, lo), hi)
def rdiv(s, c): return tdiv(s + c // 2, c) if s >= 0 else tdiv(s - c // 2, c)
def sgn(b): return b - 256 if b > 127 else b
def prod(l):
    p = 1
    for d in l: p *= d
    return p

def run_op(h, o, xs, w):
    specs = [h['input'] if r == 0 else h['ops'][r-1]['out'] for r in o['inputs']]
    x = [sgn(v) for v in xs[0]]; xz = specs[0]['zp']; oz = o['out']['zp']
    lo, hi = o['amin'], o['amax']; k = o['kind']; out = []
    if k == 0:
        K = len(x)
        for n in range(len(o['bias'])):
            acc = o['bias'][n] + sum((x[i] - xz) * sgn(w[n*K+i]) for i in range(K))
            assert -2**31 <= acc < 2**31
            out.append(clamp(mbqm(acc, *o['rq'][n]) + oz, lo, hi))
    elif k == 1:
        kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, g = o['p']
        C, H, W = specs[0]['shape']; Co, OH, OW = o['out']['shape']
        cg, og = C // g, Co // g
        for co in range(Co):
            for oy in range(OH):
                for ox in range(OW):
                    acc = o['bias'][co]
                    for c in range(cg):
                        for ky in range(kh):
                            for kx in range(kw):
                                iy = oy*sh + ky*dh - pt; ix = ox*sw + kx*dw - pl
                                if 0 <= iy < H and 0 <= ix < W:
                                    ci = (co // og) * cg + c
                                    acc += (x[(ci*H + iy)*W + ix] - xz) * sgn(w[((co*cg + c)*kh + ky)*kw + kx])
                    out.append(clamp(mbqm(acc, *o['rq'][co]) + oz, lo, hi))
    elif k == 2:
        ls, (lm, lsh), (rm, rsh) = o['p']; y = [sgn(v) for v in xs[1]]; yz = specs[1]['zp']
        for a, b in zip(x, y):
            s = mbqm((a - xz) * 2**ls, lm, lsh) + mbqm((b - yz) * 2**ls, rm, rsh)
            out.append(clamp(mbqm(s, *o['rq'][0]) + oz, lo, hi))
    elif k in (3, 4):
        kh, kw, sh, sw, pt, pl, pb, pr = o['p']; C, H, W = specs[0]['shape']; _, OH, OW = o['out']['shape']
        for c in range(C):
            for oy in range(OH):
                for ox in range(OW):
                    vals = [x[(c*H + oy*sh + ky - pt)*W + ox*sw + kx - pl] for ky in range(kh) for kx in range(kw)
                            if 0 <= oy*sh + ky - pt < H and 0 <= ox*sw + kx - pl < W]
                    v = max(vals) if k == 3 else rdiv(sum(vals), len(vals))
                    out.append(clamp(v, lo, hi))
    elif k == 5:
        C, H, W = specs[0]['shape']
        for c in range(C): out.append(clamp(rdiv(sum(x[c*H*W:(c+1)*H*W]), H*W), lo, hi))
    elif k == 6: out = [clamp(v, lo, hi) for v in x]
    elif k == 7:
        axis = o['p']; outer = prod(o['out']['shape'][:axis])
        blocks = [(bytes(t), prod(s['shape'][axis:])) for t, s in zip(xs, specs)]
        for i in range(outer):
            for t, n in blocks: out += [clamp(sgn(v), lo, hi) for v in t[i*n:(i+1)*n]]
    elif k == 8: out = [clamp(sgn(w[v + 128]), lo, hi) for v in x]
    return bytes(v & 0xff for v in out)

def compact(n):
    if n < 64: return bytes([n << 2])
    if n < 1 << 14: return struct.pack('<H', n << 2 | 1)
    return struct.pack('<I', n << 2 | 2)

def step_hash(i, shape, t):
    return b2(b"verity/step/v1" + struct.pack('<I', i) + compact(len(shape)) + b''.join(struct.pack('<I', d) for d in shape) + t)

def root(hs):
    lvl = [b2(b'\x00' + h) for h in hs]
    while len(lvl) > 1:
        lvl = [b2(b'\x01' + lvl[i] + lvl[i+1]) if i + 1 < len(lvl) else lvl[i] for i in range(0, len(lvl), 2)]
    return lvl[0]

d = sys.argv[1]
doc = json.load(open(os.path.join(d, 'golden.json')))
for c in doc['cases']:
    h, hb, w = read_file(open(os.path.join(d, c['model_file']), 'rb').read())
    assert b2(hb).hex() == c['model_id'], c['name']
    ts = [open(os.path.join(d, c['input_file']), 'rb').read()]
    for i, o in enumerate(h['ops']):
        ts.append(run_op(h, o, [ts[r] for r in o['inputs']], w[i]))
    shapes = [h['input']['shape']] + [o['out']['shape'] for o in h['ops']]
    hs = [step_hash(i, s, t) for i, (s, t) in enumerate(zip(shapes, ts))]
    assert [t.hex() for t in ts] == c['tensors'], c['name']
    assert [x.hex() for x in hs] == c['step_hashes'], c['name']
    assert root(hs).hex() == c['trace_root'], c['name']
    print("ok", c['name'])
