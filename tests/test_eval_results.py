"""The evaluator's results log (`eval/results.py`): a log that survives kills and concurrent
evaluators, error rows, and plots and the summary of rows without a value (`eval/report.py`)."""

import json

from jaxgan.core import run_files
from jaxgan.eval import report, results


def _row(step, metric="fid", value=1.0):
    identity = dict.fromkeys(results.IDENTITY_FIELDS)
    return {**identity, "kind": "checkpoint", "step": step, "metric": metric, "value": value}


def _skipped_lines_warnings(caplog):
    return [r.getMessage() for r in caplog.records if "skipped line(s)" in r.getMessage()]


def test_torn_last_line_is_skipped_once_and_the_next_append_is_parseable(tmp_path, caplog):
    path = tmp_path / "eval" / "metrics.jsonl"
    path.parent.mkdir()
    complete = [_row(2), _row(3)]
    torn = json.dumps(_row(4))[:25]  # an evaluator killed mid-append: no newline either
    path.write_text("".join(json.dumps(r) + "\n" for r in complete) + torn)
    log = results.MetricsLog(str(path))
    assert log.rows == complete
    assert _skipped_lines_warnings(caplog) == [
        f"{path}: skipped line(s) 3, not JSON rows (an evaluator killed mid-append?)."
    ]
    log.write(_row(4, value=7.0))
    log.write(_row(5, value=8.0))  # re-reads the file under the lock: no second warning
    assert len(_skipped_lines_warnings(caplog)) == 1
    lines = path.read_text().splitlines()
    assert lines[2] == torn  # kept as it was, and the append started on a new line
    assert [json.loads(line)["value"] for line in lines[3:]] == [7.0, 8.0]
    assert log.rows == complete + [_row(4, value=7.0), _row(5, value=8.0)]
    caplog.clear()
    assert run_files.read_jsonl(str(path)) == log.rows  # the trainer's reader: same tolerance
    assert _skipped_lines_warnings(caplog) == [
        f"{path}: skipped line(s) 3, not JSON rows (a writer killed mid-line leaves a torn line)."
    ]
    # Zero bytes (what a crash can leave) and a character cut in two are skipped alike.
    path.write_bytes(b"\0\0\0\n" + json.dumps(_row(2)).encode() + b'\n{"metric": "\xc3')
    assert run_files.read_jsonl(str(path)) == [_row(2)]
    assert run_files.parse_jsonl(str(path)) == ([_row(2)], [1, 3])
    assert run_files.read_jsonl(str(tmp_path / "absent.jsonl")) == []


def test_force_rewrite_under_the_lock_keeps_rows_appended_meanwhile(tmp_path):
    path = tmp_path / "eval" / "metrics.jsonl"
    path.parent.mkdir()
    path.write_text(json.dumps(_row(2)) + "\n" + json.dumps(_row(3)) + "\n")
    log = results.MetricsLog(str(path))

    def append_as_another_evaluator(row):
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")

    append_as_another_evaluator(_row(4, value=4.0))  # after this log read the file
    log.write(_row(2, value=2.5))  # --force: replaces step 2's row
    assert run_files.read_jsonl(str(path)) == [_row(3), _row(4, value=4.0), _row(2, value=2.5)]

    # While another evaluator holds the lock, a write waits, then works on what it finds.
    import fcntl
    import threading

    with open(log.lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        writer = threading.Thread(target=log.write, args=(_row(3, value=3.5),))
        writer.start()
        writer.join(timeout=0.5)
        assert writer.is_alive()  # blocked on the lock
        append_as_another_evaluator(_row(5, value=5.0))
        fcntl.flock(lock, fcntl.LOCK_UN)
    writer.join(timeout=10)
    assert not writer.is_alive()
    assert run_files.read_jsonl(str(path)) == [
        _row(4, value=4.0),
        _row(2, value=2.5),
        _row(5, value=5.0),
        _row(3, value=3.5),
    ]
    assert log.rows == run_files.read_jsonl(str(path))


def test_error_rows_are_not_done_and_are_replaced(tmp_path):
    log = results.MetricsLog(str(tmp_path / "eval" / "metrics.jsonl"))
    identity = {k: v for k, v in _row(2).items() if k in results.IDENTITY_FIELDS}
    log.write(results.error_row(identity, "checkpoint /w/checkpoints/2: bad bytes"))
    assert not log.has(identity)
    (error,) = log.rows
    assert (error["value"], error["error"]) == (None, "checkpoint /w/checkpoints/2: bad bytes")
    log.write(_row(2, value=1.5))  # a later evaluator scores it: the error row is replaced
    assert log.has(identity)
    assert run_files.read_jsonl(log.path) == [_row(2, value=1.5)]


def test_plots_and_summary_skip_rows_without_a_value(tmp_path, capsys):
    good = dict(_row(2, value=3.0), values={"fid": 3.0}, n_fake=160, std=None)
    broken = results.error_row({k: good[k] for k in results.IDENTITY_FIELDS} | {"step": 3}, "x")
    report.print_summary([good, broken], ["fid"])
    assert capsys.readouterr().out == "step 2: fid = 3 (n_fake=160)\n"
    assert report.plot_metrics([good, broken], str(tmp_path)) == [str(tmp_path / "fid.png")]
    assert report.plot_metrics([broken], str(tmp_path / "none")) == []
