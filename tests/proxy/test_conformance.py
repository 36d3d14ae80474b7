"""Conformance: an independent client (toxiproxy-node-client, from npm) drives `python -m harness.proxy`.

No published Toxiproxy client ships a test suite in its package (toxiproxy-python's sdist has only
a helper module, chaostoolkit-toxiproxy's sdist three URL-building unit tests, the npm client only
its built code), so this test runs the Node client itself against the standalone server, the way
`drill proxy` is used. The client comes from node_modules when the project lists it, otherwise it
is fetched with `npm pack` (about 20 kB, no dependencies).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from proxyfixtures import ROOT, EchoServer

from harness.netutil import free_port

CLIENT = "toxiproxy-node-client"
VERSION = "4.1.0"

SCRIPT = r"""
const { Toxiproxy, ToxiproxyError } = require(process.env.CLIENT_DIR);
const net = require("net");
const api = process.env.API, upstream = process.env.UPSTREAM;
const out = {};
function roundTrip(listen, payload) {
  const [host, port] = listen.split(":");
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(port), host, () => s.write(payload));
    let got = "";
    s.on("data", (d) => { got += d; if (got.length >= payload.length) { s.destroy(); resolve(got); } });
    s.on("error", reject);
    s.on("close", () => resolve(got));
  });
}
(async () => {
  const tp = new Toxiproxy(api);
  out.version = JSON.parse(await tp.getVersion()).version;
  const proxy = await tp.createProxy({ name: "node", listen: "127.0.0.1:0", upstream });
  out.listen = proxy.listen;
  out.echo = await roundTrip(proxy.listen, "hello from node");
  const toxic = await proxy.addToxic({ type: "latency", attributes: { latency: 10 } });
  out.toxic = toxic.toJson();
  const updated = await toxic.update({ attributes: { jitter: 3 }, toxicity: 0.5 });
  out.updated = updated.toJson();
  out.fetched = (await proxy.getToxic("latency_downstream")).toJson();
  const disabled = await proxy.update({ enabled: false });
  out.disabled = disabled.toJson();
  try { await roundTrip(proxy.listen, "x"); out.refused = false; } catch (e) { out.refused = e.code; }
  await tp.reset();
  out.afterReset = (await tp.get("node")).toJson();
  const populated = await tp.populate([{ name: "pop", listen: "127.0.0.1:0", upstream }]);
  out.all = Object.keys(await tp.getAll()).sort();
  out.populated = Object.keys(populated);
  try { await tp.createProxy({ name: "node", listen: "127.0.0.1:0", upstream }); }
  catch (e) { out.duplicate = e instanceof ToxiproxyError ? e.message : String(e); }
  try { await proxy.getToxic("ghost"); } catch (e) { out.missingToxic = e.message; }
  await toxic.remove().catch((e) => { out.removeGone = e.message; });
  await (await tp.get("pop")).remove();
  await proxy.remove();
  out.empty = Object.keys(await tp.getAll()).length;
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e && e.stack || e); process.exit(1); });
"""


@pytest.fixture(scope="module")
def client_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("node") is None:
        pytest.fail("node is not installed; it is needed for the conformance test (apt-get install nodejs)")
    local = ROOT / "node_modules" / CLIENT
    if (local / "package.json").exists():
        return local
    where = tmp_path_factory.mktemp("npm")
    try:
        done = subprocess.run(["npm", "pack", f"{CLIENT}@{VERSION}", "--silent"], cwd=where, capture_output=True,
                              text=True, timeout=180, check=True)
    except (subprocess.SubprocessError, OSError) as exc:
        pytest.fail(f"could not fetch {CLIENT}@{VERSION} with npm pack ({exc}); add it to package.json "
                    "devDependencies so `npm ci` installs it")
    with tarfile.open(where / done.stdout.strip().splitlines()[-1]) as tar:
        tar.extractall(where, filter="data")
    return where / "package"


@pytest.fixture
def standalone() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "harness.proxy", "--port", str(port)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on" in line, proc.stderr.read() if proc.stderr else line
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.mark.slow
def test_node_client_against_standalone_server(client_dir: Path, standalone: str, echo: EchoServer,
                                               tmp_path: Path) -> None:
    script = tmp_path / "check.js"
    script.write_text(SCRIPT)
    env = {**os.environ, "CLIENT_DIR": str(client_dir), "API": standalone, "UPSTREAM": echo.addr}
    done = subprocess.run(["node", str(script)], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["version"] == "2.12.0"
    assert out["listen"].startswith("127.0.0.1:") and out["echo"] == "hello from node"
    assert out["toxic"] == {"attributes": {"latency": 10, "jitter": 0}, "name": "latency_downstream",
                            "stream": "downstream", "toxicity": 1, "type": "latency"}
    assert out["updated"]["attributes"] == {"latency": 10, "jitter": 3} and out["updated"]["toxicity"] == 0.5
    assert out["fetched"] == out["updated"]
    assert out["disabled"]["enabled"] is False and out["disabled"]["listen"] == out["listen"]
    assert out["refused"] == "ECONNREFUSED"
    assert out["afterReset"]["enabled"] is True
    assert out["all"] == ["node", "pop"] and out["populated"] == ["pop"]
    assert out["duplicate"] == "Request failed with status code 409"
    assert out["missingToxic"] == "Request failed with status code 404"
    assert out["removeGone"] == "Request failed with status code 404"  # reset had removed it
    assert out["empty"] == 0
