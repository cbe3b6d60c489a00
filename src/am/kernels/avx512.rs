//! The 512-bit kernels: AVX-512 VNNI (`vpdpbusd`, signed activations by
//! offset) and AVX-512BW (`vpmaddubsw` + `vpmaddwd` + `vpaddd`, signed
//! activations by the sign trick), one code generic over the step, and the
//! AVX-512F f32 affine product and tanh.

use super::{quad_offset, tanh_coef as c, QWeights, SparseScratch};
use std::arch::x86_64::*;

/// Frames processed together by the dense kernel (each weight load feeds them all).
const FRAMES: usize = 4;

/// Multiply-adds per iteration of the peak loops.
pub const PEAK_MACS: u64 = 8 * 64;

/// One family's dot-product step and its handling of signed activations.
trait Dot {
    /// acc += Σ over each 4-byte group of x · w; `x` is a broadcast of 4
    /// activations, which may be negative when `SIGNED`.
    unsafe fn mac<const SIGNED: bool>(acc: __m512i, x: __m512i, w: __m512i) -> __m512i;
    /// Where the sums of outputs `j..j + 16` start.
    unsafe fn start<const SIGNED: bool>(w: &QWeights, j: usize) -> __m512i;
}

/// `vpdpbusd`; signed activations as x + 128 (x XOR 0x80 as u8), the
/// sums starting at −128 · Σ w.
struct Vnni;
impl Dot for Vnni {
    #[inline(always)]
    unsafe fn mac<const SIGNED: bool>(acc: __m512i, x: __m512i, w: __m512i) -> __m512i {
        let u = match SIGNED {
            true => _mm512_xor_si512(x, _mm512_set1_epi8(-128)),
            false => x,
        };
        _mm512_dpbusd_epi32(acc, u, w)
    }
    #[inline(always)]
    unsafe fn start<const SIGNED: bool>(w: &QWeights, j: usize) -> __m512i {
        match SIGNED {
            true => _mm512_loadu_si512(w.offset_start.as_ptr().add(j).cast()),
            false => _mm512_setzero_si512(),
        }
    }
}

/// `vpmaddubsw` + `vpmaddwd` + `vpaddd`; signed activations as
/// |x| × (w negated where x < 0).
struct Bw;
impl Dot for Bw {
    #[inline(always)]
    unsafe fn mac<const SIGNED: bool>(acc: __m512i, x: __m512i, w: __m512i) -> __m512i {
        let (u, s) = match SIGNED {
            true => {
                let neg = _mm512_movepi8_mask(x);
                let s = _mm512_mask_sub_epi8(w, neg, _mm512_setzero_si512(), w);
                (_mm512_abs_epi8(x), s)
            }
            false => (x, w),
        };
        let p = _mm512_maddubs_epi16(u, s);
        _mm512_add_epi32(acc, _mm512_madd_epi16(p, _mm512_set1_epi16(1)))
    }
    #[inline(always)]
    unsafe fn start<const SIGNED: bool>(_: &QWeights, _: usize) -> __m512i {
        _mm512_setzero_si512()
    }
}

family!(
    "avx512f,avx512bw,avx512vnni",
    Vnni,
    dense_vnni,
    sparse_vnni,
    peak_vnni
);
// The requantization loops need no VNNI: both 512-bit families run them.
family!(
    "avx512f,avx512bw",
    Bw,
    dense_bw,
    sparse_bw,
    peak_bw,
    requantize
);

/// Broadcast of the 4 activations at `p`.
#[inline(always)]
unsafe fn quad(p: *const i8) -> __m512i {
    _mm512_set1_epi32(p.cast::<i32>().read_unaligned())
}

/// Per 64-output tile of weights (one sequential stream, held in L1): the block's frames 4 at a
/// time (16 sums, each weight load feeding 4 frames), then one at a time
/// with even and odd input quads in separate sums (8 independent chains
/// hide the step's latency; integer sums do not care about the order).
#[inline(always)]
unsafe fn dense<D: Dot, const SIGNED: bool>(
    w: &QWeights,
    x: &[i8],
    frames: usize,
    acc: &mut [i32],
) {
    let (ip, op) = (w.in_pad, w.out_pad);
    let (wq, xp) = (w.quads.as_ptr(), x.as_ptr());
    let quads = ip / 4;
    for j0 in (0..op).step_by(64) {
        let tile = wq.add(quad_offset(ip, 0, j0));
        let wt = |k: usize, v: usize| _mm512_loadu_si512(tile.add(k * 256 + 64 * v).cast());
        let start: [__m512i; 4] = std::array::from_fn(|v| D::start::<SIGNED>(w, j0 + 16 * v));
        let mut f0 = 0;
        while frames - f0 >= FRAMES {
            let mut a = [start; FRAMES];
            for k in 0..quads {
                let wv: [__m512i; 4] = std::array::from_fn(|v| wt(k, v));
                for (f, af) in a.iter_mut().enumerate() {
                    let xv = quad(xp.add((f0 + f) * ip + 4 * k));
                    for (av, &wvv) in af.iter_mut().zip(&wv) {
                        *av = D::mac::<SIGNED>(*av, xv, wvv);
                    }
                }
            }
            for (f, af) in a.iter().enumerate() {
                let o = acc.as_mut_ptr().add((f0 + f) * op + j0);
                for (v, av) in af.iter().enumerate() {
                    _mm512_storeu_si512(o.add(16 * v).cast(), *av);
                }
            }
            f0 += FRAMES;
        }
        for f in f0..frames {
            let xf = xp.add(f * ip);
            let mut even = start;
            let mut odd = [_mm512_setzero_si512(); 4];
            let mut k = 0;
            while k + 2 <= quads {
                let (x0, x1) = (quad(xf.add(4 * k)), quad(xf.add(4 * k + 4)));
                for v in 0..4 {
                    even[v] = D::mac::<SIGNED>(even[v], x0, wt(k, v));
                    odd[v] = D::mac::<SIGNED>(odd[v], x1, wt(k + 1, v));
                }
                k += 2;
            }
            if k < quads {
                let x0 = quad(xf.add(4 * k));
                for (v, ev) in even.iter_mut().enumerate() {
                    *ev = D::mac::<SIGNED>(*ev, x0, wt(k, v));
                }
            }
            let o = acc.as_mut_ptr().add(f * op + j0);
            for v in 0..4 {
                _mm512_storeu_si512(o.add(16 * v).cast(), _mm512_add_epi32(even[v], odd[v]));
            }
        }
    }
}

/// Sparse product of one frame: the non-zero inputs found 64 bytes at a
/// time, their rows read four at a time (64 outputs per load) and
/// interleaved per 128-bit lane into the quad form.
#[inline(always)]
unsafe fn sparse<D: Dot>(w: &QWeights, x: &[i8], s: &mut SparseScratch, acc: &mut [i32]) -> usize {
    let (n, op) = (w.inputs, w.out_pad);
    s.active.clear();
    let mut i0 = 0;
    while i0 < n {
        let len = (n - i0).min(64);
        let v = _mm512_maskz_loadu_epi8(u64::MAX >> (64 - len), x.as_ptr().add(i0));
        let mut bits = _mm512_test_epi8_mask(v, v);
        while bits != 0 {
            s.active.push(i0 as u32 + bits.trailing_zeros());
            bits &= bits - 1;
        }
        i0 += 64;
    }
    s.pack_quads(x, op);
    let rows = w.rows.as_ptr();
    for j0 in (0..op).step_by(64) {
        let mut a = [_mm512_setzero_si512(); 4];
        for (&val, offs) in s.values.iter().zip(&s.offsets) {
            let v = _mm512_set1_epi32(val);
            let r = |t: usize| _mm512_loadu_si512(rows.add(offs[t] + j0).cast());
            let (ra, rb, rc, rd) = (r(0), r(1), r(2), r(3));
            let ab_lo = _mm512_unpacklo_epi8(ra, rb);
            let ab_hi = _mm512_unpackhi_epi8(ra, rb);
            let cd_lo = _mm512_unpacklo_epi8(rc, rd);
            let cd_hi = _mm512_unpackhi_epi8(rc, rd);
            // In lane L, q[t] holds outputs 16L + 4t .. 16L + 4t + 3.
            let q = [
                _mm512_unpacklo_epi16(ab_lo, cd_lo),
                _mm512_unpackhi_epi16(ab_lo, cd_lo),
                _mm512_unpacklo_epi16(ab_hi, cd_hi),
                _mm512_unpackhi_epi16(ab_hi, cd_hi),
            ];
            for t in 0..4 {
                a[t] = D::mac::<false>(a[t], v, q[t]);
            }
        }
        // Outputs 16m.. are lane m of a[0], a[1], a[2], a[3]: a 4 × 4
        // transpose of 128-bit lanes.
        let t01 = _mm512_shuffle_i32x4::<0b01_00_01_00>(a[0], a[1]);
        let t23 = _mm512_shuffle_i32x4::<0b01_00_01_00>(a[2], a[3]);
        let u01 = _mm512_shuffle_i32x4::<0b11_10_11_10>(a[0], a[1]);
        let u23 = _mm512_shuffle_i32x4::<0b11_10_11_10>(a[2], a[3]);
        let o = acc.as_mut_ptr().add(j0);
        _mm512_storeu_si512(o.cast(), _mm512_shuffle_i32x4::<0b10_00_10_00>(t01, t23));
        _mm512_storeu_si512(
            o.add(16).cast(),
            _mm512_shuffle_i32x4::<0b11_01_11_01>(t01, t23),
        );
        _mm512_storeu_si512(
            o.add(32).cast(),
            _mm512_shuffle_i32x4::<0b10_00_10_00>(u01, u23),
        );
        _mm512_storeu_si512(
            o.add(48).cast(),
            _mm512_shuffle_i32x4::<0b11_01_11_01>(u01, u23),
        );
    }
    s.active.len()
}

/// Eight independent multiply-accumulate chains of the step `D`.
#[inline(always)]
unsafe fn peak<D: Dot>(iters: u64) -> i32 {
    let step = _mm512_set1_epi8(1);
    let mut x = _mm512_set1_epi8(3);
    let w: [__m512i; 8] = std::array::from_fn(|t| _mm512_set1_epi8(t as i8 - 4));
    let mut a = [_mm512_setzero_si512(); 8];
    for _ in 0..iters {
        // x changes every iteration so nothing can be hoisted.
        x = _mm512_add_epi8(x, step);
        let u = _mm512_and_si512(x, _mm512_set1_epi8(0x3f));
        for t in 0..8 {
            a[t] = D::mac::<false>(a[t], u, w[t]);
        }
    }
    let s = a[1..].iter().fold(a[0], |s, &t| _mm512_add_epi32(s, t));
    _mm512_reduce_add_epi32(s)
}

/// One tile of the f32 product: `NF` frames × `V` vectors of 16 outputs;
/// `mask` selects the outputs of the last vector (a partial one at the
/// end of a row).
#[inline(always)]
unsafe fn affine_tile<const NF: usize, const V: usize>(
    (w, b, x): (&[f32], &[f32], &[f32]),
    (f0, j0, inputs): (usize, usize, usize),
    mask: __mmask16,
    y: &mut [f32],
) {
    let outputs = b.len();
    let m = |v: usize| if v + 1 == V { mask } else { !0 };
    let load = |p: *const f32, v: usize| _mm512_maskz_loadu_ps(m(v), p.add(16 * v));
    let mut a = [[_mm512_setzero_ps(); V]; NF];
    for af in a.iter_mut() {
        *af = std::array::from_fn(|v| load(b.as_ptr().add(j0), v));
    }
    let (wp, xp) = (w.as_ptr(), x.as_ptr());
    for i in 0..inputs {
        let row = wp.add(i * outputs + j0);
        let wv: [__m512; V] = std::array::from_fn(|v| load(row, v));
        for (f, af) in a.iter_mut().enumerate() {
            let xv = _mm512_set1_ps(*xp.add((f0 + f) * inputs + i));
            for (av, &wvv) in af.iter_mut().zip(&wv) {
                *av = _mm512_fmadd_ps(xv, wvv, *av);
            }
        }
    }
    for (f, af) in a.iter().enumerate() {
        let yp = y.as_mut_ptr().add((f0 + f) * outputs + j0);
        for (v, av) in af.iter().enumerate() {
            _mm512_mask_storeu_ps(yp.add(16 * v), m(v), *av);
        }
    }
}

/// f32 affine product (see [`super::affine_f32`]): per 64 outputs (a
/// weight tile that stays in L2), frames 4 at a time, then one at a time;
/// the row's last partial vector under a mask. Every frame summed in
/// input order with FMA, as the other families do.
#[target_feature(enable = "avx512f")]
pub unsafe fn affine(w: &[f32], b: &[f32], x: &[f32], frames: usize, inputs: usize, y: &mut [f32]) {
    let outputs = b.len();
    let wbx = (w, b, x);
    let mut j0 = 0;
    while j0 < outputs {
        let left = outputs - j0;
        // 64 outputs, or what is left in whole vectors plus a masked one.
        let vectors = left.div_ceil(16).min(4);
        let mask: __mmask16 = match left % 16 {
            r if r != 0 && left <= 64 => (1u16 << r) - 1,
            _ => !0,
        };
        let mut f0 = 0;
        macro_rules! tiles {
            ($v:literal) => {{
                while frames - f0 >= 4 {
                    affine_tile::<4, $v>(wbx, (f0, j0, inputs), mask, y);
                    f0 += 4;
                }
                for f in f0..frames {
                    affine_tile::<1, $v>(wbx, (f, j0, inputs), mask, y);
                }
            }};
        }
        match vectors {
            4 => tiles!(4),
            3 => tiles!(3),
            2 => tiles!(2),
            _ => tiles!(1),
        }
        j0 += 64;
    }
}

/// The rational tanh (see [`super::tanh_f32`]), 16 values at a time, the
/// last partial vector under a mask.
#[target_feature(enable = "avx512f")]
pub unsafe fn tanh(x: &mut [f32]) {
    for ch in x.chunks_mut(16) {
        let m: __mmask16 = if ch.len() == 16 {
            !0
        } else {
            (1u16 << ch.len()) - 1
        };
        let v = _mm512_maskz_loadu_ps(m, ch.as_ptr());
        // max(−C, v) first keeps a NaN, as the scalar clamp does.
        let t = _mm512_min_ps(
            _mm512_set1_ps(c::CLAMP),
            _mm512_max_ps(_mm512_set1_ps(-c::CLAMP), v),
        );
        let x2 = _mm512_mul_ps(t, t);
        let p = c::A[1..].iter().fold(_mm512_set1_ps(c::A[0]), |p, &a| {
            _mm512_fmadd_ps(p, x2, _mm512_set1_ps(a))
        });
        let q = c::B[1..].iter().fold(_mm512_set1_ps(c::B[0]), |q, &b| {
            _mm512_fmadd_ps(q, x2, _mm512_set1_ps(b))
        });
        let r = _mm512_div_ps(_mm512_mul_ps(p, t), q);
        let tiny = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(_mm512_abs_ps(v), _mm512_set1_ps(c::TINY));
        _mm512_mask_storeu_ps(ch.as_mut_ptr(), m, _mm512_mask_blend_ps(tiny, r, v));
    }
}
