"""``lptn-learn`` end to end on a photographer-style export of the FiveK sample.

The export (scripts/data_preparation/make_photographer_export.py) has camera JPEGs, one stored
sideways with EXIF Orientation 6, a 16-bit TIFF, and ``*_edited.jpg`` targets, one at half
size. One short run (4 iterations) is shared by the tests; they check the split, the printout
against an independent measurement, the option file with ``train.py``, resume, and the
weights in ``lptn-enhance``, ``lptn-export`` (judged by onnxruntime) and ``lptn-serve``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

import cv2
import numpy as np
import pytest
import yaml
from PIL import Image, ImageOps

from lptn.engine.learn import detect_after_name, split_stems

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "data_preparation" / "make_photographer_export.py"
_spec = importlib.util.spec_from_file_location("make_photographer_export", SCRIPT)
assert _spec is not None and _spec.loader is not None
export_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(export_script)

PAIRS = 5
ITERATIONS = 4
NAME = "mine"


def _env() -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _run(args: List[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=900
    )


def _learn(args: List[str], cwd: Path) -> subprocess.CompletedProcess:
    code = "from lptn.engine.cli import learn_main; raise SystemExit(learn_main())"
    return _run(["-c", code, *args], cwd)


@dataclass
class LearnRun:
    work: Path
    before: Path
    after: Path
    result: subprocess.CompletedProcess

    @property
    def experiments(self) -> Path:
        return self.work / "experiments"

    @property
    def model(self) -> Path:
        return self.experiments / NAME / f"{NAME}.pth"


@pytest.fixture(scope="module")
def learn_run(fivek_sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> LearnRun:
    work = tmp_path_factory.mktemp("learn")
    export_script.make_export(fivek_sample_dir, work / "export", PAIRS)
    before, after = work / "export" / "before", work / "export" / "after"
    args = ["--before", str(before), "--after", str(after), "--name", NAME]
    args += ["--iterations", str(ITERATIONS), "--val-fraction", "0.4", "--device", "cpu"]
    result = _learn(args, work)
    assert result.returncode == 0, result.stdout + result.stderr
    return LearnRun(work, before, after, result)


def test_export_is_what_a_photographer_writes(learn_run: LearnRun) -> None:
    names = sorted(p.name for p in learn_run.before.iterdir())
    assert any(n.endswith(".tif") for n in names) and any(n.endswith(".jpg") for n in names)
    sideways = [
        p for p in learn_run.before.glob("*.jpg") if Image.open(p).getexif().get(0x0112) == 6
    ]
    assert sideways, "no JPEG stored with Orientation 6"
    tif = cv2.imread(str(next(learn_run.before.glob("*.tif"))), cv2.IMREAD_UNCHANGED)
    assert tif.dtype == np.uint16 and tif.ndim == 3
    sizes = {
        p.name: Image.open(p).size
        for p in learn_run.after.iterdir()
        if p.name.endswith("_edited.jpg")
    }
    assert len(sizes) == PAIRS
    smaller = []
    for source in learn_run.before.iterdir():
        with Image.open(source) as img:
            upright = ImageOps.exif_transpose(img).size
        if sizes[f"{source.stem}_edited.jpg"] != upright:
            smaller.append(source.stem)
    assert smaller, "no target exported at another size"


def test_detects_the_edited_suffix() -> None:
    assert detect_after_name(["a1", "a12"], ["a1_edited", "a12_edited"]) == "{stem}_edited"
    assert detect_after_name(["a1"], ["edited_a1"]) == "edited_{stem}"
    assert detect_after_name(["a1", "b2"], ["a1", "b2"]) == "{stem}"


def test_split_is_deterministic_disjoint_and_complete() -> None:
    stems = [f"img{i:02d}" for i in range(20)]
    train, val = split_stems(stems, 0.2, seed=3)
    assert len(val) == 4 and not set(train) & set(val)
    assert sorted(train + val) == stems
    assert split_stems(list(reversed(stems)), 0.2, seed=3) == (train, val)
    assert split_stems(stems, 0.2, seed=4) != (train, val)
    with pytest.raises(ValueError, match="at least 2 pairs"):
        split_stems(["only"], 0.2, seed=0)


def test_split_files_and_option_file(learn_run: LearnRun) -> None:
    exp = learn_run.experiments
    train = (exp / f"{NAME}.train.txt").read_text().split()
    val = (exp / f"{NAME}.val.txt").read_text().split()
    assert len(val) == 2 and len(train) == PAIRS - 2
    assert sorted(train + val) == sorted(p.stem for p in learn_run.before.iterdir())
    opt = yaml.safe_load((exp / f"{NAME}.yml").read_text())
    assert opt["network_g"]["init"] == "identity" and opt["train"]["ema_decay"] > 0
    assert opt["datasets"]["train"]["gt_name"] == "{stem}_edited"
    assert opt["datasets"]["train"]["pair_size"] == "resize_gt"


def _identity_psnr(run: LearnRun, stem: str) -> float:
    """PSNR of the upright input against the target resized to it, read with Pillow."""
    from skimage.metrics import peak_signal_noise_ratio

    source = next(run.before.glob(f"{stem}.*"))
    if source.suffix == ".tif":  # 16-bit RGB: cv2 keeps the depth (Pillow does not)
        wide = cv2.imread(str(source), cv2.IMREAD_UNCHANGED)[..., ::-1]
        lq = np.round(wide.astype(np.float64) * 255 / 65535).astype(np.uint8)
    else:
        with Image.open(source) as img:
            lq = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    with Image.open(run.after / f"{stem}_edited.jpg") as img:
        target = img.convert("RGB")
        if target.size != (lq.shape[1], lq.shape[0]):
            target = target.resize((lq.shape[1], lq.shape[0]), Image.Resampling.BOX)
        gt = np.asarray(target)
    return float(peak_signal_noise_ratio(gt, lq, data_range=255))


def test_printout_gives_identity_and_model_and_the_command(learn_run: LearnRun) -> None:
    out = learn_run.result.stdout
    assert "held-out pairs: 2" in out
    rows = {}
    for label in ("PSNR (dB)", "SSIM", "ΔE76"):
        match = re.search(re.escape(label) + r"\s+([\d.]+)\s+([\d.]+)", out)
        assert match, f"no {label} row in:\n{out}"
        rows[label] = (float(match.group(1)), float(match.group(2)))
    val = (learn_run.experiments / f"{NAME}.val.txt").read_text().split()
    independent = np.mean([_identity_psnr(learn_run, s) for s in val])
    # the resize filters differ (cv2 area vs Pillow box) on the half-size target only
    assert rows["PSNR (dB)"][0] == pytest.approx(independent, abs=0.15)
    assert 0 < rows["SSIM"][1] <= 1 and rows["ΔE76"][1] > 0
    assert f"lptn-enhance --weights {learn_run.model}" in out
    import torch

    kept = torch.load(learn_run.model, weights_only=True)
    best = torch.load(learn_run.experiments / NAME / "models" / "net_g_best.pth", weights_only=True)
    # One weights entry (no tool needs --param-key), beside the architecture it holds.
    assert list(kept) == ["params", "arch"]
    assert kept["arch"] == best["arch"] and kept["arch"]["type"] == "LPTN"
    assert all(torch.equal(v, best["params_ema"][k]) for k, v in kept["params"].items())


def test_option_file_trains_with_train_py(learn_run: LearnRun) -> None:
    yml = learn_run.experiments / f"{NAME}.yml"
    result = _run(
        [
            str(REPO_ROOT / "train.py"),
            "-opt",
            str(yml),
            "--set",
            "name=again",
            "train.total_iter=2",
        ],
        learn_run.work,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (learn_run.experiments / "again" / "models" / "net_g_latest.pth").is_file()


def test_auto_resume_continues_the_run(learn_run: LearnRun) -> None:
    args = ["--before", str(learn_run.before), "--after", str(learn_run.after), "--name", NAME]
    args += ["--iterations", str(ITERATIONS + 2), "--val-fraction", "0.4", "--auto_resume"]
    result = _learn(args + ["--device", "cpu"], learn_run.work)
    assert result.returncode == 0, result.stdout + result.stderr
    log = result.stdout + result.stderr
    assert "resuming from" in log and f"(iteration {ITERATIONS})" in log, log
    assert "start training from iteration 1\n" not in log
    assert not list(learn_run.experiments.glob(f"{NAME}_archived_*"))
    states = learn_run.experiments / NAME / "training_states"
    assert (states / f"{ITERATIONS + 2}.state").is_file()


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--val-fraction", "1.5"], "--val-fraction"),
        (["--after-name", "edited"], "--after-name"),
        (["--name", "a/b"], "--name"),
    ],
)
def test_bad_arguments_are_one_line_exit_2(
    learn_run: LearnRun, tmp_path: Path, extra: List[str], named: str
) -> None:
    args = ["--before", str(learn_run.before), "--after", str(learn_run.after), "--name", "x"]
    result = _learn(args + extra, tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("error: ") and named in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "experiments").exists()


def test_same_folder_twice_is_refused(learn_run: LearnRun, tmp_path: Path) -> None:
    args = ["--before", str(learn_run.before), "--after", str(learn_run.before), "--name", "x"]
    result = _learn(args, tmp_path)
    assert result.returncode == 2 and "same folder" in result.stderr, result.stderr


def test_weights_work_in_lptn_enhance(learn_run: LearnRun, tmp_path: Path) -> None:
    code = "from lptn.engine.cli import enhance_main; raise SystemExit(enhance_main())"
    out = tmp_path / "out"
    args = ["--weights", str(learn_run.model), "--input", str(learn_run.before)]
    result = _run(
        ["-c", code, *args, "--output", str(out), "--device", "cpu", "--no-progress"],
        learn_run.work,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for source in learn_run.before.iterdir():
        written = out / source.name
        assert written.is_file(), f"{written} missing"
        with Image.open(source) as a, Image.open(written) as b:
            assert b.size == ImageOps.exif_transpose(a).size  # written upright


def test_weights_export_to_onnx_that_onnxruntime_runs(learn_run: LearnRun, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime judges the ONNX file")
    import torch

    from lptn.inference.generator_weights import load_generator

    onnx = tmp_path / "mine.onnx"
    code = "from lptn.engine.cli import export_main; raise SystemExit(export_main())"
    result = _run(
        ["-c", code, "--weights", str(learn_run.model), "--format", "onnx", "--output", str(onnx)],
        learn_run.work,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    jpg = next(learn_run.before.glob("*.jpg"))
    img = np.asarray(Image.open(jpg).convert("RGB").resize((256, 192)), np.float32) / 255
    x = img.transpose(2, 0, 1)[None].copy()
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x})
    with torch.inference_mode():
        want = load_generator(learn_run.model).eval()(torch.from_numpy(x)).numpy()
    assert np.abs(got - want).max() < 1e-3


def test_weights_work_in_lptn_serve(learn_run: LearnRun, tmp_path: Path) -> None:
    for module in ("starlette", "uvicorn", "python_multipart"):
        pytest.importorskip(module, reason="lptn-serve needs the 'serve' extra")
    sys.path.insert(0, str(REPO_ROOT / "tests" / "test_serve"))
    from serve_test_utils import decode, post, start_server, stop_server

    server = start_server(
        ["--weights", str(learn_run.model), "--device", "cpu"], tmp_path / "s.log"
    )
    try:
        jpg = next(learn_run.before.glob("*.jpg"))
        status, _, body = post(server.url, jpg.read_bytes(), content_type="image/jpeg")
    finally:
        stop_server(server)
    assert status == 200, body[:300]
    assert decode(body).ndim == 3
