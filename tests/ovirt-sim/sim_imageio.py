# sim_imageio.py - image transfers: the engine's /imagetransfers resource
# (initializing -> transferring -> finalizing_success -> finished_success;
# cancel -> cancelled_user -> finalizing_cleanup -> finished_cleanup ->
# finished_failure, an upload's disk removed; paused_system after
# inactivity_timeout; engines before 4.4.7 remove the entity as it ends) and
# the imageio HTTP API its URLs name (OPTIONS, PUT with Content-Range, PATCH
# zero/flush, GET with Range, extents), served on two listeners of their own:
# the host's daemon (transfer_url, a real one on port 54322) and the engine's
# proxy (proxy_url, port 54323).
import json
import os
import re
import time
import uuid

from sim_core import API, Fault, as_bool, as_int, conflict, incomplete, invalid, opt

CHUNK = 1 << 20
# phases on the way to an end: no cancel any more
ENDING = ("finalizing_success", "finalizing_failure", "cancelled", "cancelled_user",
          "cancelled_system", "finalizing_cleanup")
# ovirt-imageio handlers/images.py: BASE_FEATURES for a read ticket,
# ALL_FEATURES for a write one, less "checksum" (no /checksum here)
READ_FEATURES = ["extents"]
WRITE_FEATURES = ["extents", "flush", "zero"]


class Transfers:
    def __init__(self, model):
        self.m = model
        self.all = {}      # transfer id -> transfer
        self.tickets = {}  # ticket -> transfer (the daemon's and the proxy's alike)
        # https://HOST:PORT of the listeners, set by the server at start;
        # unreachable_base names a port bound but not listening, which
        # refuses connections (transfer_url while daemon_reachable is false)
        self.daemon_base = self.proxy_base = self.unreachable_base = None
        self.daemon_reachable = True

    # ----- engine side ---------------------------------------------------
    def add(self, body):
        m = self.m
        if not isinstance(body, dict) or not isinstance(body.get("disk"), dict):
            raise incomplete("ImageTransfer", ["disk.id"])
        d = m.ref("disk", body.get("disk"), "ImageTransfer")
        direction = body.get("direction", "upload")
        if direction not in ("upload", "download"):
            raise invalid("direction", direction)
        fmt = body.get("format", d["format"])
        if fmt not in ("raw", "cow"):
            raise invalid("format", fmt)
        if d["status"] != "ok":
            raise conflict("Cannot transfer Virtual Disk: The following disks are locked: %s. "
                           "Please try again in a few minutes." % d["name"])
        vm = m.vms.get(d["vm"]) if d["vm"] else None
        if vm and m.running(vm):
            raise conflict("Cannot transfer Virtual Disk. Disk %s is attached to running VM "
                           "%s." % (d["name"], vm["name"]))
        t = {"id": str(uuid.uuid4()), "disk": d["id"], "direction": direction, "format": fmt,
             "phase": "initializing", "transferred": 0, "ticket": str(uuid.uuid4()),
             "inactivity_timeout": opt(body, "inactivity_timeout", as_int,
                                       "inactivity_timeout", 60),
             "last_activity": time.monotonic()}
        d["status"] = "locked"
        self.all[t["id"]] = t

        def ready():
            if t["phase"] == "initializing":
                t["phase"] = "transferring"
                t["last_activity"] = time.monotonic()
                self.tickets[t["ticket"]] = t
        m.after(ready, factor=0.5)
        return t

    def get(self, tid):
        t = self.all.get(tid)
        if t is None:
            raise Fault(404)
        if t["phase"] == "transferring" and \
                time.monotonic() - t["last_activity"] > t["inactivity_timeout"]:
            t["phase"] = "paused_system"
            self.tickets.pop(t["ticket"], None)
        return t

    def action(self, tid, name):
        t = self.get(tid)
        m = self.m
        if name == "finalize":
            if t["phase"] not in ("transferring", "paused_user"):
                raise conflict("Cannot finalize image transfer: the transfer is %s." % t["phase"])
            t["phase"] = "finalizing_success"
            self.tickets.pop(t["ticket"], None)

            def done():
                d = m.disks.get(t["disk"])
                if d is not None:
                    d["status"] = "ok"
                self._end(t, "finished_success")
            m.after(done)
        elif name == "cancel":
            if t["phase"] in ENDING or t["phase"].startswith("finished"):
                raise conflict("Cannot cancel image transfer: the transfer is %s." % t["phase"])
            self._cancel(t)
        elif name in ("pause", "resume"):
            if t["phase"] not in ("transferring", "paused_user", "paused_system"):
                raise conflict("Cannot %s image transfer: the transfer is %s." % (name, t["phase"]))
            t["phase"] = "paused_user" if name == "pause" else "transferring"
            if name == "resume":
                t["last_activity"] = time.monotonic()
                self.tickets[t["ticket"]] = t
            else:
                self.tickets.pop(t["ticket"], None)
        else:
            raise Fault(404)

    def _cancel(self, t):
        """ovirt-engine TransferDiskImageCommand: a user's cancel (REST
        BackendImageTransferResource.cancel -> CANCELLED_USER, from 4.3.5)
        goes through FINALIZING_CLEANUP (the tickets removed, an upload's
        image ILLEGAL) and FINISHED_CLEANUP; the command then fails and
        endWithFailure removes an upload's disk (RemoveDisk) and sets
        FINISHED_FAILURE. Engines before 4.3.5 went CANCELLED ->
        FINALIZING_FAILURE -> FINISHED_FAILURE."""
        m = self.m
        new = m.engine_at_least(4, 3, 5)
        steps = ["finalizing_cleanup", "finished_cleanup"] if new else ["finalizing_failure"]
        t["phase"] = "cancelled_user" if new else "cancelled"
        self.tickets.pop(t["ticket"], None)
        upload = t["direction"] == "upload"

        def step():
            if not steps:
                if upload:
                    m.disk_remove_internal(t["disk"])
                self._end(t, "finished_failure")
                return
            t["phase"] = steps.pop(0)
            d = m.disks.get(t["disk"])
            if d is not None and t["phase"] in ("finished_cleanup", "finalizing_failure"):
                d["status"] = "illegal" if upload else "ok"
            m.after(step, factor=0.5)
        m.after(step, factor=0.5)

    def _end(self, t, phase):
        """The command ends: engines from 4.4.7 keep the entity in its final
        phase (a cleanup thread removes it minutes later; here it stays);
        before 4.4.7 TransferImageCommand.onSucceeded/onFailed removed it at
        once, so GET answers 404 and a client looks at the disk instead
        (ovirt-engine-sdk examples/helpers/imagetransfer.py finalize_transfer)."""
        t["phase"] = phase
        if not self.m.engine_at_least(4, 4, 7):
            self.all.pop(t["id"], None)

    def render(self, t):
        out = {"id": t["id"], "href": "%s/imagetransfers/%s" % (API, t["id"]),
               "phase": t["phase"], "direction": t["direction"], "format": t["format"],
               "transferred": t["transferred"], "inactivity_timeout": t["inactivity_timeout"],
               "active": t["phase"] == "transferring", "shallow": False,
               "disk": {"id": t["disk"], "href": "%s/disks/%s" % (API, t["disk"])},
               "image": {"id": t["disk"]},
               "host": {"id": "5a1a0000-0000-0000-0000-000000000001",
                        "href": "%s/hosts/5a1a0000-0000-0000-0000-000000000001" % API},
               "actions": {"link": [{"href": "%s/imagetransfers/%s/%s" % (API, t["id"], a),
                                     "rel": a} for a in ("finalize", "cancel", "pause",
                                                         "resume", "extend")]}}
        # URLs only while the transfer holds a ticket: the engine clears its
        # ticket id when the session ends (ImageTransferUpdater.updateEntity,
        # clearResourceId) and ImageTransferMapper maps URLs only while set
        if t["phase"] in ("transferring", "paused_user", "paused_system"):
            daemon = self.daemon_base if self.daemon_reachable else self.unreachable_base
            out["transfer_url"] = "%s/images/%s" % (daemon, t["ticket"])
            out["proxy_url"] = "%s/images/%s" % (self.proxy_base, t["ticket"])
        return out

    def control(self, body=None):
        """GET/PUT /sim/imageio."""
        if body is not None and not isinstance(body, dict):
            raise Fault(400, "the body is a JSON object: {\"daemon_reachable\": false}")
        if body is not None and "daemon_reachable" in body:
            self.daemon_reachable = as_bool(body["daemon_reachable"], "daemon_reachable")
        port = lambda base: int(base.rpartition(":")[2]) if base else None  # noqa: E731
        return {"daemon_reachable": self.daemon_reachable,
                "daemon_port": port(self.daemon_base), "proxy_port": port(self.proxy_base),
                "unreachable_port": port(self.unreachable_base)}


# ----- imageio (the data side) --------------------------------------------------
def _err(h, status, text):
    data = text.encode()
    h.send_response(status)
    h.send_header("Content-Type", "text/plain")
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    h.wfile.write(data)
    h._status = status


def _ok(h, status, body=b"", ctype="application/json", headers=None):
    h.send_response(status)
    if body:
        h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(len(body)))
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    if body and h.command != "HEAD":
        h.wfile.write(body)
    h._status = status


def serve(h, transfers, lock, path, listener):
    """One imageio request on /images/<ticket>[/extents] on the host's daemon
    (listener "imageio") or the engine's proxy ("proxy"); the request body is
    still unread."""
    mt = re.match(r"^/images/([^/]+)(/extents)?$", path)
    n = int(h.headers.get("Content-Length") or 0)
    if h.command == "OPTIONS" and mt and mt.group(1) == "*" and not mt.group(2):
        # the server's meta-capabilities (handlers/images.py options)
        return _ok(h, 200, json.dumps(_options(listener, WRITE_FEATURES)).encode(),
                   headers={"Allow": "OPTIONS,GET,PUT,PATCH"})
    with lock:
        t = transfers.tickets.get(mt.group(1)) if mt else None
        d = transfers.m.disks.get(t["disk"]) if t else None
    if t is None or d is None:
        if n:
            h.rfile.read(n)
        return _err(h, 403, "You are not allowed to access this resource: no such ticket "
                    "(unknown, expired, finalized or cancelled)")
    t["last_activity"] = time.monotonic()
    size = d["provisioned_size"]
    if h.command == "OPTIONS":
        # a ticket's capabilities: "write" implies "read" (auth.Ticket.may);
        # the proxy answers the same through its http backend, which takes
        # max_readers/max_writers from the daemon, but has no unix socket
        # (the engine's imageio config disables [local])
        write = t["direction"] == "upload"
        opts = _options(listener, WRITE_FEATURES if write else READ_FEATURES)
        opts.update(max_readers=8, max_writers=8)
        return _ok(h, 200, json.dumps(opts).encode(),
                   headers={"Allow": "OPTIONS,GET,PUT,PATCH" if write else "OPTIONS,GET"})
    if mt.group(2):
        return _extents(h, d["file"], size)
    if h.command == "GET":
        return _get(h, d["file"], size)
    if t["direction"] != "upload":
        if n:
            h.rfile.read(n)
        return _err(h, 403, "You are not allowed to write with a download ticket")
    if h.command == "PUT":
        return _put(h, t, d["file"], size, n)
    if h.command == "PATCH":
        return _patch(h, t, d["file"], size, h.rfile.read(n) if n else b"")
    return _err(h, 405, "Method not allowed")


def _options(listener, features):
    out = {"unix_socket": "\u0000/org/ovirt/imageio"} if listener == "imageio" else {}
    out["features"] = list(features)
    return out


def _put(h, t, path, size, n):
    cr = h.headers.get("Content-Range")
    start = 0
    if cr:
        mt = re.match(r"^bytes (\d+)-(\d+)/(\*|\d+)$", cr.strip())
        if not mt:
            h.rfile.read(n)
            return _err(h, 400, "Invalid Content-Range header: %r" % cr)
        start = int(mt.group(1))
    if start + n > size:
        h.rfile.read(n)
        return _err(h, 416, "Requested range not satisfiable: %d+%d > %d" % (start, n, size))
    with open(path, "r+b") as f:
        f.seek(start)
        left = n
        while left:
            buf = h.rfile.read(min(left, CHUNK))
            if not buf:
                return _err(h, 400, "Body shorter than Content-Length")
            f.write(buf)
            left -= len(buf)
        if h.path.find("flush=n") < 0:
            os.fsync(f.fileno())
    t["transferred"] += n
    return _ok(h, 200)


def _patch(h, t, path, size, raw):
    try:
        req = json.loads(raw or b"{}")
    except ValueError:
        return _err(h, 400, "Invalid JSON")
    op = req.get("op")
    if op == "flush":
        return _ok(h, 200)
    if op != "zero":
        return _err(h, 400, "Unsupported operation %r" % op)
    if "size" not in req:
        return _err(h, 400, "Missing required value for 'size'")
    off, ln = int(req.get("offset", 0)), int(req["size"])
    if off + ln > size:
        return _err(h, 416, "Requested range not satisfiable")
    with open(path, "r+b") as f:
        try:
            _punch(f.fileno(), off, ln)
        except OSError:
            f.seek(off)
            for k in range(0, ln, CHUNK):
                f.write(b"\0" * min(CHUNK, ln - k))
    t["transferred"] += ln
    return _ok(h, 200)


def _punch(fd, off, ln):
    """fallocate(PUNCH_HOLE | KEEP_SIZE) through ctypes; falls back to writing
    zeros in the caller."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.fallocate(fd, 0x02 | 0x01, ctypes.c_long(off), ctypes.c_long(ln)) != 0:
        raise OSError(ctypes.get_errno(), "fallocate")


def _get(h, path, size):
    rng = h.headers.get("Range")
    start, end, status = 0, size - 1, 200
    if rng:
        if "," in rng:
            return _err(h, 416, "Multiple ranges are not supported")
        mt = re.match(r"^bytes=(\d+)-(\d*)$", rng.strip())
        if not mt:
            return _err(h, 400, "Invalid Range header: %r" % rng)
        start = int(mt.group(1))
        end = int(mt.group(2)) if mt.group(2) else size - 1
        if start >= size or end >= size or end < start:
            return _err(h, 416, "Requested range not satisfiable")
        status = 206
    h.send_response(status)
    h.send_header("Content-Type", "application/octet-stream")
    h.send_header("Content-Length", str(end - start + 1))
    if status == 206:
        h.send_header("Content-Range", "bytes %d-%d/*" % (start, end))
    h.end_headers()
    h._status = status
    with open(path, "rb") as f:
        f.seek(start)
        left = end - start + 1
        while left:
            buf = f.read(min(left, CHUNK)) or b"\0" * min(left, CHUNK)
            h.wfile.write(buf)
            left -= len(buf)


def _extents(h, path, size):
    out, off = [], 0
    with open(path, "rb") as f:
        fd = f.fileno()
        while off < size:
            try:
                data = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:
                data = size
            if data > off:
                out.append({"start": off, "length": min(data, size) - off, "zero": True,
                            "hole": True})
            if data >= size:
                break
            hole = min(os.lseek(fd, data, os.SEEK_HOLE), size)
            out.append({"start": data, "length": hole - data, "zero": False, "hole": False})
            off = hole
    return _ok(h, 200, json.dumps(out).encode())
