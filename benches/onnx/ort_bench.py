"""ONNX Runtime side of benches/onnx/compare.sh (issue #22).

  build MODEL_DIR OUT   ONNX graphs of the model's network, weights read from
                        MODEL_DIR/am.ron: f32.onnx, int8.onnx (quantize_dynamic)
                        and width1.onnx (one Relu on [N, 1]: the per-call cost)
  round OUT FRAMES B,.. one timed round of every graph at batch 1 and each B;
                        prints TSV: graph, batch, CPU µs/frame, wall µs/frame
  table RUN B,..        the Markdown table from RUN/sparsa-*.md and RUN/ort-*.tsv

compare.sh runs these inside its venv; see there.
"""

import base64
import glob
import logging
import re
import statistics
import sys
import time

import numpy as np


def read_network(model_dir):
    """The (w [in, out], b [out]) f32 layers of a sparsa am.ron."""
    text = open(f"{model_dir}/am.ron").read()
    net = text[text.index("\n    network: (") : text.index("\n    log_priors: (")]
    act = re.search(r"activation: (\w+)", net).group(1)
    if act != "relu":
        sys.exit(f"ort_bench: {model_dir} is {act}; the graphs here are ReLU")

    def tensor(shape, b64):
        shape = [int(d) for d in shape.split(",")]
        return np.frombuffer(base64.b64decode(b64), "<f4").reshape(shape)

    ws = re.findall(r'\bw: \(shape: \[([\d, ]+)\], f32le: "([^"]*)"\)', net)
    bs = re.findall(r'\bb: \(shape: \[([\d, ]+)\], f32le: "([^"]*)"\)', net)
    if not ws or len(ws) != len(bs):
        sys.exit(f"ort_bench: no layers found in {model_dir}/am.ron")
    return [(tensor(*w), tensor(*b)) for w, b in zip(ws, bs)]


def build(model_dir, out):
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # quantize_dynamic's pre-processing hint
    layers = read_network(model_dir)
    nodes, inits, x = [], [], "x"
    for i, (w, b) in enumerate(layers):
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes += [
            helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"]),
            helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"]),
        ]
        x = f"a{i}"
        if i < len(layers) - 1:
            nodes.append(helper.make_node("Relu", [x], [f"h{i}"]))
            x = f"h{i}"
    # sparsa's scorer ends with a log-softmax over the outputs; so does this.
    nodes.append(helper.make_node("LogSoftmax", [x], ["y"], axis=-1))

    def save(name, nodes, inits, width_in, width_out):
        io = [
            helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", w])
            for n, w in (("x", width_in), ("y", width_out))
        ]
        graph = helper.make_graph(nodes, name, io[:1], io[1:], inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        onnx.checker.check_model(model)
        onnx.save(model, f"{out}/{name}.onnx")

    n_in, n_out = layers[0][0].shape[0], layers[-1][0].shape[1]
    save("f32", nodes, inits, n_in, n_out)
    save("width1", [helper.make_node("Relu", ["x"], ["y"])], [], 1, 1)
    quantize_dynamic(f"{out}/f32.onnx", f"{out}/int8.onnx", weight_type=QuantType.QInt8)

    # The int8 graph computes the same network: its top outputs agree with f32's.
    x = inputs(n_in, 500)
    f32, int8 = session(f"{out}/f32.onnx"), session(f"{out}/int8.onnx")
    a, b = f32.run(None, {"x": x})[0], int8.run(None, {"x": x})[0]
    agree = float(np.mean(a.argmax(1) == b.argmax(1)))
    shape = f"{n_in}-" + "-".join(str(w.shape[1]) for w, _ in layers)
    print(f"built {shape} from {model_dir}/am.ron; int8 vs f32 top-1 agreement {agree:.1%}")


def inputs(width, frames):
    # sparsa's network inputs are globally mean/variance normalized; ONNX
    # Runtime's kernels do not look at the values (no zero skipping).
    return np.random.default_rng(1).standard_normal((frames, width), np.float32)


def session(path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def timed(sess, chunks, frames):
    """(thread CPU µs, wall µs) per frame of running every chunk once."""
    run = sess.run
    c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
    for c in chunks:
        run(None, {"x": c})
    return (time.thread_time_ns() - c0) / 1e3 / frames, (time.perf_counter_ns() - w0) / 1e3 / frames


def round_(out, frames, blocks):
    batches = [1] + blocks
    for graph in ("f32", "int8", "width1"):
        sess = session(f"{out}/{graph}.onnx")
        width = sess.get_inputs()[0].shape[1]
        x = inputs(width, frames)
        for batch in batches:
            chunks = [np.ascontiguousarray(x[i : i + batch]) for i in range(0, frames, batch)]
            timed(sess, chunks[: max(1, 200 // batch)], 1)  # warm-up
            cpu, wall = timed(sess, chunks, frames)
            print(f"{graph}\t{batch}\t{cpu:.3f}\t{wall:.3f}")


def table(run, blocks):
    import onnx
    import onnxruntime as ort

    batches = [1] + blocks
    # sparsa rows: model, shape, path, kernels, batch 1 (CPU), wall p50, wall p99, blocks...
    sparsa, cpu = {}, "?"
    for f in sorted(glob.glob(f"{run}/sparsa-*.md")):
        for line in open(f):
            if line.startswith("Scorer cost per"):
                cpu = re.search(r"CPU: (.*?);", line).group(1)
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 7 + len(blocks) + 7 and cells[4][:1].isdigit():
                us = [float(cells[4])] + [float(c) for c in cells[7 : 7 + len(blocks)]]
                sparsa.setdefault((cells[2], cells[3]), []).append(us)
    ort_rounds = []
    for f in sorted(glob.glob(f"{run}/ort-*.tsv")):
        r = {}
        for line in open(f):
            g, b, c, _ = line.split("\t")
            r[g, int(b)] = float(c)
        ort_rounds.append(r)
    if not sparsa or not ort_rounds:
        sys.exit(f"ort_bench: no measurements in {run}")

    def med(values):
        return f"{statistics.median(values):.1f}"

    head = " | ".join(f"batch {b} µs/frame" for b in batches)
    print(f"| scorer | {head} |\n|---|" + "---:|" * len(batches))
    paths = ["int8-sparse", "int8", "f32"]
    families = list(dict.fromkeys(k for _, k in sparsa))
    for fam in families:
        for path in paths:
            if (path, fam) in sparsa:
                rounds = sparsa[path, fam]
                cells = [med([r[i] for r in rounds]) for i in range(len(batches))]
                print(f"| sparsa {path} ({fam}) | " + " | ".join(cells) + " |")
    for graph, name in (("int8", "ONNX Runtime int8 (dynamic)"), ("f32", "ONNX Runtime f32")):
        cells = [med([r[graph, b] - r["width1", b] for r in ort_rounds]) for b in batches]
        print(f"| {name} | " + " | ".join(cells) + " |")
    cells = [med([r["width1", b] for r in ort_rounds]) for b in batches]
    print("| (ONNX Runtime Python call overhead, width-1 graph: subtracted above) | " + " | ".join(cells) + " |")

    flags = open("/proc/cpuinfo").read().split()
    vnni = "avx512_vnni present" if "avx512_vnni" in flags else "no avx512_vnni"
    print(
        f"\nCPU: {cpu} ({vnni} in /proc/cpuinfo); onnxruntime {ort.__version__}, onnx {onnx.__version__}, numpy {np.__version__}; "
        f"one thread; µs/frame = the thread's CPU time, median of {len(ort_rounds)} interleaved rounds; "
        f"sparsa batch 1 = its batch-1 figure, batch N = its --block N."
    )


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "build":
        build(*args)
    elif cmd == "round":
        round_(args[0], int(args[1]), [int(b) for b in args[2].split(",")])
    elif cmd == "table":
        table(args[0], [int(b) for b in args[1].split(",")])
    else:
        sys.exit(__doc__)
