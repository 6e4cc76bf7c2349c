"""The conformance suite's oracle: Cloudflare's own runtime, workerd (pinned), beside edge.

Each folder of ``tests/conformance/`` is one platform behaviour: ``worker.js`` for workerd and
``worker.py`` for edge, the same logic written once for each, and, for behaviours of service
bindings, a ``callee.js`` / ``callee.py`` bound to it as ``CALLEE``. Its ``case.toml`` says what
the behaviour is, where it is documented, and the raw HTTP requests to send. Both runtimes serve
every case at once: workerd with one socket per case, ``edge serve`` with one route per case
(``HOST`` in a request is replaced by ``<case>.conformance.test``, which edge routes on and
workerd ignores; ``UPPERHOST`` by the same in capitals). An answer is compared as its status, body and the headers the request names
(and the reason phrase when it says so). A request may declare that edge differs on purpose
(``[requests.differs]``: edge follows Cloudflare's production where it and workerd part, with the
source): then workerd must still answer otherwise, so that a difference that went away is noticed,
and edge as declared. There is no third kind: an answer that differs otherwise fails its test.

    python tests/oracle.py --write-doc   # regenerate the summary in docs/conformance.md
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import h11
import msgspec

ROOT = Path(__file__).resolve().parent.parent
CASES_DIR = ROOT / "tests" / "conformance"
DOC = ROOT / "docs" / "conformance.md"
HOST_SUFFIX = ".conformance.test"
COMPATIBILITY_DATE = "2026-11-01"
"""workerd's compatibility date for every case: recent, as a new Worker deployed today gets."""

sys.path.insert(0, str(ROOT / "benchmarks"))
from live import exchange  # noqa: E402
from live_baseline import DEFAULT_CACHE_DIR, WORKERD_VERSION, ensure_workerd, listening_socket, stop, wait_for_http  # noqa: E402


class Answer(msgspec.Struct, frozen=True):
    """What came back: ``status`` 0 when the server closed without an answer."""

    status: int
    reason: str = ""
    headers: dict[str, str] = {}
    body: str = ""
    names: tuple[str, ...] = ()
    """Header names as written on the wire (their case), in order."""


class Difference(msgspec.Struct, forbid_unknown_fields=True):
    """Where edge answers otherwise on purpose: why, the source, and edge's answer."""

    why: str
    source: str
    status: int
    body: str | None = None


class Exchange(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    raw: str
    headers: list[str] = []
    """Header names compared besides status and body (absent on both sides is equal)."""
    reason: bool = False
    names: bool = False
    """Compare the case of the named headers' names on the wire as well."""
    body: bool = True
    """False when the body is not the behaviour: the words of a refusal the HTTP layer writes."""
    differs: Difference | None = None

    def data(self, case: str) -> bytes:
        """The request's bytes: ``HOST`` is the case's host, ``UPPERHOST`` the same in capitals."""
        host = case + HOST_SUFFIX
        return self.raw.replace("UPPERHOST", host.upper()).replace("HOST", host).encode("utf-8")


class Case(msgspec.Struct, forbid_unknown_fields=True):
    behaviour: str
    source: str
    requests: list[Exchange]
    vars: dict[str, str] = {}
    bind_self: bool = False
    """The worker is bound to its own service as ``SELF`` (recursion through bindings)."""
    name: str = ""  # the folder's name, set on loading

    @property
    def folder(self) -> Path:
        return CASES_DIR / self.name

    @property
    def has_callee(self) -> bool:
        return (self.folder / "callee.js").is_file()


def cases() -> list[Case]:
    """Every case folder, in name order; a folder without both workers is an error, not a skip."""
    found = []
    for folder in sorted(p for p in CASES_DIR.iterdir() if p.is_dir() and not p.name.startswith("_")):
        case = msgspec.toml.decode((folder / "case.toml").read_bytes(), type=Case)
        case.name = folder.name
        for worker in ("worker.js", "worker.py"):
            if not (folder / worker).is_file():
                raise FileNotFoundError(f"{folder}: a case needs {worker}")
        if (folder / "callee.js").is_file() != (folder / "callee.py").is_file():
            raise FileNotFoundError(f"{folder}: a callee needs both callee.js and callee.py")
        found.append(case)
    return found


# -- workerd ---------------------------------------------------------------------------------------


def workerd_config(all_cases: list[Case], into: Path) -> Path:
    """A workerd config serving every case on its own socket (named after the case)."""
    services, sockets, workers = [], [], []
    for case in all_cases:
        shutil.copy(case.folder / "worker.js", into / f"{case.name}.js")
        bindings = [f'(name = "{name}", text = {_capnp_string(value)})' for name, value in case.vars.items()]
        if case.bind_self:
            bindings.append(f'(name = "SELF", service = "{case.name}")')
        if case.has_callee:
            shutil.copy(case.folder / "callee.js", into / f"{case.name}.callee.js")
            bindings.append(f'(name = "CALLEE", service = "{case.name}-callee")')
            services.append(f'(name = "{case.name}-callee", worker = .{_ident(case.name)}Callee)')
            workers.append(_worker(f"{_ident(case.name)}Callee", f"{case.name}.callee.js", []))
        services.append(f'(name = "{case.name}", worker = .{_ident(case.name)})')
        sockets.append(f'(name = "{case.name}", address = "127.0.0.1:0", http = (), service = "{case.name}")')
        workers.append(_worker(_ident(case.name), f"{case.name}.js", bindings))
    config = into / "conformance.capnp"
    config.write_text(
        'using Workerd = import "/workerd/workerd.capnp";\n\n'
        "const config :Workerd.Config = (\n"
        f"  services = [\n    {(',' + chr(10) + '    ').join(services)}\n  ],\n"
        f"  sockets = [\n    {(',' + chr(10) + '    ').join(sockets)}\n  ],\n);\n\n"
        + "\n".join(workers)
    )
    return config


def _worker(ident: str, module: str, bindings: list[str]) -> str:
    return (
        f"const {ident} :Workerd.Worker = (\n"
        f'  modules = [ (name = "{module}", esModule = embed "{module}") ],\n'
        f'  compatibilityDate = "{COMPATIBILITY_DATE}",\n'
        f"  bindings = [ {', '.join(bindings)} ],\n);\n"
    )


def _ident(name: str) -> str:
    """A capnp constant name for a case (letters and digits, lower camel case)."""
    head, *rest = name.split("-")
    return "w" + head.capitalize() + "".join(part.capitalize() for part in rest)


def _capnp_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@contextlib.contextmanager
def workerd(all_cases: list[Case], startup_timeout: float = 60.0) -> Iterator[dict[str, int]]:
    """workerd serving every case; yields each case's port. Fails, never skips, without workerd."""
    binary = ensure_workerd(DEFAULT_CACHE_DIR)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack, tempfile.TemporaryFile() as log:
        config = workerd_config(all_cases, Path(tmp))
        listeners = {case.name: stack.enter_context(listening_socket(0)) for case in all_cases}
        ports = {name: listener.getsockname()[1] for name, listener in listeners.items()}
        cmd = [str(binary), "serve", str(config)]
        for name, listener in listeners.items():
            cmd += ["--socket-fd", f"{name}={listener.fileno()}"]
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp,
            pass_fds=[listener.fileno() for listener in listeners.values()],
        )
        try:
            first = all_cases[0].name
            try:
                wait_for_http(f"http://127.0.0.1:{ports[first]}/", startup_timeout, alive=lambda: proc.poll() is None)
            except RuntimeError as exc:
                log.seek(0)
                raise RuntimeError(f"workerd {WORKERD_VERSION} did not start: {exc}\n{log.read().decode('utf-8', 'replace')}") from None
            yield ports
        finally:
            stop(proc)


# -- edge ------------------------------------------------------------------------------------------


def edge_scenario(all_cases: list[Case], into: Path) -> Path:
    """A scenario serving every case at ``<case>.conformance.test``, its callee bound as CALLEE."""
    lines = ["[scenario]", 'name = "conformance"', ""]
    for case in all_cases:
        lines += ["[[services]]", f'name = "{case.name}"', f'routes = ["{case.name}{HOST_SUFFIX}/*"]',
                  f"worker = {_toml_string(str(case.folder / 'worker.py'))}"]
        if case.vars:
            lines.append("vars = { " + ", ".join(f"{k} = {_toml_string(v)}" for k, v in case.vars.items()) + " }")
        if case.bind_self:
            lines.append(f'bindings = {{ SELF = "{case.name}" }}')
        if case.has_callee:
            lines += [f'bindings = {{ CALLEE = "{case.name}-callee" }}', "",
                      "[[services]]", f'name = "{case.name}-callee"', f"worker = {_toml_string(str(case.folder / 'callee.py'))}"]
        lines.append("")
    path = into / "conformance.toml"
    path.write_text("\n".join(lines))
    return path


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- exchanges -------------------------------------------------------------------------------------


def answer(port: int, data: bytes, timeout: float = 10.0) -> Answer:
    """Send ``data`` as it is and read the answer until the server closes."""
    return parse(exchange(port, data, timeout=timeout), head=data.startswith(b"HEAD "))


def parse(raw: bytes, *, head: bool = False) -> Answer:
    """An HTTP/1.1 answer read by h11, as a client that sent a GET (or a HEAD) reads it."""
    if not raw:
        return Answer(0)
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="HEAD" if head else "GET", target="/", headers=[("host", "oracle")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(raw)
    conn.receive_data(b"")
    status, reason, headers, body, names = 0, "", {}, b"", ()
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Response):
            status, reason = event.status_code, event.reason.decode("latin-1")
            names = tuple(raw.decode("latin-1") for raw, _ in event.headers.raw_items())
            for name, value in event.headers:
                key = name.decode("latin-1")
                headers[key] = headers[key] + ", " + value.decode("latin-1") if key in headers else value.decode("latin-1")
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)) or event is h11.NEED_DATA:
            break
    return Answer(status, reason, headers, body.decode("utf-8", "replace"), names)


def view(answer: Answer, exchange: Exchange) -> Answer:
    """What of an answer a request compares: status, body, the headers it names, the reason if asked."""
    return Answer(
        answer.status,
        answer.reason if exchange.reason else "",
        {name: answer.headers[name] for name in exchange.headers if name in answer.headers},
        answer.body if exchange.body else "",
        # The case of names, not their order: the order of different names means nothing (RFC 9110 5.3).
        tuple(sorted(name for name in answer.names if name.lower() in exchange.headers)) if exchange.names else (),
    )


# -- the summary in docs/conformance.md ------------------------------------------------------------

BEGIN, END = "<!-- conformance-suite:begin (python tests/oracle.py --write-doc) -->", "<!-- conformance-suite:end -->"


def summary(all_cases: list[Case]) -> str:
    """The doc's table of the suite: a row per behaviour, and the counts."""
    requests = [exchange for case in all_cases for exchange in case.requests]
    differ = sum(1 for exchange in requests if exchange.differs is not None)
    lines = [
        BEGIN,
        f"**{len(all_cases)} pairs, {len(requests)} requests** against workerd {WORKERD_VERSION}: "
        f"{len(requests) - differ} answered alike, {differ} differing on purpose.",
        "",
        "| behaviour (case folder) | requests | differs on purpose |",
        "|---|---|---|",
    ]
    for case in all_cases:
        differs = "; ".join(f"`{e.name}`: {e.differs.why} ({e.differs.source})" for e in case.requests if e.differs) or ""
        lines.append(f"| {case.behaviour} (`{case.name}`) | {len(case.requests)} | {differs} |")
    lines.append(END)
    return "\n".join(lines)


def documented() -> str:
    text = DOC.read_text()
    return text[text.index(BEGIN) : text.index(END) + len(END)]


def write_doc() -> None:
    text = DOC.read_text()
    DOC.write_text(text[: text.index(BEGIN)] + summary(cases()) + text[text.index(END) + len(END) :])


if __name__ == "__main__":
    if sys.argv[1:] != ["--write-doc"]:
        raise SystemExit("usage: python tests/oracle.py --write-doc")
    write_doc()
