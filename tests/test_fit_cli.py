"""``edge fit LOG`` called in-process: the fragment on stdout, a scenario with ``-o`` that
``edge check`` accepts, PNGs with ``--plot``, and one line and exit 2 for a log it cannot fit."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.cli import main
from test_fit import NGINX, write_nginx_log


def test_fit_prints_the_figures_and_a_fragment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = write_nginx_log(tmp_path / "access.log")
    assert main(["fit", str(log), "--format", NGINX]) == 0
    out = capsys.readouterr().out
    assert "#   latency: n=3,000" in out and "lognormal" in out and "<- written" in out
    assert '[[services]]\nname = "app"\nroutes = ["example.com/*"]\nmodel = { latency = "lognormal(' in out
    assert 'arrivals = "poisson(' in out


def test_fit_writes_a_scenario_edge_check_accepts_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = write_nginx_log(tmp_path / "access.log")
    scenario, plots = tmp_path / "fitted.toml", tmp_path / "plots"
    assert main(["fit", str(log), "--format", NGINX, "--service", "api=*/api/*", "--service", "web=*/*",
                 "-o", str(scenario), "--plot", str(plots)]) == 0
    assert main(["check", str(scenario)]) == 0
    assert "ok (2 services, 2 environments, 2 traffic groups)" in capsys.readouterr().out
    assert sorted(p.name for p in plots.iterdir()) == ["api-latency.png", "api-size.png", "web-latency.png", "web-size.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in plots.iterdir())
    assert main(["fit", str(log), "--format", NGINX, "-o", str(scenario)]) == 2  # no --force: not replaced
    assert "fitted.toml: exists; pass --force to replace it" in capsys.readouterr().err


def test_a_log_without_times_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "access.log"
    log.write_text('10.0.0.1 - - [01/May/2024:12:00:00 +0000] "GET / HTTP/1.1" 200 10\n')
    assert main(["fit", str(log)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"edge: error: {log}: expected a log with request times") and err.count("\n") == 1


def test_no_family_fits_is_a_warning_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    g = np.random.default_rng(3)
    times = np.concatenate([g.normal(0.002, 0.0002, 1500), g.normal(0.05, 0.002, 1500)])
    g.shuffle(times)
    log = tmp_path / "access.log"
    log.write_text("".join(f'1.2.3.4 - - [01/May/2024:12:{i // 600:02d}:{i // 10 % 60:02d} +0000] "GET / HTTP/1.1" 200 10 {t:.4f}\n'
                           for i, t in enumerate(times)))
    assert main(["fit", f"{log}", "--format", NGINX]) == 0
    captured = capsys.readouterr()
    assert "edge: warning: app: no family fits" in captured.err
    assert 'latency = "empirical(p0=' in captured.out


def test_rules_print_as_given_and_requests_no_rule_matches_are_counted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = write_nginx_log(tmp_path / "access.log")
    assert main(["fit", str(log), "--format", NGINX, "--service", "api=*/api/*"]) == 0
    out = capsys.readouterr().out
    assert "# api: 942 requests matching */api/*\n" in out and "any.invalid" not in out
    assert "; 2,058 requests match no --service and are not fitted" in out.splitlines()[0]


def test_a_host_rule_on_a_log_without_hosts_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Every service's table is shown, or the command says why not: a rule with a host matched
    # nothing in a log that records none, and its service was left out without a word.
    log = write_nginx_log(tmp_path / "access.log")
    assert main(["fit", str(log), "--format", NGINX, "--service", "api=example.com/api/*", "--service", "web=*/*"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edge: error: --service api=example.com/api/*: the log records no host") and err.count("\n") == 1
    assert err.rstrip().endswith("write api=*/api/* for any host")


def test_every_service_gets_its_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = write_nginx_log(tmp_path / "access.log")
    assert main(["fit", str(log), "--format", NGINX, "--service", "api=*/api/*", "--service", "web=*/*"]) == 0
    out = capsys.readouterr().out
    assert out.count("#   latency: n=") == 2 and out.count("#   size: n=") == 2 and out.count("#   errors (5xx): ") == 2
