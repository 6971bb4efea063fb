"""A checkpoint damaged on disk costs that one checkpoint, quietly (`loop.restore_newest_readable`).

One smoke run (checkpoints 5 and 6) is trained per module. Each way of damaging a copy of
checkpoint 6 is restored in this process: 6 is moved aside to `6.unreadable`, named once in the
log, and checkpoint 5 comes back bit-equal. Two of them (one stored value overwritten while the
others are still being read, every data file truncated) also rerun `python -m jaxgan.main` to step
8: it must exit 0, resume from 5 and print no traceback (a failed Orbax read used to leave its
other arrays' TensorStore reads running on a closed event loop: "RuntimeError: Event loop is
closed", printed as the process ended).
"""

import asyncio
import os
import shutil
import subprocess
import sys
import threading

import jax
import ml_collections
import numpy as np
import pytest
import tensorstore as ts

from jaxgan.core import checkpoint, parallel
from jaxgan.training import loop, registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = [
    "--config=wgan_gp:smoke",
    "--config.tensorboard=False",
    "--config.checkpoint_every=1",
    "--config.keep_last=2",
]

pytestmark = pytest.mark.slow


def _main(workdir, num_steps):
    return subprocess.run(
        [sys.executable, "-m", "jaxgan.main", *FLAGS, f"--workdir={workdir}"]
        + [f"--config.num_steps={num_steps}"],
        cwd=ROOT,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A smoke run of 6 steps: its checkpoints are 5 and 6."""
    workdir = str(tmp_path_factory.mktemp("damaged") / "run")
    result = _main(workdir, 6)
    assert result.returncode == 0, result.stdout[-3000:]
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["5", "6"]
    return workdir


def _state_dir(workdir):
    return os.path.join(workdir, "checkpoints", "6", "state")


def _data_files(workdir):
    """The OCDBT data files of checkpoint 6's `state` item (not its b-tree root)."""
    folder = os.path.join(_state_dir(workdir), "ocdbt.process_0", "d")
    files = [os.path.join(folder, name) for name in sorted(os.listdir(folder))]
    assert files
    return files


def _overwrite_entry(workdir, entry):
    """Zeros 256 bytes in the middle of every stored value of state entry `entry` (e.g.
    "d_params") that lives in a data file: the bytes are damaged in place, the size kept."""
    state = _state_dir(workdir) + os.sep
    base = ts.KvStore.open({"driver": "file", "path": state}).result()
    root = ts.ocdbt.dump(base).result()["versions"][-1]["root"]["location"]
    entries = ts.ocdbt.dump(base, root).result()["entries"]
    damaged = 0
    for e in entries:
        if e["key"].startswith(f"{entry}.".encode()) and "indirect_value" in e:
            _, folder, name, offset, length = e["indirect_value"].split(":")
            size = min(256, int(length) // 2)
            with open(os.path.join(state, folder, name), "r+b") as f:
                f.seek(int(offset) + int(length) // 2 - size // 2)
                f.write(b"\0" * size)
            damaged += 1
    assert damaged, f"no stored value of {entry} lives in a data file"


def _truncate_data_files(workdir):
    for path in _data_files(workdir):
        os.truncate(path, os.path.getsize(path) // 2)


def _delete_metadata_file(workdir):
    os.remove(os.path.join(_state_dir(workdir), "_METADATA"))


def _delete_item_directory(workdir):
    shutil.rmtree(_state_dir(workdir))


DAMAGE = {
    **{
        f"overwritten-{entry}": lambda w, entry=entry: _overwrite_entry(w, entry)
        for entry in ("g_params", "d_params", "g_opt", "d_opt", "ema_params")
    },
    "truncated-data-files": _truncate_data_files,
    "deleted-metadata-file": _delete_metadata_file,
    "deleted-item-directory": _delete_item_directory,
}


def test_a_failed_read_ends_its_other_reads_before_the_loop_closes():
    """The mechanism, without timing luck: one array's read fails at once while another's is still
    in flight on a library thread, which will call back into the loop (as TensorStore does)."""
    callback_errors, timers = [], []

    async def slow_read(loop):
        future = loop.create_future()

        def done():  # a TensorStore thread completing a read
            try:
                loop.call_soon_threadsafe(future.set_result, "bytes")
            except RuntimeError as e:
                callback_errors.append(e)

        timers.append(threading.Timer(0.3, done))
        timers[-1].start()
        return await future

    async def bad_read():
        raise ValueError("DATA_LOSS: damaged")

    async def restore():
        loop = asyncio.get_running_loop()
        return await asyncio.gather(slow_read(loop), bad_read())

    with pytest.raises(checkpoint.UnreadableCheckpoint, match="DATA_LOSS: damaged"):
        with checkpoint._reading("/checkpoints", 6):
            loop = asyncio.new_event_loop()  # as Orbax's asyncio_utils.run_sync does
            try:
                loop.run_until_complete(restore())
            finally:
                loop.close()
    timers[0].join()
    assert loop.is_closed() and not callback_errors


def _damaged_copy(trained, tmp_path, damage):
    workdir = str(tmp_path / "run")
    shutil.copytree(trained, workdir)
    DAMAGE[damage](workdir)
    return workdir


@pytest.fixture(scope="module")
def resume_inputs(trained):
    """(config, the abstract state main restores into, checkpoint 5's state and meta as saved)."""
    ckpt = checkpoint.Checkpointer(trained, read_only=True)
    try:
        saved, meta = ckpt.restore_as_saved(5)
    finally:
        ckpt.close()
    config = ml_collections.ConfigDict(meta["config"])
    mesh = parallel.make_mesh(1)
    trainer = registry.get(config.method).trainer(config, trained, mesh)
    try:
        abstract = loop.abstract_state(trainer, mesh)
    finally:
        trainer.close()
    return config, abstract, saved, meta


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_checkpoint_is_moved_aside_and_the_one_before_restored(
    trained, resume_inputs, tmp_path, damage, caplog
):
    workdir = _damaged_copy(trained, tmp_path, damage)
    config, abstract, saved, meta = resume_inputs
    state, restored_meta, changes = loop.restore_newest_readable(
        workdir, config, frozenset(), abstract
    )
    assert int(state["step"]) == 5 and restored_meta == meta and changes == {}
    restored = jax.device_get(state)
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(saved), strict=True):
        np.testing.assert_array_equal(jax.random.key_data(a) if _is_key(a) else a, b)
    checkpoints = sorted(os.listdir(os.path.join(workdir, "checkpoints")))
    assert checkpoints == ["5", "6.unreadable"], checkpoints
    named = [r.getMessage() for r in caplog.records if "Unreadable checkpoint" in r.getMessage()]
    assert len(named) == 1 and f"{os.sep}6:" in named[0], named


def _is_key(x) -> bool:
    return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


@pytest.mark.parametrize("damage", ["overwritten-g_params", "truncated-data-files"])
def test_main_resumes_past_a_damaged_checkpoint_quietly(trained, tmp_path, damage):
    workdir = _damaged_copy(trained, tmp_path, damage)
    result = _main(workdir, 8)
    output = result.stdout
    assert result.returncode == 0, output[-3000:]
    checkpoints = sorted(os.listdir(os.path.join(workdir, "checkpoints")))
    assert "6.unreadable" in checkpoints and "8" in checkpoints, checkpoints
    assert "Resumed from step 5 " in output, output[-3000:]
    named = [line for line in output.splitlines() if "Unreadable checkpoint" in line]
    assert len(named) == 1 and f"{os.sep}6:" in named[0], output[-3000:]
    noisy = [line for line in output.splitlines() if "Traceback" in line or "Event loop" in line]
    assert not noisy, output[-6000:]
