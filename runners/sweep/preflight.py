"""Checks a sweep must pass before any Ray folder or MLflow run exists (`selab validate`, and the
start of `selab run` and `selab resume`, right after they take the sweep's lock). The checks
create nothing: no folder, no MLflow store, no Ray instance.

Each check answers in seconds and turns a problem into a ConfigError naming the spec field: the
data is there and readable, every distinct network runs a forward pass at the data's real
input shape, no combination of a search space fails to build, the cluster can ever grant the
resources a trial asks for, the tracking store answers, and the storage folder is writable.
"""

from __future__ import annotations

import itertools
import os
import random
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runners import compat
from runners.spec.points import (
    KNOWN_SHAPES,
    Point,
    TrialSettings,
    fixed_settings,
    format_value,
    resolve_trial,
    stage_masks,
    validate,
)
from runners.spec.sweep import ChoiceDim, FloatDim, IntDim, MaskDim, SweepSpec
from runners.storage.paths import (
    SWEEP_META_FILE,
    SWEEP_SPEC_FILE,
    SWEEP_START_FILE,
    SweepFolder,
    check_remote_storage,
    is_uri,
    shell_arg,
    with_absolute_paths,
)
from runners.storage.sweep_lock import LOCK_FILE
from runners.tracking.store import choose_tracking_uri
from runners.trial.data.load import inspect_dataset
from runners.trial.data.splits import DatasetInfo
from search_space.errors import ConfigError
from search_space.identity_path import identity_path_note

TRACKING_TIMEOUT_S = 5.0
MAX_COMBINATIONS = 4096  # search-space combinations checked; a seeded sample beyond that
# What a start killed before its folder became a sweep leaves: a folder `selab run` may use.
START_REMNANTS = {LOCK_FILE, SWEEP_SPEC_FILE}


@dataclass
class Checked:
    """A sweep that passed every check: the spec with absolute paths and what was found."""

    spec: SweepSpec
    points: list[Point]
    dataset: DatasetInfo
    tracking_uri: str
    folder: SweepFolder
    nodes: list[dict[str, float]]  # CPU/GPU of each node of the cluster the trials run on
    # What is worth knowing but not an error, e.g. search_space.identity_path's note.
    notes: list[str] = field(default_factory=list)


def preflight(
    spec: SweepSpec,
    *,
    address: str | None = None,
    tracking_uri: str | None = None,
    storage: str | None = None,
    folder_must_be_free: bool = True,
    overwrite: bool = False,
) -> Checked:
    """Run every check; returns the spec as the trials must see it (absolute paths, the
    dataset's shape filled into `arch`)."""
    spec = with_absolute_paths(spec, storage)
    folder = SweepFolder(spec.storage, spec.name)
    errors: list[str] = []
    # Independent checks: every problem is reported at once, not one per attempt.
    uri = _collect(errors, check_tracking, choose_tracking_uri(tracking_uri, spec.tracking.uri))
    _collect(errors, check_outside_job_copy, spec.storage, uri)
    _collect(
        errors,
        check_storage,
        folder,
        must_be_free=folder_must_be_free,
        overwrite=overwrite,
        address=address,
    )
    nodes = _collect(errors, check_resources, spec, address)
    dataset = _collect(errors, check_data, spec)
    points: list[Point] | None = None
    if dataset is not None or spec.data.name in KNOWN_SHAPES:  # the networks need its shape
        points = _collect(errors, validate, spec)
    labelled = None
    if points is not None:
        labelled = _collect(errors, _settings_to_build, spec, points)
        if labelled:
            _collect(errors, check_forward, [s for _, s in labelled], spec.data.name)
    if errors:
        raise ConfigError("\n\n".join(errors))
    return Checked(
        _with_data_shape(spec, dataset),
        points,
        dataset,
        uri,
        folder,
        nodes,
        identity_notes(labelled or []),
    )


def identity_notes(labelled: list[tuple[str, TrialSettings]]) -> list[str]:
    """search_space.identity_path's note for every network of the sweep that needs one, each
    text once; prefixed by the points it concerns when the fixed spec does not."""
    concerns: dict[str, list[str]] = {}
    for label, settings in labelled:
        if note := identity_path_note(settings.arch):
            concerns.setdefault(note, []).append(label)
    return [
        note if FIXED in labels else f"{', '.join(labels)}: {note}"
        for note, labels in concerns.items()
    ]


def _collect(errors: list[str], check: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return check(*args, **kwargs)
    except ConfigError as err:
        errors.append(str(err))
        return None


# ----------------------------------------------------------------------------- data


def check_data(spec: SweepSpec) -> DatasetInfo:
    """The files are there and readable (ConfigError naming data.* otherwise), read now."""
    return inspect_dataset(spec.data, fresh=True)


def _with_data_shape(spec: SweepSpec, info: DatasetInfo) -> SweepSpec:
    """Fill arch.num_classes/in_channels/input_size from the dataset once, in the driver, so
    that trials do not inspect the files again; not when a point varies the data."""
    if any(key.startswith("data.") for key in spec.search.varied_keys):
        return spec
    arch = {
        "num_classes": info.num_classes,
        "in_channels": info.in_channels,
        "input_size": info.image_size,
        **spec.arch,
    }
    return spec.model_copy(update={"arch": arch})


# ----------------------------------------------------------------------------- networks


FIXED = "the fixed spec"


def _settings_to_build(spec: SweepSpec, points: list[Point]) -> list[tuple[str, TrialSettings]]:
    """(a label, the settings) of the fixed spec, every grid point, or every search
    combination (numeric extremes)."""
    if spec.is_grid:
        return [(FIXED, fixed_settings(spec))] + [
            (f"grid point {p.label}", resolve_trial(spec, p.overrides, spec.seeds[0]))
            for p in points
        ]
    return [(FIXED, fixed_settings(spec))] + check_search_combinations(spec)


def check_search_combinations(spec: SweepSpec) -> list[tuple[str, TrialSettings]]:
    """Every combination of the space's categorical values with the numeric bounds must build
    (each dimension may be valid alone and a pair not: after_3x3 with a basic-block depth).
    Beyond MAX_COMBINATIONS, a seeded sample of them."""
    keys = list(spec.search.space)
    values = [_dimension_values(spec, key, dim) for key, dim in spec.search.space.items()]
    total = 1
    for v in values:
        total *= len(v)
    if total <= MAX_COMBINATIONS:
        combos: Any = itertools.product(*values)
    else:
        rng = random.Random(0)
        combos = ([rng.choice(v) for v in values] for _ in range(MAX_COMBINATIONS))
    settings = []
    for combo in combos:
        overrides = dict(zip(keys, combo, strict=True))
        shown = ", ".join(f"{k}={format_value(v)}" for k, v in overrides.items())
        try:
            settings.append(
                (f"search combination {shown}", resolve_trial(spec, overrides, spec.seeds[0]))
            )
        except ConfigError as err:
            raise ConfigError(
                f"search.space: the combination {shown} cannot build, although each value is "
                f"valid alone:\n{err}\nRemove one of the values, or split the search into "
                f"specs whose combinations all build."
            ) from None
    return settings


def _dimension_values(spec: SweepSpec, key: str, dim: Any) -> list[Any]:
    if isinstance(dim, ChoiceDim):
        return list(dim.choice)
    if isinstance(dim, (IntDim, FloatDim)):
        return list(dim.bounds)
    if isinstance(dim, MaskDim):
        return stage_masks(fixed_settings(spec).arch.num_stages)
    raise AssertionError(dim)


def check_forward(settings: list[TrialSettings], dataset: str) -> None:
    """A forward pass of each distinct network on the meta device (shapes only, no memory),
    at the dataset's input shape."""
    import torch

    from search_space import build_model

    seen: set[str] = set()
    for s in settings:
        arch = s.arch
        # What changes shapes or ops: SE widths and masks are checked by the config already.
        key = arch.model_dump_json(
            include={
                "backbone": True,
                "depth": True,
                "num_classes": True,
                "in_channels": True,
                "input_size": True,
                "se": {"enabled", "squeeze", "placement"},
            }
        )
        if key in seen:
            continue
        seen.add(key)
        shape = (2, arch.in_channels, arch.input_size, arch.input_size)
        try:
            with torch.device("meta"):
                model = build_model(arch).eval()
                model(torch.empty(shape))
        except Exception as err:  # noqa: BLE001 - any failure is this network on this data
            raise ConfigError(
                f"arch: {arch.name} cannot run on {dataset}'s {arch.in_channels}x"
                f"{arch.input_size}x{arch.input_size} inputs: {type(err).__name__}: {err}.\n"
                "Choose a backbone made for this input size (e.g. cifar_resnet for 8-32 px), "
                "or a dataset with larger images (data.image_size for imagefolder/synthetic)."
            ) from None


# ----------------------------------------------------------------------------- resources


def cluster_nodes(address: str | None) -> tuple[list[dict[str, float]], str]:
    """(CPU and GPU of each alive node, a description) of the Ray cluster the trials will use:
    the one this process is connected to, the one at `address`, or this machine (without
    starting Ray)."""
    import ray

    address = address or os.environ.get("RAY_ADDRESS")
    if not ray.is_initialized() and address:
        from runners.sweep.cluster import connect_ray

        connect_ray(address)
    if ray.is_initialized():
        nodes = [
            {"CPU": n["Resources"].get("CPU", 0.0), "GPU": n["Resources"].get("GPU", 0.0)}
            for n in ray.nodes()
            if n.get("Alive")
        ]
        return nodes, f"the Ray cluster at {address or 'this process'}"
    import torch

    local = {"CPU": float(os.cpu_count() or 1), "GPU": float(torch.cuda.device_count())}
    return [local], "this machine (a local Ray instance)"


def check_resources(spec: SweepSpec, address: str | None) -> list[dict[str, float]]:
    """Some node must have the CPUs and GPUs one trial asks for, else trials stay PENDING."""
    cpus, gpus = spec.resources.cpus_per_trial, spec.resources.gpus_per_trial
    nodes, where = cluster_nodes(address)
    if any(n["CPU"] >= cpus and n["GPU"] >= gpus for n in nodes):
        return nodes
    has = (
        "; ".join(
            f"node {i + 1}: {n['CPU']:g} CPUs, {n['GPU']:g} GPUs" for i, n in enumerate(nodes)
        )
        or "no alive node"
    )
    if gpus > 0 and not any(n["GPU"] >= gpus for n in nodes):
        field, fix = (
            "resources.gpus_per_trial",
            (
                "set resources.gpus_per_trial: 0 to train on CPUs "
                "(selab run SPEC --set resources.gpus_per_trial=0), or run on a machine or cluster "
                "(--address) with a GPU"
            ),
        )
        asked = f"{gpus:g} GPU(s) per trial"
    else:
        most = max((n["CPU"] for n in nodes), default=0)
        field, fix = "resources.cpus_per_trial", f"set resources.cpus_per_trial to at most {most:g}"
        asked = f"{cpus:g} CPUs per trial"
    raise ConfigError(
        f"{field}: a trial asks for {asked}, which no node of {where} has ({has}); its trials "
        f"would wait forever. {fix[0].upper()}{fix[1:]}."
    )


# ----------------------------------------------------------------------------- tracking, storage


def check_tracking(uri: str) -> str:
    """The MLflow store can be used: a known scheme, a server that answers, a writable folder."""
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    where = f"tracking.uri (or --tracking-uri, $MLFLOW_TRACKING_URI): {uri}"
    if scheme in ("http", "https"):
        _probe_server(uri, where)
    elif scheme in ("sqlite", "file") or not scheme:
        path = uri.split(":///", 1)[1] if ":///" in uri else uri
        target = Path("/" + path.lstrip("/")) if scheme else Path(path)
        _check_writable(target.parent if scheme == "sqlite" else target, where)
        if scheme == "sqlite" and target.exists() and not target.is_file():
            raise ConfigError(f"{where}: {target} exists and is not a SQLite file")
    else:
        _check_scheme(uri, where)
    return uri


def check_outside_job_copy(storage: str, tracking_uri: str | None) -> None:
    """In a `ray job submit` job the working dir is a temporary copy on the head, deleted with
    the job: storage or a local MLflow store inside it would vanish with the results."""
    from runners.sweep.cluster import job_working_dir

    copy = job_working_dir()
    if copy is None:
        return
    outputs = {"storage (or --storage)": None if is_uri(storage) else Path(storage)}
    if tracking_uri and _local_store_path(tracking_uri) is not None:
        outputs["tracking.uri (or --tracking-uri)"] = _local_store_path(tracking_uri)
    inside = [
        f"{field}: {path}"
        for field, path in outputs.items()
        if path is not None and path.resolve().is_relative_to(copy)
    ]
    if inside:
        raise ConfigError(
            "\n".join(inside) + f"\nis inside the job's working dir ({copy}), a temporary copy "
            "that Ray deletes when the job ends. Give absolute paths that the nodes share "
            "(--storage /shared/selab_runs) and an http:// tracking server."
        )


def _local_store_path(uri: str) -> Path | None:
    """The file or folder of a sqlite:, file: or plain-path MLflow store; None for a server."""
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme not in ("sqlite", "file", ""):
        return None
    path = uri.split(":///", 1)[1] if ":///" in uri else uri
    return Path("/" + path.lstrip("/")) if scheme else Path(path)


def _probe_server(uri: str, where: str) -> None:
    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=TRACKING_TIMEOUT_S).close()
    except urllib.error.HTTPError:
        return  # it answered
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise ConfigError(
            f"{where} does not answer within {TRACKING_TIMEOUT_S:g} s ({reason}). Start the "
            "MLflow server, or use a local store such as sqlite:///mlflow.db."
        ) from None


def _check_scheme(uri: str, where: str) -> None:
    if not compat.has_tracking_store(uri):
        raise ConfigError(
            f"{where}: unknown scheme; MLflow stores are "
            f"{', '.join(s for s in compat.tracking_store_schemes() if s)} "
            "(e.g. sqlite:///mlflow.db, http://host:5000, a folder)"
        )


def _check_writable(path: Path, where: str) -> None:
    """`path` is a folder we can write in, or can be created as one."""
    path = path.expanduser().absolute()
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is None or not existing.is_dir():
        raise ConfigError(f"{where}: {existing} is a file, so {path} cannot be a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{where}: {existing} is not writable")


def check_storage(
    folder: SweepFolder, *, must_be_free: bool, overwrite: bool, address: str | None = None
) -> None:
    """The storage folder (or bucket) can be written; the sweep's own folder is free, or
    --overwrite may remove it because it is a selab sweep."""
    where = f"storage (or --storage): {folder.storage}"
    if not is_uri(folder.storage):
        _check_writable(Path(folder.storage), where)
    else:
        if (address or os.environ.get("RAY_ADDRESS", "")).startswith("ray://"):
            # Tune's controller, and with it the journal's writer, runs on the head then.
            raise ConfigError(
                f"{where}: storage behind a URI needs the driver on a node of the cluster "
                "(--address head:6379), not through Ray Client (ray://); or use a folder "
                "that every node and the driver see"
            )
        check_remote_storage(folder.storage, where)
    try:
        if not must_be_free or not folder.exists():
            return
        if not folder.is_sweep() and set(folder.entries()) <= START_REMNANTS:
            return  # the lock this driver holds, a spec a killed start wrote: no sweep yet
    except OSError as err:  # a bucket that cannot be reached, bad credentials
        raise ConfigError(f"{where}: cannot be reached ({err})") from None
    if not folder.is_sweep():
        raise ConfigError(
            f"{where}: {folder} exists and is not a selab sweep (it has no {SWEEP_META_FILE} or "
            f"{SWEEP_START_FILE}); nothing "
            "is removed. Choose another storage folder or sweep name."
        )
    if not overwrite:
        raise ConfigError(
            f"sweep {folder.name!r} already has a Ray folder at {folder}.\n"
            f"Continue it with `selab resume {folder.name} --storage "
            f"{shell_arg(folder.storage)}`, or start over with `selab run ... --overwrite` (a "
            "new MLflow parent run)."
        )
