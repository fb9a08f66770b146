"""Hardware fingerprint: what produced a result.

Every run record carries ``collect()``'s dict: CPU model, vendor, family, model
number, stepping, ISA flags and cores, RAM, each GPU's name, memory, compute
capability and -- where NVML or ``nvidia-smi`` can be read -- driver, power
limit, clocks and MIG mode; OS; Python, torch (with its CPU capability and BLAS)
and key package versions; thread settings; the project's git commit and whether
the tree was dirty.

``hardware_id(fp)`` hashes only the fields that define the *hardware class*:
everything that changes speed or float rounding, nothing else (``hardware_class``
lists them; ``bench hw`` shows them). Per field, why:

* CPU vendor, family, model number, stepping -- one model string ("AMD EPYC")
  covers generations 3x apart that round floats differently;
* CPU model string and architecture -- the name people know, and the ISA family;
* ISA flags (AVX2, AVX-512, AMX... as /proc/cpuinfo lists them) -- a VM may hide some;
* torch's CPU capability (the kernel set it dispatches to) -- picks the vector code;
* physical and usable cores, torch threads, processes -- the parallelism a run had;
* memory in whole GiB -- a memory class, not the exact total;
* per GPU name, memory (whole GiB), compute capability, power limit, MIG mode,
  and the GPU count -- what decides a GPU's speed and kernels;
* torch major.minor, its BLAS and whether it has oneDNN -- they change CPU
  kernels (a patch release does not).

Other software versions, git state, clocks and drivers never change it, so
leaderboards can compare runs of one ``hardware_id``. ``record_hardware_class``
is the class a stored record is compared under: recomputed from a version-2
fingerprint, ``legacy-<stored id>`` for an older one (whose id lacks the CPU
generation), so the two never pool.

Rules this module keeps:

* no torch import at module level -- ``import harness.run.fingerprint`` stays cheap;
  torch is imported inside ``collect`` only when ``include_torch=True``;
* every probe is wrapped: a probe that fails yields ``None`` for its field,
  never an exception;
* the hostname is not recorded, only ``host_hash`` (12 hex of its sha256);
* memory figures are GiB (2**30 bytes), labelled ``*_gb`` as most tools do.

``python -m harness.run.fingerprint`` prints the fingerprint as JSON.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import os
import platform
import re
import shutil
import socket
import subprocess
import warnings
from pathlib import Path
from typing import Any, Callable, Optional

__all__ = ["collect", "hardware_class", "hardware_id", "record_hardware_class", "class_rows", "summary",
           "FINGERPRINT_VERSION", "LEGACY_PREFIX", "PACKAGES"]

#: Bumped when the layout of the dict or the hardware_id recipe changes.
#: 2: the class holds CPU vendor/family/model/stepping, ISA, threads, torch/BLAS.
FINGERPRINT_VERSION = 2

#: Label prefix of a record whose fingerprint predates version 2.
LEGACY_PREFIX = "legacy-"

#: Distributions whose versions are recorded (``None`` when not installed).
PACKAGES = (
    "torch",
    "numpy",
    "scipy",
    "pandas",
    "pyarrow",
    "pytorch_optimizer",
    "hydra-core",
    "typer",
    "rich",
    "torch_geometric",
    "timm",
    "schedulefree",
    "wandb",
    "submitit",
)

#: Environment variables that change threading / device visibility.
ENV_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "CUDA_VISIBLE_DEVICES",
    "CUDA_DEVICE_ORDER",
)

#: Instruction-set extensions that pick CPU kernels (torch, oneDNN, MKL): x86
#: ``flags`` and ARM ``Features`` names in /proc/cpuinfo. Recorded when present.
ISA_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c",
    "avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16",
    "avx_vnni", "amx_tile", "amx_bf16", "amx_int8",
    "asimd", "asimdhp", "asimddp", "sve", "sve2", "bf16", "i8mm",
)

#: /proc/cpuinfo keys of the CPU's identity: x86 first, then the ARM equivalents.
_CPU_ID_KEYS = {
    "vendor": ("vendor_id", "cpu implementer"),
    "family": ("cpu family", "cpu architecture"),
    "model_number": ("model", "cpu part"),
    "stepping": ("stepping", "cpu revision"),
}

_GIB = float(2**30)
_SUBPROCESS_TIMEOUT_S = 5.0
_NVIDIA_SMI_FIELDS = (
    "name",
    "driver_version",
    "power.limit",
    "clocks.max.sm",
    "clocks.max.mem",
    "mig.mode.current",
    "memory.total",
    "uuid",  # used only to pair NVML rows with torch devices; not recorded
)


# --------------------------------------------------------------------------- helpers


def _safe(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one probe; any exception becomes ``None``."""
    try:
        return fn(*args, **kwargs)
    except Exception:  # noqa: BLE001 - probes must never propagate
        return None


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read()


def _run(cmd: list[str], cwd: Optional[str] = None) -> Optional[str]:
    """stdout of ``cmd`` or ``None`` (missing binary, non-zero exit, timeout...)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["LC_ALL"] = "C"
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=_SUBPROCESS_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        return None
    return proc.stdout


def _clean(text: Any) -> Optional[str]:
    if text is None:
        return None
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = " ".join(str(text).split())
    return text or None


def _gb(n_bytes: Any) -> Optional[float]:
    if n_bytes is None:
        return None
    return round(float(n_bytes) / _GIB, 2)


def _whole_gb(gb: Any) -> Optional[int]:
    """Memory class in whole GiB for ``hardware_id``.

    Rounds *up* (with 0.05 GiB slack): the total a system reports sits a little
    below its installed size (kernel/firmware reservations; a GPU's usable
    total), so rounding up lands on the nominal size and keeps the bucket edge
    far from typical values -- fluctuations of a few hundred MB don't move it.
    """
    if gb is None:
        return None
    try:
        value = float(gb)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(value):
        return None
    return max(0, math.ceil(value - 0.05))


# --------------------------------------------------------------------------- CPU / memory / OS


def _cpuinfo() -> Optional[str]:
    return _read_text("/proc/cpuinfo")


def _cpu_model(cpuinfo: Optional[str]) -> Optional[str]:
    if cpuinfo:
        for key in ("model name", "hardware", "cpu model", "processor"):
            for line in cpuinfo.splitlines():
                name, sep, value = line.partition(":")
                if sep and name.strip().lower() == key:
                    value = _clean(value)
                    # "processor : 0" is an index on x86; only take text values
                    if value and not value.isdigit():
                        return value
    if platform.system() == "Darwin":
        out = _safe(_run, ["sysctl", "-n", "machdep.cpu.brand_string"])
        if _clean(out):
            return _clean(out)
    return _clean(_safe(platform.processor))


def _physical_cores(cpuinfo: Optional[str]) -> Optional[int]:
    # 1) /proc/cpuinfo: unique (physical id, core id) pairs
    if cpuinfo:
        pairs = set()
        phys = core = None
        for line in cpuinfo.splitlines() + [""]:
            name, sep, value = line.partition(":")
            name = name.strip().lower()
            if not line.strip():
                if core is not None:
                    pairs.add((phys, core))
                phys = core = None
            elif name == "physical id":
                phys = value.strip()
            elif name == "core id":
                core = value.strip()
        if pairs:
            return len(pairs)
    # 2) sysfs topology
    base = Path("/sys/devices/system/cpu")
    if base.is_dir():
        pairs = set()
        for topo in base.glob("cpu[0-9]*/topology"):
            pkg = _safe(_read_text, str(topo / "physical_package_id"))
            core = _safe(_read_text, str(topo / "core_id"))
            if core is not None:
                pairs.add(((pkg or "").strip(), core.strip()))
        if pairs:
            return len(pairs)
    # 3) psutil when installed
    try:
        import psutil  # type: ignore[import-not-found]
    except Exception:  # noqa: BLE001
        return None
    n = psutil.cpu_count(logical=False)
    return int(n) if n else None


def _usable_cores() -> Optional[int]:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count()


def _first_processor(cpuinfo: Optional[str]) -> dict[str, str]:
    """``key: value`` pairs of the first processor block, keys lower-cased."""
    fields: dict[str, str] = {}
    for line in (cpuinfo or "").splitlines():
        if not line.strip():
            if fields:
                break
            continue
        name, sep, value = line.partition(":")
        if sep:
            fields.setdefault(name.strip().lower(), value.strip())
    return fields


def _number_or_text(value: Optional[str]) -> Any:
    """``"25"`` -> 25; ARM's hex ids (``"0x41"``) stay text; empty -> None."""
    text = _clean(value)
    return int(text) if text and text.isdigit() else text


def _cpu_identity(cpuinfo: Optional[str]) -> dict:
    first = _first_processor(cpuinfo)
    identity = {field: _number_or_text(next((first[k] for k in keys if k in first), None))
                for field, keys in _CPU_ID_KEYS.items()}
    flags = set((first.get("flags") or first.get("features") or "").split())
    identity["isa_flags"] = [f for f in ISA_FLAGS if f in flags] if flags else None
    return identity


def _cpu() -> dict:
    info = _safe(_cpuinfo)
    identity = _safe(_cpu_identity, info) or {}
    return {
        "model": _safe(_cpu_model, info),
        "vendor": identity.get("vendor"),
        "family": identity.get("family"),
        "model_number": identity.get("model_number"),
        "stepping": identity.get("stepping"),
        "isa_flags": identity.get("isa_flags"),
        "logical_cores": _safe(os.cpu_count),
        "physical_cores": _safe(_physical_cores, info),
        "usable_cores": _safe(_usable_cores),
        "architecture": _clean(_safe(platform.machine)),
    }


def _memory_gb() -> Optional[float]:
    meminfo = _safe(_read_text, "/proc/meminfo")
    if meminfo:
        for line in meminfo.splitlines():
            if line.startswith("MemTotal:"):
                parts = line.split()
                unit = parts[2].lower() if len(parts) > 2 else "kb"
                scale = {"kb": 1024, "mb": 2**20, "gb": 2**30}.get(unit, 1024)
                return _gb(int(parts[1]) * scale)
    return _gb(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def _os() -> dict:
    return {
        "platform": _safe(platform.platform),
        "system": _safe(platform.system),
        "kernel": _safe(platform.release),
    }


def _python() -> dict:
    return {
        "version": _safe(platform.python_version),
        "implementation": _safe(platform.python_implementation),
    }


def _package_version(name: str) -> Optional[str]:
    try:
        return importlib.metadata.version(name)
    except Exception:  # noqa: BLE001 - PackageNotFoundError, broken metadata...
        return None


def _packages() -> dict:
    return {name: _package_version(name) for name in PACKAGES}


def _env() -> dict:
    return {name: _safe(os.environ.get, name) for name in ENV_VARS}


def _host_hash() -> Optional[str]:
    return hashlib.sha256(socket.gethostname().encode("utf-8")).hexdigest()[:12]


# --------------------------------------------------------------------------- git


def _git() -> Optional[dict]:
    """Commit and dirtiness of the checkout that contains this file."""
    if not shutil.which("git"):
        return None
    here = Path(__file__).resolve()
    top = _run(["git", "rev-parse", "--show-toplevel"], cwd=str(here.parent))
    if not top or not top.strip():
        return None
    root = Path(top.strip()).resolve()
    # Installed in some unrelated repository (e.g. a venv inside another checkout)?
    if here.parents[2] != root:
        return None
    sha = _run(["git", "rev-parse", "HEAD"], cwd=str(root))
    status = _run(["git", "status", "--porcelain"], cwd=str(root))
    return {
        "commit": sha.strip() if sha and sha.strip() else None,
        "dirty": None if status is None else bool(status.strip()),
    }


# --------------------------------------------------------------------------- torch / GPUs


def _torch_section(torch: Any) -> dict:
    def cuda_version() -> Optional[str]:
        return torch.version.cuda

    def cudnn_version() -> Optional[int]:
        return torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None

    def cpu_capability() -> Optional[str]:
        return torch.backends.cpu.get_cpu_capability()

    def blas() -> Optional[str]:
        # The BLAS torch was built with (mkl, open, accelerate...): it does the matmuls.
        match = re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())
        return match.group(1) if match else None

    return {
        "version": _safe(lambda: str(torch.__version__)),
        "cuda": _safe(cuda_version),
        "cudnn": _safe(cudnn_version),
        "cuda_available": _safe(torch.cuda.is_available),
        "num_threads": _safe(torch.get_num_threads),
        "num_interop_threads": _safe(torch.get_num_interop_threads),
        "deterministic_algorithms": _safe(torch.are_deterministic_algorithms_enabled),
        "float32_matmul_precision": _safe(torch.get_float32_matmul_precision),
        "mkl_available": _safe(torch.backends.mkl.is_available),
        "mkldnn_available": _safe(torch.backends.mkldnn.is_available),
        "openmp_available": _safe(torch.backends.openmp.is_available),
        "cpu_capability": _safe(cpu_capability),
        "blas": _safe(blas),
    }


def _norm_uuid(uuid: Any) -> Optional[str]:
    text = _clean(uuid)
    if not text:
        return None
    text = text.lower()
    for prefix in ("gpu-", "mig-"):
        if text.startswith(prefix):
            text = text[len(prefix):]
    return text


def _torch_gpus(torch: Any) -> list[dict]:
    if not torch.cuda.is_available():
        return []
    gpus = []
    for i in range(torch.cuda.device_count()):
        props = _safe(torch.cuda.get_device_properties, i)
        if props is None:
            gpus.append({"index": i, "name": None, "memory_gb": None,
                         "compute_capability": None, "multiprocessor_count": None,
                         "_uuid": None})
            continue
        gpus.append({
            "index": i,
            "name": _clean(_safe(getattr, props, "name")),
            "memory_gb": _safe(lambda: _gb(props.total_memory)),
            "compute_capability": _safe(lambda: f"{props.major}.{props.minor}"),
            "multiprocessor_count": _safe(getattr, props, "multi_processor_count"),
            "_uuid": _safe(lambda: _norm_uuid(str(props.uuid))),
        })
    return gpus


def _na(value: Any) -> Optional[str]:
    text = _clean(value)
    if text is None or text.strip("[]").lower() in {"n/a", "not supported", "unknown", "na"}:
        return None
    return text


def _num(value: Any, kind: type = float) -> Any:
    text = _na(value)
    if text is None:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return int(round(number)) if kind is int else number


def _nvml_pynvml() -> Optional[list[dict]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import pynvml  # type: ignore[import-not-found]  # package nvidia-ml-py
        except Exception:  # noqa: BLE001
            return None
    pynvml.nvmlInit()
    try:
        driver = _clean(_safe(pynvml.nvmlSystemGetDriverVersion))
        rows = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)

            def power_w(h: Any = h) -> float:
                return round(pynvml.nvmlDeviceGetPowerManagementLimit(h) / 1000.0, 2)

            def mig(h: Any = h) -> Optional[str]:
                current = pynvml.nvmlDeviceGetMigMode(h)[0]
                return "Enabled" if current == 1 else "Disabled"

            def cc(h: Any = h) -> str:
                major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(h)
                return f"{major}.{minor}"

            rows.append({
                "name": _clean(_safe(pynvml.nvmlDeviceGetName, h)),
                "driver_version": driver,
                "power_limit_w": _safe(power_w),
                "max_sm_clock_mhz": _safe(pynvml.nvmlDeviceGetMaxClockInfo, h, pynvml.NVML_CLOCK_SM),
                "max_mem_clock_mhz": _safe(pynvml.nvmlDeviceGetMaxClockInfo, h, pynvml.NVML_CLOCK_MEM),
                "mig_mode": _safe(mig),
                "memory_gb": _safe(lambda h=h: _gb(pynvml.nvmlDeviceGetMemoryInfo(h).total)),
                "compute_capability": _safe(cc),
                "_uuid": _norm_uuid(_safe(pynvml.nvmlDeviceGetUUID, h)),
            })
        return rows
    finally:
        _safe(pynvml.nvmlShutdown)


def _parse_nvidia_smi(text: str) -> list[dict]:
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split(",")]
        if len(cells) < len(_NVIDIA_SMI_FIELDS):
            continue
        name, driver, power, sm, mem, mig, total, uuid = cells[: len(_NVIDIA_SMI_FIELDS)]
        total_mib = _num(total)
        rows.append({
            "name": _na(name),
            "driver_version": _na(driver),
            "power_limit_w": _num(power),
            "max_sm_clock_mhz": _num(sm, int),
            "max_mem_clock_mhz": _num(mem, int),
            "mig_mode": _na(mig),
            "memory_gb": None if total_mib is None else round(total_mib / 1024.0, 2),
            "compute_capability": None,
            "_uuid": _norm_uuid(_na(uuid)),
        })
    return rows


def _nvml_nvidia_smi() -> Optional[list[dict]]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    out = _run([exe, "--query-gpu=" + ",".join(_NVIDIA_SMI_FIELDS),
                "--format=csv,noheader,nounits"])
    if out is None:
        return None
    return _parse_nvidia_smi(out)


def _nvml_devices() -> Optional[list[dict]]:
    """Per physical GPU (NVML order) driver/power/clocks/MIG, or None if unreadable."""
    rows = _safe(_nvml_pynvml)
    if rows is None:
        rows = _safe(_nvml_nvidia_smi)
    return rows


def _visible(nvml: list[dict]) -> list[dict]:
    """NVML rows filtered by CUDA_VISIBLE_DEVICES (when no torch is consulted)."""
    spec = os.environ.get("CUDA_VISIBLE_DEVICES")
    if spec is None:
        return list(nvml)
    picked = []
    for token in (t.strip() for t in spec.split(",")):
        if not token:
            break
        if token.lstrip("-").isdigit():
            idx = int(token)
            if idx < 0 or idx >= len(nvml):
                break  # CUDA stops at the first invalid ordinal
            picked.append(nvml[idx])
        elif token.lower().startswith("gpu-"):
            want = _norm_uuid(token)
            match = [r for r in nvml if r.get("_uuid") and r["_uuid"].startswith(want or "")]
            if len(match) != 1:
                break
            picked.append(match[0])
        else:  # MIG-... or something we can't map: don't guess
            return list(nvml)
    return picked


_NVML_FIELDS = ("driver_version", "power_limit_w", "max_sm_clock_mhz",
                "max_mem_clock_mhz", "mig_mode")


def _gpus(torch: Any) -> Optional[list[dict]]:
    nvml = _nvml_devices()
    torch_gpus = _safe(_torch_gpus, torch) if torch is not None else None

    if torch_gpus is None:
        if nvml is None:
            return [] if torch is None else None
        gpus = []
        for i, row in enumerate(_visible(nvml)):
            gpus.append({"index": i, "name": row.get("name"), "memory_gb": row.get("memory_gb"),
                         "compute_capability": row.get("compute_capability"),
                         "multiprocessor_count": None,
                         **{k: row.get(k) for k in _NVML_FIELDS}})
        return gpus

    by_uuid = {r["_uuid"]: r for r in (nvml or []) if r.get("_uuid")}
    same_order = (
        nvml is not None
        and len(nvml) == len(torch_gpus)
        and not os.environ.get("CUDA_VISIBLE_DEVICES")
    )
    gpus = []
    for i, dev in enumerate(torch_gpus):
        row = by_uuid.get(dev.get("_uuid") or "")
        if row is None and same_order and nvml[i].get("name") == dev.get("name"):
            row = nvml[i]
        if row is None and nvml and len({r.get("driver_version") for r in nvml}) == 1:
            # a MIG slice or an unmatched device: the driver is still system-wide
            row = {"driver_version": nvml[0].get("driver_version")}
        entry = {k: v for k, v in dev.items() if not k.startswith("_")}
        for key in _NVML_FIELDS:
            entry[key] = (row or {}).get(key)
        if entry["compute_capability"] is None and row is not None:
            entry["compute_capability"] = row.get("compute_capability")
        gpus.append(entry)
    return gpus


# --------------------------------------------------------------------------- public API


def collect(include_torch: bool = True, world_size: int = 1) -> dict:
    """Fingerprint of this process's hardware and software, JSON-serializable.

    ``include_torch=False`` skips importing torch (then ``torch`` is ``None``
    and GPUs come from NVML/nvidia-smi only, when readable). Never raises.
    """
    torch_mod = None
    if include_torch:
        try:
            import torch as torch_mod  # noqa: PLC0415 - deliberately lazy
        except Exception:  # noqa: BLE001
            torch_mod = None

    fp: dict[str, Any] = {
        "fingerprint_version": FINGERPRINT_VERSION,
        "cpu": _safe(_cpu),
        "memory_gb": _safe(_memory_gb),
        "os": _safe(_os),
        "python": _safe(_python),
        "packages": _safe(_packages),
        "torch": _safe(_torch_section, torch_mod) if torch_mod is not None else None,
        "gpus": _safe(_gpus, torch_mod),
        "env": _safe(_env),
        "world_size": world_size,
        "git": _safe(_git),
        "host_hash": _safe(_host_hash),
    }
    fp["hardware_id"] = _safe(hardware_id, fp)
    # Guarantee JSON-serializability even if a probe returned something exotic.
    return json.loads(json.dumps(fp, default=str))


def _mapping(value: Any) -> dict:
    """``value`` when it is a dict, else ``{}``: a stored record may hold anything."""
    return value if isinstance(value, dict) else {}


def _major_minor(version: Any) -> Optional[str]:
    """``"2.13.0+cpu"`` -> ``"2.13"``: a patch release keeps the kernels."""
    match = re.match(r"(\d+)\.(\d+)", str(version or ""))
    return f"{match.group(1)}.{match.group(2)}" if match else None


def _watts(value: Any) -> Optional[int]:
    """Power limit in whole watts: NVML says 700.0, nvidia-smi 700.00."""
    number = _safe(float, value)
    return int(round(number)) if number is not None and math.isfinite(number) else None


def _gpu_class(gpu: Any) -> dict:
    gpu = _mapping(gpu)
    return {
        "name": gpu.get("name"),
        "memory_gb": _whole_gb(gpu.get("memory_gb")),
        "compute_capability": gpu.get("compute_capability"),
        "power_limit_w": _watts(gpu.get("power_limit_w")),
        "mig_mode": gpu.get("mig_mode"),
    }


def hardware_class(fp: dict) -> dict:
    """The fields ``hardware_id`` hashes (the module docstring says why each).

    Without torch (``collect(include_torch=False)``) the CPU capability,
    threads and torch/BLAS fields are ``None``: such an id names no run's class.
    """
    fp = _mapping(fp)
    cpu, torch_info = _mapping(fp.get("cpu")), _mapping(fp.get("torch"))
    raw_gpus = fp.get("gpus") if isinstance(fp.get("gpus"), list) else []
    gpus = sorted((_gpu_class(g) for g in raw_gpus),
                  key=lambda g: json.dumps(g, sort_keys=True, default=str))
    return {
        "v": FINGERPRINT_VERSION,
        "cpu_vendor": cpu.get("vendor"),
        "cpu_family": cpu.get("family"),
        "cpu_model_number": cpu.get("model_number"),
        "cpu_stepping": cpu.get("stepping"),
        "cpu_model": cpu.get("model"),
        "architecture": cpu.get("architecture"),
        "isa_flags": cpu.get("isa_flags"),
        "cpu_capability": torch_info.get("cpu_capability"),
        "physical_cores": cpu.get("physical_cores"),
        "usable_cores": cpu.get("usable_cores"),
        "threads": torch_info.get("num_threads"),
        "processes": _safe(int, fp.get("world_size")) or 1,
        "memory_gb": _whole_gb(fp.get("memory_gb")),
        "torch": _major_minor(torch_info.get("version")),
        "blas": torch_info.get("blas"),
        "onednn": torch_info.get("mkldnn_available"),
        "gpu_count": len(gpus),
        "gpus": gpus,
    }


def hardware_id(fp: dict) -> str:
    """Stable short id of the hardware class: ``"hw-" + 12 hex``.

    The sha256 of ``hardware_class(fp)`` as canonical JSON: software versions
    other than torch major.minor, git state, clocks and drivers never change
    it. Deterministic, and never raises.
    """
    canonical = json.dumps(_safe(hardware_class, fp), sort_keys=True,
                           separators=(",", ":"), default=str)
    return "hw-" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


def record_hardware_class(fp: Any) -> str:
    """The hardware class a stored record is compared under (scoring groups by it).

    A fingerprint of version 2 or later holds every field of the class, so the
    class is recomputed from them. An older one lacks the CPU generation, ISA
    level and threads, so its stored id is kept behind ``legacy-``: it never
    pools with a recomputed class, even where the two ids collide.
    """
    fp = _mapping(fp)
    if (_safe(int, fp.get("fingerprint_version")) or 1) >= 2:
        return hardware_id(fp)
    return LEGACY_PREFIX + str(fp.get("hardware_id") or "unknown")


def _show(value: Any) -> str:
    return "?" if value is None else str(value)


def _gpu_rows(gpus: list[dict]) -> str:
    if not gpus:
        return "none"
    groups: dict[str, int] = {}
    for gpu in gpus:
        label = (f"{_show(gpu['name'])} ({_show(gpu['memory_gb'])} GB, cc {_show(gpu['compute_capability'])}, "
                 f"{_show(gpu['power_limit_w'])} W, MIG {_show(gpu['mig_mode'])})")
        groups[label] = groups.get(label, 0) + 1
    return " + ".join(f"{n}× {label}" if n > 1 else label for label, n in groups.items())


def class_rows(fp: dict) -> list[tuple[str, str]]:
    """``hardware_class(fp)`` as (label, value) lines for people (``bench hw``)."""
    cls = hardware_class(fp)
    flags = cls["isa_flags"]
    onednn = {True: "available", False: "absent"}.get(cls["onednn"], "?")
    return [
        ("cpu", f"{_show(cls['cpu_model'])} · vendor {_show(cls['cpu_vendor'])} · {_show(cls['architecture'])}"),
        ("family / model / stepping",
         " / ".join(_show(cls[k]) for k in ("cpu_family", "cpu_model_number", "cpu_stepping"))),
        ("ISA level", f"{_show(cls['cpu_capability'])} (torch dispatch) · flags "
                      + (" ".join(map(str, flags)) if isinstance(flags, list) else "?")),
        ("cores / threads", f"{_show(cls['physical_cores'])} physical, {_show(cls['usable_cores'])} usable · "
                            f"{_show(cls['threads'])} torch threads · {cls['processes']} process(es)"),
        ("memory class", f"{_show(cls['memory_gb'])} GB"),
        ("torch / backend", f"torch {_show(cls['torch'])} · BLAS {_show(cls['blas'])} · oneDNN {onednn}"),
        ("GPUs", _gpu_rows(cls["gpus"])),
    ]


def summary(fp: dict) -> str:
    """One human line, e.g. ``AMD EPYC (2 cores, 24 GB) · no GPU · torch 2.13.0+cpu · hw-…``."""
    fp = fp or {}
    cpu = fp.get("cpu") or {}
    cores = cpu.get("usable_cores") or cpu.get("logical_cores")
    mem = _whole_gb(fp.get("memory_gb"))
    details = ", ".join(p for p in (
        f"{cores} cores" if cores else None,
        f"{mem} GB" if mem is not None else None,
    ) if p)
    cpu_part = cpu.get("model") or cpu.get("architecture") or "unknown CPU"
    if details:
        cpu_part += f" ({details})"

    gpus = fp.get("gpus")
    if gpus is None:
        gpu_part = "GPU unknown"
    elif not gpus:
        gpu_part = "no GPU"
    else:
        groups: dict[str, int] = {}
        for gpu in gpus:
            gpu = gpu or {}
            label = gpu.get("name") or "unknown GPU"
            extra = [f"{_whole_gb(gpu['memory_gb'])} GB"] if gpu.get("memory_gb") is not None else []
            if gpu.get("mig_mode") == "Enabled":
                extra.append("MIG")
            if extra:
                label += f" ({', '.join(extra)})"
            groups[label] = groups.get(label, 0) + 1
        gpu_part = " + ".join(f"{n}× {label}" if n > 1 else label for label, n in groups.items())
        driver = next((g.get("driver_version") for g in gpus if g and g.get("driver_version")), None)
        if driver:
            gpu_part += f", driver {driver}"

    torch_info = fp.get("torch") or {}
    torch_version = torch_info.get("version") or (fp.get("packages") or {}).get("torch")
    torch_part = f"torch {torch_version}" if torch_version else "no torch"
    if torch_info.get("cuda"):
        torch_part += f" (CUDA {torch_info['cuda']})"

    hw = fp.get("hardware_id") or hardware_id(fp)
    return " · ".join((cpu_part, gpu_part, torch_part, hw))


if __name__ == "__main__":  # pragma: no cover - convenience
    _fp = collect()
    print(json.dumps(_fp, indent=2, sort_keys=True))
    print(summary(_fp))
