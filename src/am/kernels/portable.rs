//! The portable kernels: plain Rust for any target, and the definition the
//! wide families must match bit for bit.

use super::{
    quad_offset, tanh_coef as c, QWeights, Requant, SparseScratch, TANH_RANGE, TANH_STEPS,
};
use crate::am::nnet::LEAKY_SLOPE;

pub fn dense(w: &QWeights, x: &[i8], frames: usize, acc: &mut [i32]) {
    for f in 0..frames {
        let xf = &x[f * w.in_pad..(f + 1) * w.in_pad];
        let out = &mut acc[f * w.out_pad..(f + 1) * w.out_pad];
        out.fill(0);
        for (k, q) in xf.chunks_exact(4).enumerate() {
            for (j, o) in out.iter_mut().enumerate() {
                let wq = &w.quads[quad_offset(w.in_pad, k, j)..][..4];
                *o += (0..4).map(|t| q[t] as i32 * wq[t] as i32).sum::<i32>();
            }
        }
    }
}

pub fn sparse(w: &QWeights, x: &[i8], scratch: &mut SparseScratch, acc: &mut [i32]) -> usize {
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

/// Outputs `j0..` of one frame of the f32 affine product, scalar, in the
/// kernels' order; `y` holds the bias.
pub fn affine_tail(w: &[f32], x: &[f32], j0: usize, y: &mut [f32]) {
    let outputs = y.len();
    for (i, &xi) in x.iter().enumerate() {
        let row = &w[i * outputs..(i + 1) * outputs];
        for j in j0..outputs {
            y[j] = xi.mul_add(row[j], y[j]);
        }
    }
}

/// The rational tanh (see [`super::tanh_f32`]) of one value, operation
/// for operation as the wide families compute it.
#[inline]
pub fn tanh(v: f32) -> f32 {
    let x = v.clamp(-c::CLAMP, c::CLAMP);
    let x2 = x * x;
    let p = c::A[1..].iter().fold(c::A[0], |p, &a| p.mul_add(x2, a)) * x;
    let q = c::B[1..].iter().fold(c::B[0], |q, &b| q.mul_add(x2, b));
    if v.abs() < c::TINY {
        v
    } else {
        p / q
    }
}

/// Round half to even for |x| < 2^22 without a libm call (`rintf` is not
/// inlined on baseline x86-64, and the wide families vectorize this):
/// adding and subtracting 1.5 · 2^23 leaves the rounded value in IEEE
/// round-to-nearest-even. Callers clamp first.
#[inline(always)]
fn round_even(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (x + MAGIC) - MAGIC
}

/// See [`super::requantize`]; inlined into each family's wrapper so that
/// its loops vectorize to that width.
#[inline(always)]
pub fn requantize(
    how: Requant,
    (acc, scale, bias): (&[i32], &[f32], &[f32]),
    inv: f32,
    dst: &mut [i8],
) -> u64 {
    let it = acc.iter().zip(scale).zip(bias).zip(dst.iter_mut());
    match how {
        Requant::Relu => {
            for (((&a, &s), &b), d) in it {
                let y = (a as f32 * s + b).max(0.0);
                *d = round_even((y * inv).min(127.0)) as i8;
            }
        }
        Requant::Leaky => {
            for (((&a, &s), &b), d) in it {
                let y = a as f32 * s + b;
                let y = if y > 0.0 { y } else { LEAKY_SLOPE * y };
                *d = round_even((y * inv).clamp(-127.0, 127.0)) as i8;
            }
        }
        Requant::Tanh(lut) => {
            for (((&a, &s), &b), d) in it {
                let y = a as f32 * s + b;
                let r = TANH_RANGE as f32;
                let k = round_even((y * TANH_STEPS).clamp(-r, r)) as i32;
                *d = lut[(k + TANH_RANGE) as usize];
            }
        }
    }
    dst.iter().filter(|&&d| d == 0).count() as u64
}

/// See [`super::quantize`]; inlined as [`requantize`] is.
#[inline(always)]
pub fn quantize(x: &[f32], inv: f32, dst: &mut [i8]) -> u64 {
    for (d, &v) in dst.iter_mut().zip(x) {
        *d = round_even((v * inv).clamp(-127.0, 127.0)) as i8;
    }
    dst.iter().filter(|&&d| d == 0).count() as u64
}
