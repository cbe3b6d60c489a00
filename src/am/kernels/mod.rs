//! The scorer's matrix kernels. int8: activations (i8, or 0..=127 after a
//! rectifier) × int8 weights → exact i32 sums, dense and sparse. f32: a
//! small-block affine product whose per-frame summation order does not
//! depend on the block size. AVX2 versions are picked at run time; the
//! portable versions give identical results (integer sums are exact; the f32
//! kernel uses fused multiply-adds in the same order on both).
//!
//! Hand-written because they are the product: a general GEMM library does
//! not skip a rectifier's zeros, repacks the weights on every call (most of
//! the time of a one-frame product), and its rounding depends on the batch.
//!
//! * **Dense** weights are quad-interleaved, `[in/4][out][4]`: one 32-byte
//!   load holds 4 inputs × 8 outputs, so a broadcast of 4 activations and one
//!   `vpmaddubsw` + `vpmaddwd` add 32 products into 8 i32 output sums with no
//!   horizontal reduction. `vpmaddubsw` multiplies unsigned by signed bytes;
//!   signed activations use the sign trick (|x| × sign(x)·w). Both operands
//!   stay within ±127, so a pair of products (≤ 32,258) never saturates i16.
//! * **Sparse** weights are input-major, `[in][out]`: each input's outgoing
//!   weights are contiguous, and only the rows of non-zero activations are
//!   read. Active inputs are taken four at a time and interleaved in
//!   registers into the same quad form, so cost follows the active count.

/// Inputs are padded to a multiple of this (one broadcast quad).
pub const IN_ALIGN: usize = 4;
/// Outputs are padded to a multiple of this (one kernel tile).
pub const OUT_ALIGN: usize = 64;

/// Which implementation runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// x86-64 AVX2.
    Avx2,
    /// Plain Rust, any target.
    Portable,
}

impl Isa {
    /// The best this CPU supports.
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Isa::Avx2;
        }
        Isa::Portable
    }

    /// Every implementation this CPU can run (for equivalence tests).
    pub fn available() -> Vec<Isa> {
        let mut v = vec![Isa::Portable];
        if Isa::detect() == Isa::Avx2 {
            v.push(Isa::Avx2);
        }
        v
    }

    /// Name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx2 => "avx2",
            Isa::Portable => "portable",
        }
    }
}

/// Rounds `n` up to a multiple of `a`.
pub fn round_up(n: usize, a: usize) -> usize {
    n.div_ceil(a) * a
}

/// One layer's int8 weights in the layouts the kernels read.
#[derive(Clone, Debug, PartialEq)]
pub struct QWeights {
    /// Real inputs.
    pub inputs: usize,
    /// Inputs padded to [`IN_ALIGN`].
    pub in_pad: usize,
    /// Real outputs.
    pub outputs: usize,
    /// Outputs padded to [`OUT_ALIGN`].
    pub out_pad: usize,
    /// Dense layout `[in_pad/4][out_pad][4]`, zero padded.
    quads: Vec<i8>,
    /// Sparse layout `[inputs][out_pad]`, zero padded; empty if not built.
    rows: Vec<i8>,
}

impl QWeights {
    /// Builds the layouts from output-major weights `w[j * inputs + i]`;
    /// `sparse` also builds the input-major rows.
    pub fn new(w: &[i8], inputs: usize, outputs: usize, sparse: bool) -> Self {
        assert_eq!(w.len(), inputs * outputs, "weight count");
        let in_pad = round_up(inputs, IN_ALIGN);
        let out_pad = round_up(outputs, OUT_ALIGN);
        let mut quads = vec![0i8; in_pad * out_pad];
        let mut rows = if sparse {
            vec![0i8; inputs * out_pad]
        } else {
            Vec::new()
        };
        for j in 0..outputs {
            for i in 0..inputs {
                let v = w[j * inputs + i];
                quads[((i / 4) * out_pad + j) * 4 + i % 4] = v;
                if sparse {
                    rows[i * out_pad + j] = v;
                }
            }
        }
        QWeights {
            inputs,
            in_pad,
            outputs,
            out_pad,
            quads,
            rows,
        }
    }

    /// Whether the sparse layout exists.
    pub fn has_sparse(&self) -> bool {
        !self.rows.is_empty()
    }

    /// Bytes of weights held (both layouts).
    pub fn bytes(&self) -> usize {
        self.quads.len() + self.rows.len()
    }
}

/// `acc[f * out_pad + j] = Σ_i x[f * in_pad + i] · w[j, i]` for `frames`
/// frames. `x` holds values in −127..=127 (padding zero); `signed` must be
/// true if any may be negative.
pub fn dense(isa: Isa, w: &QWeights, x: &[i8], frames: usize, signed: bool, acc: &mut [i32]) {
    assert!(x.len() >= frames * w.in_pad && acc.len() >= frames * w.out_pad);
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            assert!(std::arch::is_x86_feature_detected!("avx2"));
            // SAFETY: AVX2 is present (checked above); slice lengths checked above.
            unsafe {
                if signed {
                    avx2::dense::<true>(w, x, frames, acc)
                } else {
                    avx2::dense::<false>(w, x, frames, acc)
                }
            }
        }
        _ => dense_portable(w, x, frames, acc),
    }
}

/// Reusable buffers of the sparse kernel.
#[derive(Clone, Debug, Default)]
pub struct SparseScratch {
    /// Indices of the non-zero inputs.
    active: Vec<u32>,
    /// Per quad of active inputs: their 4 values packed little-endian.
    values: Vec<i32>,
    /// Per quad: the 4 row offsets (padding: row 0 at value 0).
    offsets: Vec<[usize; 4]>,
}

/// Sparse product for one frame of non-negative activations `x` (0..=127):
/// reads only the weight rows of non-zero inputs. Needs the sparse layout.
/// Returns the active input count.
pub fn sparse(
    isa: Isa,
    w: &QWeights,
    x: &[i8],
    scratch: &mut SparseScratch,
    acc: &mut [i32],
) -> usize {
    assert!(w.has_sparse(), "sparse layout not built");
    assert!(x.len() >= w.inputs && acc.len() >= w.out_pad);
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            assert!(std::arch::is_x86_feature_detected!("avx2"));
            // SAFETY: AVX2 is present; lengths checked above; indices come from `x`.
            unsafe { avx2::sparse(w, x, scratch, acc) }
        }
        _ => sparse_portable(w, x, scratch, acc),
    }
}

/// f32 affine product: `y[f, j] = b[j] + Σ_i x[f, i] · w[i, j]` for
/// `frames` frames, `w` row-major `[inputs][outputs]`. Each frame's sum runs
/// over inputs in order with fused multiply-adds, so results are the same
/// for any block size and on every ISA.
pub fn affine_f32(isa: Isa, w: &[f32], b: &[f32], x: &[f32], frames: usize, y: &mut [f32]) {
    let (outputs, inputs) = (b.len(), w.len() / b.len().max(1));
    assert!(w.len() == inputs * outputs && x.len() >= frames * inputs);
    assert!(y.len() >= frames * outputs);
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            assert!(
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            );
            // SAFETY: AVX2 and FMA are present; lengths checked above.
            unsafe { avx2::affine(w, b, x, frames, inputs, y) }
        }
        _ => {
            for f in 0..frames {
                let yf = &mut y[f * outputs..(f + 1) * outputs];
                yf.copy_from_slice(b);
                affine_tail(w, &x[f * inputs..(f + 1) * inputs], 0, yf);
            }
        }
    }
}

/// Outputs `j0..` of one frame, scalar, in the kernel's order; `y` holds the bias.
fn affine_tail(w: &[f32], x: &[f32], j0: usize, y: &mut [f32]) {
    let outputs = y.len();
    for (i, &xi) in x.iter().enumerate() {
        let row = &w[i * outputs..(i + 1) * outputs];
        for j in j0..outputs {
            y[j] = xi.mul_add(row[j], y[j]);
        }
    }
}

fn dense_portable(w: &QWeights, x: &[i8], frames: usize, acc: &mut [i32]) {
    for f in 0..frames {
        let xf = &x[f * w.in_pad..(f + 1) * w.in_pad];
        let out = &mut acc[f * w.out_pad..(f + 1) * w.out_pad];
        out.fill(0);
        for (k, q) in xf.chunks_exact(4).enumerate() {
            let block = &w.quads[k * w.out_pad * 4..(k + 1) * w.out_pad * 4];
            for (o, wq) in out.iter_mut().zip(block.chunks_exact(4)) {
                *o += (0..4).map(|t| q[t] as i32 * wq[t] as i32).sum::<i32>();
            }
        }
    }
}

fn sparse_portable(w: &QWeights, x: &[i8], scratch: &mut SparseScratch, acc: &mut [i32]) -> usize {
    scratch.active.clear();
    (0..w.inputs as u32)
        .filter(|&i| x[i as usize] != 0)
        .for_each(|i| scratch.active.push(i));
    let out = &mut acc[..w.out_pad];
    out.fill(0);
    for &i in &scratch.active {
        let v = x[i as usize] as i32;
        let row = &w.rows[i as usize * w.out_pad..(i as usize + 1) * w.out_pad];
        for (o, &r) in out.iter_mut().zip(row) {
            *o += v * r as i32;
        }
    }
    scratch.active.len()
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{QWeights, SparseScratch};
    use std::arch::x86_64::*;

    /// Frames processed together by the dense kernel (weights loaded once).
    const FRAMES: usize = 4;

    /// Broadcast of the 4 activations at `p`.
    #[inline(always)]
    unsafe fn quad(p: *const i8) -> __m256i {
        _mm256_set1_epi32(p.cast::<i32>().read_unaligned())
    }

    /// acc += Σ over the quad of |x|·(sign(x)·w) (or x·w when unsigned).
    #[inline(always)]
    unsafe fn mac<const SIGNED: bool>(acc: __m256i, x: __m256i, w: __m256i) -> __m256i {
        let (u, s) = if SIGNED {
            (_mm256_abs_epi8(x), _mm256_sign_epi8(w, x))
        } else {
            (x, w)
        };
        let p = _mm256_maddubs_epi16(u, s);
        _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)))
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn dense<const SIGNED: bool>(
        w: &QWeights,
        x: &[i8],
        frames: usize,
        acc: &mut [i32],
    ) {
        let (ip, op) = (w.in_pad, w.out_pad);
        let wq = w.quads.as_ptr();
        let mut f0 = 0;
        while f0 < frames {
            let nf = (frames - f0).min(FRAMES);
            if nf == FRAMES {
                // 4 frames × 16 outputs: each weight load feeds 4 frames.
                for j0 in (0..op).step_by(16) {
                    let mut a = [_mm256_setzero_si256(); 2 * FRAMES];
                    for k in 0..ip / 4 {
                        let wp = wq.add((k * op + j0) * 4);
                        let w0 = _mm256_loadu_si256(wp.cast());
                        let w1 = _mm256_loadu_si256(wp.add(32).cast());
                        for f in 0..FRAMES {
                            let xv = quad(x.as_ptr().add((f0 + f) * ip + 4 * k));
                            a[2 * f] = mac::<SIGNED>(a[2 * f], xv, w0);
                            a[2 * f + 1] = mac::<SIGNED>(a[2 * f + 1], xv, w1);
                        }
                    }
                    for f in 0..FRAMES {
                        let o = acc.as_mut_ptr().add((f0 + f) * op + j0);
                        _mm256_storeu_si256(o.cast(), a[2 * f]);
                        _mm256_storeu_si256(o.add(8).cast(), a[2 * f + 1]);
                    }
                }
            } else {
                // One frame × 64 outputs.
                for f in f0..f0 + nf {
                    for j0 in (0..op).step_by(64) {
                        let mut a = [_mm256_setzero_si256(); 8];
                        for k in 0..ip / 4 {
                            let xv = quad(x.as_ptr().add(f * ip + 4 * k));
                            let wp = wq.add((k * op + j0) * 4);
                            for (t, at) in a.iter_mut().enumerate() {
                                let wv = _mm256_loadu_si256(wp.add(32 * t).cast());
                                *at = mac::<SIGNED>(*at, xv, wv);
                            }
                        }
                        let o = acc.as_mut_ptr().add(f * op + j0);
                        for (t, at) in a.iter().enumerate() {
                            _mm256_storeu_si256(o.add(8 * t).cast(), *at);
                        }
                    }
                }
            }
            f0 += nf;
        }
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
    pub unsafe fn affine(
        w: &[f32],
        b: &[f32],
        x: &[f32],
        frames: usize,
        inputs: usize,
        y: &mut [f32],
    ) {
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
                    super::affine_tail(w, &x[f * inputs..(f + 1) * inputs], j0, yf);
                }
            }
            f0 += nf;
        }
    }

    /// Multiply-adds per iteration of [`peak_loop`].
    pub const PEAK_MACS_PER_ITER: u64 = 8 * 32;

    /// Eight independent u8×i8→i32 multiply-accumulate chains.
    #[target_feature(enable = "avx2")]
    pub unsafe fn peak_loop(iters: u64) -> i32 {
        let ones = _mm256_set1_epi16(1);
        let step = _mm256_set1_epi8(1);
        let mut x = _mm256_set1_epi8(3);
        let w: [__m256i; 8] = std::array::from_fn(|t| _mm256_set1_epi8(t as i8 - 4));
        let mut a = [_mm256_setzero_si256(); 8];
        for _ in 0..iters {
            // x changes every iteration so nothing can be hoisted.
            x = _mm256_add_epi8(x, step);
            let u = _mm256_and_si256(x, _mm256_set1_epi8(0x3f));
            for t in 0..8 {
                let p = _mm256_maddubs_epi16(u, w[t]);
                a[t] = _mm256_add_epi32(a[t], _mm256_madd_epi16(p, ones));
            }
        }
        let mut s = a[0];
        for t in a.iter().skip(1) {
            s = _mm256_add_epi32(s, *t);
        }
        _mm256_extract_epi32(s, 0)
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn sparse(w: &QWeights, x: &[i8], s: &mut SparseScratch, acc: &mut [i32]) -> usize {
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
        // Quads of active inputs; the last is padded with row 0 at value 0.
        s.values.clear();
        s.offsets.clear();
        for g in s.active.chunks(4) {
            let mut vals = [0u8; 4];
            let mut offs = [0usize; 4];
            for (t, &i) in g.iter().enumerate() {
                vals[t] = x[i as usize] as u8;
                offs[t] = i as usize * op;
            }
            s.values.push(i32::from_le_bytes(vals));
            s.offsets.push(offs);
        }
        let rows = w.rows.as_ptr();
        let ones = _mm256_set1_epi16(1);
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
                        let p = _mm256_maddubs_epi16(v, q[t]);
                        a[4 * h + t] = _mm256_add_epi32(a[4 * h + t], _mm256_madd_epi16(p, ones));
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
}

/// Measured int8 multiply-add peak of one core in MAC/s: the AVX2 sequence
/// every int8 dot product with i32 sums needs (`vpmaddubsw`, `vpmaddwd`,
/// `vpaddd`) on registers, eight independent chains, no memory traffic.
/// `None` without AVX2.
pub fn measure_peak(isa: Isa) -> Option<f64> {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if std::arch::is_x86_feature_detected!("avx2") => {
            let iters = 20_000_000u64;
            // Warm the core up, then time the best of three.
            // SAFETY: AVX2 is present (checked above).
            unsafe { std::hint::black_box(avx2::peak_loop(iters / 4)) };
            let best = (0..3)
                .map(|_| {
                    let t0 = std::time::Instant::now();
                    // SAFETY: as above.
                    std::hint::black_box(unsafe { avx2::peak_loop(std::hint::black_box(iters)) });
                    t0.elapsed().as_secs_f64()
                })
                .fold(f64::INFINITY, f64::min);
            Some(iters as f64 * avx2::PEAK_MACS_PER_ITER as f64 / best)
        }
        _ => None,
    }
}
