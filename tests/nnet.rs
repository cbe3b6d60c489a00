//! DNN tests: backpropagation against finite differences for every
//! activation, and the model file round trip and its errors.

use ndarray::{Array1, Array2};
use sparsa::am::nnet::{Activation, Splice};
use sparsa::rng::Rng;
use sparsa::train::sgd::{init_network, score, Sgd};

/// Mean cross-entropy with fixed dropout factors per hidden layer (none if empty).
fn mean_ce(
    net: &sparsa::am::nnet::Network,
    x: &Array2<f32>,
    labels: &[u32],
    masks: &[Array2<f32>],
) -> f64 {
    let mut acts = Vec::new();
    net.forward_with(x.view(), &mut acts, |l, a| {
        if let Some(m) = masks.get(l) {
            *a *= m;
        }
    });
    score(&acts[acts.len() - 1], labels).ce_sum / labels.len() as f64
}

#[test]
fn backprop_matches_finite_differences() {
    let acts = [Activation::Relu, Activation::Leaky, Activation::Tanh];
    for (act, dropout) in acts.iter().flat_map(|&a| [(a, 0.0), (a, 0.3)]) {
        let mut rng = Rng::new(3);
        let splice = Splice::dense(1, 1);
        let net = init_network(
            act,
            splice,
            2,
            2,
            7,
            4,
            Array1::zeros(6),
            Array1::ones(6),
            &mut rng,
        );
        let x = Array2::from_shape_fn((5, 6), |_| rng.gauss());
        let labels = [0u32, 3, 1, 2, 3];
        let mut sgd = Sgd::new(&net).with_dropout(dropout, 5);
        let (_, grad_b) = sgd.gradients(&net, x.view(), &labels);
        let grad_w = sgd.weight_gradients().to_vec();
        let masks = sgd.dropout_masks().to_vec();
        assert_eq!(masks.len(), if dropout > 0.0 { 2 } else { 0 });
        let dropped = masks.iter().flatten().filter(|&&m| m == 0.0).count();
        assert!(
            dropout == 0.0 || (dropped > 0 && dropped < 70),
            "{dropped} of 70 dropped"
        );
        let mean_ce = |n: &sparsa::am::nnet::Network| mean_ce(n, &x, &labels, &masks);
        let eps = 1e-2f32;
        let (mut checked, mut bad) = (0, Vec::new());
        for l in 0..net.layers.len() {
            for (i, j) in [(0, 0), (1, 2), (3, 1), (5, 3)] {
                let (i, j) = (i % net.layers[l].w.nrows(), j % net.layers[l].w.ncols());
                let mut plus = net.clone();
                plus.layers[l].w[[i, j]] += eps;
                let mut minus = net.clone();
                minus.layers[l].w[[i, j]] -= eps;
                let numeric = (mean_ce(&plus) - mean_ce(&minus)) / (2.0 * eps as f64);
                let analytic = grad_w[l][[i, j]] as f64;
                checked += 1;
                if (numeric - analytic).abs() > 2e-3 + 0.05 * numeric.abs() {
                    bad.push(format!(
                        "{act:?} dropout {dropout} layer {l} w[{i},{j}]: analytic {analytic:.5} numeric {numeric:.5}"
                    ));
                }
            }
            let j = 1 % net.layers[l].b.len();
            let mut plus = net.clone();
            plus.layers[l].b[j] += eps;
            let mut minus = net.clone();
            minus.layers[l].b[j] -= eps;
            let numeric = (mean_ce(&plus) - mean_ce(&minus)) / (2.0 * eps as f64);
            let analytic = grad_b[l][j] as f64;
            checked += 1;
            if (numeric - analytic).abs() > 2e-3 + 0.05 * numeric.abs() {
                bad.push(format!(
                    "{act:?} dropout {dropout} layer {l} b[{j}]: analytic {analytic:.5} numeric {numeric:.5}"
                ));
            }
        }
        // A finite difference may straddle a ReLU kink; allow one such case.
        assert!(bad.len() <= 1, "{checked} checked, mismatches: {bad:#?}");
    }
}

#[test]
fn sgd_steps_lower_the_loss() {
    let mut rng = Rng::new(5);
    let splice = Splice::dense(0, 0);
    let mut net = init_network(
        Activation::Relu,
        splice,
        8,
        2,
        16,
        3,
        Array1::zeros(8),
        Array1::ones(8),
        &mut rng,
    );
    let x = Array2::from_shape_fn((64, 8), |_| rng.gauss());
    let labels: Vec<u32> = x
        .outer_iter()
        .map(|r| {
            if r[0] > 0.5 {
                0
            } else if r[1] > 0.0 {
                1
            } else {
                2
            }
        })
        .collect();
    let before = mean_ce(&net, &x, &labels, &[]);
    let mut sgd = Sgd::new(&net);
    for _ in 0..200 {
        sgd.step(&mut net, x.view(), &labels, 0.1, 0.9);
    }
    let after = mean_ce(&net, &x, &labels, &[]);
    assert!(after < 0.3 * before, "loss {before} -> {after}");
}
