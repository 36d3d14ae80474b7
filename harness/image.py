"""``drill image reference``: the reference agent as a Docker image, built from this machine's files only.

No registry is needed (none may be reachable): the image is a root filesystem assembled here and
handed to ``docker import``. It holds

- the Python interpreter this harness runs on (the base installation behind its virtual
  environment), with its standard library minus the test suite, IDLE, Tk and the build files,
- every shared library that ``ldd`` lists for the interpreter and for each extension module copied,
  at the same path as on this machine (so the interpreter's RUNPATH and the loader find them),
- the distributions the reference agent imports (aiohttp, eth-account, eth-abi, eth-utils) and
  everything they require, read from this environment's package metadata,
- ``fixtures/reference_agent``, installed beside them,

with ``CMD ["python3", "-m", "reference_agent"]``. The tag is ``agent-drills/reference-agent:<version>``
(the version of agent-drills). docs/sandbox.md says how to build an image of your own agent.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from harness import __version__, clock
from harness.errors import EnvironmentProblem, ToolMissingError, UsageError

__all__ = ["REFERENCE_REPOSITORY", "REFERENCE_IMAGE", "HOLDER_IMAGE", "ImageBuild", "build_reference_image",
           "holder_image", "reference_agent_dir"]

REFERENCE_REPOSITORY = "agent-drills/reference-agent"
REFERENCE_IMAGE = f"{REFERENCE_REPOSITORY}:{__version__}"
#: the container that holds an isolated agent's network namespace (harness/runtime/docker.py)
HOLDER_IMAGE = f"agent-drills/netns-holder:{__version__}"
#: what the reference agent imports beyond the standard library (distribution names)
AGENT_REQUIREMENTS = ("aiohttp", "eth-account", "eth-abi", "eth-utils")
#: parts of the standard library an agent never needs
_STDLIB_SKIP = {"site-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "__phello__"}
_TITLE = "org.opencontainers.image.title=agent-drills-reference-agent"
_LDD_PATH = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x")


@dataclass(frozen=True, kw_only=True)
class ImageBuild:
    """What ``build_reference_image`` made: the tag, the image id, its size and how long it took."""

    tag: str
    image_id: str
    size_bytes: int
    seconds: float
    files: int


def reference_agent_dir() -> Path:
    """``fixtures/reference_agent`` of the checkout this harness runs from."""
    here = Path(__file__).resolve().parents[1] / "fixtures" / "reference_agent"
    if not (here / "__main__.py").is_file():
        raise UsageError(f"the reference agent's sources are not at {here}; `drill image reference` works from a "
                         "checkout of agent-drills (pass --source DIR to point at fixtures/reference_agent)")
    return here


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _distributions(roots: Iterable[str]) -> list[metadata.Distribution]:
    """``roots`` and everything they require (markers evaluated for this interpreter, no extras)."""
    from packaging.requirements import Requirement

    seen: dict[str, metadata.Distribution] = {}
    todo = list(roots)
    while todo:
        name = _norm(todo.pop())
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise EnvironmentProblem(f"the reference agent needs the distribution {name!r}, which is not installed "
                                     f"in {sys.prefix}; install agent-drills with its dependencies first") from None
        seen[name] = dist
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return list(seen.values())


def _ldd(path: Path) -> set[str]:
    try:
        out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, timeout=30, check=False).stdout
    except FileNotFoundError:
        raise ToolMissingError("`ldd` is not installed; it lists the shared libraries the image needs "
                               "(Debian: apt-get install libc-bin)") from None
    return {m.group(1) for m in _LDD_PATH.finditer(out)}


class _Rootfs:
    """A tar stream of the root filesystem: files land at the path they have in the image."""

    def __init__(self, fh: io.BufferedWriter) -> None:
        self.tar = tarfile.open(fileobj=fh, mode="w")
        self.names: set[str] = set()

    def _dirs(self, arc: str) -> None:
        parts = arc.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d and d not in self.names:
                self.names.add(d)
                info = tarfile.TarInfo(d)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                self.tar.addfile(info)

    def file(self, src: Path, dest: str) -> None:
        arc = dest.lstrip("/")
        if arc in self.names:
            return
        self._dirs(arc)
        info = self.tar.gettarinfo(str(src), arcname=arc)
        if info.issym() or info.islnk():  # the content, wherever the link points
            info = self.tar.gettarinfo(str(Path(src).resolve()), arcname=arc)
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        self.names.add(arc)
        if info.isreg():
            with open(src, "rb") as fh:
                self.tar.addfile(info, fh)
        else:
            self.tar.addfile(info)

    def text(self, dest: str, body: str, mode: int = 0o644) -> None:
        arc = dest.lstrip("/")
        self._dirs(arc)
        data = body.encode()
        info = tarfile.TarInfo(arc)
        info.size, info.mode = len(data), mode
        self.names.add(arc)
        self.tar.addfile(info, io.BytesIO(data))

    def dir(self, dest: str, mode: int) -> None:
        arc = dest.lstrip("/")
        self._dirs(arc)
        if arc in self.names:
            raise EnvironmentProblem(f"the image's {dest} was written twice; this is a bug in harness/image.py")
        self.names.add(arc)
        info = tarfile.TarInfo(arc)
        info.type, info.mode = tarfile.DIRTYPE, mode
        self.tar.addfile(info)

    def symlink(self, dest: str, target: str) -> None:
        arc = dest.lstrip("/")
        self._dirs(arc)
        info = tarfile.TarInfo(arc)
        info.type, info.linkname = tarfile.SYMTYPE, target
        self.names.add(arc)
        self.tar.addfile(info)

    def close(self) -> None:
        self.tar.close()


def _walk(root: Path, skip: set[str] = frozenset()) -> Iterator[Path]:  # type: ignore[assignment]
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == root:
            dirnames[:] = [d for d in dirnames if d not in skip and not d.startswith("config-")]
        for f in filenames:
            yield Path(dirpath) / f


def _assemble(out: io.BufferedWriter, source: Path) -> int:
    base = Path(sys.base_prefix)
    ver = f"python{sys.version_info.major}.{sys.version_info.minor}"
    interpreter = base / "bin" / ver
    if not interpreter.is_file():
        raise EnvironmentProblem(f"the base interpreter {interpreter} behind {sys.executable} was not found; "
                                 "build the image from a virtual environment of a regular CPython installation")
    stdlib = Path(sysconfig.get_paths(vars={"base": str(base), "installed_base": str(base)})["stdlib"])
    site = stdlib / "site-packages"
    fs = _Rootfs(out)
    binaries = [interpreter]
    fs.file(interpreter, str(interpreter))
    for f in _walk(stdlib, _STDLIB_SKIP):
        fs.file(f, str(f))
        if f.suffix == ".so":
            binaries.append(f)
    for dist in _distributions(AGENT_REQUIREMENTS):
        for rel in dist.files or []:
            src = Path(dist.locate_file(rel))
            if ".." in Path(rel).parts or not src.is_file():
                continue  # console scripts and the like, outside site-packages
            fs.file(src, str(site / rel))
            if src.suffix == ".so" or ".so." in src.name:
                binaries.append(src)
    for f in _walk(source):
        if "__pycache__" not in f.parts:
            fs.file(f, str(site / "reference_agent" / f.relative_to(source)))
    libs: set[str] = set()
    for b in binaries:
        libs |= _ldd(b)
    for lib in sorted(libs):
        fs.file(Path(lib), lib)
    for name in ("python3", "python"):
        fs.symlink(f"/usr/local/bin/{name}", str(interpreter))
    fs.dir("/tmp", 0o1777)
    fs.text("/etc/passwd", "root:x:0:0:root:/root:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    fs.text("/etc/group", "root:x:0:\nnogroup:x:65534:\n")
    fs.close()
    return len(fs.names)


def build_reference_image(*, tag: str = REFERENCE_IMAGE, source: Path | None = None, client: object = None) -> ImageBuild:
    """Assemble the root filesystem, ``docker import`` it as ``tag`` and return what was built."""
    from harness.runtime.docker import docker_client

    src = Path(source) if source is not None else reference_agent_dir()
    if not (src / "__main__.py").is_file():
        raise UsageError(f"--source {src} does not hold the reference agent (no __main__.py there)")
    repository, _, version = tag.rpartition(":")
    if not repository or "/" in version:
        raise UsageError(f"--tag {tag!r} must be REPOSITORY:TAG, e.g. {REFERENCE_IMAGE}")
    api = docker_client() if client is None else client
    from docker.errors import APIError

    t0 = clock.now()
    with tempfile.TemporaryDirectory(prefix="agent-drills-image-") as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        with open(rootfs, "wb") as fh:
            files = _assemble(fh, src)
        changes = [
            "ENV PATH=/usr/local/bin:/usr/bin:/bin",
            "ENV PYTHONUNBUFFERED=1",
            "WORKDIR /tmp",
            'CMD ["python3", "-m", "reference_agent"]',
            f"LABEL {_TITLE} org.opencontainers.image.version={__version__}",
        ]
        try:
            api.api.import_image(src=str(rootfs), repository=repository, tag=version, changes=changes)  # type: ignore[attr-defined]
        except APIError as exc:
            raise EnvironmentProblem(f"the Docker daemon refused to import the image {tag}: "
                                     f"{exc.explanation or exc}") from None
    image = api.images.get(tag)  # type: ignore[attr-defined]
    try:  # earlier builds this tag no longer names (one a container still uses stays, for the next build)
        api.images.prune(filters={"dangling": True, "label": _TITLE})  # type: ignore[attr-defined]
    except APIError:
        pass
    return ImageBuild(tag=tag, image_id=image.id, size_bytes=int(image.attrs.get("Size") or 0),
                      seconds=round(clock.now() - t0, 1), files=files)


def _assemble_holder(out: io.BufferedWriter) -> int:
    """A root filesystem holding this machine's ``sleep`` and the libraries it loads, nothing else."""
    found = shutil.which("sleep")
    if found is None:
        raise ToolMissingError("`sleep` (coreutils) is not on PATH; the network holder image is built from it")
    sleep = Path(found).resolve()
    fs = _Rootfs(out)
    fs.file(sleep, "/bin/sleep")
    for lib in sorted(_ldd(sleep)):
        fs.file(Path(lib), lib)
    fs.close()
    return len(fs.names)


def holder_image(client: Any) -> str:
    """``HOLDER_IMAGE`` on the daemon of ``client``, imported from this machine's files the first time.

    Its container (``sleep infinity`` with Docker's network ``none``) owns the namespace that an
    isolated agent's containers join (``network_mode="container:ID"``), the way a Kubernetes pod's
    pause container does: the namespace exists, bridged, before the agent's first container starts,
    and lives across its restarts. No registry holds such an image here, so it is made from the
    host's ``sleep`` (a few hundred kilobytes, well under a second).
    """
    from docker.errors import APIError, ImageNotFound

    try:
        client.images.get(HOLDER_IMAGE)
        return HOLDER_IMAGE
    except ImageNotFound:
        pass
    repository, _, version = HOLDER_IMAGE.rpartition(":")
    with tempfile.TemporaryDirectory(prefix="agent-drills-holder-") as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        with open(rootfs, "wb") as fh:
            _assemble_holder(fh)
        try:
            client.api.import_image(src=str(rootfs), repository=repository, tag=version,
                                    changes=['CMD ["/bin/sleep", "infinity"]'])
        except APIError as exc:
            raise EnvironmentProblem(f"the Docker daemon refused to import the network holder image {HOLDER_IMAGE}: "
                                     f"{exc.explanation or exc}") from None
    return HOLDER_IMAGE
