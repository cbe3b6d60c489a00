//! The 256-bit kernels: AVX2 (`vpmaddubsw` + `vpmaddwd` + `vpaddd`) and
//! AVX-VNNI (`vpdpbusd`), one code generic over the dot-product step, and
//! the AVX2/FMA f32 affine product and tanh.

use super::{portable, quad_offset, tanh_coef as c, QWeights, SparseScratch};
use std::arch::x86_64::*;

/// Frames processed together by the dense kernel (weights loaded once).
const FRAMES: usize = 4;

/// Multiply-adds per iteration of the peak loops.
pub const PEAK_MACS: u64 = 8 * 32;

/// One dot-product step: each i32 lane of `acc` += the sum of the 4
/// products of its bytes of `u` (unsigned) and `s` (signed).
trait Dot {
    unsafe fn dot(acc: __m256i, u: __m256i, s: __m256i) -> __m256i;
}

struct Avx2;
impl Dot for Avx2 {
    #[inline(always)]
    unsafe fn dot(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
        let p = _mm256_maddubs_epi16(u, s);
        _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)))
    }
}

struct Vnni;
impl Dot for Vnni {
    #[inline(always)]
    unsafe fn dot(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
        _mm256_dpbusd_avx_epi32(acc, u, s)
    }
}

// The requantization loops need no VNNI: both 256-bit families run them.
family!(
    "avx2,fma",
    Avx2,
    dense_avx2,
    sparse_avx2,
    peak_avx2,
    requantize
);
family!("avx2,fma,avxvnni", Vnni, dense_vnni, sparse_vnni, peak_vnni);

/// Broadcast of the 4 activations at `p`.
#[inline(always)]
unsafe fn quad(p: *const i8) -> __m256i {
    _mm256_set1_epi32(p.cast::<i32>().read_unaligned())
}

/// acc += Σ over the quad of |x|·(sign(x)·w) (or x·w when unsigned).
#[inline(always)]
unsafe fn mac<D: Dot, const SIGNED: bool>(acc: __m256i, x: __m256i, w: __m256i) -> __m256i {
    if SIGNED {
        D::dot(acc, _mm256_abs_epi8(x), _mm256_sign_epi8(w, x))
    } else {
        D::dot(acc, x, w)
    }
}

#[inline(always)]
unsafe fn dense<D: Dot, const SIGNED: bool>(
    w: &QWeights,
    x: &[i8],
    frames: usize,
    acc: &mut [i32],
) {
    let (ip, op) = (w.in_pad, w.out_pad);
    let wq = w.quads.as_ptr();
    let xp = x.as_ptr();
    for j0 in (0..op).step_by(64) {
        let tile = wq.add(quad_offset(ip, 0, j0));
        let mut f0 = 0;
        // 4 frames × 16 outputs: each weight load feeds 4 frames; the
        // 64-output tile of weights stays in L1 across the block's frames.
        while frames - f0 >= FRAMES {
            for j1 in (j0..j0 + 64).step_by(16) {
                let mut a = [_mm256_setzero_si256(); 2 * FRAMES];
                for k in 0..ip / 4 {
                    let wp = tile.add(k * 256 + (j1 - j0) * 4);
                    let w0 = _mm256_loadu_si256(wp.cast());
                    let w1 = _mm256_loadu_si256(wp.add(32).cast());
                    for f in 0..FRAMES {
                        let xv = quad(xp.add((f0 + f) * ip + 4 * k));
                        a[2 * f] = mac::<D, SIGNED>(a[2 * f], xv, w0);
                        a[2 * f + 1] = mac::<D, SIGNED>(a[2 * f + 1], xv, w1);
                    }
                }
                for f in 0..FRAMES {
                    let o = acc.as_mut_ptr().add((f0 + f) * op + j1);
                    _mm256_storeu_si256(o.cast(), a[2 * f]);
                    _mm256_storeu_si256(o.add(8).cast(), a[2 * f + 1]);
                }
            }
            f0 += FRAMES;
        }
        // The rest one frame × 64 outputs at a time.
        for f in f0..frames {
            let mut a = [_mm256_setzero_si256(); 8];
            for k in 0..ip / 4 {
                let xv = quad(xp.add(f * ip + 4 * k));
                let wp = tile.add(k * 256);
                for (t, at) in a.iter_mut().enumerate() {
                    let wv = _mm256_loadu_si256(wp.add(32 * t).cast());
                    *at = mac::<D, SIGNED>(*at, xv, wv);
                }
            }
            let o = acc.as_mut_ptr().add(f * op + j0);
            for (t, at) in a.iter().enumerate() {
                _mm256_storeu_si256(o.add(8 * t).cast(), *at);
            }
        }
    }
}

#[inline(always)]
unsafe fn sparse<D: Dot>(w: &QWeights, x: &[i8], s: &mut SparseScratch, acc: &mut [i32]) -> usize {
    let n = w.inputs;
    let op = w.out_pad;
    // Non-zero inputs, 32 bytes at a time.
    s.active.clear();
    let mut i0 = 0;
    while i0 + 32 <= n {
        let v = _mm256_loadu_si256(x.as_ptr().add(i0).cast());
        let zero = _mm256_cmpeq_epi8(v, _mm256_setzero_si256());
        let mut bits = !(_mm256_movemask_epi8(zero) as u32);
        while bits != 0 {
            s.active.push(i0 as u32 + bits.trailing_zeros());
            bits &= bits - 1;
        }
        i0 += 32;
    }
    for (i, &v) in x.iter().enumerate().take(n).skip(i0) {
        if v != 0 {
            s.active.push(i as u32);
        }
    }
    s.pack_quads(x, op);
    let rows = w.rows.as_ptr();
    for j0 in (0..op).step_by(64) {
        let mut a = [_mm256_setzero_si256(); 8];
        for (&val, offs) in s.values.iter().zip(&s.offsets) {
            let v = _mm256_set1_epi32(val);
            for h in 0..2 {
                let j = j0 + 32 * h;
                let ra = _mm256_loadu_si256(rows.add(offs[0] + j).cast());
                let rb = _mm256_loadu_si256(rows.add(offs[1] + j).cast());
                let rc = _mm256_loadu_si256(rows.add(offs[2] + j).cast());
                let rd = _mm256_loadu_si256(rows.add(offs[3] + j).cast());
                let ab_lo = _mm256_unpacklo_epi8(ra, rb);
                let ab_hi = _mm256_unpackhi_epi8(ra, rb);
                let cd_lo = _mm256_unpacklo_epi8(rc, rd);
                let cd_hi = _mm256_unpackhi_epi8(rc, rd);
                // q0: outputs 0-3 | 16-19, q1: 4-7 | 20-23, q2: 8-11 | 24-27, q3: 12-15 | 28-31.
                let q = [
                    _mm256_unpacklo_epi16(ab_lo, cd_lo),
                    _mm256_unpackhi_epi16(ab_lo, cd_lo),
                    _mm256_unpacklo_epi16(ab_hi, cd_hi),
                    _mm256_unpackhi_epi16(ab_hi, cd_hi),
                ];
                for t in 0..4 {
                    a[4 * h + t] = D::dot(a[4 * h + t], v, q[t]);
                }
            }
        }
        for h in 0..2 {
            let o = acc.as_mut_ptr().add(j0 + 32 * h);
            let b = &a[4 * h..4 * h + 4];
            _mm256_storeu_si256(o.cast(), _mm256_permute2x128_si256(b[0], b[1], 0x20));
            _mm256_storeu_si256(o.add(8).cast(), _mm256_permute2x128_si256(b[2], b[3], 0x20));
            _mm256_storeu_si256(
                o.add(16).cast(),
                _mm256_permute2x128_si256(b[0], b[1], 0x31),
            );
            _mm256_storeu_si256(
                o.add(24).cast(),
                _mm256_permute2x128_si256(b[2], b[3], 0x31),
            );
        }
    }
    s.active.len()
}

/// Eight independent multiply-accumulate chains of the step `D`.
#[inline(always)]
unsafe fn peak<D: Dot>(iters: u64) -> i32 {
    let step = _mm256_set1_epi8(1);
    let mut x = _mm256_set1_epi8(3);
    let w: [__m256i; 8] = std::array::from_fn(|t| _mm256_set1_epi8(t as i8 - 4));
    let mut a = [_mm256_setzero_si256(); 8];
    for _ in 0..iters {
        // x changes every iteration so nothing can be hoisted.
        x = _mm256_add_epi8(x, step);
        let u = _mm256_and_si256(x, _mm256_set1_epi8(0x3f));
        for t in 0..8 {
            a[t] = D::dot(a[t], u, w[t]);
        }
    }
    let mut s = a[0];
    for t in a.iter().skip(1) {
        s = _mm256_add_epi32(s, *t);
    }
    _mm256_extract_epi32(s, 0)
}

/// One tile of the f32 product: `NF` frames × `V` vectors of 8 outputs.
#[inline(always)]
unsafe fn affine_tile<const NF: usize, const V: usize>(
    w: &[f32],
    b: &[f32],
    x: &[f32],
    (f0, j0, inputs): (usize, usize, usize),
    y: &mut [f32],
) {
    let outputs = b.len();
    let mut a = [[_mm256_setzero_ps(); V]; NF];
    for af in a.iter_mut() {
        for (v, av) in af.iter_mut().enumerate() {
            *av = _mm256_loadu_ps(b.as_ptr().add(j0 + 8 * v));
        }
    }
    let (wp, xp) = (w.as_ptr(), x.as_ptr());
    for i in 0..inputs {
        let row = wp.add(i * outputs + j0);
        let wv: [__m256; V] = std::array::from_fn(|v| _mm256_loadu_ps(row.add(8 * v)));
        for (f, af) in a.iter_mut().enumerate() {
            let xv = _mm256_set1_ps(*xp.add((f0 + f) * inputs + i));
            for (av, &wvv) in af.iter_mut().zip(&wv) {
                *av = _mm256_fmadd_ps(xv, wvv, *av);
            }
        }
    }
    for (f, af) in a.iter().enumerate() {
        let yp = y.as_mut_ptr().add((f0 + f) * outputs + j0);
        for (v, av) in af.iter().enumerate() {
            _mm256_storeu_ps(yp.add(8 * v), *av);
        }
    }
}

/// f32 affine product (see [`super::affine_f32`]): 4 frames × 16 outputs
/// or 1 frame × 64 outputs per tile, then 8-wide and scalar tails, every
/// frame summed in input order with FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn affine(w: &[f32], b: &[f32], x: &[f32], frames: usize, inputs: usize, y: &mut [f32]) {
    let outputs = b.len();
    let mut f0 = 0;
    while f0 < frames {
        let nf = if frames - f0 >= 4 { 4 } else { 1 };
        let tile = if nf == 4 { 16 } else { 64 };
        let mut j0 = 0;
        while j0 + tile <= outputs {
            if nf == 4 {
                affine_tile::<4, 2>(w, b, x, (f0, j0, inputs), y);
            } else {
                affine_tile::<1, 8>(w, b, x, (f0, j0, inputs), y);
            }
            j0 += tile;
        }
        while j0 + 8 <= outputs {
            for f in f0..f0 + nf {
                affine_tile::<1, 1>(w, b, x, (f, j0, inputs), y);
            }
            j0 += 8;
        }
        if j0 < outputs {
            for f in f0..f0 + nf {
                let yf = &mut y[f * outputs..(f + 1) * outputs];
                yf[j0..].copy_from_slice(&b[j0..]);
                portable::affine_tail(w, &x[f * inputs..(f + 1) * inputs], j0, yf);
            }
        }
        f0 += nf;
    }
}

/// The rational tanh (see [`super::tanh_f32`]), 8 values at a time, the
/// scalar definition for the rest.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn tanh(x: &mut [f32]) {
    let mut chunks = x.chunks_exact_mut(8);
    for ch in &mut chunks {
        let v = _mm256_loadu_ps(ch.as_ptr());
        // max(−C, v) first keeps a NaN, as the scalar clamp does.
        let t = _mm256_min_ps(
            _mm256_set1_ps(c::CLAMP),
            _mm256_max_ps(_mm256_set1_ps(-c::CLAMP), v),
        );
        let x2 = _mm256_mul_ps(t, t);
        let mut p = _mm256_set1_ps(c::A[0]);
        for &a in &c::A[1..] {
            p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(a));
        }
        p = _mm256_mul_ps(p, t);
        let mut q = _mm256_set1_ps(c::B[0]);
        for &b in &c::B[1..] {
            q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(b));
        }
        let r = _mm256_div_ps(p, q);
        let abs = _mm256_andnot_ps(_mm256_set1_ps(-0.0), v);
        let tiny = _mm256_cmp_ps::<_CMP_LT_OQ>(abs, _mm256_set1_ps(c::TINY));
        _mm256_storeu_ps(ch.as_mut_ptr(), _mm256_blendv_ps(r, v, tiny));
    }
    for v in chunks.into_remainder() {
        *v = portable::tanh(*v);
    }
}
