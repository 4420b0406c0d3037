"""Runs every kernel in ../kernels on the CPU through shim.h and holds it to numpy references.

Usage: python emulate.py BUILD_DIR   (needs g++ with C++20 and numpy; exit status 1 on a mismatch)

The kernel sources are compiled as NVRTC sees them (prelude + file), with the few CUDA names
they use supplied by shim.h, into a shared library with one host entry point per kernel that
runs its grid block by block. Launch shapes follow src/ops.rs. The references here are numpy in
float64, written from the maths in each kernel's comment (a second, independent set besides
src/reference.rs). Shapes are small: 1024-thread blocks are slow to emulate.
"""
import ctypes
import pathlib
import re
import subprocess
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
KERNELS = HERE.parent / "kernels"


def build(build_dir):
    """Writes the emulation source, compiles it, returns (library, signatures)."""
    build_dir.mkdir(parents=True, exist_ok=True)
    prelude = (KERNELS / "prelude.cuh").read_text().replace("#include <cuda_bf16.h>", "")
    out = [f'#include "{HERE / "shim.h"}"', prelude]
    sigs = {}
    for f in sorted(KERNELS.glob("*.cu")):
        # Dynamic shared memory has no size at compile time: point it at the shim's buffer.
        src = re.sub(r"extern __shared__ float (\w+)\[\];", r"float* \1 = (float*)g_dyn_smem;", f.read_text())
        out.append(src)
        for m in re.finditer(r'extern "C" __global__ void (\w+)\(([^)]*)\)', src, re.S):
            name, params = m.group(1), m.group(2)
            parsed = []
            for p in (p.strip() for p in params.split(",")):
                toks = p.replace("*", " * ").split()
                base = [t for t in toks[:-1] if t not in ("const", "*")][0]
                parsed.append((p, toks[-1], "ptr" if "*" in toks else base))
            sigs[name] = [t for _, _, t in parsed]
            decl = ", ".join(p for p, _, _ in parsed)
            names = ", ".join(n for _, n, _ in parsed)
            out.append(f'extern "C" void emu_{name}(unsigned grid, unsigned block, {decl}) '
                       f'{{ emu_run(grid, block, [=] {{ {name}({names}); }}); }}')
    cpp = build_dir / "kernels_emulated.cpp"
    cpp.write_text("\n".join(out))
    lib_path = build_dir / "libkernels_emulated.so"
    subprocess.run(["g++", "-std=c++20", "-O1", "-shared", "-fPIC", "-o", str(lib_path), str(cpp), "-lpthread"],
                   check=True)
    lib = ctypes.CDLL(str(lib_path))
    ct = {"ptr": ctypes.c_void_p, "int": ctypes.c_int, "long": ctypes.c_long, "float": ctypes.c_float}
    for n, s in sigs.items():
        getattr(lib, "emu_" + n).argtypes = [ctypes.c_uint, ctypes.c_uint] + [ct[t] for t in s]
    return lib, sigs


lib, sigs = build(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/sqlrft-kernel-emulator"))
# Every kernel must be exercised below.
called = set()


def call(name, grid, block, *args):
    called.add(name)
    conv = [a.ctypes.data if isinstance(a, np.ndarray) else (0 if a is None else a) for a in args]
    getattr(lib, "emu_" + name)(grid, block, *conv)


rng = np.random.default_rng(0)
def bf(x):  # round f32 to bf16 bits
    u = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7fff + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)
def f(b): return (b.astype(np.uint32) << 16).view(np.float32)
def rnd(n, s=1.0): b = bf(rng.uniform(-s, s, n).astype(np.float32)); return b, f(b).astype(np.float64)
def nanbf(n): return np.full(n, 0x7fc0, np.uint16)
fails = []
def rec(name, got, want, tol):
    got = np.asarray(got, np.float64); want = np.asarray(want, np.float64)
    if not np.all(np.isfinite(got)): err = np.inf
    else: err = np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30)
    ok = err <= tol
    print(f"{name:<32} {err:10.3e} {'ok' if ok else 'FAIL'}")
    if not ok: fails.append(name)
cdiv = lambda a, b: (a + b - 1) // b

# embedding
V, n, c = 50, 19, 72
tb, tf = rnd(V * c); tok = rng.integers(0, 10, n).astype(np.int32)
out = nanbf(n * c); call('embedding_forward', n, 256, out, tok, tb, n, c)
rec('embedding_forward', f(out), tf.reshape(V, c)[tok].ravel(), 0)
db, df = rnd(n * c); d0 = rng.uniform(-1, 1, V * c).astype(np.float32); dt = d0.copy()
call('embedding_backward', n, 256, dt, db, tok, n, c)
want = d0.astype(np.float64).reshape(V, c); np.add.at(want, tok, df.reshape(n, c)); rec('embedding_backward', dt, want.ravel(), 1e-6)

# rmsnorm
n, c, eps = 13, 200, 1e-6
xb, xf = rnd(n * c, 2); wb, wf = rnd(c, 1.5)
out = nanbf(n * c); rstd = np.full(n, np.nan, np.float32)
call('rmsnorm_forward', n, 256, out, rstd, xb, wb, n, c, eps)
X = xf.reshape(n, c); r = 1 / np.sqrt((X ** 2).mean(1) + eps)
rec('rmsnorm_forward', f(out), (X * r[:, None] * wf).ravel(), 1e-2); rec('rmsnorm.rstd', rstd, r, 1e-4)
gb, gf = rnd(n * c); di0b, di0f = rnd(n * c); dw0 = rng.uniform(-1, 1, c).astype(np.float32)
dinp = di0b.copy(); dw = dw0.copy()
blocks = min(n, 132 * 4)
call('rmsnorm_backward', blocks, 256, dinp, dw, gb, xb, wb, rstd, n, c)
G = gf.reshape(n, c); gwx = (G * wf * X).mean(1)
wdx = di0f.reshape(n, c) + r[:, None] * G * wf - (r ** 3)[:, None] * X * gwx[:, None]
rec('rmsnorm_backward.dinp', f(dinp), wdx.ravel(), 1e-2); rec('rmsnorm_backward.dw', dw, dw0 + (G * X * r[:, None]).sum(0), 1e-4)
# multi-row-per-block path
dinp = di0b.copy(); dw = dw0.copy(); call('rmsnorm_backward', 3, 256, dinp, dw, gb, xb, wb, rstd, n, c)
rec('rmsnorm_backward.dw(3 blocks)', dw, dw0 + (G * X * r[:, None]).sum(0), 1e-4)

# rope
n, H, hd = 11, 3, 64
inv = (1.0 / 1e6 ** (2 * np.arange(hd // 2) / hd)).astype(np.float32)
pos = (np.arange(n) * 97 + 3).astype(np.int32)
for name, sign in [('rope_forward', 1), ('rope_backward', -1)]:
    xb, xf = rnd(n * H * hd); x = xb.copy()
    call(name, cdiv(n * H * hd // 2, 256), 256, x, pos, inv, n, H, hd)
    ang = (pos[:, None].astype(np.float32) * inv[None, :]).astype(np.float64)
    s, co = np.sin(ang) * sign, np.cos(ang)
    X = xf.reshape(n, H, hd); a, b = X[..., :hd // 2], X[..., hd // 2:]
    want = np.concatenate([a * co[:, None] - b * s[:, None], b * co[:, None] + a * s[:, None]], -1)
    rec(name, f(x), want.ravel(), 1e-2)

# swiglu
n = 1000; gb_, gf_ = rnd(n, 4); ub, uf = rnd(n, 2)
out = nanbf(n); call('swiglu_forward', cdiv(n, 256), 256, out, gb_, ub, n)
sig = 1 / (1 + np.exp(-gf_)); rec('swiglu_forward', f(out), gf_ * sig * uf, 1e-2)
dob, dof = rnd(n); dg = nanbf(n); du = nanbf(n)
call('swiglu_backward', cdiv(n, 256), 256, dg, du, dob, gb_, ub, n)
rec('swiglu.dgate', f(dg), dof * uf * (sig + gf_ * sig * (1 - sig)), 1e-2); rec('swiglu.dup', f(du), dof * gf_ * sig, 1e-2)

# attention
def attn_ref(q, k, v, past, B, Tq, S, nh, nkv, hd):
    q = q.reshape(B, Tq, nh, hd); k = k.reshape(B, S, nkv, hd); v = v.reshape(B, S, nkv, hd)
    out = np.zeros((B, Tq, nh, hd)); att = np.zeros((B, nh, Tq, S))
    for b in range(B):
        for h in range(nh):
            g = h // (nh // nkv)
            for t in range(Tq):
                last = past[b] + t
                sc = k[b, :last + 1, g] @ q[b, t, h] / np.sqrt(hd)
                p = np.exp(sc - sc.max()); p /= p.sum()
                att[b, h, t, :last + 1] = p; out[b, t, h] = p @ v[b, :last + 1, g]
    return out.ravel(), att.ravel()
B, T, nh, nkv, hd = 2, 7, 4, 2, 16
qb, qf = rnd(B * T * nh * hd); kb, kf = rnd(B * T * nkv * hd); vb, vf = rnd(B * T * nkv * hd)
past = np.zeros(B, np.int32)
out = nanbf(B * T * nh * hd); att = np.full(B * nh * T * T, np.nan, np.float32)
call('attention_softmax_forward', B * nh * T, 256, att, qb, kb, past, B, T, T, nh, nkv, hd, 1 / np.sqrt(hd))
call('attention_values_forward', cdiv(B * T * nh * hd, 256), 256, out, att, vb, past, B, T, T, nh, nkv, hd)
wo, wa = attn_ref(qf, kf, vf, past, B, T, T, nh, nkv, hd)
rec('attention_forward', f(out), wo, 1e-2); rec('attention.att', att, wa, 1e-4)
# backward via finite-difference-free analytic numpy
gb2, gf2 = rnd(B * T * nh * hd)
dq = nanbf(B * T * nh * hd); dk = nanbf(B * T * nkv * hd); dv = nanbf(B * T * nkv * hd); ds = np.full(B * nh * T * T, np.nan, np.float32)
call('attention_softmax_backward', B * nh * T, 256, ds, att, gb2, vb, B, T, nh, nkv, hd, 1 / np.sqrt(hd))
call('attention_backward_dq', cdiv(B * T * nh * hd, 256), 256, dq, ds, kb, B, T, nh, nkv, hd)
call('attention_backward_dkv', cdiv(B * T * nkv * hd, 256), 256, dk, dv, ds, att, qb, gb2, B, T, nh, nkv, hd)
Q = qf.reshape(B, T, nh, hd); K_ = kf.reshape(B, T, nkv, hd); Vv = vf.reshape(B, T, nkv, hd); GO = gf2.reshape(B, T, nh, hd); A = wa.reshape(B, nh, T, T)
WQ = np.zeros_like(Q); WK = np.zeros_like(K_); WV = np.zeros_like(Vv)
for b in range(B):
    for h in range(nh):
        g = h // (nh // nkv)
        dp = GO[b, :, h] @ Vv[b, :, g].T  # [T, T]
        P = A[b, h]
        dsm = P * (dp - (P * dp).sum(1, keepdims=True)) / np.sqrt(hd)
        WV[b, :, g] += P.T @ GO[b, :, h]; WQ[b, :, h] += dsm @ K_[b, :, g]; WK[b, :, g] += dsm.T @ Q[b, :, h]
rec('attention_backward.dq', f(dq), WQ.ravel(), 1e-2); rec('attention_backward.dk', f(dk), WK.ravel(), 1e-2); rec('attention_backward.dv', f(dv), WV.ravel(), 1e-2)
# decode
B, Tq, S, nh, nkv, hd = 3, 1, 12, 6, 2, 32
past = np.array([0, 5, 11], np.int32)
qb, qf = rnd(B * nh * hd); kb, kf = rnd(B * S * nkv * hd); vb, vf = rnd(B * S * nkv * hd)
out = nanbf(B * nh * hd); att = np.full(B * nh * S, np.nan, np.float32)
call('attention_softmax_forward', B * nh, 256, att, qb, kb, past, B, Tq, S, nh, nkv, hd, 1 / np.sqrt(hd))
call('attention_values_forward', cdiv(B * nh * hd, 256), 256, out, att, vb, past, B, Tq, S, nh, nkv, hd)
wo, wa = attn_ref(qf, kf, vf, past, B, Tq, S, nh, nkv, hd)
rec('attention_forward.decode', f(out), wo, 1e-2); rec('attention.decode.att', att, wa, 1e-4)

# flash attention: same references as above
def flash_rows(n):
    return cdiv(n, 8), 256
B, T, nh, nkv, hd = 2, 9, 4, 2, 64
qb, qf = rnd(B * T * nh * hd); kb, kf = rnd(B * T * nkv * hd); vb, vf = rnd(B * T * nkv * hd)
past = np.zeros(B, np.int32)
out = nanbf(B * T * nh * hd); lse = np.full(B * nh * T, np.nan, np.float32)
call('flash_attention_forward', *flash_rows(B * nh * T), out, lse, qb, kb, vb, past, B, T, T, nh, nkv, hd, 1 / np.sqrt(hd))
wo, wa = attn_ref(qf, kf, vf, past, B, T, T, nh, nkv, hd)
rec('flash_attention_forward', f(out), wo, 1e-2)
Q = qf.reshape(B, T, nh, hd); K_ = kf.reshape(B, T, nkv, hd)
want_lse = np.zeros((B, nh, T))
for b in range(B):
    for h in range(nh):
        g = h // (nh // nkv)
        for t in range(T):
            sc = K_[b, :t + 1, g] @ Q[b, t, h] / np.sqrt(hd)
            want_lse[b, h, t] = sc.max() + np.log(np.exp(sc - sc.max()).sum())
rec('flash_attention_forward.lse', lse, want_lse.ravel(), 1e-5)
gb3, gf3 = rnd(B * T * nh * hd)
dq = nanbf(B * T * nh * hd); dk = nanbf(B * T * nkv * hd); dv = nanbf(B * T * nkv * hd); delta = np.full(B * nh * T, np.nan, np.float32)
call('flash_attention_backward_delta', *flash_rows(B * nh * T), delta, gb3, out, B, T, nh, hd)
call('flash_attention_backward_dq', *flash_rows(B * nh * T), dq, qb, kb, vb, gb3, lse, delta, B, T, nh, nkv, hd, 1 / np.sqrt(hd))
call('flash_attention_backward_dkv', *flash_rows(B * nkv * T), dk, dv, qb, kb, vb, gb3, lse, delta, B, T, nh, nkv, hd, 1 / np.sqrt(hd))
Vv = vf.reshape(B, T, nkv, hd); GO = gf3.reshape(B, T, nh, hd); A = wa.reshape(B, nh, T, T)
WQ = np.zeros_like(Q); WK = np.zeros_like(K_); WV = np.zeros_like(Vv)
for b in range(B):
    for h in range(nh):
        g = h // (nh // nkv)
        dp = GO[b, :, h] @ Vv[b, :, g].T
        P = A[b, h]
        dsm = P * (dp - (P * dp).sum(1, keepdims=True)) / np.sqrt(hd)
        WV[b, :, g] += P.T @ GO[b, :, h]; WQ[b, :, h] += dsm @ K_[b, :, g]; WK[b, :, g] += dsm.T @ Q[b, :, h]
rec('flash_attention_backward.dq', f(dq), WQ.ravel(), 1e-2); rec('flash_attention_backward.dk', f(dk), WK.ravel(), 1e-2); rec('flash_attention_backward.dv', f(dv), WV.ravel(), 1e-2)
B, Tq, S, nh, nkv, hd = 3, 1, 12, 4, 1, 128
past = np.array([0, 5, 11], np.int32)
qb, qf = rnd(B * nh * hd); kb, kf = rnd(B * S * nkv * hd); vb, vf = rnd(B * S * nkv * hd)
out = nanbf(B * nh * hd); lse = np.full(B * nh, np.nan, np.float32)
call('flash_attention_forward', *flash_rows(B * nh), out, lse, qb, kb, vb, past, B, Tq, S, nh, nkv, hd, 1 / np.sqrt(hd))
wo, _ = attn_ref(qf, kf, vf, past, B, Tq, S, nh, nkv, hd)
rec('flash_attention_forward.decode', f(out), wo, 1e-2)

# logprob
R, V, temp = 5, 3001, 0.7
zb, zf = rnd(R * V, 8); tg = rng.integers(0, V, R).astype(np.int32)
lp = np.full(R, np.nan, np.float32); en = lp.copy(); ls = lp.copy()
call('logprob_forward', R, 1024, lp, en, ls, zb, tg, R, V, 1 / temp)
Z = zf.reshape(R, V) / temp; m = Z.max(1, keepdims=True); L = (m + np.log(np.exp(Z - m).sum(1, keepdims=True)))[:, 0]
P = np.exp(Z - L[:, None])
rec('logprob.logp', lp, Z[np.arange(R), tg] - L, 1e-4); rec('logprob.entropy', en, L - (P * Z).sum(1), 1e-4)
dl = rng.uniform(-1, 1, R).astype(np.float32); dz = zb.copy()
call('logprob_backward', R, 1024, dz, dz, ls, tg, dl, R, V, 1 / temp)
oh = np.zeros((R, V)); oh[np.arange(R), tg] = 1
rec('logprob_backward', f(dz), (dl[:, None] / temp * (oh - P)).ravel(), 1e-2)

# grad norm + adamw
n = 100003; g = rng.uniform(-0.01, 0.01, n).astype(np.float32)
for mx in [0.1, 1e6, 0.0]:
    o = np.full(2, np.nan, np.float32); part = np.zeros(37, np.float32)
    call('grad_norm_partial', 37, 256, part, g, n); call('grad_norm_finish', 1, 1024, o, part, 37, mx)
    nr = np.sqrt((g.astype(np.float64) ** 2).sum()); cf = min(1, mx / (nr + 1e-6)) if mx > 0 else 1
    rec(f'grad_norm({mx})', o, [nr, cf], 1e-5)
p = rng.uniform(-1, 1, n).astype(np.float32); m_ = rng.uniform(-.01, .01, n).astype(np.float32); v_ = rng.uniform(0, 1e-4, n).astype(np.float32)
t, lr, b1, b2, eps, wd = 3, 1e-3, 0.9, 0.999, 1e-8, 0.1
ss, dec, bc2 = lr / (1 - b1 ** t), 1 - lr * wd, np.sqrt(1 - b2 ** t)
P0, M0, V0 = p.astype(np.float64), m_.astype(np.float64), v_.astype(np.float64)
wts = nanbf(n); clip = np.array([0.5], np.float32)
call('adamw_step', cdiv(n, 256), 256, p, wts, g, m_, v_, clip, n, ss, dec, b1, b2, eps, bc2)
gg = g * 0.5; M1 = b1 * M0 + (1 - b1) * gg; V1 = b2 * V0 + (1 - b2) * gg * gg; P1 = P0 * dec - ss * M1 / (np.sqrt(V1) / bc2 + eps)
rec('adamw.master(update)', p - P0, P1 - P0, 1e-4); rec('adamw.m', m_, M1, 1e-5); rec('adamw.v', v_, V1, 1e-5); rec('adamw.bf16', f(wts), P1, 1e-2)

# kv cache
B, Tn, S, nkv, hd = 3, 2, 10, 2, 8; row = nkv * hd; past = np.array([0, 3, 8], np.int32)
kc, kcf = rnd(B * S * row); vc, vcf = rnd(B * S * row); kn, knf = rnd(B * Tn * row); vn, vnf = rnd(B * Tn * row)
call('kv_cache_append', cdiv(B * Tn * row, 256), 256, kc, vc, kn, vn, past, B, Tn, S, nkv, hd)
wk = kcf.reshape(B, S, row).copy(); wv = vcf.reshape(B, S, row).copy()
for b in range(B):
    wk[b, past[b]:past[b] + Tn] = knf.reshape(B, Tn, row)[b]; wv[b, past[b]:past[b] + Tn] = vnf.reshape(B, Tn, row)[b]
rec('kv_cache.k', f(kc), wk.ravel(), 0); rec('kv_cache.v', f(vc), wv.ravel(), 0)

# bias backward, casts
n, c = 9, 130; db_, dbf = rnd(n * c); d0 = rng.uniform(-1, 1, c).astype(np.float32); dbias = d0.copy()
call('bias_backward', cdiv(c, 256), 256, dbias, db_, n, c); rec('bias_backward', dbias, d0 + dbf.reshape(n, c).sum(0), 1e-5)
x = rng.uniform(-3, 3, 777).astype(np.float32); o = nanbf(777); call('cast_f32_to_bf16', cdiv(777, 256), 256, o, x, 777)
rec('cast_f32_to_bf16', f(o), f(bf(x)), 0)
back = np.full(777, np.nan, np.float32); call('cast_bf16_to_f32', cdiv(777, 256), 256, back, o, 777)
rec('cast_bf16_to_f32', back, f(bf(x)), 0)
acc0 = rng.uniform(-1, 1, 777).astype(np.float32); acc = acc0.copy()
call('accumulate_bf16_into_f32', cdiv(777, 256), 256, acc, o, 0.25, 777)
rec('accumulate_bf16_into_f32', acc, acc0 + 0.25 * f(bf(x)), 1e-7)
ab, af = rnd(n * c); bb, bf_ = rnd(n * c); s_ = ab.copy()
call('residual_add', cdiv(n * c, 256), 256, s_, s_, bb, n * c)
rec('residual_add', f(s_), af + bf_, 1e-2)
biasb, biasf = rnd(c); call('bias_add', cdiv(n * c, 256), 256, s_, biasb, n, c)
rec('bias_add', f(s_), (af + bf_).reshape(n, c).__add__(biasf).ravel(), 1e-2)

# sampling
def sample_ref(row, temp, top_k, top_p, u):
    row = row.astype(np.float64)
    if temp <= 0: return int(np.argmax(row))
    z = row / temp; L = z.max() + np.log(np.exp(z - z.max()).sum()); p = np.exp(z - L)
    order = list(np.argsort(-row, kind='stable'))
    if 0 < top_k < len(row):
        thr = row[order[top_k - 1]]; order = [j for j in order if row[j] >= thr]
    if top_p < 1:
        kept = sum(p[j] for j in order); cum = 0; keep = 0
        for j in order:
            keep += 1; cum += p[j]
            if cum >= top_p * kept: break
        thr = row[order[keep - 1]]; order = [j for j in order if row[j] >= thr]
    order = sorted(order); tot = sum(p[j] for j in order); tgt = u * tot; cum = 0
    for j in order:
        before = cum; cum += p[j]
        if cum > tgt: return j, min(tgt - before, cum - tgt) / tot
    return order[-1], 0
B, V = 3, 1500
for temp, tk, tp in [(1.0, 0, 1.0), (0.8, 50, 1.0), (1.2, 0, 0.9), (1.0, 20, 0.5), (0.0, 0, 1.0)]:
    zb, zf = rnd(B * V, 6); u = rng.uniform(0, 1, B).astype(np.float32)
    tok = np.full(B, -1, np.int32); lp = np.full(B, np.nan, np.float32)
    call('sample_rows', B, 1024, tok, lp, zb, u, B, V, temp, tk, tp)
    bad = 0
    for r in range(B):
        res = sample_ref(zf[r * V:(r + 1) * V], temp, tk, tp, u[r])
        t_, margin = (res, 1) if isinstance(res, int) else res
        if tok[r] != t_ and margin > 1e-4: bad += 1; print('  row', r, 'got', tok[r], 'want', t_, 'margin', margin)
    print(f"sample_rows T={temp} k={tk} p={tp}: {bad} mismatched"); 
    if bad: fails.append('sample')

missing = sorted(set(sigs) - called)
if missing:
    print("kernels never exercised:", missing)
    fails.append("coverage")
print("FAILED:" if fails else "all emulated kernel checks passed", *fails)
sys.exit(1 if fails else 0)
