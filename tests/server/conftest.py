"""Fixtures for the black-box server tests: a tiny random-weight model with the real Qwen3-Coder
vocabulary (built once into the build folder) and `qcoder serve` processes on 127.0.0.1."""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def qcoder_bin():
    b = os.environ.get("QCODER_BIN", os.path.join(ROOT, "build", "apps", "qcoder"))
    if not os.path.exists(b):
        pytest.skip(f"qcoder binary not found at {b} (set QCODER_BIN)")
    return b


def model_dir():
    out = os.environ.get("QCODER_TINY_MODEL", os.path.join(os.path.dirname(os.path.dirname(qcoder_bin())), "tiny-qwen"))
    subprocess.run([sys.executable, os.path.join(HERE, "make_tiny_model.py"), out], check=True)
    return out


class Server:
    """A `qcoder serve` child process; .url is its base URL."""

    def __init__(self, *flags, api_key=None, model=None, launcher=(), threads=2):
        """launcher: a command line to start qcoder under (e.g. mpirun ... -np 2)."""
        args = [*launcher, qcoder_bin(), "serve", "-m", model or model_dir(), "--host", "127.0.0.1", "--port", "0",
                "-t", str(threads), "--kv-budget", "512M", *flags]
        if api_key:
            args += ["--api-key", api_key]
        self.api_key = api_key
        self.stderr = open(os.path.join(os.path.dirname(model or model_dir()), f"serve-{os.getpid()}-{id(self)}.log"), "w+")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.proc.kill()
            raise RuntimeError(f"qcoder serve did not start: {line!r}\n{self.log()}")
        self.url = line.split()[-1]
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except Exception:
                time.sleep(0.05)
        else:
            raise RuntimeError("qcoder serve never became healthy\n" + self.log())

    def log(self):
        self.stderr.flush()
        self.stderr.seek(0)
        return self.stderr.read()

    def request(self, method, path, body=None, headers=None, raw=None):
        """(status, parsed JSON or text) of one HTTP request."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        h = {"Content-Type": "application/json"}
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        h.update(headers or {})
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def metrics(self):
        status, text = self.request("GET", "/metrics")
        assert status == 200
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out

    def rss_kib(self, kind="RssAnon"):
        """Resident memory in KiB. RssAnon (the default) leaves out the memory-mapped weights,
        whose pages become resident as new token ids are looked up."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(kind + ":"):
                    return int(line.split()[1])
        return 0

    def stop(self, timeout=30):
        """SIGTERM, then the exit code (0 when it shut down cleanly)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture(scope="session")
def server():
    s = Server("--slots", "16", "--ctx-size", "2048", "--queue", "256")
    yield s
    assert s.stop() == 0, s.log()


@pytest.fixture()
def client(server):
    openai = pytest.importorskip("openai")
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)
