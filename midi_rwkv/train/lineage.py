"""A training lineage that survives machines: one committed folder per lineage, continued on any machine.

``midi-rwkv save-lineage RUN --name NAME`` writes ``lineage/NAME/`` (replaced as a whole, at most 32 MB)::

    model.pth  model.json  model.tokenizer.json   the latest weights in bf16 + sidecar + tokenizer: a model file
                                                  ``midi-rwkv infill --model lineage/NAME/model.pth`` opens
    config.json                                   the resolved training settings of the run saved last
    loss.csv                                      the whole loss history, every continuation appended (global steps)
    manifest.json                                 the run's data manifest, when small
    state.json                                    step, schedule position, tokens seen, weights sha256, segments

``midi-rwkv train --out OUT --resume-from lineage/NAME`` then starts a new run from those weights with a fresh
optimiser, warmed up over ``--warmup-steps``, on the same cosine schedule from the stored step to the stored total;
steps, checkpoint names and loss.csv count on from the lineage's step, and the data seed is the lineage's seed plus
its step, so a continuation draws new examples. Each run records where it started in ``OUT/origin.json``
(``midi_rwkv.train.pretrain.run_origin``: training itself never imports this module).
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import tempfile
import uuid
from datetime import datetime, timezone
from pathlib import Path

from midi_rwkv.io import atomic_write_json, file_sha256
from midi_rwkv.model import PRESETS, RWKVConfig
from midi_rwkv.train.callbacks import read_loss_csv, write_loss_csv
from midi_rwkv.train.export import export
from midi_rwkv.train.module import OptimConfig, schedule_multiplier
from midi_rwkv.train.pretrain import ORIGIN, LineageError, describe, last_checkpoint, same_architecture
from midi_rwkv.train.train_config import TrainConfig

FORMAT = "midi-rwkv-lineage/1"
MAX_BYTES = 32_000_000  # one commit of a lineage: weights, tokenizer, history
WEIGHTS, TOKENIZER = "model.pth", "model.tokenizer.json"  # export's names: the folder is also a model
MANIFEST_MAX_BYTES = 1 << 20  # a larger data manifest (one row per file) stays in the run
# settings a continuation takes from the lineage unless given; the rest are the machine's (devices, threads, ...)
INHERITED = ("data", "preset", "ctx_len", "batch_size", "steps", "lr_init", "lr_final", "weight_decay", "grad_clip",
             "val_every", "val_batches", "ckpt_every", "length_groups", "seed", "layout", "examples")


# ---- reading a lineage ------------------------------------------------------------------


def read_lineage(folder: str | Path) -> dict:
    """The lineage's ``state.json``, after checking that every file it needs is there."""
    folder = Path(folder)
    state_file = folder / "state.json"
    if not state_file.is_file():
        raise LineageError(f"{folder}: not a lineage (no state.json); write one with midi-rwkv save-lineage")
    try:
        state = json.loads(state_file.read_text())
    except json.JSONDecodeError as err:
        raise LineageError(f"{state_file}: unreadable ({err})") from None
    if state.get("format") != FORMAT:
        raise LineageError(f"{state_file}: not a {FORMAT} state")
    for name in (WEIGHTS, "model.json", TOKENIZER, "config.json"):
        if not (folder / name).is_file():
            raise LineageError(f"{folder}: {name} is missing")
    return state


def lineage_architecture(folder: Path) -> RWKVConfig:
    return RWKVConfig.from_dict(json.loads((folder / "model.json").read_text())["model"])


def continue_config(folder: str | Path, given: dict) -> TrainConfig:
    """The settings of a run that continues the lineage in ``folder``: the lineage's recorded ones (``INHERITED``),
    its tokenizer, and ``given`` (the options set on the command line) over them.

    Raises:
        LineageError: a given preset or tokenizer that does not match the lineage's, ``--init`` as well, or a
            schedule the lineage has already finished.
    """
    folder = Path(folder)
    state = read_lineage(folder)
    recorded = json.loads((folder / "config.json").read_text())
    architecture = lineage_architecture(folder)
    if given.get("init"):
        raise LineageError("--init and --resume-from both give the starting weights: choose one")
    if "preset" in given:
        asked = PRESETS[given["preset"]](vocab_size=architecture.vocab_size) if given["preset"] in PRESETS else None
        if asked is None or not same_architecture(asked, architecture):
            raise LineageError(f"--preset {given['preset']} does not match {folder}'s model ({describe(architecture)},"
                               f" preset {recorded.get('preset')}): leave --preset out to continue it")
    if given.get("tokenizer") and file_sha256(given["tokenizer"]) != state["tokenizer"]["sha256"]:
        raise LineageError(f"--tokenizer {given['tokenizer']} is not {folder}'s tokenizer: leave --tokenizer out")
    settings = {k: recorded[k] for k in INHERITED if k in recorded}
    settings |= {"tokenizer": str(folder / TOKENIZER), "resume_from": str(folder)} | given
    steps = settings.get("steps", state["total_steps"])
    if state["step"] >= steps:
        raise LineageError(f"{folder} is at step {state['step']} of its {steps}-step schedule: give --steps above "
                           f"{state['step']} to train it further (the cosine then spans the new total)")
    return TrainConfig(**settings)


# ---- saving a run as a lineage ----------------------------------------------------------


def save_lineage(run_dir: str | Path, lineage_dir: str | Path, replace: bool = False) -> Path:
    """Write the latest checkpoint of the run in ``run_dir`` as the lineage ``lineage_dir``, replacing it whole.

    Everything is written into a hidden temporary folder beside it, checked against ``MAX_BYTES``, then swapped in:
    a failure leaves the previous lineage as it was and no partial folder.

    Args:
        replace: start the lineage over with this run even when the run does not continue it (by default that is
            an error, so that one lineage's history is never silently replaced by another's).
    """
    run, lineage = Path(run_dir), Path(lineage_dir)
    checkpoint, step = last_checkpoint(run / "checkpoints")
    if not (run / "config.json").is_file() or checkpoint is None:
        raise LineageError(f"{run}: not a training run with checkpoints")
    origin = _origin_of(run)
    previous = read_lineage(lineage) if lineage.exists() else None  # never replaces a folder that is not one
    previous = None if replace else previous
    segments, history = _continuity(run, origin, previous, lineage)
    lineage.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{lineage.name}.", suffix=".tmp", dir=lineage.parent))
    try:
        umask = os.umask(0o22)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's folders are private; a lineage is for everyone who clones it
        state = _write_folder(run, tmp, step, origin, segments, history)
        size = sum(p.stat().st_size for p in tmp.iterdir())
        if size > MAX_BYTES:
            raise LineageError(f"{lineage}: {size / 1e6:.1f} MB, over the {MAX_BYTES / 1e6:g} MB a lineage may "
                               f"commit (weights {state['weights']['bytes'] / 1e6:.1f} MB): nothing written")
        _replace_folder(tmp, lineage)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return lineage


def _origin_of(run: Path) -> dict:
    """The run's origin.json; for runs from before lineages, a new run identified by its folder."""
    path = run / ORIGIN
    if path.is_file():
        return json.loads(path.read_text())
    config = json.loads((run / "config.json").read_text())
    return {"run_id": f"path:{run.resolve()}", "lineage": None, "start_step": 0, "weights_sha256": None,
            "data_seed": config["seed"], "tokens_start": [0, 0],
            "schedule_warmup_steps": config["warmup_steps"], "rewarmup_steps": 0}


def _continuity(run: Path, origin: dict, previous: dict | None, lineage: Path) -> tuple[list[dict], Path | None]:
    """(the segments before this run's, the lineage loss.csv whose earlier rows to keep) when saving ``run``.

    The run either continues the lineage's current weights (a new segment) or is the run saved there last, now
    further on (its segment is replaced)."""
    if previous is None:
        return [], None
    segments = previous["segments"]
    if origin.get("weights_sha256") and origin["weights_sha256"] == previous["weights"]["sha256"]:
        return segments, lineage / "loss.csv"
    if segments and segments[-1]["run_id"] == origin["run_id"]:
        return segments[:-1], lineage / "loss.csv"
    raise LineageError(f"{run} does not continue {lineage} (at step {previous['step']}, weights "
                       f"{previous['weights']['sha256'][:12]}): choose another --name, or --replace to start it over")


def _write_folder(run: Path, folder: Path, step: int, origin: dict, segments: list[dict],
                  history: Path | None) -> dict:
    """Weights, tokenizer, config, loss history and state.json of ``run`` at ``step`` into ``folder``."""
    export(run, step, folder / WEIGHTS)  # bf16 + sidecar + model.tokenizer.json
    config = json.loads((run / "config.json").read_text())
    shutil.copyfile(run / "config.json", folder / "config.json")
    manifest = run / "manifest.json"
    if manifest.is_file() and manifest.stat().st_size <= MANIFEST_MAX_BYTES:
        shutil.copyfile(manifest, folder / "manifest.json")
    rows = [r for r in read_loss_csv(run / "loss.csv") if r["step"] <= step]  # none past the weights
    first = rows[0]["step"] if rows else step + 1
    rows = [r for r in read_loss_csv(history) if r["step"] < first] + rows if history else rows
    write_loss_csv(folder / "loss.csv", rows)
    schedule = OptimConfig(config["lr_init"], config["lr_final"], origin["schedule_warmup_steps"], config["steps"])
    segment = {"run_id": origin["run_id"], "run": str(run), "from_step": origin["start_step"], "to_step": step,
               "data_seed": origin["data_seed"], "rewarmup_steps": origin["rewarmup_steps"],
               "parent_sha256": origin.get("weights_sha256"),
               "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    state = {
        "format": FORMAT, "step": step, "total_steps": config["steps"],
        "schedule": {"lr_init": schedule.lr_init, "lr_final": schedule.lr_final,
                     "warmup_steps": schedule.warmup_steps, "total_steps": schedule.total_steps,
                     "progress": round(step / schedule.total_steps, 6),
                     "lr": schedule.lr_init * schedule_multiplier(step, schedule)},
        "tokens": tokens_seen(rows, step, origin),
        "weights": {"file": WEIGHTS, "dtype": "bfloat16", "sha256": file_sha256(folder / WEIGHTS),
                    "bytes": (folder / WEIGHTS).stat().st_size},
        "tokenizer": {"file": TOKENIZER, "sha256": file_sha256(folder / TOKENIZER)},
        "preset": config["preset"], "layout": config.get("layout", "file-order"), "data": config["data"],
        "seed": config["seed"], "data_seed": origin["data_seed"],
        "segments": segments + [segment],
    }
    atomic_write_json(folder / "state.json", state)
    return state


def tokens_seen(rows: list[dict], step: int, origin: dict) -> dict:
    """Positions trained on up to ``step``, computed (padding included) and real: loss.csv's running counts
    (``exact`` when every row has one, up to ``step``; steps after the last row at its mean tokens per step), else
    estimated from the rows' rates as the mean tokens of a timed step times the steps."""
    counted = [r for r in rows if r.get("tokens") is not None and r["step"] is not None and r["step"] <= step]
    if counted:
        last = counted[-1]
        computed, real = int(last["tokens"]), int(last.get("real_tokens") or 0)
        if last["step"] < step:  # the history ends before the checkpoint: the steps after at the history's mean
            computed += round(computed / last["step"] * (step - last["step"]))
            real += round(real / last["step"] * (step - last["step"]))
        return {"computed": computed, "real": real,
                "exact": len(counted) == len(rows) and rows[0]["step"] == 1 and last["step"] == step}
    timed = [r for r in rows if r.get("tok_s") and r.get("step_s")]
    if not timed:
        computed, real = origin.get("tokens_start", [None, None])
        return {"computed": computed or None, "real": real or None, "exact": False}
    per_step = sum(r["tok_s"] * r["step_s"] for r in timed) / len(timed)
    real = sum((r.get("real_tok_s") or 0) * r["step_s"] for r in timed) / len(timed)
    return {"computed": round(per_step * step), "real": round(real * step), "exact": False}


def _replace_folder(new: Path, target: Path) -> None:
    """Put folder ``new`` at ``target``: one atomic exchange where the system has it, else two renames."""
    if not target.exists():
        os.rename(new, target)
    elif _exchange(new, target):
        shutil.rmtree(new)  # now the previous lineage
    else:
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}.tmp")
        os.rename(target, old)
        try:
            os.rename(new, target)
        except BaseException:
            os.rename(old, target)
            raise
        shutil.rmtree(old)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 with RENAME_EXCHANGE); False where that is not available."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        at_fdcwd, rename_exchange = -100, 2
        return libc.renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0
    except (OSError, AttributeError):
        return False


def check_name(name: str) -> str:
    """A lineage's name: one folder name, letters, digits, '.', '_' and '-'."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise LineageError(f"lineage name {name!r}: use letters, digits, '.', '_' and '-' (one folder name)")
    return name

