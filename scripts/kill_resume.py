"""Kill-and-resume check: a run killed with SIGKILL many times ends with the same files as one
uninterrupted run.

What it proves (issue 15): ``xai run`` writes every file atomically and records an item only
after its files, so a run killed at *any* moment -- during imports, model loading, the resume
check, input writes, maps, figures, records, ``results.json``, the grid or the report -- and
then restarted on the same output folder finishes with exactly the outputs of a run that was
never interrupted: no temporary files, no half-written files, ``complete: true``, the same
items, and byte-identical maps, inputs and figures.

How:

1. Generate ``--images`` input images deterministically (crops of scikit-image's sample
   photos of varied sizes, grayscale and RGBA ones, and file names whose keys collide: the same
   name in several sub-folders, ``x.png`` beside ``x.jpg``, ``a/b_c.png`` beside ``a_b/c.png``).
2. Run the config once without interruption (the *reference*) and time it.
3. Run it again into another folder and kill the whole process group (DataLoader workers
   included) with SIGKILL ``--kills`` times. Each attempt is killed at a seeded random moment,
   uniform in [0.05, 1.0] x the attempt's expected duration (startup as measured by the
   reference, plus the reference's per-item time for the items not recorded yet), so kills
   spread over every phase of the run, including the last ones. Then let it finish.
4. Compare every file of both folders: ``.npz`` and ``.png`` byte for byte, JSON after
   dropping volatile keys (printed, with the reason), ``config.yaml`` and other text after
   replacing the output folder's path, ``report*.html`` after removing timings, environment
   and the output path, plus its list of referenced files.
5. Check that no ``.*.tmp`` file and no unreadable output remain, every file ``results.json``
   names exists, and ``results.json`` says ``complete: true`` with the reference's item count
   and no failures.
6. Print a summary (kills and their moments, the phase each kill landed in, files compared,
   mismatches, total time); exit status 1 on any mismatch or failed check.

Run (about 10 minutes with the defaults on two shared CPU cores)::

    .venv/bin/python scripts/kill_resume.py                      # 40 images, 20 kills, seed 0
    .venv/bin/python scripts/kill_resume.py --images 4 --kills 2 --keep --workdir /tmp/kr

The model is ``timm/resnet10t`` with random (seeded) weights: no download, fast on a CPU.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from xai_core.io import read_array
from xai_core.runner.ledger import decode
from xai_core.store import load_items

#: JSON keys whose values legitimately differ between two runs of the same config, and why.
VOLATILE_KEYS: dict[str, str] = {
    "seconds": "wall-clock timing of an item or of the run",
    "wall_seconds": "wall-clock timing",
    "compute_seconds": "compute timing",
    "time_breakdown": "wall-clock timing of one invocation, by phase",
    "started": "time stamp",
    "finished": "time stamp",
    "timestamp": "time stamp",
    "environment": "host, platform and versions (equal here, but not part of the outputs)",
    "run_id": "identifies one invocation, not the outputs",
    "lock": "the output-folder lock of one invocation",
    "pid": "process id of one invocation",
    "host": "host of one invocation",
    "hostname": "host of one invocation",
}
#: Files kept on purpose between runs although their names start with a dot.
KEPT_HIDDEN = {".lock": "the output-folder lock (flock); it holds pid, host, start time and "
               "run id of the last holder, compared as JSON without those"}
#: Keys dropped only at one place (dotted path from the top of the file).
VOLATILE_PATHS: dict[str, str] = {
    "summary.skipped": "how many items *this invocation* skipped because an earlier attempt "
    "finished them; a resumed run skips some by design",
}
OUT_TOKEN = "<OUTPUT_DIR>"
PHASES = (
    "imports (before 'loading model')",
    "model loading / resume check (no output yet)",
    "per-image work (inputs, maps, figures, records)",
    "finishing (results.json, grid, report)",
    "after the run had finished writing",
)

SAMPLE_PHOTOS = (
    "chelsea", "coffee", "astronaut", "rocket", "camera", "coins",
    "hubble_deep_field", "retina", "immunohistochemistry", "brick", "grass",
)


# --------------------------------------------------------------------------------------------
# 1. Inputs
# --------------------------------------------------------------------------------------------


def _photos() -> list[np.ndarray]:
    import skimage.data

    return [np.asarray(getattr(skimage.data, name)()) for name in SAMPLE_PHOTOS]


def _names(count: int) -> list[str]:
    """Relative file names: the colliding ones first (so small runs have some), then flat ones."""
    special = [
        "cats/photo.png",  # the same name in three sub-folders
        "dogs/photo.png",
        "birds/photo.png",
        "same.png",  # same stem, two formats: keys 'same' and 'same-2'
        "same.jpg",
        "a/b_c.png",  # both become key 'a_b_c'
        "a_b/c.png",
        "my photo.png",  # 'my_photo' twice
        "my_photo.png",
    ]
    names = special[:count]
    names += [f"img_{i:03d}.png" for i in range(count - len(names))]
    return names


def make_inputs(folder: Path, count: int, seed: int) -> list[Path]:
    """``count`` images under ``folder``, the same bytes for the same ``count`` and ``seed``."""
    rng = np.random.default_rng(seed)
    photos = _photos()
    paths = []
    for i, name in enumerate(_names(count)):
        photo = photos[int(rng.integers(len(photos)))]
        h, w = photo.shape[:2]
        if i % 13 == 12:  # a long thin strip now and then
            ch, cw = int(rng.integers(40, 70)), int(rng.integers(300, 400))
        else:
            ch, cw = int(rng.integers(48, min(h, 480))), int(rng.integers(48, min(w, 480)))
        ch, cw = min(ch, h), min(cw, w)
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        crop = photo[y : y + ch, x : x + cw]
        if rng.random() < 0.3:
            crop = crop[:, ::-1]
        image = Image.fromarray(np.ascontiguousarray(crop))
        if i % 11 == 5 and image.mode == "RGB":
            alpha = Image.fromarray(np.full((ch, cw), 200, dtype=np.uint8))
            image = image.convert("RGBA")
            image.putalpha(alpha)
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".jpg":
            image.convert("RGB").save(path, format="JPEG", quality=90)
        else:
            image.save(path, format="PNG")
        paths.append(path)
    return paths


def write_config(path: Path, inputs: Path, workers: int, batch_size: int, seed: int) -> None:
    path.write_text(
        "# Generated by scripts/kill_resume.py\n"
        "model: {name: timm/resnet10t, pretrained: false}\n"
        f"inputs: [{json.dumps(str(inputs))}]\n"
        "target: predicted\n"
        "methods:\n"
        "  - name: saliency\n"
        "  - name: grad_cam\n"
        "  - name: occlusion\n"
        "    params: {window: 64, stride: 32, progress: false}\n"
        "device: cpu\n"
        f"seed: {seed}\n"
        "figures: true\n"
        f"workers: {workers}\n"
        f"batch_size: {batch_size}\n"
    )


# --------------------------------------------------------------------------------------------
# 2-3. Running and killing
# --------------------------------------------------------------------------------------------


@dataclass
class Attempt:
    """One invocation of ``xai run``: when it started, what it printed, how it ended."""

    started: float
    lines: list[tuple[float, str]] = field(default_factory=list)
    returncode: int | None = None
    killed_at: float | None = None  # seconds after start
    phase: str | None = None
    records_before: int = 0
    records_after: int = 0

    def seen(self, text: str, before: float | None = None) -> bool:
        return any(text in line and (before is None or t <= before) for t, line in self.lines)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("WORLD_SIZE", None)
    env.pop("RANK", None)
    return env


def start(config: Path, out: Path, log: Path, workers: int) -> tuple[subprocess.Popen, Attempt]:
    command = [
        sys.executable, "-m", "xai_core.cli", "run", str(config), f"output_dir={out}",
        f"workers={workers}",
    ]
    attempt = Attempt(started=time.monotonic())
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=child_env(),
        start_new_session=True, text=True, errors="replace",
    )

    def pump() -> None:
        assert proc.stdout is not None
        with log.open("a") as handle:
            handle.write(f"\n=== attempt started: {' '.join(command)}\n")
            for line in proc.stdout:
                attempt.lines.append((time.monotonic() - attempt.started, line.rstrip()))
                handle.write(line)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    proc._pump = thread  # type: ignore[attr-defined]
    return proc, attempt


def kill_group(proc: subprocess.Popen) -> bool:
    """SIGKILL the whole process group (the run and its DataLoader workers); wait for it.

    Returns whether every process of the group is gone within 5 seconds."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    gone = False
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # workers are reparented; wait until they are gone
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            gone = True
            break
        time.sleep(0.05)
    proc._pump.join(timeout=5)  # type: ignore[attr-defined]
    return gone


def finish(proc: subprocess.Popen, attempt: Attempt, timeout: float) -> None:
    try:
        attempt.returncode = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        attempt.returncode = -9
        attempt.lines.append((time.monotonic() - attempt.started, "[kill_resume] timed out"))
    proc._pump.join(timeout=5)  # type: ignore[attr-defined]


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Relative path -> (size, mtime_ns) of every file under ``folder``."""
    out: dict[str, tuple[int, int]] = {}
    if folder.is_dir():
        for root, _dirs, files in os.walk(folder):
            for name in files:
                path = Path(root) / name
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                out[str(path.relative_to(folder))] = (st.st_size, st.st_mtime_ns)
    return out


def count_records(files: dict[str, tuple[int, int]]) -> int:
    return sum(1 for rel in files if rel.startswith("records/") and rel.endswith(".json")
               and not Path(rel).name.startswith("."))


FINISHING = ("results.json", "figures/grid.png", "metrics.json", "metrics.md")


def classify(attempt: Attempt, at: float, before: dict, after: dict, out: Path) -> str:
    """The phase a kill at ``at`` seconds landed in, from the output and the progress lines.

    Writes at start-up do not count as progress: ``config.yaml``, the ``.lock`` file, and
    ``results.json`` rewritten without a summary (a resumed run first marks it incomplete)."""
    changed = {rel for rel, sig in after.items() if before.get(rel) != sig}
    changed = {rel for rel in changed
               if rel not in ("config.yaml", ".lock") and not rel.endswith(".tmp")}
    if "results.json" in changed:
        try:
            if "summary" not in json.loads((out / "results.json").read_text()):
                changed.discard("results.json")
        except (OSError, ValueError):
            pass
    tmp_new = {rel for rel in after if rel.endswith(".tmp") and rel not in before}
    finishing = {
        rel for rel in changed | tmp_new
        if rel.split("/")[-1].lstrip(".").startswith(FINISHING)
        or rel.startswith(FINISHING) or rel.startswith("report")
        or "grid.png" in rel or "results.json" in rel
    }
    if finishing:
        return PHASES[3]
    if changed or tmp_new:
        return PHASES[2]
    if not attempt.seen("loading model", before=at):
        return PHASES[0]
    return PHASES[1]


def reference_profile(timeline: list[tuple[float, int]], total: float,
                      records: int) -> tuple[float, float, float]:
    """From the reference: seconds until the first record (imports, model, first batch),
    seconds per further record, and seconds after the last record (results, grid, report)."""
    first = next((t for t, n in timeline if n > 0), total * 0.2)
    last = next((t for t, n in timeline if n >= records), total)
    per = max(last - first, 0.0) / max(records - 1, 1)
    return first, per, max(total - last, 0.0)


def kill_delay(u: float, done: int, records: int, startup: float, per_record: float,
               tail: float, finished_run: float | None, rng: random.Random) -> float:
    """When to kill the next attempt, given moment ``u`` of the reference timeline.

    Moments in the reference's startup (imports, model loading, first batch) kill that early;
    moments in its per-image work kill when this attempt reaches the same record count (or a
    few records after it resumes, if earlier attempts went further); moments in its finishing
    phase kill at the same fraction of this attempt's finishing. Once every record exists,
    attempts only start, check and rewrite the run's files: those are killed uniformly over
    the duration of such an attempt (measured when one exits on its own).
    """
    work_end = startup + max(records - 1, 0) * per_record
    if u < startup and done == 0:
        return u
    if done >= records:
        return rng.uniform(0.05, 1.0) * (finished_run or startup + tail)
    if u < work_end:
        target = (u - startup) / per_record if per_record else 0.0
        return startup + max(target - done, rng.uniform(0.0, 8.0)) * per_record
    fraction = (u - work_end) / tail if tail else 0.0
    return startup + (records - done) * per_record + fraction * tail


def watch(proc: subprocess.Popen, attempt: Attempt, out: Path, timeout: float,
          timeline: list[tuple[float, int]]) -> None:
    """Wait for an uninterrupted run, sampling how many records exist over time."""
    while proc.poll() is None:
        elapsed = time.monotonic() - attempt.started
        if elapsed > timeout:
            break
        records = out / "records"
        n = sum(1 for _ in records.rglob("*.json")) if records.is_dir() else 0
        timeline.append((elapsed, n))
        time.sleep(0.25)
    finish(proc, attempt, max(1.0, timeout - (time.monotonic() - attempt.started)))


# --------------------------------------------------------------------------------------------
# 4-5. Comparing and checking
# --------------------------------------------------------------------------------------------


@dataclass
class Comparison:
    compared: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    digests_verified: int = 0
    digest_errors: list[str] = field(default_factory=list)


def _digest_ok(path: Path, digest: dict[str, Any]) -> bool:
    if not path.is_file():
        return False
    data = path.read_bytes()
    return (digest.get("size") in (None, len(data))
            and digest.get("sha256") == hashlib.sha256(data).hexdigest())


def _normalize_json(value: Any, out_dirs: tuple[str, ...], cmp: Comparison, root: Path,
                    where_file: str, path: str = "") -> Any:
    """``value`` without volatile keys, with the output path replaced, and with every file
    digest (``{"size", "sha256"}`` under a path relative to ``root``, or ``{"source",
    "sha256"}`` of an input image) checked against its file and replaced by ``<verified>``
    (the files themselves are compared across runs)."""
    if isinstance(value, dict):
        return _normalize_dict(value, out_dirs, cmp, root, where_file, path)
    if isinstance(value, list):
        return [_normalize_json(v, out_dirs, cmp, root, where_file, f"{path}[]") for v in value]
    if isinstance(value, str):
        return _replace_dirs(value, out_dirs)
    return value


def _digest_target(key: str, item: Any, root: Path) -> Path | None:
    """The file that ``item`` is a digest of, or None when it is not a file digest."""
    if not (isinstance(item, dict) and "sha256" in item):
        return None
    if isinstance(item.get("source"), str):
        return Path(item["source"])
    if "/" in key or "." in key:
        return root / key
    return None


def _verified(target: Path, item: dict[str, Any], cmp: Comparison, root: Path,
              where_file: str, where: str) -> str:
    """``<verified>`` when the digest ``item`` matches ``target`` (else the error is noted)."""
    if _digest_ok(target, item):
        cmp.digests_verified += 1
        return "<verified>"
    cmp.digest_errors.append(f"{root.name}/{where_file}: digest {where} does not match {target}")
    return "<digest does not match>"


def _normalize_dict(value: dict[str, Any], out_dirs: tuple[str, ...], cmp: Comparison,
                    root: Path, where_file: str, path: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, item in value.items():
        where = f"{path}.{key}" if path else key
        dropped = key if key in VOLATILE_KEYS else where if where in VOLATILE_PATHS else None
        if dropped is not None:
            cmp.dropped[dropped] = cmp.dropped.get(dropped, 0) + 1
            continue
        target = _digest_target(key, item, root)
        if target is not None:
            result[key] = _verified(target, item, cmp, root, where_file, where)
            continue
        result[key] = _normalize_json(item, out_dirs, cmp, root, where_file, where)
    return result


def _replace_dirs(text: str, out_dirs: tuple[str, ...]) -> str:
    for d in sorted(out_dirs, key=len, reverse=True):
        text = text.replace(d, OUT_TOKEN)
    return text


def _json_diff(a: Any, b: Any, path: str = "", limit: int = 6) -> list[str]:
    """Where two normalized JSON values differ (at most ``limit`` places)."""
    diffs: list[str] = []
    if type(a) is not type(b):
        return [f"{path or '<top>'}: {a!r:.120} != {b!r:.120}"]
    if isinstance(a, dict):
        diffs = _dict_diff(a, b, path, limit)
    elif isinstance(a, list):
        diffs = _list_diff(a, b, path, limit)
    elif a != b:
        diffs.append(f"{path or '<top>'}: {a!r:.120} != {b!r:.120}")
    return diffs[:limit]


def _dict_diff(a: dict[str, Any], b: dict[str, Any], path: str, limit: int) -> list[str]:
    diffs: list[str] = []
    for key in list(dict.fromkeys([*a, *b])):
        if key not in a or key not in b:
            diffs.append(f"{path}.{key}: only in {'killed' if key not in a else 'reference'}")
        else:
            diffs += _json_diff(a[key], b[key], f"{path}.{key}" if path else key, limit)
        if len(diffs) >= limit:
            break
    return diffs


def _list_diff(a: list[Any], b: list[Any], path: str, limit: int) -> list[str]:
    diffs: list[str] = []
    if len(a) != len(b):
        diffs.append(f"{path}: {len(a)} entries != {len(b)}")
    for i, (x, y) in enumerate(zip(a, b)):
        diffs += _json_diff(x, y, f"{path}[{i}]", limit)
        if len(diffs) >= limit:
            break
    return diffs


SECONDS = re.compile(r"\b[0-9]+(?:\.[0-9]+)?(?:e-?[0-9]+)? s\b")
SECTION = re.compile(r"<h2>(Timings|Environment)</h2>.*?(?=<h2>|</body>)", re.S)
REFERENCE = re.compile(r'(?:src|href)="([^"]*)"')


def _normalize_html(text: str, out_dirs: tuple[str, ...]) -> str:
    text = _replace_dirs(text, out_dirs)
    text = SECONDS.sub("T s", text)
    return SECTION.sub(lambda m: f"<h2>{m.group(1)}</h2>(removed)", text)


def _first_text_diff(a: str, b: str) -> str:
    i = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    lo, hi = max(0, i - 60), i + 60
    return f"first difference at char {i}: {a[lo:hi]!r} != {b[lo:hi]!r}"


def _array_detail(ref: Path, got: Path) -> str:
    try:
        a, b = read_array(ref), read_array(got)
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return f"cannot load: {exc}"
    if a.shape != b.shape or a.dtype != b.dtype:
        return f"shape/dtype {a.shape} {a.dtype} != {b.shape} {b.dtype}"
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return (f"values differ: max |diff| {diff.max():.3g}, {int((diff > 0).sum())} of "
            f"{diff.size} elements, max |ref| {np.abs(a).max():.3g}")


def _png_detail(ref: Path, got: Path) -> str:
    try:
        with Image.open(ref) as x, Image.open(got) as y:
            a, b = np.asarray(x.convert("RGBA")), np.asarray(y.convert("RGBA"))
    except Exception as exc:  # noqa: BLE001
        return f"cannot decode: {exc}"
    if a.shape != b.shape:
        return f"size {a.shape} != {b.shape}"
    diff = np.abs(a.astype(int) - b.astype(int))
    if not diff.any():
        return "same pixels, different bytes (encoding/metadata)"
    return f"pixels differ: {int((diff.max(axis=-1) > 0).sum())} pixels, max diff {diff.max()}"


def _compare_json(rel: str, a: Path, b: Path, dirs: tuple[str, ...], got_dirs: tuple[str, ...],
                  result: Comparison, ref: Path, got: Path) -> None:
    try:
        ja = _normalize_json(json.loads(a.read_text()), dirs, result, ref, rel)
        jb = _normalize_json(json.loads(b.read_text()), got_dirs, result, got, rel)
    except (ValueError, UnicodeDecodeError) as exc:
        result.mismatches.append(f"{rel}: not valid JSON ({exc})")
        return
    if ja != jb:
        result.mismatches.append(f"{rel}: " + "; ".join(_json_diff(ja, jb)))


def _compare_table(rel: str, a: Path, b: Path, dirs: tuple[str, ...],
                   got_dirs: tuple[str, ...], result: Comparison, ref: Path, got: Path) -> None:
    """``results.parquet``: its rows compared as JSON records are (timings dropped)."""
    import pyarrow.parquet as pq

    try:
        ra, rb = pq.read_table(a).to_pylist(), pq.read_table(b).to_pylist()
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        result.mismatches.append(f"{rel}: unreadable table ({exc})")
        return
    ja = _normalize_json(ra, dirs, result, ref, rel)
    jb = _normalize_json(rb, got_dirs, result, got, rel)
    if ja != jb:
        result.mismatches.append(f"{rel}: " + "; ".join(_json_diff(ja, jb)))


def _report_data(path: Path) -> Any:
    """``report/data.js`` as JSON, each map's ``seconds`` (a timing) blanked."""
    text = path.read_text()
    prefix, suffix = "window.XAI_REPORT=JSON.parse(", ");\n"
    if not (text.startswith(prefix) and text.endswith(suffix)):
        raise ValueError("not window.XAI_REPORT=JSON.parse(...)")
    data = json.loads(json.loads(text[len(prefix):-len(suffix)]))
    at = data["map_fields"].index("seconds")
    for entry in data["maps"]:
        entry[at] = None
    return data


def _compare_report_data(rel: str, a: Path, b: Path, dirs: tuple[str, ...],
                         got_dirs: tuple[str, ...], result: Comparison, ref: Path,
                         got: Path) -> None:
    """The report's data: compared as JSON is, timings blanked."""
    try:
        ja = _normalize_json(_report_data(a), dirs, result, ref, rel)
        jb = _normalize_json(_report_data(b), got_dirs, result, got, rel)
    except (ValueError, KeyError, TypeError) as exc:
        result.mismatches.append(f"{rel}: unreadable report data ({exc})")
        return
    if ja != jb:
        result.mismatches.append(f"{rel}: " + "; ".join(_json_diff(ja, jb)))


def _compare_text(rel: str, a: Path, b: Path, dirs: tuple[str, ...], got_dirs: tuple[str, ...],
                  result: Comparison) -> None:
    ta, tb = a.read_text(errors="replace"), b.read_text(errors="replace")
    if a.suffix.lower() == ".html":
        refs_a, refs_b = REFERENCE.findall(ta), REFERENCE.findall(tb)
        if refs_a != refs_b:
            only = sorted(set(refs_a) ^ set(refs_b))[:5]
            result.mismatches.append(
                f"{rel}: referenced files differ ({len(refs_a)} vs {len(refs_b)}; "
                f"e.g. {only})"
            )
            return
        ta, tb = _normalize_html(ta, dirs), _normalize_html(tb, got_dirs)
    else:
        ta, tb = _replace_dirs(ta, dirs), _replace_dirs(tb, got_dirs)
    if ta != tb:
        result.mismatches.append(f"{rel}: {_first_text_diff(ta, tb)}")


BYTES_DETAIL = {".npy": _array_detail, ".npz": _array_detail, ".png": _png_detail}


def _compare_bytes(rel: str, a: Path, b: Path, result: Comparison) -> None:
    if a.read_bytes() == b.read_bytes():
        return
    detailer = BYTES_DETAIL.get(a.suffix.lower())
    detail = (detailer(a, b) if detailer is not None
              else f"{a.stat().st_size} vs {b.stat().st_size} bytes")
    result.mismatches.append(f"{rel}: bytes differ ({detail})")


def compare_trees(ref: Path, got: Path) -> Comparison:
    result = Comparison()
    ref_files, got_files = snapshot(ref), snapshot(got)
    dirs = (str(ref), str(ref.resolve()))
    got_dirs = (str(got), str(got.resolve()))
    for rel in sorted(set(ref_files) - set(got_files)):
        result.mismatches.append(f"{rel}: missing from the killed run")
    for rel in sorted(set(got_files) - set(ref_files)):
        result.mismatches.append(f"{rel}: only in the killed run (left over?)")
    for rel in sorted(set(ref_files) & set(got_files)):
        a, b = ref / rel, got / rel
        suffix = a.suffix.lower()
        kind = suffix.lstrip(".") or "other"
        result.compared += 1
        result.by_kind[kind] = result.by_kind.get(kind, 0) + 1
        if suffix == ".json" or a.name in KEPT_HIDDEN:
            _compare_json(rel, a, b, dirs, got_dirs, result, ref, got)
        elif rel == "report/data.js":
            _compare_report_data(rel, a, b, dirs, got_dirs, result, ref, got)
        elif suffix == ".parquet":
            _compare_table(rel, a, b, dirs, got_dirs, result, ref, got)
        elif suffix in (".html", ".yaml", ".yml", ".md", ".txt", ".csv"):
            _compare_text(rel, a, b, dirs, got_dirs, result)
        else:
            _compare_bytes(rel, a, b, result)
    return result


def _file_problems(out: Path) -> list[str]:
    """Temporary, hidden, half-written or unreadable files under ``out``."""
    problems: list[str] = []
    for path in sorted(out.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(out)
        if path.name.endswith(".tmp") or (
            path.name.startswith(".") and str(rel) not in KEPT_HIDDEN
        ):
            problems.append(f"{rel}: temporary/hidden file left behind")
            continue
        try:
            decode(path, strict=True)
            if path.suffix == ".html" and not path.read_text().rstrip().endswith("</html>"):
                raise ValueError("truncated HTML")
        except Exception as exc:  # noqa: BLE001 - every broken file is reported
            problems.append(f"{rel}: half-written or unreadable ({type(exc).__name__}: {exc})")
    return problems


def _results_problems(results: dict[str, Any], out: Path,
                      expected_items: int | None) -> list[str]:
    """What is wrong with a decoded results.json of ``out``."""
    problems: list[str] = []
    if results.get("complete") is not True:
        problems.append(f"results.json: complete is {results.get('complete')!r}, not true")
    summary, items = results.get("summary", {}), load_items(out, results)
    if summary.get("items") != len(items):
        problems.append(f"results.json: summary.items {summary.get('items')} != {len(items)} items")
    if expected_items is not None and len(items) != expected_items:
        problems.append(f"results.json: {len(items)} items, expected {expected_items}")
    failed = [item for item in items if item.get("error")]
    if failed or summary.get("failed"):
        problems.append(f"results.json: {len(failed)} failed item(s), e.g. {failed[:1]}")
    for item in items:
        for name, rel in (item.get("files") or {}).items():
            if not (out / rel).is_file():
                problems.append(f"results.json: {item.get('key')}/{item.get('label')} names "
                                f"missing {name} file {rel}")
    return problems


def check_run(out: Path, expected_items: int | None) -> list[str]:
    """Problems of one finished output folder (empty when it is sound)."""
    problems = _file_problems(out)
    results_file = out / "results.json"
    if not results_file.is_file():
        return [*problems, "results.json: missing"]
    try:
        results = json.loads(results_file.read_text())
    except ValueError as exc:
        return [*problems, f"results.json: unreadable ({exc})"]
    return problems + _results_problems(results, out, expected_items)


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=40, help="input images to generate (40)")
    p.add_argument("--kills", type=int, default=20, help="SIGKILLs of the second run (20)")
    p.add_argument("--seed", type=int, default=0, help="seed of images, run and kill moments (0)")
    p.add_argument("--workdir", type=Path, default=None,
                   help="where inputs and both runs go (default: a temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep the work folder afterwards")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of the runs (2)")
    p.add_argument("--batch-size", type=int, default=8, help="batch_size of the runs (8)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.monotonic()
    created = args.workdir is None or not args.workdir.exists()
    work = (
        Path(tempfile.mkdtemp(prefix="kill_resume_")) if args.workdir is None
        else args.workdir.resolve()
    )
    work.mkdir(parents=True, exist_ok=True)
    inputs, ref, got = work / "inputs", work / "reference", work / "killed"
    config, log = work / "config.yaml", work / "runs.log"
    for stale in (inputs, ref, got):
        shutil.rmtree(stale, ignore_errors=True)
    log.unlink(missing_ok=True)
    print(f"work folder: {work}")
    try:
        return _main(args, work, inputs, ref, got, config, log, t0)
    finally:
        if not args.keep:
            if created:
                shutil.rmtree(work, ignore_errors=True)
            else:
                for path in (inputs, ref, got):
                    shutil.rmtree(path, ignore_errors=True)
                for path in (config, log, work / "summary.json"):
                    path.unlink(missing_ok=True)


def _print_normalization(comparison: Comparison) -> None:
    """Step 4: what was dropped or replaced before comparing the two runs."""
    print("4. dropped JSON keys before comparing (occurrences over both runs):")
    for key, count in sorted(comparison.dropped.items()):
        why = VOLATILE_KEYS.get(key) or VOLATILE_PATHS.get(key, "")
        print(f"   - {key} ({count}x): {why}")
    print(f"   also: the output folder's path is replaced by {OUT_TOKEN} in JSON, YAML and HTML; "
          "report*.html is compared after replacing every 'N s' timing and removing the "
          "Timings and Environment tables, and its referenced files are compared as a list; "
          f"{comparison.digests_verified} file digests (size, sha256) in JSON files were "
          "checked against the files of their own folder and compared as '<verified>' (the "
          "files themselves are compared; config.yaml's hash differs with the output path)")
    for name, why in KEPT_HIDDEN.items():
        print(f"   kept hidden file {name}: {why}")


def _phase_counts(attempts: list[Attempt]) -> dict[str, int]:
    phases: dict[str, int] = {}
    for a in attempts:
        phases[a.phase or "?"] = phases.get(a.phase or "?", 0) + 1
    return phases


def _print_list(title: str, lines: list[str]) -> None:
    print(f"{title}{len(lines)}")
    for line in lines:
        print(f"   - {line}")


def _main(args: argparse.Namespace, work: Path, inputs: Path, ref: Path, got: Path,
          config: Path, log: Path, t0: float) -> int:
    rng = random.Random(args.seed)
    paths = make_inputs(inputs, args.images, args.seed)
    print(f"1. generated {len(paths)} images under {inputs}")
    write_config(config, inputs, args.workers, args.batch_size, args.seed)

    # 2. reference
    proc, reference = start(config, ref, log, args.workers)
    timeline: list[tuple[float, int]] = []
    watch(proc, reference, ref, timeout=3600, timeline=timeline)
    duration = time.monotonic() - reference.started
    if reference.returncode != 0:
        print(f"reference run failed (exit {reference.returncode}); log: {log}")
        for _, line in reference.lines[-30:]:
            print("   ", line)
        return 2
    ref_results = json.loads((ref / "results.json").read_text())
    n_items = len(load_items(ref, ref_results))
    n_records = count_records(snapshot(ref))
    startup, per_record, tail = reference_profile(timeline, duration, n_records)
    loading = next((t for t, line in reference.lines if "loading model" in line), None)
    print(f"2. reference run: {duration:.1f} s, {n_items} items, {n_records} records; "
          f"'loading model' at {loading if loading is None else round(loading, 1)} s, "
          f"first record at {startup:.1f} s, then {per_record:.2f} s per record, "
          f"{tail:.1f} s after the last record")

    # 3. killed run: attempts until --kills of them were killed (one that finishes before its
    # kill moment does not count; its duration sizes the next kill of a finished run)
    attempts: list[Attempt] = []
    finished_run: float | None = None
    survivors = 0
    moments = sorted(rng.uniform(0.05, 1.0) * duration for _ in range(args.kills))
    print("   kill moments on the reference timeline (s): "
          + ", ".join(f"{u:.1f}" for u in moments))
    while sum(a.killed_at is not None for a in attempts) < args.kills:
        if len(attempts) >= 3 * args.kills + 5:
            print("   too many attempts finished before their kill moment; giving up")
            break
        before = snapshot(got)
        done = count_records(before)
        u = moments[sum(a.killed_at is not None for a in attempts)]
        delay = kill_delay(u, done, n_records, startup, per_record, tail, finished_run, rng)
        proc, attempt = start(config, got, log, args.workers)
        attempt.records_before = count_records(before)
        while proc.poll() is None and time.monotonic() - attempt.started < delay:
            time.sleep(0.01)
        if proc.poll() is None:
            at = time.monotonic() - attempt.started
            after = snapshot(got)
            survivors += 0 if kill_group(proc) else 1
            attempt.killed_at, attempt.returncode = at, proc.returncode
            attempt.phase = classify(attempt, at, before, after, got)
        else:
            finish(proc, attempt, 10)
            attempt.phase = PHASES[4]
            if done >= n_records:
                finished_run = time.monotonic() - attempt.started
        attempt.records_after = count_records(snapshot(got))
        attempts.append(attempt)
        when = f"killed at {attempt.killed_at:6.2f} s" if attempt.killed_at is not None else (
            f"exited {attempt.returncode} before its kill moment ({delay:.2f} s)")
        print(f"   attempt {len(attempts):2d}: {when} -> {attempt.phase}; records "
              f"{attempt.records_before} -> {attempt.records_after}", flush=True)
    proc, final = start(config, got, log, args.workers)
    finish(proc, final, timeout=max(600, 10 * duration))
    final_seconds = time.monotonic() - final.started
    print(f"3. final uninterrupted attempt: exit {final.returncode} after {final_seconds:.1f} s"
          + "".join(f"\n   | {line}" for _, line in final.lines if line.startswith("[xai]")))

    # 4-5. compare and check
    comparison = compare_trees(ref, got)
    problems = []
    if final.returncode != 0:
        problems.append(f"final attempt exited {final.returncode}")
    problems += [f"reference: {p}" for p in check_run(ref, None)]
    problems += [f"killed run: {p}" for p in check_run(got, n_items)]
    problems += comparison.digest_errors

    _print_normalization(comparison)

    # 6. summary
    killed = [a for a in attempts if a.killed_at is not None]
    phases = _phase_counts(attempts)
    total = time.monotonic() - t0
    print("\n=== summary")
    print(f"reference run:       {duration:.1f} s ({n_items} items, {args.images} images)")
    print(f"kills:               {len(killed)} in {len(attempts)} attempts (the others "
          f"finished before their kill moment); process groups not gone 5 s after SIGKILL: "
          f"{survivors}")
    print("kill moments (s):    " + ", ".join(f"{a.killed_at:.2f}" for a in killed))
    before_model = sum(1 for a in killed if a.phase in PHASES[:2])
    print(f"before the model was loaded / any output written: {before_model}; during the run: "
          f"{len(killed) - before_model}")
    for phase in (p for p in PHASES if phases.get(p)):
        print(f"   {phases[phase]:2d} x {phase}")
    kinds = ", ".join(f"{n} .{k}" for k, n in sorted(comparison.by_kind.items()))
    print(f"files compared:      {comparison.compared} ({kinds})")
    _print_list("mismatches:          ", comparison.mismatches)
    _print_list("failed checks:       ", problems)
    print(f"total time:          {total:.1f} s")
    summary = {
        "reference_seconds": duration, "items": n_items, "images": args.images,
        "kills": len(killed), "attempts": len(attempts), "survivors": survivors,
        "kill_moments": [a.killed_at for a in killed],
        "phases": phases, "files_compared": comparison.compared,
        "mismatches": comparison.mismatches, "problems": problems, "total_seconds": total,
    }
    (work / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    ok = not comparison.mismatches and not problems
    print("RESULT: " + ("same outputs as the uninterrupted run" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
