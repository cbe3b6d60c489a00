//! The portable kernels: plain Rust for any target, and the definition the
//! wide families must match bit for bit.

use super::{tanh_coef as c, QWeights, SparseScratch};

pub fn dense(w: &QWeights, x: &[i8], frames: usize, acc: &mut [i32]) {
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
