use ndarray::{linalg::general_mat_mul, Array2};
fn main() {
    for (m, k, n) in [
        (256, 440, 512),
        (256, 512, 512),
        (256, 512, 120),
        (512, 256, 512),
        (440, 256, 512),
    ] {
        let a = Array2::<f32>::from_elem((m, k), 0.5);
        let b = Array2::<f32>::from_elem((k, n), 0.25);
        let mut c = Array2::<f32>::zeros((m, n));
        let iters = 400;
        let t = std::time::Instant::now();
        for _ in 0..iters {
            general_mat_mul(1.0, &a, &b, 0.0, &mut c);
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "{m}x{k}x{n}: {:.1} GFLOP/s",
            2.0 * (m * k * n) as f64 * iters as f64 / s / 1e9
        );
        let t = std::time::Instant::now();
        for _ in 0..iters {
            general_mat_mul(1.0, &a.t(), &c, 0.0, &mut Array2::<f32>::zeros((k, n)));
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "  A^T C: {:.1} GFLOP/s",
            2.0 * (m * k * n) as f64 * iters as f64 / s / 1e9
        );
    }
}
