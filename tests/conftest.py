"""Test setup, run before the JAX backend starts (`jax_num_cpu_devices` must precede it).

* 8 simulated CPU devices, so sharding code runs as on an 8-chip host.
* Convolutions formulated by the fixed rule, not the per-shape autotune (`conv_autotune`).
* One persistent compilation cache for the session (a temporary folder, removed at its end, unless
  JAXGAN_TEST_COMPILATION_CACHE names one to keep), shared by pytest-xdist's workers and inherited
  (through the environment) by the `python -m jaxgan.main` subprocesses some tests start: several
  tests compile the same smoke-sized train step, and XLA:CPU takes seconds per compile; compiling
  is over half of the suite's time.
* XLA:CPU's code generated at LLVM's optimisation level 0 (`--xla_backend_optimization_level=0`,
  unless `XLA_FLAGS` sets a level): the suite compiles far more than it runs, and the level
  nearly halves a step's compile (NICE-GAN's float64 steps: 31 -> 18 s) while XLA's graph passes,
  and so the program, stay as they are (the machine code differs: float32 results may differ in
  their last bits, as they do from one CPU to another). Tests that run long (a classifier's
  training) are slower at level 0; the suite as a whole is a fifth faster (docs/testing.md).
* XLA:CPU's convolution kernels fixed (`eigen`, the choice outside training): which method's
  choice a worker's backend started with would otherwise depend on the order tests ran in (XLA
  reads it once per process) and on the choices measured on the developer's machine, and two
  workers would compile different programs for the same step.
"""

import collections
import glob
import json
import os
import shutil
import tempfile

# LLVM's optimisation level 0 (module docstring); test_object_store's processes get it too.
FAST_COMPILE = "--xla_backend_optimization_level=0"

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Stride-1 convolutions keep the fixed rule here: a test's program must not depend on which
# formulation one machine timed faster. The per-shape autotune has tests of its own.
os.environ.setdefault("JAXGAN_CONV_IMPL", "rule")
# No test downloads the FID Inception weights (~100 MB); the download's own tests unset this.
os.environ.setdefault("JAXGAN_NO_DOWNLOAD", "1")
os.environ.setdefault("JAXGAN_XLA_CPU_CONV", "eigen")
if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE}".strip()
# The controller runs this first and its workers inherit its environment: one folder for all,
# removed when the controller ends (a folder the caller named is kept: a cache across runs).
_OWN_CACHE = "JAXGAN_TEST_COMPILATION_CACHE" not in os.environ
if _OWN_CACHE:
    os.environ["JAXGAN_TEST_COMPILATION_CACHE"] = tempfile.mkdtemp(prefix="jaxgan-test-xla-")
os.environ["JAX_COMPILATION_CACHE_DIR"] = os.environ["JAXGAN_TEST_COMPILATION_CACHE"]
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.5"
os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)


import pytest  # noqa: E402

# Fixtures that train a whole run through the loop. A test using one (directly or through another
# fixture) is in the slow tier, as are the tests that start a `python -m jaxgan...` subprocess
# (marked where they are written): `pytest -m "not slow"` is the fast developer loop.
WHOLE_RUN_FIXTURES = frozenset(
    {
        "make_smoke_run",
        "translation_run",
        "run",
        "subset_run",
        "nice_run",
        "smoke_run",
        "dcgan_run",
        "converted",  # runs converted from the released TF checkpoints
    }
)


def pytest_collection_modifyitems(items):
    for item in items:
        if WHOLE_RUN_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


# `JAXGAN_TEST_COMPILE_REPORT=FOLDER python -m pytest ...`: the XLA compiles each test ran, their
# seconds and the compilation-cache hits (JAX's monitoring events), one JSON file per pytest-xdist
# worker in FOLDER, and at the end the tests that compiled longest. Compiling is most of the
# suite's time (docs/testing.md): this says where.
COMPILE_REPORT = os.environ.get("JAXGAN_TEST_COMPILE_REPORT", "")
_compiles = collections.defaultdict(lambda: {"compiles": 0, "seconds": 0.0, "cache_hits": 0})
_running = ["(between tests)"]


def _count_compile(event, seconds, **_):
    if event == "/jax/core/compile/backend_compile_duration":
        _compiles[_running[0]]["compiles"] += 1
        _compiles[_running[0]]["seconds"] += seconds


def _count_cache_hit(event, **_):
    if event == "/jax/compilation_cache/cache_hits":
        _compiles[_running[0]]["cache_hits"] += 1


if COMPILE_REPORT:
    jax.monitoring.register_event_duration_secs_listener(_count_compile)
    jax.monitoring.register_event_listener(_count_cache_hit)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _running[0] = item.nodeid  # a fixture's compiles count to the first test that uses it
    yield
    _running[0] = "(between tests)"


def _report_file() -> str:
    return os.path.join(COMPILE_REPORT, os.environ.get("PYTEST_XDIST_WORKER", "main") + ".json")


def pytest_sessionstart(session):
    if COMPILE_REPORT and "PYTEST_XDIST_WORKER" not in os.environ:  # the controller: start afresh
        os.makedirs(COMPILE_REPORT, exist_ok=True)
        for stale in glob.glob(os.path.join(COMPILE_REPORT, "*.json")):
            os.remove(stale)


def pytest_sessionfinish(session):
    if COMPILE_REPORT:
        with open(_report_file(), "w") as f:
            json.dump(_compiles, f, indent=0)


def pytest_unconfigure(config):
    # The controller's last hook, after its workers (and their subprocesses) have ended.
    if _OWN_CACHE:
        shutil.rmtree(os.environ["JAXGAN_TEST_COMPILATION_CACHE"])


def pytest_terminal_summary(terminalreporter):
    if not COMPILE_REPORT:
        return
    tests = {}
    for path in glob.glob(os.path.join(COMPILE_REPORT, "*.json")):
        with open(path) as f:
            tests.update(json.load(f))
    total = {k: sum(t[k] for t in tests.values()) for k in ("compiles", "seconds", "cache_hits")}
    write = terminalreporter.write_line
    write(
        f"XLA compiles: {total['compiles']} in {total['seconds']:.0f} s, "
        f"{total['cache_hits']} read from the compilation cache ({COMPILE_REPORT})"
    )
    for name, t in sorted(tests.items(), key=lambda kv: -kv[1]["seconds"])[:15]:
        write(
            f"{t['seconds']:7.1f} s {t['compiles']:5d} compiles {t['cache_hits']:4d} hits  {name}"
        )


def _smoke_config(**overrides):
    """`wgan_gp:smoke` on one device, no TensorBoard, a constant lr, with flattened `overrides`.

    Constant, not the preset's linear decay: the decay's horizon (num_steps) is a constant of the
    compiled step, so every num_steps a test picks would compile the step anew (seconds each);
    with a constant lr the tests' runs share one program through the compilation cache. The
    decay has a test of its own (test_train.py)."""
    from jaxgan.configs import wgan_gp

    config = wgan_gp.get_config("smoke")
    config.tensorboard = False
    config.num_devices = 1
    config.optim.decay = "constant"
    config.update_from_flattened_dict(overrides)
    return config


@pytest.fixture(scope="session")
def smoke_config():
    """`smoke_config(**overrides)`: the smoke config the loop tests and `make_smoke_run` train."""
    return _smoke_config


@pytest.fixture(scope="session")
def make_smoke_run(tmp_path_factory):
    """Trains `wgan_gp:smoke` (3 steps) into a fresh workdir: `make(name, **model)`.

    `model` overrides `config.model` fields (e.g. conditional_generator=True, ac_head=True).
    Trained on one device, whose step compiles ~2x faster than on 8; readers restore it onto the
    8 test devices, as a run moved to another host would be. Returns (workdir, config).
    """
    from jaxgan.training import loop

    def make(name, **model):
        workdir = str(tmp_path_factory.mktemp(name))
        config = _smoke_config(**{f"model.{k}": v for k, v in model.items()})
        loop.train_and_evaluate(config, workdir)
        return workdir, config

    return make


@pytest.fixture
def run_experiments_cli():
    """`run(argv)`: `python -m jaxgan.experiments` parsed and run in this process (absl flags; a
    subprocess would compile again)."""
    from jaxgan.experiments import cli as experiments

    def run(argv):
        experiments.define_flags()
        try:
            experiments.main(experiments.FLAGS(["jaxgan.experiments", *argv]))
        finally:
            experiments.FLAGS.unparse_flags()

    return run


def restore_only_checkpoint(workdir, step):
    """(state, meta) of `workdir`'s checkpoint `step` as saved, asserting it is the only one: what
    a converted or imported run holds."""
    from jaxgan.core import checkpoint

    ckpt = checkpoint.Checkpointer(workdir, read_only=True)
    try:
        assert ckpt.all_steps() == [step]
        return ckpt.restore_as_saved(step)
    finally:
        ckpt.close()


def write_two_domain_folder(root, size=20, train=5, test=2):
    """A two-domain folder in the reference layout (trainA/ trainB/ testA/ testB/, PNG): reddish
    images in A, bluish in B, test images with the same file names in A and B."""
    import numpy as np
    from PIL import Image

    rng = np.random.RandomState(0)
    for split, n in (("train", train), ("test", test)):
        for domain, channel in (("A", 0), ("B", 2)):
            folder = root / f"{split}{domain}"
            folder.mkdir(parents=True)
            for i in range(n):
                image = rng.randint(0, 120, (size, size, 3)).astype(np.uint8)
                image[..., channel] += 120
                Image.fromarray(image).save(folder / f"{i:03d}.png")
    return root


def _translation_smoke_config(root, num_steps=3, method="cyclegan"):
    """`<method>:smoke` on `folder:root`, one device, a constant lr (num_steps may
    change mid-run)."""
    import importlib

    c = importlib.import_module(f"jaxgan.configs.{method}").get_config("smoke")
    c.data.dataset, c.tensorboard, c.num_devices = f"folder:{root}", False, 1
    c.num_steps, c.decay_steps = num_steps, 0
    return c


@pytest.fixture(scope="session")
def translation_smoke_config():
    """`translation_smoke_config(root, num_steps=3, method='cyclegan')`: the config
    `translation_run` trains (method: 'nicegan' for NICE-GAN's)."""
    return _translation_smoke_config


@pytest.fixture(scope="session")
def translation_run(tmp_path_factory):
    """`cyclegan:smoke` trained for 3 steps (checkpoints 1, 2, 3; keep_last 2) on a
    `write_two_domain_folder` pair. Returns (workdir, pair root, config, final state)."""
    from jaxgan.training import loop

    root = write_two_domain_folder(tmp_path_factory.mktemp("pair"))
    workdir = str(tmp_path_factory.mktemp("translation_run"))
    config = _translation_smoke_config(root)
    state = loop.train_and_evaluate(config, workdir)
    return workdir, root, config, state


@pytest.fixture(scope="session")
def classifier_script():
    """`scripts/train_mnist_classifier.py` as a module: the recipe and paths the shipped domain
    classifiers (mnist_cnn, fashion_cnn) were trained with."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).parents[1] / "scripts" / "train_mnist_classifier.py"
    spec = importlib.util.spec_from_file_location("train_mnist_classifier", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
