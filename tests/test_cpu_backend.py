"""core/cpu_backend.py: XLA:CPU's convolution kernels, chosen through XLA_FLAGS before JAX starts."""

import json

import jax
import jax.numpy as jnp
import pytest

from jaxgan.core import cpu_backend, errors
from jaxgan.training import registry

EIGEN = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"


@pytest.fixture
def before_start(monkeypatch, tmp_path):
    """configure() as a fresh process sees it: JAX's backend not started, the measured jaxlib, no
    choice measured on this machine yet (an empty cache folder)."""
    monkeypatch.delenv(cpu_backend.CHOICE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(cpu_backend, "_backend_started", lambda: False)
    monkeypatch.setattr(cpu_backend, "_jaxlib_release", lambda: cpu_backend.MEASURED_JAXLIB[0])
    return monkeypatch


def xla_flags() -> str:
    return cpu_backend.os.environ["XLA_FLAGS"]


def test_each_call_replaces_the_last_choice_and_keeps_the_other_flags(before_start):
    before_start.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    assert cpu_backend.configure() == "eigen"
    assert xla_flags() == f"--xla_force_host_platform_device_count=2 {EIGEN}"
    assert cpu_backend.configure("ynn") == "ynn"  # a translation method's, before the start
    assert xla_flags() == "--xla_force_host_platform_device_count=2"
    assert cpu_backend.configure("eigen") == "eigen"
    assert xla_flags().count(cpu_backend.FLAG) == 1


def test_the_environment_overrides_the_method_and_a_users_flag_overrides_both(before_start):
    before_start.setenv("XLA_FLAGS", "")
    before_start.setenv(cpu_backend.CHOICE_ENV, "YNN")
    assert cpu_backend.configure("eigen") == "ynn" and xla_flags() == ""

    users = "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"
    before_start.setenv("XLA_FLAGS", users)
    before_start.setenv(cpu_backend.CHOICE_ENV, "eigen")
    assert cpu_backend.configure() == f"as XLA_FLAGS sets {users}"
    assert xla_flags() == users


def test_nothing_changes_once_the_backend_started_or_on_an_unmeasured_jaxlib(before_start):
    before_start.setenv("XLA_FLAGS", EIGEN)
    before_start.setattr(cpu_backend, "_backend_started", lambda: True)
    assert cpu_backend.configure("ynn") == "eigen" and xla_flags() == EIGEN

    before_start.setattr(cpu_backend, "_backend_started", lambda: False)
    before_start.setattr(cpu_backend, "_jaxlib_release", lambda: (99, 0))
    assert cpu_backend.configure("eigen") == "ynn" and xla_flags() == ""
    before_start.setenv(cpu_backend.CHOICE_ENV, "eigen")  # nor by the variable: it says why not
    assert cpu_backend.configure() == "ynn" and "not a measured release" in cpu_backend.reason()


def test_a_bad_choice_names_the_variable_and_the_choices(before_start):
    before_start.setenv(cpu_backend.CHOICE_ENV, "onednn")
    with pytest.raises(
        errors.ConfigError, match=r"JAXGAN_XLA_CPU_CONV='onednn': expected one of eigen, xla, ynn"
    ):
        cpu_backend.configure()
    with pytest.warns(UserWarning, match="JAXGAN_XLA_CPU_CONV='onednn'"):
        cpu_backend.configure_at_import()  # an import does not fail on it


def test_a_training_config_sets_its_methods_kernels(before_start):
    before_start.setenv("XLA_FLAGS", "")
    assert registry.use_cpu_convolutions_of(_config("progressive")) == "eigen"
    assert xla_flags() == EIGEN
    assert registry.use_cpu_convolutions_of(_config("nicegan")) == "ynn"
    assert xla_flags() == ""
    assert registry.use_cpu_convolutions_of(_config("gan")) == "xla"
    assert xla_flags() == "--xla_cpu_experimental_ynn_fusion_type="


def _config(method: str):
    import ml_collections

    return ml_collections.ConfigDict({"method": method})


def test_the_choice_reached_xla():
    """The suite imported jaxgan before JAX's backend started, so XLA compiled with its choice: on
    the jaxlib it was measured on, a convolution is XLA's own instruction (Eigen), not a YNNPACK
    library fusion; on another, XLA_FLAGS were left as they were."""
    conv = jax.jit(lambda x, k: jax.lax.conv(x, k, (1, 1), "SAME"))
    text = conv.lower(jnp.ones((2, 3, 8, 8)), jnp.ones((4, 3, 3, 3))).compile().as_text()
    if cpu_backend._jaxlib_release() in cpu_backend.MEASURED_JAXLIB:
        assert cpu_backend.current() == "eigen"
        assert "ynn_fusion" not in text and "convolution(" in text, text[-2000:]
    else:
        assert cpu_backend.FLAG not in cpu_backend.os.environ.get("XLA_FLAGS", "")


def test_fastest_keeps_the_default_unless_a_choice_is_faster_beyond_its_spread():
    step_ms = {"eigen": [100.0, 104.0, 98.0], "xla": [120.0, 125.0, 119.0], "ynn": [105.0, 99.0]}
    assert cpu_backend.fastest(step_ms, "ynn") == "ynn"  # eigen's range overlaps ynn's
    assert cpu_backend.fastest(step_ms, "xla") == "eigen"  # wholly below xla's range
    assert cpu_backend.fastest({**step_ms, "ynn": [130.0, 140.0]}, "ynn") == "eigen"


def test_the_choosers_step_command_drops_its_own_flags():
    from jaxgan import bench

    argv = ["--config=wgan_gp:smoke", "--choose_cpu_convolutions", "--rounds", "3", "--steps=5"]
    assert bench.step_command(argv)[1:] == [
        "-m",
        "jaxgan.bench",
        "--config=wgan_gp:smoke",
        "--steps=5",
    ]
    argv = ["--rounds=2", "--config.batch_size=8", "--nochoose_cpu_convolutions"]
    assert bench.step_command(argv)[3:] == ["--config.batch_size=8"]


def test_a_choice_measured_on_this_cpu_wins_over_the_methods_on_this_machine_only(
    before_start, tmp_path
):
    """bench --choose_cpu_convolutions keeps the fastest choice per machine and method; training
    configures it (and says so) where the machine matches, the method's own elsewhere."""
    from jaxgan import bench

    before_start.setenv("XLA_FLAGS", "")
    ms = {"eigen": iter([90.0, 95.0]), "xla": iter([130.0, 120.0]), "ynn": iter([125.0, 128.0])}
    lines = bench.choose_cpu_convolutions("gan", 2, lambda choice: next(ms[choice]), "cmd")
    assert lines[-1].startswith(
        "chosen: eigen for method gan on this CPU (1.35x as fast as xla by the"
    )
    assert "eigen_step_ms: median 92.5 (range 90.0-95.0)" in lines
    answer = cpu_backend.measured("gan")
    assert answer["choice"] == "eigen" and answer["step_ms"]["xla"] == [130.0, 120.0]
    assert cpu_backend.measured("progressive") is None

    assert registry.use_cpu_convolutions_of(_config("gan")) == "eigen"
    assert xla_flags() == EIGEN and cpu_backend.reason().startswith(
        "chosen for gan by a measurement on this CPU"
    )
    before_start.setattr(cpu_backend, "machine", lambda: "another CPU|jaxlib 0.10.2")
    assert registry.use_cpu_convolutions_of(_config("gan")) == "xla"
    assert cpu_backend.reason() == "gan's default"

    (tmp_path / "jaxgan" / cpu_backend.MEASURED_FILE).write_text("{not json")
    assert cpu_backend.measured("gan") is None  # unreadable: the method's default meanwhile
    table = {cpu_backend.machine(): ["a hand edit"], "another CPU": {"gan": {"choice": "ynn"}}}
    (tmp_path / "jaxgan" / cpu_backend.MEASURED_FILE).write_text(json.dumps(table))
    assert cpu_backend.measured("gan") is None
    cpu_backend.record_measured("gan", {"choice": "xla"})  # replaces this machine's entry only
    table = json.loads((tmp_path / "jaxgan" / cpu_backend.MEASURED_FILE).read_text())
    assert table == {
        cpu_backend.machine(): {"gan": {"choice": "xla"}},
        "another CPU": {"gan": {"choice": "ynn"}},
    }
    assert cpu_backend.measured("gan") == {"choice": "xla"}
