"""Fast tests for harness/run/fingerprint.py (no GPU needed; GPU paths are faked)."""

from __future__ import annotations

import builtins
import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.run import fingerprint as fpmod

ROOT = Path(__file__).resolve().parents[1]

TOP_KEYS = {
    "fingerprint_version", "cpu", "memory_gb", "os", "python", "packages", "torch",
    "gpus", "env", "world_size", "git", "host_hash", "hardware_id",
}


@pytest.fixture(scope="module")
def fp() -> dict:
    return fpmod.collect()


def _gpu(**over) -> dict:
    gpu = {
        "index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_gb": 79.19,
        "compute_capability": "9.0", "multiprocessor_count": 132,
        "driver_version": "550.54.15", "power_limit_w": 700.0,
        "max_sm_clock_mhz": 1980, "max_mem_clock_mhz": 2619, "mig_mode": "Disabled",
    }
    gpu.update(over)
    return gpu


# --------------------------------------------------------------------------- collect()


def test_collect_is_json_serializable_with_documented_keys(fp):
    assert TOP_KEYS <= set(fp)
    assert json.loads(json.dumps(fp)) == fp
    assert set(fp["cpu"]) >= {"model", "vendor", "family", "model_number", "stepping", "isa_flags",
                              "logical_cores", "physical_cores", "usable_cores", "architecture"}
    assert fp["cpu"]["logical_cores"] == os.cpu_count()
    if hasattr(os, "sched_getaffinity"):
        assert fp["cpu"]["usable_cores"] == len(os.sched_getaffinity(0))
    assert isinstance(fp["memory_gb"], float) and fp["memory_gb"] > 0
    assert set(fp["os"]) >= {"platform", "kernel"}
    assert set(fp["python"]) == {"version", "implementation"}
    assert set(fp["packages"]) >= {"torch", "numpy", "scipy", "pandas", "pytorch_optimizer",
                                   "hydra-core", "typer", "rich", "torch_geometric", "timm",
                                   "schedulefree", "wandb", "submitit"}
    assert fp["packages"]["numpy"]  # installed in the project venv
    assert set(fp["torch"]) >= {"version", "cuda", "cudnn", "num_threads", "num_interop_threads",
                                "deterministic_algorithms", "mkl_available", "openmp_available",
                                "cpu_capability", "blas"}
    assert isinstance(fp["gpus"], list)
    assert set(fp["env"]) >= {"OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES"}
    assert fp["world_size"] == 1
    assert "hostname" not in fp and len(fp["host_hash"]) == 12
    assert fp["git"] is None or set(fp["git"]) == {"commit", "dirty"}
    assert fp["hardware_id"] == fpmod.hardware_id(fp)
    assert fp["hardware_id"].startswith("hw-") and len(fp["hardware_id"]) == 15


def test_collect_torch_section_matches_torch(fp):
    import torch

    assert fp["torch"]["version"] == str(torch.__version__)
    assert fp["torch"]["num_threads"] == torch.get_num_threads()
    assert fp["torch"]["cuda"] == torch.version.cuda
    assert fp["packages"]["torch"] is not None
    if not torch.cuda.is_available():
        assert fp["gpus"] == []


def test_world_size_is_recorded():
    assert fpmod.collect(include_torch=False, world_size=4)["world_size"] == 4


def test_hardware_id_stable_across_collects(fp):
    again = fpmod.collect()
    assert again["hardware_id"] == fp["hardware_id"]
    # without torch the ISA dispatch level and threads are unknown: another id, but a stable one
    no_torch = fpmod.collect(include_torch=False)["hardware_id"]
    assert no_torch == fpmod.collect(include_torch=False)["hardware_id"] != fp["hardware_id"]


def test_collect_is_fast_without_torch():
    fpmod.collect(include_torch=False)  # warm caches
    t0 = time.perf_counter()
    fpmod.collect(include_torch=False)
    # the target is < 1 s; the margin absorbs a loaded CI box
    assert time.perf_counter() - t0 < 3.0


# --------------------------------------------------------------------------- hardware_id


def test_hardware_id_ignores_software_git_env(fp):
    other = copy.deepcopy(fp)
    other["packages"] = {k: "0.0.1" for k in other["packages"]}
    other["torch"] = dict(other["torch"] or {}, cuda="99.1", cudnn=1, num_interop_threads=3,
                          deterministic_algorithms=True, float32_matmul_precision="medium")
    other["python"] = {"version": "3.99.0", "implementation": "PyPy"}
    other["os"] = {"platform": "Elsewhere-1.0", "kernel": "1.0", "system": "Elsewhere"}
    other["git"] = {"commit": "f" * 40, "dirty": False}
    other["env"] = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    other["host_hash"] = "000000000000"
    other["hardware_id"] = "hw-stale"
    assert fpmod.hardware_id(other) == fpmod.hardware_id(fp)


def test_hardware_id_ignores_gpu_software_fields():
    base = {"cpu": {"model": "X"}, "memory_gb": 64.0, "gpus": [_gpu()]}
    other = copy.deepcopy(base)
    other["gpus"][0].update(driver_version="999.1", power_limit_w=700.004,
                            max_sm_clock_mhz=1, max_mem_clock_mhz=1, index=5,
                            memory_gb=79.6, multiprocessor_count=1)
    assert fpmod.hardware_id(other) == fpmod.hardware_id(base)


def test_hardware_id_changes_with_cpu_model_and_cores(fp):
    for path, value in ((("cpu", "model"), "Some Other CPU"),
                        (("cpu", "vendor"), "GenuineIntel"),
                        (("cpu", "model_number"), 999),
                        (("cpu", "isa_flags"), ["sse4_2"]),
                        (("cpu", "physical_cores"), 1000),
                        (("cpu", "usable_cores"), 1000),
                        (("cpu", "architecture"), "riscv64"),
                        (("torch", "num_threads"), 77),
                        (("torch", "blas"), "open"),
                        (("torch", "mkldnn_available"), False)):
        other = copy.deepcopy(fp)
        other[path[0]][path[1]] = value
        assert fpmod.hardware_id(other) != fp["hardware_id"], path


def test_hardware_id_changes_with_gpus(fp):
    one = copy.deepcopy(fp)
    one["gpus"] = [_gpu()]
    two = copy.deepcopy(fp)
    two["gpus"] = [_gpu(), _gpu(index=1)]
    ids = {fp["hardware_id"] if not fp["gpus"] else "cpu-only-n/a",
           fpmod.hardware_id(one), fpmod.hardware_id(two)}
    assert len(ids) == 3
    for field, value in (("name", "NVIDIA A100-SXM4-80GB"), ("memory_gb", 39.4),
                         ("compute_capability", "8.0"), ("mig_mode", "Enabled"),
                         ("power_limit_w", 350.0)):
        changed = copy.deepcopy(one)
        changed["gpus"][0][field] = value
        assert fpmod.hardware_id(changed) != fpmod.hardware_id(one), field


def test_hardware_id_ignores_gpu_order():
    a = {"cpu": {"model": "X"}, "gpus": [_gpu(), _gpu(name="NVIDIA L4", memory_gb=22.0)]}
    b = {"cpu": {"model": "X"}, "gpus": list(reversed(a["gpus"]))}
    assert fpmod.hardware_id(a) == fpmod.hardware_id(b)


def _epyc(**cpu) -> dict:
    """A version-2 fingerprint of a 2-core "AMD EPYC" VM (a Zen 3 unless told)."""
    fp = {
        "fingerprint_version": 2, "memory_gb": 23.54, "gpus": [], "world_size": 1,
        "cpu": {"model": "AMD EPYC", "vendor": "AuthenticAMD", "family": 25, "model_number": 1,
                "stepping": 1, "isa_flags": ["sse4_2", "avx", "avx2", "fma"], "architecture": "x86_64",
                "physical_cores": 2, "usable_cores": 2, "logical_cores": 2},
        "torch": {"version": "2.13.0+cpu", "cpu_capability": "AVX2", "num_threads": 2,
                  "blas": "mkl", "mkldnn_available": True},
        "packages": {"torch": "2.13.0+cpu", "numpy": "2.3.0"},
        "git": {"commit": "a" * 40, "dirty": False},
    }
    fp["cpu"].update(cpu)
    fp["hardware_id"] = fpmod.hardware_id(fp)
    return fp


def test_one_model_string_two_cpu_generations_two_classes():
    # The case: "AMD EPYC" is a Zen 3 (family 25) and a Zen 5 (family 26, AVX-512).
    zen5 = _epyc(family=26, model_number=2, isa_flags=["sse4_2", "avx", "avx2", "fma", "avx512f"])
    zen5["torch"]["cpu_capability"] = "AVX512"
    assert fpmod.hardware_id(zen5) != fpmod.hardware_id(_epyc())


@pytest.mark.parametrize("change", [
    {"cpu": {"family": 26}},
    {"cpu": {"stepping": 2}},
    {"cpu": {"model_number": 17}},
    {"torch": {"cpu_capability": "AVX512"}},  # the ISA level torch dispatches to
    {"cpu": {"isa_flags": ["sse4_2", "avx", "avx2", "fma", "avx512f"]}},
    {"torch": {"num_threads": 1}},
    {"torch": {"version": "2.14.0+cpu"}},  # a minor release changes kernels
    {"torch": {"blas": "open"}},
])
def test_hardware_id_changes_with_what_decides_speed_and_rounding(change):
    other = _epyc()
    for section, fields in change.items():
        other[section].update(fields)
    assert fpmod.hardware_id(other) != fpmod.hardware_id(_epyc())


def test_hardware_id_ignores_torch_patch_release_software_and_git():
    base = _epyc()
    other = copy.deepcopy(base)
    other["torch"]["version"] = "2.13.1+cpu"
    other["packages"] = {"torch": "2.13.1+cpu", "numpy": "1.0.0"}
    other["git"] = {"commit": "b" * 40, "dirty": True}
    other["python"] = {"version": "3.99.0", "implementation": "PyPy"}
    assert fpmod.hardware_id(other) == fpmod.hardware_id(base)


def test_record_class_recomputes_v2_and_labels_older_fingerprints_legacy():
    v2 = _epyc()
    assert fpmod.record_hardware_class(v2) == v2["hardware_id"]
    # the class is recomputed from the fields, not read from the stored id
    assert fpmod.record_hardware_class({**v2, "hardware_id": "hw-stale"}) == v2["hardware_id"]
    v1 = {"fingerprint_version": 1, "hardware_id": "hw-a5285d9436b7", "cpu": {"model": "AMD EPYC"}}
    assert fpmod.record_hardware_class(v1) == "legacy-hw-a5285d9436b7"
    unversioned = {k: v for k, v in v1.items() if k != "fingerprint_version"}
    assert fpmod.record_hardware_class(unversioned) == "legacy-hw-a5285d9436b7"
    for broken in (None, {}, "junk", {"fingerprint_version": "x"}):
        assert fpmod.record_hardware_class(broken) == "legacy-unknown"


X86_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 26
model\t\t: 2
model name\t: AMD EPYC
stepping\t: 0
flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512bw avx512vl avx512dq rdrand

processor\t: 1
vendor_id\t: AuthenticAMD
cpu family\t: 26
"""

ARM_CPUINFO = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes asimddp sve sve2 i8mm bf16
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x0
CPU part\t: 0xd4f
CPU revision\t: 1
"""


def test_cpu_identity_from_proc_cpuinfo():
    assert fpmod._cpu_identity(X86_CPUINFO) == {
        "vendor": "AuthenticAMD", "family": 26, "model_number": 2, "stepping": 0,
        "isa_flags": ["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512dq", "avx512bw", "avx512vl"],
    }
    assert fpmod._cpu_identity(ARM_CPUINFO) == {
        "vendor": "0x41", "family": 8, "model_number": "0xd4f", "stepping": 1,
        "isa_flags": ["asimd", "asimddp", "sve", "sve2", "bf16", "i8mm"],
    }
    assert fpmod._cpu_identity(None) == {
        "vendor": None, "family": None, "model_number": None, "stepping": None, "isa_flags": None,
    }


def test_class_rows_show_every_class_field():
    rows = dict(fpmod.class_rows(_epyc(stepping=2)))
    assert rows["family / model / stepping"] == "25 / 1 / 2"
    assert rows["ISA level"].startswith("AVX2 (torch dispatch)") and "avx2" in rows["ISA level"]
    assert "2 torch threads" in rows["cores / threads"] and rows["memory class"] == "24 GB"
    assert rows["torch / backend"] == "torch 2.13 · BLAS mkl · oneDNN available"
    assert rows["GPUs"] == "none"
    gpus = dict(fpmod.class_rows({"gpus": [_gpu(), _gpu(index=1)]}))["GPUs"]
    assert gpus == "2× NVIDIA H100 80GB HBM3 (80 GB, cc 9.0, 700 W, MIG Disabled)"
    assert all(isinstance(v, str) for _, v in fpmod.class_rows({}))


# Reported totals sit a little below the installed size (23.54 GiB on a 24 GiB VM,
# 15.6 on a 16 GiB laptop); the id rounds up to whole GiB, so +-0.4 GB around such
# values never moves the bucket. (Any whole-GB bucketing has an edge somewhere;
# ours is at n + 0.05, away from where reported totals land.)
@pytest.mark.parametrize("base", [23.54, 15.6, 62.55, 125.6, 7.5])
def test_hardware_id_tolerates_small_memory_changes(fp, base):
    ref = copy.deepcopy(fp)
    ref["memory_gb"] = base
    ref_id = fpmod.hardware_id(ref)
    for delta in (-0.4, -0.2, -0.01, 0.01, 0.2, 0.4):
        other = copy.deepcopy(fp)
        other["memory_gb"] = round(base + delta, 2)
        assert fpmod.hardware_id(other) == ref_id, (base, delta)
    bigger = copy.deepcopy(fp)
    bigger["memory_gb"] = base * 2
    assert fpmod.hardware_id(bigger) != ref_id


@pytest.mark.parametrize("gb, whole", [
    (23.54, 24), (15.6, 16), (62.8, 63), (40.0, 40), (40.04, 40), (39.59, 40),
    (79.19, 80), (79.65, 80), (0.4, 1), (0.0, 0), (None, None), ("x", None),
])
def test_memory_bucket(gb, whole):
    assert fpmod._whole_gb(gb) == whole


def test_gpu_memory_torch_and_nvml_totals_share_a_class():
    # torch reports a little less than NVML for the same card; both land on 80.
    torch_view = {"cpu": {"model": "X"}, "gpus": [_gpu(memory_gb=79.19)]}
    nvml_view = {"cpu": {"model": "X"}, "gpus": [_gpu(memory_gb=79.65)]}
    assert fpmod.hardware_id(torch_view) == fpmod.hardware_id(nvml_view)


def test_hardware_id_and_summary_tolerate_sparse_dicts():
    for fp in ({}, {"cpu": None, "gpus": None, "memory_gb": None},
               {"cpu": {}, "gpus": [None], "memory_gb": "garbage"}):
        assert fpmod.hardware_id(fp).startswith("hw-")
        assert isinstance(fpmod.summary(fp), str)


# --------------------------------------------------------------------------- summary()


def test_summary_cpu_machine(fp):
    line = fpmod.summary(fp)
    assert fp["hardware_id"] in line
    assert "torch" in line
    if not fp["gpus"]:
        assert "no GPU" in line
    assert "\n" not in line


def test_summary_with_gpus():
    fp = {"cpu": {"model": "Intel Xeon", "usable_cores": 16}, "memory_gb": 125.7,
          "gpus": [_gpu(), _gpu(index=1)], "torch": {"version": "2.5.1", "cuda": "12.4"}}
    line = fpmod.summary(fp)
    assert line.startswith("Intel Xeon (16 cores, 126 GB) · 2× NVIDIA H100 80GB HBM3 (80 GB)")
    assert "driver 550.54.15" in line and "torch 2.5.1 (CUDA 12.4)" in line
    assert line.endswith(fpmod.hardware_id(fp))


# --------------------------------------------------------------------------- no torch


def _run_py(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_import_does_not_import_torch():
    proc = _run_py("import sys, harness.run.fingerprint; print('torch' in sys.modules)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_collect_without_torch_does_not_import_torch():
    proc = _run_py(
        "import sys, json, harness.run.fingerprint as f\n"
        "fp = f.collect(include_torch=False)\n"
        "json.dumps(fp)\n"
        "assert fp['torch'] is None, fp['torch']\n"
        "assert fp['hardware_id'].startswith('hw-')\n"
        "print('torch' in sys.modules)\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


# --------------------------------------------------------------------------- broken probes


def test_broken_proc_files_do_not_raise(monkeypatch):
    real_open = builtins.open

    def bad_open(file, *args, **kwargs):
        if str(file).startswith(("/proc", "/sys")):
            raise PermissionError(file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", bad_open)
    fp = fpmod.collect(include_torch=False)
    json.dumps(fp)
    assert fp["hardware_id"].startswith("hw-")
    assert fp["memory_gb"] is None or fp["memory_gb"] > 0  # sysconf fallback


def test_everything_broken_does_not_raise(monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("probe exploded")

    monkeypatch.setattr(builtins, "open", boom)
    monkeypatch.setattr(subprocess, "run", boom)
    monkeypatch.setattr(fpmod.subprocess, "run", boom)
    for name in ("platform", "processor", "machine", "release", "python_version",
                 "python_implementation", "system"):
        monkeypatch.setattr(fpmod.platform, name, boom)
    monkeypatch.setattr(fpmod.os, "cpu_count", boom)
    monkeypatch.setattr(fpmod.os, "sched_getaffinity", boom, raising=False)
    monkeypatch.setattr(fpmod.os, "sysconf", boom)
    monkeypatch.setattr(fpmod.socket, "gethostname", boom)
    monkeypatch.setattr(fpmod.importlib.metadata, "version", boom)
    monkeypatch.setattr(fpmod.shutil, "which", lambda name: "/usr/bin/" + name)

    fp = fpmod.collect()
    json.dumps(fp)
    assert TOP_KEYS <= set(fp)
    assert fp["cpu"]["model"] is None and fp["cpu"]["logical_cores"] is None
    assert fp["memory_gb"] is None
    assert fp["git"] is None
    assert fp["host_hash"] is None
    assert all(v is None for v in fp["packages"].values())
    assert fp["hardware_id"].startswith("hw-")
    assert isinstance(fpmod.summary(fp), str)


def test_subprocess_timeout_and_failure_yield_none(monkeypatch):
    def timeout(cmd, *args, **kwargs):
        raise subprocess.TimeoutExpired(cmd, kwargs.get("timeout", 5))

    monkeypatch.setattr(fpmod.subprocess, "run", timeout)
    monkeypatch.setattr(fpmod.shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    fp = fpmod.collect(include_torch=False)
    assert fp["git"] is None
    assert fp["gpus"] == []

    def failing(cmd, *args, **kwargs):
        return subprocess.CompletedProcess(cmd, 128, stdout="", stderr="fatal")

    monkeypatch.setattr(fpmod.subprocess, "run", failing)
    fp = fpmod.collect(include_torch=False)
    assert fp["git"] is None


def test_torch_probe_failure_yields_none(monkeypatch):
    import torch

    def boom(*args, **kwargs):
        raise RuntimeError("no")

    monkeypatch.setattr(torch, "get_num_threads", boom)
    monkeypatch.setattr(torch.cuda, "is_available", boom)
    fp = fpmod.collect()
    assert fp["torch"]["num_threads"] is None
    assert fp["torch"]["version"] == str(torch.__version__)
    json.dumps(fp)


# --------------------------------------------------------------------------- git


def test_git_reports_commit_and_dirty_for_a_checkout(tmp_path, monkeypatch):
    if fpmod.shutil.which("git") is None:
        pytest.skip("git not installed")
    repo = tmp_path / "proj"
    (repo / "harness" / "run").mkdir(parents=True)
    fake_file = repo / "harness" / "run" / "fingerprint.py"
    fake_file.write_text("# copy\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(git + ["-C", str(repo), "add", "-A"], check=True)
    subprocess.run(git + ["-C", str(repo), "commit", "-qm", "init"], check=True)
    monkeypatch.setattr(fpmod, "__file__", str(fake_file))

    info = fpmod._git()
    assert info is not None and len(info["commit"]) == 40 and info["dirty"] is False
    (repo / "new.txt").write_text("x")
    assert fpmod._git()["dirty"] is True


def test_git_none_outside_a_checkout(tmp_path, monkeypatch):
    fake_file = tmp_path / "site-packages" / "harness" / "run" / "fingerprint.py"
    fake_file.parent.mkdir(parents=True)
    fake_file.write_text("")
    monkeypatch.setattr(fpmod, "__file__", str(fake_file))
    assert fpmod._git() is None


# --------------------------------------------------------------------------- GPU paths (faked)

SMI_OUT = (
    "NVIDIA H100 80GB HBM3, 550.54.15, 700.00, 1980, 2619, Disabled, 81559, "
    "GPU-11111111-2222-3333-4444-555555555555\n"
    "NVIDIA H100 80GB HBM3, 550.54.15, [N/A], 1980, 2619, [N/A], 81559, "
    "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee\n"
)


def test_parse_nvidia_smi():
    rows = fpmod._parse_nvidia_smi(SMI_OUT + "garbage line\n")
    assert len(rows) == 2
    assert rows[0]["name"] == "NVIDIA H100 80GB HBM3"
    assert rows[0]["driver_version"] == "550.54.15"
    assert rows[0]["power_limit_w"] == 700.0
    assert rows[0]["max_sm_clock_mhz"] == 1980 and rows[0]["max_mem_clock_mhz"] == 2619
    assert rows[0]["mig_mode"] == "Disabled" and rows[0]["memory_gb"] == 79.65
    assert rows[1]["power_limit_w"] is None and rows[1]["mig_mode"] is None


def _fake_smi(monkeypatch, stdout=SMI_OUT):
    calls = []

    def run(cmd, *args, **kwargs):
        calls.append(cmd)
        if "nvidia-smi" in cmd[0]:
            assert kwargs.get("timeout") == 5.0
            return subprocess.CompletedProcess(cmd, 0, stdout=stdout, stderr="")
        return subprocess.CompletedProcess(cmd, 1, stdout="", stderr="")

    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setattr(fpmod.shutil, "which",
                        lambda name: "/usr/bin/nvidia-smi" if name == "nvidia-smi" else None)
    monkeypatch.setattr(fpmod.subprocess, "run", run)
    return calls


def test_gpus_from_nvidia_smi_without_torch(monkeypatch):
    calls = _fake_smi(monkeypatch)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fp = fpmod.collect(include_torch=False)
    assert [c for c in calls if "nvidia-smi" in c[0]]
    assert len(fp["gpus"]) == 2 and fp["gpus"][0]["driver_version"] == "550.54.15"
    assert "_uuid" not in fp["gpus"][0]  # uuids are used for matching, not recorded
    assert "GPU-" not in json.dumps(fp)

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    fp1 = fpmod.collect(include_torch=False)
    assert len(fp1["gpus"]) == 1 and fp1["gpus"][0]["power_limit_w"] is None
    assert fp1["hardware_id"] != fp["hardware_id"]


class _FakeCuda:
    def __init__(self, props):
        self._props = props

    def is_available(self):
        return True

    def device_count(self):
        return len(self._props)

    def get_device_properties(self, i):
        return self._props[i]


def test_torch_gpus_merged_with_nvml_by_uuid(monkeypatch):
    _fake_smi(monkeypatch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    props = [SimpleNamespace(name="NVIDIA H100 80GB HBM3", total_memory=85_029_158_912,
                             major=9, minor=0, multi_processor_count=132,
                             uuid="aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")]
    fake_torch = SimpleNamespace(cuda=_FakeCuda(props))
    gpus = fpmod._gpus(fake_torch)
    assert len(gpus) == 1
    gpu = gpus[0]
    assert gpu["name"] == "NVIDIA H100 80GB HBM3" and gpu["compute_capability"] == "9.0"
    assert gpu["multiprocessor_count"] == 132 and gpu["memory_gb"] == 79.19
    assert gpu["driver_version"] == "550.54.15"
    assert gpu["power_limit_w"] is None  # the second smi row (matched by uuid), not the first
    json.dumps(gpus)


def test_fake_pynvml_is_preferred_over_nvidia_smi(monkeypatch):
    class NVMLError(Exception):
        pass

    def not_supported(*args):
        raise NVMLError("not supported")

    fake = SimpleNamespace(
        NVML_CLOCK_SM=1, NVML_CLOCK_MEM=2,
        nvmlInit=lambda: None, nvmlShutdown=lambda: None,
        nvmlSystemGetDriverVersion=lambda: b"535.104.05",
        nvmlDeviceGetCount=lambda: 1,
        nvmlDeviceGetHandleByIndex=lambda i: f"h{i}",
        nvmlDeviceGetName=lambda h: "NVIDIA A100-SXM4-40GB",
        nvmlDeviceGetPowerManagementLimit=lambda h: 400000,
        nvmlDeviceGetMaxClockInfo=lambda h, kind: {1: 1410, 2: 1215}[kind],
        nvmlDeviceGetMigMode=lambda h: (1, 1),
        nvmlDeviceGetMemoryInfo=lambda h: SimpleNamespace(total=40 * 2**30),
        nvmlDeviceGetCudaComputeCapability=not_supported,
        nvmlDeviceGetUUID=lambda h: "GPU-0000",
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setattr(fpmod.shutil, "which", lambda name: None)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fp = fpmod.collect(include_torch=False)
    (gpu,) = fp["gpus"]
    assert gpu["name"] == "NVIDIA A100-SXM4-40GB" and gpu["driver_version"] == "535.104.05"
    assert gpu["power_limit_w"] == 400.0 and gpu["mig_mode"] == "Enabled"
    assert gpu["max_sm_clock_mhz"] == 1410 and gpu["memory_gb"] == 40.0
    assert gpu["compute_capability"] is None  # that probe failed, the rest survived
    assert "MIG" in fpmod.summary(fp)


def test_world_size_is_part_of_the_hardware_class():
    from harness.run.fingerprint import hardware_id

    fp = {"cpu": {"model": "x", "physical_cores": 8}, "memory_gb": 64, "gpus": [{"name": "H100", "memory_gb": 80}] * 8}
    single = hardware_id({**fp, "world_size": 1})
    assert single == hardware_id(fp)  # single-process ids unchanged
    assert hardware_id({**fp, "world_size": 8}) != single
