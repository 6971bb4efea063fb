"""A checkpoint damaged on disk costs that one checkpoint, quietly (`loop.restore_newest_readable`).

One smoke run (checkpoints 5 and 6) is trained per session; each test damages a copy of checkpoint
6 one way and reruns `python -m jaxgan.main` to step 8: it must exit 0, move 6 aside to
`6.unreadable`, resume from 5, and print no traceback (a failed Orbax read used to leave its other
arrays' TensorStore reads running on a closed event loop: "RuntimeError: Event loop is closed").
"""

import asyncio
import os
import shutil
import subprocess
import sys
import threading

import pytest
import tensorstore as ts

from jaxgan.core import checkpoint

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


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_checkpoint_is_moved_aside_quietly(trained, tmp_path, damage):
    workdir = str(tmp_path / "run")
    shutil.copytree(trained, workdir)
    DAMAGE[damage](workdir)
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
