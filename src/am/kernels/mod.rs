//! The scorer's matrix kernels and the choice among them: one family per
//! instruction set (AVX-512 VNNI, AVX-512BW, AVX-VNNI, AVX2, portable),
//! picked once at model load from what the CPU has ([`Isa::select`]).
//!
//! int8: activations (i8, or 0..=127 after a rectifier) × int8 weights →
//! exact i32 sums, dense and sparse, so every family gives the same bits.
//! f32: a small-block affine product whose per-frame summation order does
//! not depend on the block size or the vector width (fused multiply-adds
//! in input order on every family), and a tanh built from the same
//! operations everywhere.
//!
//! Hand-written because they are the product: a general GEMM library does
//! not skip a rectifier's zeros, repacks the weights on every call (most of
//! the time of a one-frame product), and its rounding depends on the batch.
//!
//! * **One weight layout serves every family.** Dense weights are
//!   quad-interleaved in tiles of 64 outputs, `[out/64][in/4][64][4]`: a
//!   32-byte load holds 4 inputs × 8 outputs, a 64-byte load 4 × 16, so a
//!   broadcast of 4 activations and one dot-product step add 4 products
//!   into each output's i32 sum with no horizontal reduction; a tile is
//!   one sequential stream, which the prefetchers follow (a frame alone is
//!   bound by reading the weights). Sparse weights are input-major,
//!   `[in][out]`.
//! * **The dot-product step.** AVX2 and AVX-512BW: `vpmaddubsw` (u8 × i8,
//!   pairs summed in i16) + `vpmaddwd` + `vpaddd`; both operands stay
//!   within ±127, so a pair (≤ 32,258) never saturates i16. VNNI (AVX-512
//!   or AVX-VNNI): `vpdpbusd`, the four u8 × i8 products summed straight
//!   into i32, no intermediate saturation.
//! * **Signed activations** (first layer, leaky ReLU, tanh; the
//!   instructions want unsigned bytes). 256-bit and AVX-512BW: the sign
//!   trick, |x| × (sign(x)·w), one `vpsignb` or masked negate per product
//!   vector. AVX-512 VNNI: an offset instead, x + 128 (0..=255, one XOR per
//!   broadcast) against unchanged weights, each sum starting at
//!   −128 · Σ_i w[j, i] (precomputed at load): exact in i32 and nothing
//!   extra in the inner loop; the offset cannot serve `vpmaddubsw`, whose
//!   pairs of 255 × 127 would saturate.
//! * **Sparse**: only the rows of non-zero activations are read, four
//!   active inputs at a time interleaved in registers into the quad form
//!   (per 128-bit lane; the 512-bit kernels put the lanes back in order
//!   once per tile), so cost follows the active count.
//! * **Blocks**: the wide kernels hold a 64-output weight tile (≤ 32 KB)
//!   in L1 and run every frame of the block through it before moving on,
//!   so a block reads the weights once.

/// The entry points of one x86 kernel family, each compiled with the
/// family's features `$feat` around its module's generic code on the
/// dot-product step `$dot`: dense, sparse, peak, and the portable
/// requantization loops at the family's width (one family per invocation,
/// so `requantize`/`quantize` only where `$rq` is given).
#[cfg(target_arch = "x86_64")]
macro_rules! family {
    ($feat:literal, $dot:ty, $dense:ident, $sparse:ident, $peak:ident $(, $rq:ident)?) => {
        #[target_feature(enable = $feat)]
        pub unsafe fn $dense(w: &QWeights, x: &[i8], frames: usize, signed: bool, acc: &mut [i32]) {
            match signed {
                true => dense::<$dot, true>(w, x, frames, acc),
                false => dense::<$dot, false>(w, x, frames, acc),
            }
        }

        #[target_feature(enable = $feat)]
        pub unsafe fn $sparse(w: &QWeights, x: &[i8], s: &mut SparseScratch, acc: &mut [i32]) -> usize {
            sparse::<$dot>(w, x, s, acc)
        }

        #[target_feature(enable = $feat)]
        pub unsafe fn $peak(iters: u64) -> i32 {
            peak::<$dot>(iters)
        }

        $(
            /// [`super::requantize`]: the portable loops compiled for this width.
            #[target_feature(enable = $feat)]
            pub unsafe fn $rq(
                how: super::Requant,
                affine: (&[i32], &[f32], &[f32]),
                inv: f32,
                dst: &mut [i8],
            ) -> u64 {
                super::portable::requantize(how, affine, inv, dst)
            }

            /// [`super::quantize`]: the portable loop compiled for this width.
            #[target_feature(enable = $feat)]
            pub unsafe fn quantize(x: &[f32], inv: f32, dst: &mut [i8]) -> u64 {
                super::portable::quantize(x, inv, dst)
            }
        )?
    };
}

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod portable;

/// Inputs are padded to a multiple of this (one broadcast quad).
pub const IN_ALIGN: usize = 4;
/// Outputs are padded to a multiple of this (one kernel tile).
pub const OUT_ALIGN: usize = 64;

/// Which family of kernels runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// x86-64 AVX-512F/BW with VNNI (`vpdpbusd` on 512-bit registers).
    Avx512Vnni,
    /// x86-64 AVX-512F/BW without VNNI (`vpmaddubsw` on 512-bit registers).
    Avx512Bw,
    /// x86-64 AVX2 with AVX-VNNI (256-bit `vpdpbusd`), CPUs without AVX-512.
    AvxVnni,
    /// x86-64 AVX2 and FMA.
    Avx2,
    /// Plain Rust, any target.
    Portable,
}

impl Isa {
    /// Every family, best first.
    pub const ALL: [Isa; 5] = [
        Isa::Avx512Vnni,
        Isa::Avx512Bw,
        Isa::AvxVnni,
        Isa::Avx2,
        Isa::Portable,
    ];

    /// Whether this CPU can run the family.
    #[cfg(target_arch = "x86_64")]
    pub fn supported(self) -> bool {
        use std::arch::is_x86_feature_detected as has;
        let avx2 = has!("avx2") && has!("fma");
        let avx512 = avx2 && has!("avx512f") && has!("avx512bw");
        match self {
            Isa::Avx512Vnni => avx512 && has!("avx512vnni"),
            Isa::Avx512Bw => avx512,
            Isa::AvxVnni => avx2 && has!("avxvnni"),
            Isa::Avx2 => avx2,
            Isa::Portable => true,
        }
    }

    /// Whether this CPU can run the family.
    #[cfg(not(target_arch = "x86_64"))]
    pub fn supported(self) -> bool {
        self == Isa::Portable
    }

    /// The best this CPU supports.
    pub fn detect() -> Isa {
        Isa::ALL
            .into_iter()
            .find(|i| i.supported())
            .unwrap_or(Isa::Portable)
    }

    /// Every family this CPU can run, best first (for equivalence tests).
    pub fn available() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.supported()).collect()
    }

    /// Name for reports and for `SPARSA_KERNELS`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512Vnni => "avx512vnni",
            Isa::Avx512Bw => "avx512bw",
            Isa::AvxVnni => "avxvnni",
            Isa::Avx2 => "avx2",
            Isa::Portable => "portable",
        }
    }

    /// The family called `name`, if this CPU can run it; the error says
    /// what is wrong and what would do.
    pub fn named(name: &str) -> Result<Isa, String> {
        let names = || Isa::ALL.map(Isa::name).join(", ");
        let isa = Isa::ALL
            .into_iter()
            .find(|i| i.name() == name)
            .ok_or_else(|| format!("unknown kernels {name:?}; one of {}", names()))?;
        if !isa.supported() {
            let have: Vec<_> = Isa::available().into_iter().map(Isa::name).collect();
            return Err(format!(
                "this CPU cannot run the {name} kernels; it can run {}",
                have.join(", ")
            ));
        }
        Ok(isa)
    }

    /// The kernels to use: those named by the `SPARSA_KERNELS` environment
    /// variable when it is set (for testing and comparing), else the best
    /// this CPU supports.
    pub fn select() -> Result<Isa, String> {
        match std::env::var_os("SPARSA_KERNELS") {
            Some(v) => Isa::named(&v.to_string_lossy())
                .map_err(|e| format!("SPARSA_KERNELS={}: {e}", v.to_string_lossy())),
            None => Ok(Isa::detect()),
        }
    }

    /// Frames per scorer call for this family, measured (`sparsa bench
    /// --kernels all`, docs/benchmarks.md): the 512-bit families gain up to
    /// a third on f32 from 8 to 32 frames and hold int8 within noise; the
    /// 256-bit ones lose ~10% on int8 past 8 frames, where the activations of
    /// a block no longer sit in L1 beside the weight tile.
    pub fn block(self) -> usize {
        match self {
            Isa::Avx512Vnni | Isa::Avx512Bw => 32,
            Isa::AvxVnni | Isa::Avx2 | Isa::Portable => 8,
        }
    }

    /// Panics if the CPU cannot run the family: the kernels' safety rests on it.
    fn check(self) {
        assert!(
            self.supported(),
            "{} kernels on a CPU without them",
            self.name()
        );
    }
}

/// Rounds `n` up to a multiple of `a`.
pub fn round_up(n: usize, a: usize) -> usize {
    n.div_ceil(a) * a
}

/// Where quad `k` (inputs 4k..4k + 3) of output `j` starts in the dense
/// layout of a layer with `in_pad` inputs.
#[inline(always)]
fn quad_offset(in_pad: usize, k: usize, j: usize) -> usize {
    ((j / OUT_ALIGN * (in_pad / 4) + k) * OUT_ALIGN + j % OUT_ALIGN) * 4
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
    /// Dense layout `[out_pad/64][in_pad/4][64][4]`, zero padded.
    quads: Vec<i8>,
    /// Sparse layout `[inputs][out_pad]`, zero padded; empty if not built.
    rows: Vec<i8>,
    /// Per output, −128 · Σ_i w[j, i]: where the VNNI kernels' sums of
    /// offset activations (x + 128) start so that they end at Σ x · w.
    offset_start: Vec<i32>,
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
        let mut offset_start = vec![0i32; out_pad];
        for j in 0..outputs {
            for i in 0..inputs {
                let v = w[j * inputs + i];
                quads[quad_offset(in_pad, i / 4, j) + i % 4] = v;
                if sparse {
                    rows[i * out_pad + j] = v;
                }
                offset_start[j] -= 128 * v as i32;
            }
        }
        QWeights {
            inputs,
            in_pad,
            outputs,
            out_pad,
            quads,
            rows,
            offset_start,
        }
    }

    /// Whether the sparse layout exists.
    pub fn has_sparse(&self) -> bool {
        !self.rows.is_empty()
    }

    /// Bytes of weights held (both layouts and the offset sums).
    pub fn bytes(&self) -> usize {
        self.quads.len() + self.rows.len() + 4 * self.offset_start.len()
    }
}

/// `acc[f * out_pad + j] = Σ_i x[f * in_pad + i] · w[j, i]` for `frames`
/// frames. `x` holds values in −127..=127 (padding zero); `signed` must be
/// true if any may be negative.
pub fn dense(isa: Isa, w: &QWeights, x: &[i8], frames: usize, signed: bool, acc: &mut [i32]) {
    assert!(x.len() >= frames * w.in_pad && acc.len() >= frames * w.out_pad);
    isa.check();
    // SAFETY (every arm): the CPU has the family's features (checked
    // above); slice lengths checked above.
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => unsafe { avx512::dense_vnni(w, x, frames, signed, acc) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Bw => unsafe { avx512::dense_bw(w, x, frames, signed, acc) },
        #[cfg(target_arch = "x86_64")]
        Isa::AvxVnni => unsafe { avx2::dense_vnni(w, x, frames, signed, acc) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { avx2::dense_avx2(w, x, frames, signed, acc) },
        _ => portable::dense(w, x, frames, acc),
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

impl SparseScratch {
    /// Groups the active inputs (already in `active`) into quads of values
    /// and row offsets (`row_len` weights a row); the last quad is padded
    /// with row 0 at value 0.
    fn pack_quads(&mut self, x: &[i8], row_len: usize) {
        self.values.clear();
        self.offsets.clear();
        for g in self.active.chunks(4) {
            let mut vals = [0u8; 4];
            let mut offs = [0usize; 4];
            for (t, &i) in g.iter().enumerate() {
                vals[t] = x[i as usize] as u8;
                offs[t] = i as usize * row_len;
            }
            self.values.push(i32::from_le_bytes(vals));
            self.offsets.push(offs);
        }
    }
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
    isa.check();
    // SAFETY (every arm): the CPU has the family's features (checked
    // above); lengths checked above; row indices come from `x`.
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => unsafe { avx512::sparse_vnni(w, x, scratch, acc) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Bw => unsafe { avx512::sparse_bw(w, x, scratch, acc) },
        #[cfg(target_arch = "x86_64")]
        Isa::AvxVnni => unsafe { avx2::sparse_vnni(w, x, scratch, acc) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { avx2::sparse_avx2(w, x, scratch, acc) },
        _ => portable::sparse(w, x, scratch, acc),
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
    isa.check();
    // SAFETY (every arm): the CPU has the family's features (checked
    // above; AVX-512F and FMA are part of both 512-bit families, FMA of
    // both 256-bit ones); lengths checked above.
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni | Isa::Avx512Bw => unsafe { avx512::affine(w, b, x, frames, inputs, y) },
        #[cfg(target_arch = "x86_64")]
        Isa::AvxVnni | Isa::Avx2 => unsafe { avx2::affine(w, b, x, frames, inputs, y) },
        _ => {
            for f in 0..frames {
                let yf = &mut y[f * outputs..(f + 1) * outputs];
                yf.copy_from_slice(b);
                portable::affine_tail(w, &x[f * inputs..(f + 1) * inputs], 0, yf);
            }
        }
    }
}

/// `x = tanh(x)` in place, within 4·10⁻⁷ of libm's `tanhf` (3·10⁻⁷ measured in
/// `tests/quant.rs`) and the same bits on every family: a rational approximation
/// evaluated with the same fused multiply-adds and one IEEE division per
/// value, 16 or 8 values per instruction on the wide families.
pub fn tanh_f32(isa: Isa, x: &mut [f32]) {
    isa.check();
    // SAFETY (every arm): the CPU has the family's features (checked above).
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni | Isa::Avx512Bw => unsafe { avx512::tanh(x) },
        #[cfg(target_arch = "x86_64")]
        Isa::AvxVnni | Isa::Avx2 => unsafe { avx2::tanh(x) },
        _ => x.iter_mut().for_each(|v| *v = portable::tanh(*v)),
    }
}

/// How a layer's i32 sums become the next layer's int8 inputs (after the
/// dequantizing scale and the bias): the nonlinearity, then ×
/// 1/(next input scale), round half to even, clamp.
#[derive(Clone, Copy, Debug)]
pub enum Requant<'a> {
    /// max(0, y), into 0..=127.
    Relu,
    /// The leaky rectifier, into −127..=127.
    Leaky,
    /// tanh through this table of [`tanh_lut`] (the next scale is 1/127).
    Tanh(&'a [i8]),
}

/// tanh lookup: inputs on a grid of 1/TANH_STEPS, saturated beyond ±TANH_RANGE.
const TANH_STEPS: f32 = 256.0;
const TANH_RANGE: i32 = 5 * 256;

/// The table [`Requant::Tanh`] reads: tanh × 127 on its grid, rounded.
pub fn tanh_lut() -> Vec<i8> {
    (-TANH_RANGE..=TANH_RANGE)
        .map(|k| ((k as f32 / TANH_STEPS).tanh() * 127.0).round_ties_even() as i8)
        .collect()
}

/// `dst[j] = q(f(acc[j] · scale[j] + bias[j]) · inv)` for the nonlinearity
/// `how`; returns the count of zeros written. Plain loops compiled for the
/// family's width: the same IEEE operations (no fused multiply-add) and so
/// the same bits on every family.
pub fn requantize(
    isa: Isa,
    how: Requant,
    affine: (&[i32], &[f32], &[f32]),
    inv: f32,
    dst: &mut [i8],
) -> u64 {
    let (acc, scale, bias) = affine;
    assert!(acc.len() >= dst.len() && scale.len() >= dst.len() && bias.len() >= dst.len());
    isa.check();
    // SAFETY (every arm): the CPU has the family's features (checked above).
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni | Isa::Avx512Bw => unsafe { avx512::requantize(how, affine, inv, dst) },
        #[cfg(target_arch = "x86_64")]
        Isa::AvxVnni | Isa::Avx2 => unsafe { avx2::requantize(how, affine, inv, dst) },
        _ => portable::requantize(how, affine, inv, dst),
    }
}

/// The first layer's input: `dst[i] = q(x[i] · inv)` into −127..=127;
/// returns the count of zeros. As [`requantize`], the same bits on every family.
pub fn quantize(isa: Isa, x: &[f32], inv: f32, dst: &mut [i8]) -> u64 {
    isa.check();
    // SAFETY (every arm): the CPU has the family's features (checked above).
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni | Isa::Avx512Bw => unsafe { avx512::quantize(x, inv, dst) },
        #[cfg(target_arch = "x86_64")]
        Isa::AvxVnni | Isa::Avx2 => unsafe { avx2::quantize(x, inv, dst) },
        _ => portable::quantize(x, inv, dst),
    }
}

/// The rational tanh's constants, shared by every family so that they
/// compute the same function: numerator (odd, x¹ … x¹³) and denominator
/// (even, x⁰ … x⁶) coefficients, and the clamp beyond which tanh rounds
/// to ±1 in f32.
mod tanh_coef {
    pub const CLAMP: f32 = 7.905_311;
    /// Below this |x|, tanh(x) rounds to x.
    pub const TINY: f32 = 0.0004;
    pub const A: [f32; 7] = [
        -2.760_768_5e-16,
        2.000_188e-13,
        -8.604_672e-11,
        5.122_297e-8,
        1.485_722_4e-5,
        6.372_619_3e-4,
        4.893_524_6e-3,
    ];
    pub const B: [f32; 4] = [1.198_258_4e-6, 1.185_347_1e-4, 2.268_434_6e-3, 4.893_525e-3];
}

/// Measured int8 multiply-add peak of one core in MAC/s with the family's
/// dot-product step (see the module doc) on registers, eight independent
/// chains, no memory traffic. `None` for the portable family.
pub fn measure_peak(isa: Isa) -> Option<f64> {
    isa.check();
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY (every arm): the CPU has the family's features (checked above).
        let (run, macs_per_iter): (fn(u64) -> i32, u64) = match isa {
            Isa::Avx512Vnni => (|n| unsafe { avx512::peak_vnni(n) }, avx512::PEAK_MACS),
            Isa::Avx512Bw => (|n| unsafe { avx512::peak_bw(n) }, avx512::PEAK_MACS),
            Isa::AvxVnni => (|n| unsafe { avx2::peak_vnni(n) }, avx2::PEAK_MACS),
            Isa::Avx2 => (|n| unsafe { avx2::peak_avx2(n) }, avx2::PEAK_MACS),
            Isa::Portable => return None,
        };
        let iters = 20_000_000u64;
        // Warm the core up, then time the best of three.
        std::hint::black_box(run(iters / 4));
        let best = (0..3)
            .map(|_| {
                let t0 = std::time::Instant::now();
                std::hint::black_box(run(std::hint::black_box(iters)));
                t0.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min);
        Some(iters as f64 * macs_per_iter as f64 / best)
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// The dot-product step each family's peak measures, for reports.
pub fn peak_sequence(isa: Isa) -> &'static str {
    match isa {
        Isa::Avx512Vnni => "vpdpbusd on zmm",
        Isa::Avx512Bw => "vpmaddubsw + vpmaddwd + vpaddd on zmm",
        Isa::AvxVnni => "vpdpbusd (VEX) on ymm",
        Isa::Avx2 => "vpmaddubsw + vpmaddwd + vpaddd on ymm",
        Isa::Portable => "scalar",
    }
}
