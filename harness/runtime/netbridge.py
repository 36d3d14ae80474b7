"""The agent's network: a namespace holding only loopback, bridged to the contract's endpoints port by port.

An agent in a network namespace of its own sees a loopback interface and nothing else: no other
address of the machine, no port of the machine's loopback. ``NetBridge`` then makes exactly the
contract's endpoints reachable, each at the same port number as outside, so the agent's environment
does not change:

- **outbound** ports (the proxies' listen ports, the alert sink's): a listener on ``127.0.0.1:PORT``
  inside the namespace; each connection the agent opens there is relayed to ``127.0.0.1:PORT`` of
  the machine. When nothing listens there (a proxy's outage), the agent's connection is reset.
- **inbound** ports (the agent's control API): a listener on ``127.0.0.1:PORT`` of the machine;
  each connection the harness opens there is relayed to ``127.0.0.1:PORT`` inside the namespace.
- **trap** ports (the chain's own port, the proxies' control API): a listener inside the namespace
  that resets every connection and records it as a ``contract.violation`` (the first few one by one,
  then a total from ``record_totals``).

Every other port inside the namespace refuses. No address outside loopback is used anywhere, and no
file is left on disk: the relay does not go through Unix sockets but holds sockets of both
namespaces at once. A socket belongs to the network namespace its creator was in when it was made,
and ``setns(2)`` moves one thread only; the bridge's relay thread steps into the namespace to make
the sockets that live there and steps back out. That needs root (``CAP_SYS_ADMIN``).

The namespace is either made fresh (``netns=None``: it lives as long as the bridge, and the agent
enters it with ``nsenter --net=PATH`` where PATH is ``netns_path``) or an existing one given by
path, e.g. ``/proc/<pid>/ns/net`` of a container started with ``network_mode="none"``. The bridge
knows nothing of how the agent runs. ``stop`` closes every socket and the namespace's handle, and
joins the relay thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import functools
import os
import selectors
import shutil
import socket
import struct
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.errors import HarnessError, UsageError
from harness.observe.timeline import Timeline

__all__ = ["BridgePlan", "NetBridge", "NETWORK_MODES", "choose_network", "isolation_unavailable"]

NETWORK_MODES = ("auto", "isolated", "host")
_CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
_IFREQ = "16sH22x"  # struct ifreq: the name, then ifr_flags in the 24-byte union
_CHUNK = 65536
_HIGH_WATER = 256 * 1024  # stop reading a side while this much waits for the other
_EXAMPLES = 5
_MAX_RELAYS = 1000  # open relayed connections; beyond it a new one is reset (2 descriptors each here)


@dataclass(frozen=True, kw_only=True)
class BridgePlan:
    """Which loopback ports the agent reaches (outbound), serves (inbound), and must not touch (traps)."""

    outbound: tuple[int, ...] = ()
    inbound: tuple[int, ...] = ()
    #: port -> what it is ("the chain's own port"); a connection to it is a contract violation
    traps: Mapping[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "outbound", tuple(dict.fromkeys(self.outbound)))
        object.__setattr__(self, "inbound", tuple(dict.fromkeys(self.inbound)))
        object.__setattr__(self, "traps", dict(self.traps))
        for port in (*self.outbound, *self.inbound, *self.traps):
            if not isinstance(port, int) or not 0 < port < 65536:
                raise UsageError(f"BridgePlan ports must be TCP ports 1..65535, got {port!r}")
        inside = set(self.outbound) | set(self.traps)
        both = (set(self.outbound) & set(self.traps)) | (inside & set(self.inbound))
        if both:
            raise UsageError(f"BridgePlan: port(s) {sorted(both)} are given two roles; a port inside the namespace is "
                             "either an outbound endpoint, a trap, or the agent's own (inbound)")


@functools.cache
def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def _call(fn: Any, *args: int) -> None:
    if fn(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{fn.__name__}: {os.strerror(err)}")


def _own_netns() -> int:
    """A handle on the calling thread's network namespace."""
    return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)


def _loopback_up() -> None:
    """Bring ``lo`` up in the calling thread's network namespace (a new one starts with it down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack(_IFREQ, fcntl.ioctl(s, _SIOCGIFFLAGS, struct.pack(_IFREQ, b"lo", 0)))[1]
        if not flags & _IFF_UP:
            fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack(_IFREQ, b"lo", flags | _IFF_UP))


def _listener(port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(128)
        s.setblocking(False)
    except BaseException:
        s.close()
        raise
    return s


def _reset(s: socket.socket) -> None:
    """Close with a reset (RST), as a peer that went away does, not a clean end of stream."""
    with contextlib.suppress(OSError):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


@functools.lru_cache(maxsize=1)
def isolation_unavailable() -> str | None:
    """Why the agent cannot get a network namespace here (None: it can; tried once per process)."""
    if os.geteuid() != 0:
        return "not running as root (a network namespace needs CAP_SYS_ADMIN)"
    nsenter = shutil.which("nsenter")
    if nsenter is None:
        return "util-linux nsenter is not installed"
    bridge = NetBridge(BridgePlan(), timeline=Timeline())
    try:
        bridge.start()
        done = subprocess.run([nsenter, f"--net={bridge.netns_path}", "true"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=10)
        if done.returncode != 0:
            return f"nsenter --net failed: {done.stderr.decode(errors='replace').strip()[:200]}"
    except (OSError, HarnessError, subprocess.TimeoutExpired) as exc:
        return f"could not make a network namespace: {exc}"
    finally:
        bridge.stop()
    return None


def choose_network(network: str, plan: BridgePlan | None, unavailable: Callable[[], str | None]) -> str:
    """What a runtime asked for ``network`` ("auto", "isolated" or "host") runs: "isolated" or "host".

    ``plan`` None (an endpoint off the machine's loopback) leaves the agent on the host's network;
    ``unavailable()`` says why this runtime cannot isolate here (None: it can), and is asked only
    when isolation is wanted. "isolated" that cannot be had is a ``UsageError`` saying why.
    """
    if network not in NETWORK_MODES:
        raise UsageError(f"the agent network must be one of {', '.join(NETWORK_MODES)}, got {network!r}")
    if network == "host":
        return "host"
    if plan is None:
        if network == "isolated":
            raise UsageError("an isolated agent network needs a BridgePlan (the ports the agent may reach and serve)")
        return "host"
    why = unavailable()
    if why is None:
        return "isolated"
    if network == "isolated":
        raise UsageError(f"--agent-network isolated is not possible here: {why}; use --agent-network host (or auto, "
                         "which falls back to it) to run the agent on the machine's network")
    return "host"


class _Relay:
    """One relayed connection: socks[0] accepted by a listener, socks[1] opened to the far side."""

    def __init__(self, role: str, accepted: socket.socket, far: socket.socket, connecting: bool) -> None:
        self.role = role
        self.socks = (accepted, far)
        self.pending = (bytearray(), bytearray())  # pending[i]: bytes waiting to be written to socks[i]
        self.eof = [False, False]  # socks[i] ended its stream
        self.shut = [False, False]  # we ended the stream towards socks[i]
        self.connecting = connecting
        self.closed = False

    def interest(self, i: int) -> int:
        if self.closed:
            return 0
        mask = 0
        if not self.eof[i] and len(self.pending[1 - i]) < _HIGH_WATER and not (i == 1 and self.connecting):
            mask |= selectors.EVENT_READ
        if self.pending[i] or (i == 1 and self.connecting):
            mask |= selectors.EVENT_WRITE
        return mask


class NetBridge:
    """A loopback-only network namespace and the relay that bridges it (see the module docstring)."""

    def __init__(self, plan: BridgePlan, *, timeline: Timeline, netns: str | None = None, name: str = "agent") -> None:
        self.plan = plan
        self.timeline = timeline
        self.name = name
        self._given = netns
        self._ns_fd: int | None = None
        self._host_fd: int | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._sel: selectors.BaseSelector | None = None
        self._relays: set[_Relay] = set()
        self._lock = threading.Lock()
        self.relayed = {"outbound": 0, "inbound": 0}  # connections relayed
        self.refused = {"outbound": 0, "inbound": 0}  # connections whose far side refused (reset)
        self.trapped: dict[int, int] = {}  # trap port -> connection attempts
        self._trap_examples: list[dict[str, Any]] = []
        self._totals_recorded: dict[int, int] = {}
        self.over_cap = 0  # connections reset because _MAX_RELAYS were open
        self._accept_failed = False

    # -- public ----------------------------------------------------------------------------
    @property
    def netns_path(self) -> str:
        """A path naming the namespace (``nsenter --net=PATH``), valid while the bridge runs."""
        if self._ns_fd is None:
            raise HarnessError(f"{self.name} network bridge is not running")
        return self._given or f"/proc/{os.getpid()}/fd/{self._ns_fd}"

    def start(self, timeout: float = 10.0) -> None:
        """Make (or open) the namespace, bring its loopback up and listen; returns once all listeners exist."""
        if self._thread is not None:
            raise HarnessError(f"{self.name} network bridge started twice")
        self._thread = threading.Thread(target=self._run, name=f"netbridge:{self.name}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise HarnessError(f"the {self.name} network bridge did not come up within {timeout} s")
        if self._error is not None:
            err = self._error
            self.stop()
            if isinstance(err, OSError) and err.errno == errno.EADDRINUSE:
                raise HarnessError(f"the {self.name} network bridge could not listen on a port of its plan {self.plan}: "
                                   f"{err}; another program holds it") from err
            raise HarnessError(f"the {self.name} network bridge could not start: {err!r}") from err

    def stop(self) -> None:
        """Close every listener and relayed connection and the namespace's handle; idempotent."""
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        for s in (self._wake_r, self._wake_w):
            s.close()

    @property
    def violations(self) -> dict[str, int]:
        """Contract violations seen so far, by what was done: each trap port's attempts, connections over the cap."""
        with self._lock:
            out = {f"direct connection to {self.plan.traps[p]}": n for p, n in self.trapped.items() if n}
        if self.over_cap:
            out["connections over the cap"] = self.over_cap
        return out

    def record_totals(self) -> None:
        """Record the attempts on each trap port not yet recorded as a total (one event per port)."""
        with self._lock:
            todo = {p: n for p, n in self.trapped.items() if n > _EXAMPLES and self._totals_recorded.get(p) != n}
            self._totals_recorded.update(todo)
        for port, count in todo.items():
            self.timeline.record("contract.violation", "netbridge", what=f"direct connection to {self.plan.traps[port]}",
                                 port=port, count=count, total=True,
                                 problems=[f"the agent connected {count} times to {self.plan.traps[port]} "
                                           f"(127.0.0.1:{port}), which the contract does not give it; each was reset"])

    # -- the relay thread ------------------------------------------------------------------
    @contextlib.contextmanager
    def _inside(self) -> Iterator[None]:
        """Run the block in the agent's namespace (this thread only): sockets made there belong to it."""
        assert self._ns_fd is not None and self._host_fd is not None
        libc = _libc()
        _call(libc.setns, self._ns_fd, _CLONE_NEWNET)
        try:
            yield
        finally:
            _call(libc.setns, self._host_fd, _CLONE_NEWNET)

    def _setup(self, sel: selectors.BaseSelector) -> None:
        self._host_fd = _own_netns()
        if self._given is None:
            libc = _libc()
            _call(libc.unshare, _CLONE_NEWNET)  # this thread now sits in a fresh namespace
            try:
                self._ns_fd = _own_netns()
            finally:
                _call(libc.setns, self._host_fd, _CLONE_NEWNET)
        else:
            self._ns_fd = os.open(self._given, os.O_RDONLY | os.O_CLOEXEC)
        with self._inside():
            _loopback_up()
            for port in self.plan.outbound:
                sel.register(_listener(port), selectors.EVENT_READ, ("outbound", port))
            for port in self.plan.traps:
                sel.register(_listener(port), selectors.EVENT_READ, ("trap", port))
        for port in self.plan.inbound:
            sel.register(_listener(port), selectors.EVENT_READ, ("inbound", port))

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        self._sel = sel
        try:
            sel.register(self._wake_r, selectors.EVENT_READ, ("wake", 0))
            try:
                self._setup(sel)
            except BaseException as exc:  # reported by start()
                self._error = exc
                return
            finally:
                self._ready.set()
            while not self._stopping.is_set():
                for key, mask in sel.select(timeout=1.0):
                    data = key.data
                    if isinstance(data, _Relay):
                        self._service(data, key.fileobj, mask)  # type: ignore[arg-type]
                    elif data[0] != "wake":
                        self._accept(key.fileobj, *data)  # type: ignore[arg-type]
        finally:
            for key in list(sel.get_map().values()):
                if key.fileobj is not self._wake_r:
                    if isinstance(key.data, _Relay):
                        _reset(key.fileobj)  # type: ignore[arg-type]
                    else:
                        key.fileobj.close()  # type: ignore[union-attr]
            for relay in self._relays:
                for s in relay.socks:
                    s.close()
            self._relays.clear()
            sel.close()
            for fd in (self._ns_fd, self._host_fd):
                if fd is not None:
                    os.close(fd)
            self._ns_fd = self._host_fd = None

    def _accept(self, listener: socket.socket, role: str, port: int) -> None:
        try:
            conn, peer = listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        except OSError as exc:  # e.g. out of file descriptors: keep serving the open connections
            if not self._accept_failed:
                self._accept_failed = True
                self.timeline.record("harness.warning", "netbridge", warning=f"accept on port {port} failed: {exc!r}")
            self._stopping.wait(0.05)  # the connection stays queued: do not spin on it
            return
        conn.setblocking(False)
        if role == "trap":
            self._trap(conn, port)
            return
        if len(self._relays) >= _MAX_RELAYS:
            _reset(conn)
            self.over_cap += 1
            if self.over_cap == 1:
                self.timeline.record("contract.violation", "netbridge", what="connections over the cap", port=port,
                                     count=1, problems=[f"more than {_MAX_RELAYS} connections open through the "
                                                        "agent's network bridge; new ones are reset"])
            return
        if role == "outbound":
            far = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # this thread is outside: the machine's loopback
        else:
            with self._inside():
                far = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if peer[0].startswith("127.") and peer[0] != "127.0.0.1":
            # The far side sees the caller's own loopback address, as it would without the bridge: the
            # agent tells the operator (127.0.0.1) from an attacker on 127.0.0.2 by it (docs/contract.md).
            try:
                far.bind((peer[0], 0))
            except OSError:
                pass  # not a local address on that side: the relay still works, from 127.0.0.1
        far.setblocking(False)
        for s in (conn, far):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = far.connect_ex(("127.0.0.1", port))
        if err not in (0, errno.EINPROGRESS):
            self.refused[role] += 1
            _reset(conn)
            far.close()
            return
        if err == 0:
            self.relayed[role] += 1
        relay = _Relay(role, conn, far, connecting=err == errno.EINPROGRESS)
        self._relays.add(relay)
        self._update(relay)

    def _trap(self, conn: socket.socket, port: int) -> None:
        _reset(conn)
        with self._lock:
            count = self.trapped[port] = self.trapped.get(port, 0) + 1
        if count <= _EXAMPLES:
            self.timeline.record("contract.violation", "netbridge", what=f"direct connection to {self.plan.traps[port]}",
                                 port=port, count=1, attempt=count,
                                 problems=[f"the agent connected to {self.plan.traps[port]} (127.0.0.1:{port}), which "
                                           "the contract does not give it; the connection was reset"])

    def _update(self, relay: _Relay) -> None:
        assert self._sel is not None
        for i, s in enumerate(relay.socks):
            mask = relay.interest(i)
            try:
                registered = self._sel.get_key(s).events
            except (KeyError, ValueError):
                registered = 0
            if mask == registered:
                continue
            if not mask:
                self._sel.unregister(s)
            elif not registered:
                self._sel.register(s, mask, relay)
            else:
                self._sel.modify(s, mask, relay)

    def _close(self, relay: _Relay, *, reset: bool) -> None:
        assert self._sel is not None
        relay.closed = True
        for s in relay.socks:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(s)
            if reset:
                _reset(s)
            else:
                s.close()
        self._relays.discard(relay)

    def _service(self, relay: _Relay, s: socket.socket, mask: int) -> None:
        if relay.closed:  # closed by the other socket's event of the same round
            return
        i = relay.socks.index(s)
        other = 1 - i
        try:
            if i == 1 and relay.connecting:
                if mask & selectors.EVENT_WRITE:
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        self.refused[relay.role] += 1
                        self._close(relay, reset=True)
                        return
                    relay.connecting = False
                    self.relayed[relay.role] += 1
                    self._flush(relay, 1)
                    self._flush(relay, 0)
            else:
                if mask & selectors.EVENT_WRITE:
                    self._flush(relay, i)
                if mask & selectors.EVENT_READ:
                    data = s.recv(_CHUNK)
                    if data:
                        relay.pending[other].extend(data)
                        if not (other == 1 and relay.connecting):
                            self._flush(relay, other)
                    else:
                        relay.eof[i] = True
            for j in (0, 1):  # pass an end of stream on once everything before it is written
                if relay.eof[1 - j] and not relay.pending[j] and not relay.shut[j] and not (j == 1 and relay.connecting):
                    with contextlib.suppress(OSError):
                        relay.socks[j].shutdown(socket.SHUT_WR)
                    relay.shut[j] = True
            if relay.shut[0] and relay.shut[1]:
                self._close(relay, reset=False)
                return
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:  # a reset or a broken pipe on one side: the other side sees a reset too
            self._close(relay, reset=True)
            return
        self._update(relay)

    @staticmethod
    def _flush(relay: _Relay, i: int) -> None:
        buf = relay.pending[i]
        while buf:
            try:
                sent = relay.socks[i].send(buf)
            except (BlockingIOError, InterruptedError):
                return
            del buf[:sent]

