"""Plugins: the three discovery paths, bad plugins, clashes, provenance, `bench new`,
and the example package in examples/.

Entry points are faked the way pip would leave them: a ``<dist>-<version>.dist-info``
folder (METADATA + entry_points.txt) next to the plugin's code in a directory put on
``sys.path`` (in-process) or ``PYTHONPATH`` (subprocesses). Runs use a fake workload
whose steps busy-wait (tests/fakes.py), registered in-process with
``Registry.add_workload`` or, for the CLI, through a fake ``optbench.workloads``
entry point.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.errors import PluginError, UserInputError
from harness.run.records import read_run
from harness.plugins.registry import Registry
from harness.run import execute, plan_run
from harness.plugins.scaffold import new_submission
from tests import fakes

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "optbench-adabelief"

LITERALS = '''\
KIND = "optimizer"
DESCRIPTION = "a test plugin"
DEFAULTS = {"lr": 0.01}
SEARCH_SPACE = {"lr": {"min": 1e-3, "max": 1e-1, "scaling": "log"}}
'''
MAKE_SGD = '''
import torch


def make_optimizer(params, hp, step_hint):
    return torch.optim.SGD([p.param for p in params], lr=hp.lr)
'''
GOOD = LITERALS + MAKE_SGD

FAKE_WORKLOAD = '''\
"""A torch-free workload description; the work is tests.fakes.SleepTask."""
from harness import api

SIZE = api.Size(
    name="tiny", description="busy-wait fake", dataset="none", model="mlp", batch_size=8,
    target=api.Target("score", 25.0, "max"), max_runtime_s=30.0, step_hint=100, eval_every_steps=10,
)
WORKLOAD = api.WorkloadInfo(
    name="fakewl", description="fake", sizes={"tiny": SIZE}, norm_sites=("node",),
    default_norm="layernorm", default_optimizer="sgd", task="tests.fakes:SleepTask",
)
'''


# --------------------------------------------------------------------------- #
# helpers                                                                      #
# --------------------------------------------------------------------------- #


def load_toml(path: Path) -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads(Path(path).read_text())


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def fake_dist(site: Path, dist: str, version: str, submissions=None, workloads=None) -> Path:
    """What `pip install` leaves behind: <dist>-<version>.dist-info with the entry points."""
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = []
    for group, entries in (("optbench.submissions", submissions), ("optbench.workloads", workloads)):
        if entries:
            lines.append(f"[{group}]")
            lines += [f"{name} = {value}" for name, value in entries.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return site


def bench(*args: str, cwd: Path, paths: tuple[Path, ...] = (), timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), str(ROOT)])
    env["COLUMNS"] = "1000"  # a pipe is not a terminal: keep rich from wrapping at 80 columns
    return subprocess.run(
        [sys.executable, "-c", "from harness.cli import main; main()", *args],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout,
    )


def one_line_error(out: subprocess.CompletedProcess) -> str:
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert "Traceback" not in out.stderr, out.stderr
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: "), out.stderr
    return lines[0]


def fake_registry() -> Registry:
    registry = Registry()
    registry.add_workload(fakes.fake_info())
    return registry


def run_fake(tmp_path: Path, submission: str, registry: Registry | None = None, norm: str | None = None, steps: int = 10):
    plan = plan_run(
        "fake", submission, size="tiny", norm=norm, output=tmp_path / "results",
        overrides=[f"budget.max_steps={steps}", "eval.every_steps=5"], registry=registry or fake_registry(),
    )
    return execute(plan)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A fake site-packages: the `fakewl` workload and the `fakeopt` / `tokennorm`
    submissions, installed as entry points of fakedist 0.1 and fakewl-dist 0.2."""
    site = tmp_path_factory.mktemp("site")
    write(site / "fakeplug" / "__init__.py", "raise RuntimeError('listing must not run the package')\n")
    write(site / "fakeplug" / "opt.py", GOOD)
    write(site / "fakeplug" / "tokennorm.py", '''\
        KIND = "norm"
        SITES = ("token",)

        def make_norm(site, num_features, hp):
            raise AssertionError("never used: no workload here has token sites only")
        ''')
    write(site / "fake_workload_mod.py", FAKE_WORKLOAD)
    fake_dist(site, "fakedist", "0.1", submissions={"fakeopt": "fakeplug.opt", "tokennorm": "fakeplug.tokennorm"})
    fake_dist(site, "fakewl-dist", "0.2", workloads={"fakewl": "fake_workload_mod"})
    return site


@pytest.fixture(scope="module")
def runnable_site(tmp_path_factory) -> Path:
    """Like `site`, with an importable plugin package and the fake workload."""
    site = tmp_path_factory.mktemp("runnable")
    write(site / "goodplug" / "__init__.py", "")
    write(site / "goodplug" / "opt.py", GOOD)
    write(site / "fake_workload_mod.py", FAKE_WORKLOAD)
    fake_dist(site, "gooddist", "1.2.3", submissions={"goodopt": "goodplug.opt"})
    fake_dist(site, "fakewl-dist", "0.2", workloads={"fakewl": "fake_workload_mod"})
    return site


# --------------------------------------------------------------------------- #
# the three discovery paths                                                    #
# --------------------------------------------------------------------------- #


def test_builtin():
    plugin = Registry(entry_points=False).submission("adamw")
    source = ROOT / "submissions" / "optimizers" / "adamw.py"
    assert plugin.origin == "builtin" and plugin.kind == "optimizer"
    prov = plugin.provenance()
    assert prov["source"] == str(source) and prov["sha256"] == sha(source)
    assert prov["distribution"] is None
    assert plugin.load().kind == "optimizer"
    # naming a built-in by its path is still the built-in
    assert Registry().submission(str(source)).origin == "builtin"


def test_entry_point_in_process(tmp_path, monkeypatch):
    site = tmp_path / "site"
    write(site / "epplug_a" / "__init__.py", "raise RuntimeError('the package must not run while listing')\n")
    write(site / "epplug_a" / "opt.py", GOOD)
    write(site / "epplug_b.py", "from types import SimpleNamespace\nfrom tests.fakes import PLAIN_SGD as OPT\n")
    fake_dist(site, "epdist", "3.1", submissions={"epopt": "epplug_a.opt", "epattr": "epplug_b:OPT"})
    monkeypatch.syspath_prepend(str(site))

    registry = Registry()
    plugin = registry.submission("epopt")
    assert (plugin.origin, plugin.distribution, plugin.version) == ("entry_point", "epdist", "3.1")
    assert plugin.source == site / "epplug_a" / "opt.py"
    assert plugin.kind == "optimizer" and "epplug_a" not in sys.modules  # read without importing
    prov = plugin.provenance()
    assert prov["target"] == "epplug_a.opt" and prov["sha256"] == sha(site / "epplug_a" / "opt.py")

    attr = registry.submission("epattr")  # the "module:attr" form of an entry point
    assert attr.origin == "entry_point" and attr.kind == "optimizer"
    assert attr.load().defaults == {"lr": 0.01}


def test_entry_points_on_the_command_line(site, tmp_path):
    out = bench("list", "--json", cwd=tmp_path, paths=(site,))
    assert out.returncode == 0, out.stderr
    listing = json.loads(out.stdout)
    subs = {s["name"]: s for s in listing["submissions"]}
    fakeopt = subs["fakeopt"]
    assert (fakeopt["kind"], fakeopt["origin"], fakeopt["distribution"], fakeopt["version"]) == (
        "optimizer", "entry_point", "fakedist", "0.1")
    assert fakeopt["source"] == str(site / "fakeplug" / "opt.py")
    assert "fakewl" in fakeopt["workloads"] and "cifar" in fakeopt["workloads"]
    # norms apply to the workloads whose norm sites they all support
    assert subs["tokennorm"]["kind"] == "norm" and subs["tokennorm"]["sites"] == ["token"]
    assert "fakewl" not in subs["tokennorm"]["workloads"] and "cifar" not in subs["tokennorm"]["workloads"]
    assert "fakewl" in subs["layernorm"]["workloads"]
    assert any(w["workload"] == "fakewl" and w["origin"] == "entry_point" for w in listing["workloads"])

    # the human table shows kind, origin (with distribution) and the workloads
    table = bench("list", cwd=tmp_path, paths=(site,))
    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if "fakeopt" in line)
    assert "optimizer" in row and "entry point (fakedist 0.1)" in row and "fakewl" in row


def test_entry_point_run_records_its_origin(runnable_site, tmp_path):
    out = bench("run", "--submission", "goodopt", "--workload", "fakewl", "--size", "tiny", "--output", str(tmp_path / "res"),
                cwd=tmp_path, paths=(runnable_site,))
    assert out.returncode == 0, out.stderr
    rec = read_run(next((tmp_path / "res").rglob("run.json")).parent)
    assert rec["status"] == "reached" and rec["workload"] == "fakewl"
    prov = rec["submission"]
    assert prov["origin"] == "entry_point" and prov["name"] == "goodopt"
    assert (prov["distribution"], prov["version"]) == ("gooddist", "1.2.3")
    assert prov["source"] == str(runnable_site / "goodplug" / "opt.py")
    assert prov["sha256"] == sha(runnable_site / "goodplug" / "opt.py")
    assert rec["norm"]["origin"] == "builtin" and rec["norm"]["name"] == "layernorm"


def test_file_path(tmp_path):
    path = write(tmp_path / "my_sgd.py", GOOD)
    result = run_fake(tmp_path, str(path))
    rec = read_run(result.run_dir)
    assert rec["status"] == "budget_exhausted" and rec["steps"] == 10
    prov = rec["submission"]
    assert (prov["name"], prov["origin"], prov["source"]) == ("my_sgd", "file", str(path))
    assert prov["sha256"] == sha(path)
    assert rec["optimizer"] == prov
    # NAME = "..." renames a file plugin
    renamed = write(tmp_path / "x.py", 'NAME = "renamed"\n' + GOOD)
    assert Registry().submission(str(renamed)).name == "renamed"


def test_module_forms(tmp_path, monkeypatch):
    plugin = Registry().submission("tests.fakes:PLAIN_SGD")
    assert (plugin.name, plugin.origin, plugin.source) == ("PLAIN_SGD", "module", ROOT / "tests" / "fakes.py")
    assert plugin.provenance()["sha256"] == sha(ROOT / "tests" / "fakes.py")

    write(tmp_path / "modplug_pkg" / "__init__.py", "")
    write(tmp_path / "modplug_pkg" / "myopt.py", GOOD)
    monkeypatch.syspath_prepend(str(tmp_path))
    plugin = Registry().submission("modplug_pkg.myopt")  # a dotted module name, no attribute
    assert (plugin.name, plugin.origin, plugin.kind) == ("myopt", "module", "optimizer")
    rec = run_fake(tmp_path, "modplug_pkg.myopt").record
    assert rec["status"] == "budget_exhausted" and rec["submission"]["sha256"] == sha(tmp_path / "modplug_pkg" / "myopt.py")


def test_unknown_names_get_did_you_mean():
    with pytest.raises(UserInputError, match="did you mean 'adamw'"):
        Registry().submission("adamww")
    with pytest.raises(UserInputError, match="no module of that name.*did you mean 'lion'"):
        Registry().submission("lion.x")
    with pytest.raises(UserInputError, match="cannot find module 'no_such_pkg_xyz'"):
        Registry().submission("no_such_pkg_xyz:OPT")
    with pytest.raises(UserInputError, match="does not exist"):
        Registry().submission("./no_such_file.py")


# --------------------------------------------------------------------------- #
# bad plugins: one line naming plugin, file and problem; non-zero exit          #
# --------------------------------------------------------------------------- #

BAD = {
    "syntax": (LITERALS + "def make_optimizer(params, hp, step_hint:\n    pass\n", "syntax error on line 5"),
    "import_error": ("import no_such_module_xyz\n" + GOOD, "ModuleNotFoundError: No module named 'no_such_module_xyz'"),
    "raises_at_import": (GOOD + "\nraise RuntimeError('broken at import')\n", "RuntimeError: broken at import"),
    "missing_function": (LITERALS + "import torch\n", "missing make_optimizer"),
    "missing_kind": (GOOD.replace('KIND = "optimizer"\n', ""), "KIND must be 'optimizer' or 'norm'; it is missing"),
    "malformed_search_space": (
        GOOD.replace('"min": 1e-3, "max": 1e-1', '"min": 1e-1, "max": 1e-3'), "malformed SEARCH_SPACE: hyperparameter 'lr': min 0.1 is greater than max 0.001"),
    "search_space_not_in_defaults": (
        GOOD.replace('"scaling": "log"}}', '"scaling": "log"}, "beta": {"feasible_points": [0.9]}}'), "malformed SEARCH_SPACE: beta in SEARCH_SPACE but not in DEFAULTS"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_plugin_is_one_line_and_exit_1(case, runnable_site, tmp_path):
    text, needle = BAD[case]
    path = write(tmp_path / f"bad_{case}.py", text)
    out = bench("run", "--submission", str(path), "--workload", "fakewl", "--size", "tiny", "--output", str(tmp_path / "res"),
                cwd=tmp_path, paths=(runnable_site,))
    assert out.returncode == 1, (out.stdout, out.stderr)
    line = one_line_error(out)
    assert f"bad_{case}" in line and str(path) in line and needle in line, line
    assert not any(tmp_path.rglob("run.json"))  # failed before the run started: nothing written


def test_bad_plugin_errors_in_process(tmp_path):
    not_callable = write(tmp_path / "nc.py", LITERALS + "make_optimizer = 3\n")
    with pytest.raises(PluginError, match=r"plugin 'nc' \(.*nc.py\): make_optimizer must be a function"):
        Registry().submission(str(not_callable)).load()
    bad_sites = write(tmp_path / "bs.py", 'KIND = "norm"\nSITES = ("conv", "pixel")\ndef make_norm(s, n, hp): pass\n')
    with pytest.raises(PluginError, match=r"bs.py\): unknown norm sites \['pixel'\]"):
        Registry().submission(str(bad_sites))
    bad_defaults = write(tmp_path / "bd.py", GOOD.replace('DEFAULTS = {"lr": 0.01}', "DEFAULTS = [0.01]"))
    with pytest.raises(PluginError, match="DEFAULTS must be a dict"):
        Registry().submission(str(bad_defaults))


def test_raise_mid_step_writes_an_error_record(runnable_site, tmp_path):
    path = write(tmp_path / "explodes.py", GOOD + '''
from harness.api import default_update


def update(ctx):
    if ctx.step == 3:
        raise RuntimeError("boom in step 3")
    return default_update(ctx)
''')
    out = bench("run", "--submission", str(path), "--workload", "fakewl", "--size", "tiny", "--output", str(tmp_path / "res"),
                cwd=tmp_path, paths=(runnable_site,))
    assert out.returncode == 1, (out.stdout, out.stderr)
    line = one_line_error(out)
    assert "'explodes'" in line and str(path) in line and "RuntimeError: boom in step 3" in line, line
    assert "update raised at step 4 (ctx.step 3): RuntimeError: boom in step 3 (at explodes.py:" in line
    rec = read_run(next((tmp_path / "res").rglob("run.json")).parent)
    assert rec["status"] == "error" and rec["steps"] == 3
    assert "boom in step 3" in rec["reason"] and "'explodes'" in rec["reason"]
    assert "RuntimeError" in rec["error"]["traceback"]  # the original exception is chained
    # the plugin's own frames, innermost last, in the record and on the console
    (frame,) = rec["error"]["plugin_frames"]
    assert frame.startswith("explodes.py:") and "in update: raise RuntimeError(\"boom in step 3\")" in frame
    assert frame in out.stdout
    assert rec["submission"]["sha256"] == sha(path)


def test_raise_inside_the_plugins_optimizer_names_the_plugin(tmp_path):
    # No update hook: the default step calls the plugin's optimizer, which raises.
    path = write(tmp_path / "badstep.py", LITERALS + '''
import torch


class Broken(torch.optim.SGD):
    def step(self, closure=None):
        if self.state.get("calls", 0) == 2:
            raise ValueError("bad state")
        self.state["calls"] = self.state.get("calls", 0) + 1
        return super().step(closure)


def make_optimizer(params, hp, step_hint):
    return Broken([p.param for p in params], lr=hp.lr)
''')
    rec = run_fake(tmp_path, str(path)).record
    assert rec["status"] == "error" and rec["steps"] == 2
    assert "'badstep'" in rec["reason"] and "ValueError: bad state" in rec["reason"] and "badstep.py" in rec["reason"]

    setup = write(tmp_path / "badsetup.py", LITERALS + "def make_optimizer(params, hp, step_hint):\n    raise KeyError('x')\n")
    rec = run_fake(tmp_path, str(setup)).record
    assert rec["status"] == "error" and "'badsetup'" in rec["reason"] and "make_optimizer raised: KeyError: 'x' (at badsetup.py:6)" in rec["reason"]


# --------------------------------------------------------------------------- #
# name clashes                                                                 #
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def clash_site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("clash")
    write(site / "clashplug" / "__init__.py", "")
    write(site / "clashplug" / "adamw.py", GOOD)
    fake_dist(site, "clashdist", "1.0", submissions={"adamw": "clashplug.adamw"})
    return site


def test_clash_is_an_error_naming_both_origins(clash_site, tmp_path, monkeypatch):
    builtin = ROOT / "submissions" / "optimizers" / "adamw.py"
    out = bench("run", "--submission", "adamw", "--workload", "cifar", "--size", "tiny", "--output", str(tmp_path), cwd=tmp_path, paths=(clash_site,))
    assert out.returncode == 1, (out.stdout, out.stderr)
    line = one_line_error(out)
    assert f"builtin {builtin}" in line and "entry point clashplug.adamw of clashdist 1.0" in line, line
    assert not any(tmp_path.rglob("run.json"))

    listing = bench("list", cwd=tmp_path, paths=(clash_site,))
    assert listing.returncode == 0, listing.stderr
    assert "warning" in listing.stderr and "'adamw' is defined twice" in listing.stderr
    assert "clashdist" in listing.stderr

    monkeypatch.syspath_prepend(str(clash_site))
    with pytest.raises(PluginError, match="defined twice: builtin .*adamw.py and entry point clashplug.adamw of clashdist 1.0"):
        Registry().submission("adamw")
    assert Registry().submission("lion").origin == "builtin"  # other names are unaffected


def test_file_named_like_a_builtin_clashes(tmp_path):
    path = write(tmp_path / "lion.py", GOOD)
    with pytest.raises(PluginError, match=r"'lion' is defined twice: builtin .*lion.py and file .*tmp.*lion.py; rename"):
        Registry().submission(str(path))


# --------------------------------------------------------------------------- #
# provenance                                                                   #
# --------------------------------------------------------------------------- #


def test_sha256_follows_the_source(tmp_path):
    path = write(tmp_path / "hashed.py", GOOD)
    before = Registry().submission(str(path)).provenance()["sha256"]
    assert before == sha(path)
    path.write_text(GOOD.replace("0.01", "0.02"))
    after = Registry().submission(str(path)).provenance()["sha256"]
    assert after == sha(path) and after != before
    rec = run_fake(tmp_path, str(path), steps=5).record
    assert rec["submission"]["sha256"] == after and rec["hyperparameters"]["optimizer"]["lr"] == 0.02


# --------------------------------------------------------------------------- #
# norms and sites                                                              #
# --------------------------------------------------------------------------- #


def test_norm_on_a_workload_it_does_not_fit(tmp_path):
    path = write(tmp_path / "tok.py", 'KIND = "norm"\nSITES = ("token",)\ndef make_norm(site, n, hp):\n    pass\n')
    with pytest.raises(UserInputError, match="norm 'tok' supports sites token; workload 'fake' needs node"):
        plan_run("fake", "sgd", norm=str(path), size="tiny", registry=fake_registry())
    with pytest.raises(UserInputError, match="supports sites token; workload 'fake' needs node"):
        plan_run("fake", str(path), size="tiny", registry=fake_registry())


# --------------------------------------------------------------------------- #
# bench new                                                                    #
# --------------------------------------------------------------------------- #


def test_bench_new_optimizer_runs_as_written(runnable_site, tmp_path):
    out = bench("new", "submission", "my_opt", cwd=tmp_path, paths=(runnable_site,))
    assert out.returncode == 0, out.stderr
    path = tmp_path / "my_opt.py"
    assert path.is_file()
    assert "bench run --submission ./my_opt.py --workload cifar" in out.stdout
    source = path.read_text()
    assert source.index('KIND = "optimizer"') < source.index("def make_optimizer")  # literals first
    # the generated file runs as written
    run = bench("run", "--submission", "./my_opt.py", "--workload", "fakewl", "--size", "tiny", "--output", str(tmp_path / "res"),
                "budget.max_steps=5", "eval.every_steps=5", cwd=tmp_path, paths=(runnable_site,))
    assert run.returncode == 0, run.stderr
    rec = read_run(next((tmp_path / "res").rglob("run.json")).parent)
    assert rec["status"] == "budget_exhausted" and rec["steps"] == 5
    assert rec["submission"]["origin"] == "file" and rec["submission"]["name"] == "my_opt"
    # never overwrite
    again = bench("new", "submission", "my_opt", cwd=tmp_path, paths=(runnable_site,))
    assert again.returncode == 2 and "already exists" in one_line_error(again)
    assert path.read_text() == source


def test_bench_new_norm_runs_as_written(tmp_path):
    import torch

    result = new_submission("my_norm", kind="norm", directory=tmp_path)
    path = tmp_path / "my_norm.py"
    assert result.files == [path]
    plugin = Registry().submission(str(path))
    assert plugin.kind == "norm" and set(plugin.meta["SITES"]) == {"token", "node", "conv"}
    sub = plugin.load()
    from harness.api import Hyperparameters

    hp = Hyperparameters(plugin.meta["DEFAULTS"])
    for site, shape in (("conv", (2, 6, 5, 5)), ("token", (2, 3, 6)), ("node", (4, 6))):
        layer = sub.obj.make_norm(site, 6, hp)
        x = torch.randn(*shape) * 5
        assert layer(x).shape == x.shape
    # a node-site workload trains with it (paired with the workload's optimizer)
    rec = run_fake(tmp_path, str(path), steps=5).record
    assert rec["status"] == "budget_exhausted" and rec["norm"]["name"] == "my_norm"
    assert rec["norm"]["origin"] == "file"


def test_bench_new_package_declares_the_entry_point_and_runs(tmp_path, monkeypatch):
    result = new_submission("pkg_opt", package=True, directory=tmp_path)
    root = tmp_path / "optbench-pkg-opt"
    assert result.root == root
    project = load_toml(root / "pyproject.toml")
    entry = project["project"]["entry-points"]["optbench.submissions"]
    assert entry == {"pkg_opt": "optbench_pkg_opt.pkg_opt"}
    assert (root / "optbench_pkg_opt" / "pkg_opt.py").is_file() and (root / "README.md").is_file()
    # installed (faked): found through its entry point, and runs
    monkeypatch.syspath_prepend(str(fake_dist(root, project["project"]["name"], project["project"]["version"], submissions=entry)))
    registry = fake_registry()
    plugin = registry.submission("pkg_opt")
    assert (plugin.origin, plugin.distribution, plugin.version) == ("entry_point", "optbench-pkg-opt", "0.1.0")
    rec = run_fake(tmp_path, "pkg_opt", registry=registry, steps=5).record
    assert rec["status"] == "budget_exhausted" and rec["submission"]["origin"] == "entry_point"


@pytest.mark.parametrize("name", ["2fast", "my-opt", "class", "has space", ""])
def test_bench_new_rejects_bad_names(name, tmp_path):
    with pytest.raises(UserInputError, match="not a valid Python identifier"):
        new_submission(name, directory=tmp_path)
    assert not any(tmp_path.iterdir())


def test_bench_new_rejects_taken_names_and_existing_files(tmp_path):
    with pytest.raises(UserInputError, match="'adamw' is already taken by builtin"):
        new_submission("adamw", directory=tmp_path)
    with pytest.raises(UserInputError, match="--kind must be one of optimizer, norm"):
        new_submission("x_opt", kind="sgd", directory=tmp_path)
    new_submission("twice", package=True, directory=tmp_path)
    module = tmp_path / "optbench-twice" / "optbench_twice" / "twice.py"
    module.write_text("# my edits\n")
    with pytest.raises(UserInputError, match="already exists; not overwriting"):
        new_submission("twice", package=True, directory=tmp_path)
    assert module.read_text() == "# my edits\n"


def test_bench_new_and_help_stay_torch_free(tmp_path):
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from harness.cli import app\n"
        f"r = CliRunner().invoke(app, ['new', 'submission', 'light', '--dir', {str(tmp_path)!r}])\n"
        "assert r.exit_code == 0, r.output\n"
        "r = CliRunner().invoke(app, ['new', 'submission', '--help'])\n"
        "assert r.exit_code == 0 and '--package' in r.output, r.output\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "light.py").is_file()


@pytest.mark.slow
def test_bench_new_optimizer_on_cifar(tmp_path):
    new_submission("cifar_opt", directory=tmp_path)
    out = bench("run", "--submission", "./cifar_opt.py", "--workload", "cifar", "--size", "tiny",
                "--output", str(tmp_path / "res"), "budget.max_steps=5", "eval.every_steps=5", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    rec = read_run(next((tmp_path / "res").rglob("run.json")).parent)
    assert rec["status"] == "budget_exhausted" and rec["steps"] == 5


# --------------------------------------------------------------------------- #
# the example package                                                          #
# --------------------------------------------------------------------------- #


def test_example_package_declares_its_entry_point():
    project = load_toml(EXAMPLE / "pyproject.toml")
    assert project["project"]["name"] == "optbench-adabelief"
    assert project["project"]["entry-points"]["optbench.submissions"] == {"adabelief": "optbench_adabelief.adabelief"}
    assert project["build-system"]["build-backend"] == "setuptools.build_meta"
    assert (EXAMPLE / "optbench_adabelief" / "adabelief.py").is_file() and (EXAMPLE / "README.md").is_file()
    builtin = {p.stem for p in (ROOT / "submissions" / "optimizers").glob("*.py")}
    assert "adabelief" not in builtin  # an optimizer optbench does not ship


def test_example_package_installed_is_found_and_runs(tmp_path, monkeypatch):
    project = load_toml(EXAMPLE / "pyproject.toml")["project"]
    site = fake_dist(tmp_path / "site", project["name"], project["version"],
                     submissions=project["entry-points"]["optbench.submissions"])
    monkeypatch.syspath_prepend(str(EXAMPLE))  # what `pip install -e` puts on the path
    monkeypatch.syspath_prepend(str(site))
    registry = fake_registry()
    plugin = registry.submission("adabelief")
    assert (plugin.origin, plugin.kind) == ("entry_point", "optimizer")
    assert (plugin.distribution, plugin.version) == ("optbench-adabelief", project["version"])
    assert plugin.source == EXAMPLE / "optbench_adabelief" / "adabelief.py"
    rec = run_fake(tmp_path, "adabelief", registry=registry).record
    assert rec["status"] == "budget_exhausted" and rec["steps"] == 10
    assert rec["submission"]["sha256"] == sha(plugin.source)
    assert rec["hyperparameters"]["optimizer"]["eps"] == 1e-16
