#!/usr/bin/env python3
"""Generate known-answer log-mel filterbank references for sparsa's front end.

The reference values come from an implementation that shares no code with
sparsa: the PyPI package ``kaldi-native-fbank`` (a C++ port of Kaldi's
``compute-fbank-feats``).  The Rust front end is tested against the text files
this script writes.

Inputs (16-bit mono FLAC, paths relative to the project root, which is the
parent of this script's folder):

* ``tests/data/so762_000490017.flac``  16 kHz -> ``tests/data/so762_000490017.fbank40.txt``
  (40 mel bins, FFT size 512)
* ``tests/data/fsdd_theo_00_0.flac``    8 kHz -> ``tests/data/fsdd_theo_00_0.fbank23.txt``
  (23 mel bins, Kaldi's default bin count, FFT size 256; 23 is used rather
  than 40 so that the triangles stay comfortably wider than the 31.25 Hz FFT
  bin spacing at the 4 kHz Nyquist)

Samples are passed to the extractor at int16 scale, i.e. the integer values
-32768..32767 converted to float without dividing by 32768.  This is Kaldi's
convention; kaldi-native-fbank does not rescale its input.

Options (Kaldi names; identical for both files except samp_freq/num_bins):

* frame:  samp_freq 16000 (or 8000), frame_shift_ms 10, frame_length_ms 25,
  dither 0.0, preemph_coeff 0.97, remove_dc_offset true, window_type "povey",
  round_to_power_of_two true, snip_edges true, blackman_coeff 0.42 (unused
  with the povey window)
* mel:    num_bins 40 (or 23), low_freq 20, high_freq 0 (0 or negative means
  Nyquist + high_freq, i.e. Nyquist), Kaldi mel scale 1127*ln(1+f/700)
  (is_librosa false), htk_mode false, no VTLN (warp factor 1.0)
* fbank:  use_energy false, use_log_fbank true, use_power true,
  energy_floor 0, use_log_floor true with eps = FLT_EPSILON, i.e. each
  value is log(max(mel_energy, 1.1920929e-07)) as in Kaldi

The features are computed offline with ``OnlineFbank``: the whole waveform is
passed to ``accept_waveform``, then ``input_finished`` is called and every
ready frame is read.  With snip_edges the frame count is
1 + (num_samples - window) // shift (window 400 / shift 160 at 16 kHz,
200 / 80 at 8 kHz); the script checks this.

Output format: leading ``#`` comment lines (generator, options, frame and bin
counts), then one frame per line, values space-separated, ``%.6f``.

The output files are committed, so the Rust tests need no Python.  To
regenerate them:

    pip install kaldi-native-fbank soundfile numpy && python3 tests/make_fbank_reference.py
"""

from pathlib import Path

import kaldi_native_fbank as knf
import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"

# (input FLAC, sample rate, mel bins, output text file)
JOBS = [
    ("so762_000490017.flac", 16000, 40, "so762_000490017.fbank40.txt"),
    ("fsdd_theo_00_0.flac", 8000, 23, "fsdd_theo_00_0.fbank23.txt"),
]


def make_options(samp_freq: int, num_bins: int) -> knf.FbankOptions:
    """Build FbankOptions with every relevant field set explicitly."""
    opts = knf.FbankOptions()

    f = opts.frame_opts
    f.samp_freq = float(samp_freq)
    f.frame_shift_ms = 10.0
    f.frame_length_ms = 25.0
    f.dither = 0.0  # the package default is 3e-05; we need determinism
    f.preemph_coeff = 0.97
    f.remove_dc_offset = True
    f.window_type = "povey"
    f.round_to_power_of_two = True
    f.blackman_coeff = 0.42  # unused with the povey window
    f.snip_edges = True

    m = opts.mel_opts
    m.num_bins = num_bins
    m.low_freq = 20.0
    m.high_freq = 0.0  # <= 0 means relative to Nyquist, so 0 is Nyquist
    m.vtln_low = 100.0  # only used when a VTLN warp != 1.0 is applied
    m.vtln_high = -500.0
    m.htk_mode = False
    m.is_librosa = False  # Kaldi triangles on the 1127*ln(1+f/700) scale
    m.debug_mel = False

    opts.use_energy = False
    opts.energy_floor = 0.0
    opts.raw_energy = True  # irrelevant without use_energy
    opts.htk_compat = False
    opts.use_log_fbank = True
    opts.use_power = True
    opts.use_log_floor = True  # log(max(e, eps)), Kaldi's behaviour
    opts.eps = float(np.finfo(np.float32).eps)
    return opts


def read_int16_scaled(path: Path, expected_rate: int) -> np.ndarray:
    """Read a mono 16-bit file as float32 holding the raw integer values."""
    samples, rate = sf.read(str(path), dtype="int16", always_2d=False)
    if rate != expected_rate:
        raise SystemExit(f"{path}: sample rate {rate}, expected {expected_rate}")
    if samples.ndim != 1:
        raise SystemExit(f"{path}: expected mono audio")
    return samples.astype(np.float32)


def compute_fbank(samples: np.ndarray, opts: knf.FbankOptions) -> np.ndarray:
    """Offline extraction: feed everything, finish, read every ready frame."""
    fbank = knf.OnlineFbank(opts)
    fbank.accept_waveform(opts.frame_opts.samp_freq, samples.tolist())
    fbank.input_finished()
    n = fbank.num_frames_ready
    # get_frame returns a view into the extractor's buffer, so copy it.
    return np.array([np.array(fbank.get_frame(i), copy=True) for i in range(n)],
                    dtype=np.float32).reshape(n, fbank.dim)


def header_lines(opts, in_name, num_samples, feats) -> list:
    f, m = opts.frame_opts, opts.mel_opts
    window = int(round(f.samp_freq * f.frame_length_ms / 1000.0))
    shift = int(round(f.samp_freq * f.frame_shift_ms / 1000.0))
    fft = 1 << (window - 1).bit_length()
    return [
        f"# generator: kaldi-native-fbank {knf.__version__} "
        f"(OnlineFbank, accept_waveform + input_finished), tests/make_fbank_reference.py",
        f"# input: tests/data/{in_name}, {num_samples} samples, int16-scaled floats (not divided by 32768)",
        f"# frame_opts: samp_freq={f.samp_freq:g} frame_shift_ms={f.frame_shift_ms:g} "
        f"frame_length_ms={f.frame_length_ms:g} dither={f.dither:g} preemph_coeff={f.preemph_coeff:g} "
        f"remove_dc_offset={str(f.remove_dc_offset).lower()} window_type={f.window_type} "
        f"round_to_power_of_two={str(f.round_to_power_of_two).lower()} "
        f"blackman_coeff={f.blackman_coeff:g} snip_edges={str(f.snip_edges).lower()}",
        f"# derived: window={window} shift={shift} fft_size={fft}",
        f"# mel_opts: num_bins={m.num_bins} low_freq={m.low_freq:g} high_freq={m.high_freq:g} "
        f"(0 = Nyquist) mel_scale=1127*ln(1+f/700) htk_mode={str(m.htk_mode).lower()} "
        f"is_librosa={str(m.is_librosa).lower()} vtln_warp=1.0",
        f"# fbank_opts: use_energy={str(opts.use_energy).lower()} use_log_fbank={str(opts.use_log_fbank).lower()} "
        f"use_power={str(opts.use_power).lower()} energy_floor={opts.energy_floor:g} "
        f"raw_energy={str(opts.raw_energy).lower()} htk_compat={str(opts.htk_compat).lower()} "
        f"use_log_floor={str(opts.use_log_floor).lower()} eps={opts.eps:.9g} (value = ln(max(mel_energy, eps)))",
        f"# num_frames={feats.shape[0]} num_bins={feats.shape[1]}",
        "# one frame per line, values space-separated, %.6f",
    ]


def main() -> None:
    for in_name, rate, bins, out_name in JOBS:
        opts = make_options(rate, bins)
        samples = read_int16_scaled(DATA / in_name, rate)
        feats = compute_fbank(samples, opts)

        window = int(round(rate * 0.025))
        shift = int(round(rate * 0.010))
        expected = 1 + (len(samples) - window) // shift
        if feats.shape != (expected, bins):
            raise SystemExit(f"{in_name}: got shape {feats.shape}, expected ({expected}, {bins})")

        out_path = DATA / out_name
        with open(out_path, "w") as fh:
            for line in header_lines(opts, in_name, len(samples), feats):
                fh.write(line + "\n")
            for row in feats:
                fh.write(" ".join("%.6f" % v for v in row) + "\n")

        print(f"{in_name} -> tests/data/{out_name}")
        print(f"  samples={len(samples)} frames={feats.shape[0]} "
              f"(expected 1 + ({len(samples)} - {window}) // {shift} = {expected}) bins={bins}")
        print(f"  min={feats.min():.6f} max={feats.max():.6f} mean={feats.mean():.6f}")
        print("  frame 0 [:5]:   " + " ".join("%.6f" % v for v in feats[0, :5]))
        if feats.shape[0] > 100:
            print("  frame 100 [:5]: " + " ".join("%.6f" % v for v in feats[100, :5]))
        else:
            print(f"  frame 100: n/a (only {feats.shape[0]} frames)")


if __name__ == "__main__":
    main()
