"""Outputs land where asked: checked before the run, written whole, through symlinks, straight to
devices and pipes; an interrupted command prints one line, exits 130 (SIGINT) or 143 (SIGTERM) and
leaves nothing half-written. Real ``edge`` processes, real signals."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import delays
from edge.platform.files import OutputError, check_directory, check_file, write_output
from scenario_builder import compose, service, traffic, write

ROOT = Path(__file__).resolve().parent.parent

# The worker marks that the simulation runs, so a test signals a process that is past its imports.
MARK = """
import pathlib
from edge.platform.fetch import Response

STARTED = pathlib.Path(__file__).with_name("started")


async def fetch(request, env, ctx):
    if not STARTED.exists():
        STARTED.touch()
    return Response("ok")
"""


def scenario(tmp_path: Path, duration: str = "2s") -> Path:
    app = service(routes=["example.com/*"], worker="mark.py")
    toml = compose(app, traffic=[traffic("poisson(200/s)", "https://example.com/")], name="tiny", duration=duration)
    return write(tmp_path, toml, {"mark.py": MARK}, file="tiny.toml")


def _default_sigint() -> None:
    # A child inherits an ignored SIGINT from a shell's background job; edge respects that, so the
    # test gives it the default a terminal would.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def edge(*args: str, cwd: Path | None = None, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=120, preexec_fn=_default_sigint, **kwargs)


def start_edge(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "edge.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, preexec_fn=_default_sigint, **kwargs)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.02)


# --- checked before the run ---------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--json", "--openmetrics"])
def test_an_output_into_a_missing_folder_is_refused_before_the_run(tmp_path, flag):
    started = time.monotonic()
    done = edge("run", str(scenario(tmp_path, "10h")), "-q", flag, str(tmp_path / "missing" / "out"))
    assert done.returncode == 2
    assert done.stderr == f"edge: error: cannot write output: {tmp_path / 'missing' / 'out'}: folder {tmp_path / 'missing'} does not exist\n"
    assert not (tmp_path / "started").exists()  # refused before any simulated request
    assert time.monotonic() - started < 30  # 10 simulated hours would take far longer


def test_plots_tune_and_plot_outputs_are_checked_before_they_run(tmp_path):
    (tmp_path / "file").write_text("")
    done = edge("run", str(scenario(tmp_path, "10h")), "-q", "--plots", str(tmp_path / "file" / "plots"))
    assert (done.returncode, done.stderr) == (2, f"edge: error: cannot write output: {tmp_path / 'file' / 'plots'}: folder {tmp_path / 'file'} is not a folder\n")
    assert not (tmp_path / "started").exists()
    done = edge("run", str(scenario(tmp_path)), "-q", "--json", str(tmp_path))
    assert (done.returncode, done.stderr) == (2, f"edge: error: cannot write output: {tmp_path}: is a folder, expected a file path\n")
    tune = ROOT / "scenarios" / "tune-canary.toml"
    for flag in ("--json", "--plot"):
        done = edge("tune", str(tune), "-q", "--jobs", "1", flag, str(tmp_path / "missing" / "t"))
        assert done.returncode == 2 and "folder" in done.stderr and "does not exist" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    (tmp_path / "r.json").write_text("{}")
    done = edge("plot", str(tmp_path / "r.json"), str(tmp_path / "missing" / "deeper"))
    assert done.returncode == 2


def test_check_file_and_directory_refuse_what_the_write_would():
    with pytest.raises(OutputError, match="No such file|does not exist"):
        check_file("/nonexistent-folder/x.json")
    with pytest.raises(OutputError, match="cannot write into folder"):
        check_file("/proc/edge-report.json")  # read-only for root as well: the probe writes for real
    check_file("/dev/null")
    check_directory("/tmp")


def test_a_plots_folder_may_be_created_but_not_its_parents(tmp_path):
    check_directory(tmp_path / "new")
    with pytest.raises(OutputError, match="does not exist"):
        check_directory(tmp_path / "new" / "deeper")


# --- written where asked ------------------------------------------------------------------------


def test_json_goes_through_a_symlink_and_keeps_it(tmp_path):
    (tmp_path / "real.json").write_text("old")
    (tmp_path / "link.json").symlink_to("real.json")
    done = edge("run", str(scenario(tmp_path)), "-q", "--json", str(tmp_path / "link.json"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "link.json").is_symlink() and os.readlink(tmp_path / "link.json") == "real.json"
    assert (tmp_path / "real.json").read_text().startswith('{\n  "scenario": "tiny"')
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "mark.py", "real.json", "started", "tiny.toml"]


def test_json_to_dev_stdout_is_written_to_the_redirected_stdout(tmp_path):
    out = tmp_path / "out.txt"
    with out.open("w") as stdout:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        done = subprocess.run([sys.executable, "-m", "edge.cli", "run", str(scenario(tmp_path)), "-q", "--json", "/dev/stdout"],
                              stdout=stdout, stderr=subprocess.PIPE, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert out.read_text().startswith('{\n  "scenario": "tiny"')
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mark.py", "out.txt", "started", "tiny.toml"]


def test_a_symlink_to_dev_null_stays_a_link_and_dev_null_a_device(tmp_path):
    (tmp_path / "null").symlink_to("/dev/null")
    done = edge("run", str(scenario(tmp_path)), "-q", "--json", str(tmp_path / "null"), "--openmetrics", str(tmp_path / "null"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "null").is_symlink()
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_json_into_a_fifo_is_written_to_its_reader(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    done = edge("run", str(scenario(tmp_path)), "-q", "--json", str(fifo))
    reader.join(timeout=30)
    assert done.returncode == 0, done.stderr
    assert received and received[0].startswith(b'{\n  "scenario": "tiny"')
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_full_device_is_one_line_and_exit_2():
    done = edge("run", str(ROOT / "scenarios" / "default.toml"), "-q", "--duration", "1s", "--json", "/dev/full")
    assert (done.returncode, done.stderr) == (2, "edge: error: cannot write output: /dev/full: No space left on device\n")


def test_an_interrupted_write_leaves_the_old_file_or_the_new_one_never_a_temporary(tmp_path):
    """Real SIGINTs, sent by a timer thread, land at varied points of many writes."""
    target = tmp_path / "report.json"
    old, new = b"o" * 1_000_000, b"n" * 1_000_000
    interrupted = 0
    for attempt in range(200):
        target.write_bytes(old)
        timer = threading.Timer(0.00005 * (attempt % 40), os.kill, (os.getpid(), signal.SIGINT))
        try:
            timer.start()
            write_output(target, new)
            time.sleep(1)  # the signal lands here if the write was faster
        except KeyboardInterrupt:
            interrupted += 1
        timer.join()
        assert target.read_bytes() in (old, new)
        assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
    assert interrupted == 200


# --- interrupted --------------------------------------------------------------------------------


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_run_prints_one_line_and_leaves_no_output(tmp_path, sig, code):
    out = tmp_path / "out"
    out.mkdir()
    process = start_edge("run", str(scenario(tmp_path, "10h")), "-q", "--json", str(out / "r.json"),
                         "--openmetrics", str(out / "r.om"), "--plots", str(out / "plots"))
    wait_for(tmp_path / "started", process)
    with delays.measured(process) as waited:
        sent = time.monotonic()
        process.send_signal(sig)
        _, err = process.communicate(timeout=30)
        took = time.monotonic() - sent
    assert (process.returncode, err) == (code, f"edge: interrupted by {sig.name}\n")
    assert took < 2.0 + waited.seconds  # the clock polls for signals every 20 ms of wall time
    assert list(out.iterdir()) == []


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell starts a job in the background


def test_a_run_started_in_the_background_ignores_sigint_and_sigterm_interrupts_it_cleanly_wherever_it_lands(tmp_path):
    """SIGINT ignored (a background job): SIGTERM's interrupt goes through trio's and the watchdog's
    handlers. Raised straight from the SIGTERM handler it landed anywhere: in trio (exit 70,
    TrioInternalError) or in a worker step, answered as a 500, the run going on to exit 0. Three
    interrupts at different moments of the run, each a clean 143 with one line and no output."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for n, after in enumerate((0.0, 0.3, 0.7)):
        out = tmp_path / f"out{n}"
        out.mkdir()
        (tmp_path / "started").unlink(missing_ok=True)
        process = subprocess.Popen([sys.executable, "-m", "edge.cli", "run", str(scenario(tmp_path, "10h")), "-q", "--json", str(out / "r.json"),
                                    "--openmetrics", str(out / "r.om")],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=_ignore_sigint)
        wait_for(tmp_path / "started", process)
        if n == 0:
            process.send_signal(signal.SIGINT)  # ignored, as the shell asked
            time.sleep(0.5)
            assert process.poll() is None
        time.sleep(after)
        process.send_signal(signal.SIGTERM)
        try:
            _, err = process.communicate(timeout=60)  # a swallowed interrupt runs on: 10 simulated hours
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert (process.returncode, err) == (143, "edge: interrupted by SIGTERM\n"), after
        assert list(out.iterdir()) == []


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            if f"\nPPid:\t{pid}\n" in status:
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_tune_stops_its_processes_and_prints_one_line(tmp_path, sig, code):
    """Ctrl-C in a terminal reaches the whole process group (here: killpg), replication
    processes included; SIGTERM from a supervisor reaches the command alone."""
    process = start_edge("tune", str(ROOT / "scenarios" / "tune-canary.toml"), "-q", "--jobs", "2",
                         "--json", str(tmp_path / "t.json"), "--plot", str(tmp_path / "t.png"), start_new_session=True)
    deadline = time.monotonic() + 60
    while len(_children(process.pid)) < 2:
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    children = _children(process.pid)
    time.sleep(0.5)  # into the replications
    if sig == signal.SIGINT:
        os.killpg(process.pid, sig)
    else:
        process.send_signal(sig)
    _, err = process.communicate(timeout=30)
    assert (process.returncode, err) == (code, f"edge: interrupted by {sig.name}\n")
    assert list(tmp_path.iterdir()) == []
    deadline = time.monotonic() + 5
    while any(map(_running, children)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(map(_running, children))


def _running(pid: int) -> bool:
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


# --- written side by side -----------------------------------------------------------------------

_OUTPUTS = """
import json, sys
from pathlib import Path
from edge.engine.simulate import default_scenario_path, simulate
from edge.report.build import build_report
from edge.report.outputs import write_outputs
from edge.scenario.load import load

out = Path(sys.argv[1])
report = build_report(simulate(load(default_scenario_path()), seed=1, duration=20.0))
asked = json.loads(sys.argv[2])
written = write_outputs(report, **{name: out / path for name, path in asked.items()})
print(json.dumps([str(p.relative_to(out)) for p in written]), "matplotlib" in sys.modules)
"""


def test_plots_are_drawn_aside_while_the_other_outputs_are_written_and_alone_here(tmp_path):
    """Asked with another output, the plots are drawn by a child (matplotlib never loaded here);
    asked alone, here. The same figures either way, byte for byte."""
    runs = {}
    for name, asked in (("aside", {"json": "r.json", "html": "r.html", "plots": "plots"}), ("here", {"plots": "plots"})):
        (tmp_path / name).mkdir()
        done = subprocess.run([sys.executable, "-c", _OUTPUTS, str(tmp_path / name), json.dumps(asked)],
                              capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert done.returncode == 0, done.stderr
        runs[name] = done.stdout.rsplit(" ", 1)
    assert runs["aside"] == ['["plots/latency.png", "plots/traffic.png", "plots/canary.png", "plots/cpu.png"]', "False\n"]
    assert runs["here"] == [runs["aside"][0], "True\n"]
    assert sorted(p.name for p in (tmp_path / "aside").iterdir()) == ["plots", "r.html", "r.json"]
    for png in ("latency.png", "traffic.png", "canary.png", "cpu.png"):
        assert (tmp_path / "aside" / "plots" / png).read_bytes() == (tmp_path / "here" / "plots" / png).read_bytes()


def test_plots_that_cannot_be_drawn_aside_fail_the_run_and_the_other_outputs_are_kept(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    blocker = out / "plots"
    done_once = edge("run", str(scenario(tmp_path)), "-q", "--json", str(out / "r.json"), "--plots", str(blocker),
                     "--openmetrics", str(out / "r.om"))
    assert done_once.returncode == 0, done_once.stderr
    # latency.png made a folder: the child cannot write it, while the parent writes its outputs.
    (blocker / "latency.png").unlink()
    (blocker / "latency.png").mkdir()
    (out / "r.json").unlink()
    done = edge("run", str(scenario(tmp_path)), "-q", "--json", str(out / "r.json"), "--plots", str(blocker),
                "--openmetrics", str(out / "r.om"))
    assert done.returncode == 2
    assert done.stderr.startswith(f"edge: error: cannot write output: {blocker / 'latency.png'}: "), done.stderr
    assert "Traceback" not in done.stderr
    assert json.loads((out / "r.json").read_text())["seed"] == 1
    assert (out / "r.om").read_bytes().endswith(b"# EOF\n")
