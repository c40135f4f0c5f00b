# sim_imageio.py - image transfers: the engine's /imagetransfers resource
# (initializing -> transferring -> finalizing_success -> finished_success,
# cancel -> finished_failure, paused_system after inactivity_timeout) and the
# imageio HTTP API its transfer_url names (OPTIONS, PUT with Content-Range,
# PATCH zero/flush, GET with Range, extents), served by the simulator itself
# under /images/<ticket> instead of by a host daemon on port 54322.
import json
import os
import re
import time
import uuid

from sim_core import API, Fault, as_int, conflict, incomplete, invalid, opt

CHUNK = 1 << 20


class Transfers:
    def __init__(self, model):
        self.m = model
        self.all = {}      # transfer id -> transfer
        self.tickets = {}  # ticket -> transfer

    # ----- engine side ---------------------------------------------------
    def add(self, body, base_url):
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
             "last_activity": time.monotonic(), "base_url": base_url}
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
            end = ("finished_success", "ok")
        elif name == "cancel":
            if t["phase"].startswith("finished"):
                raise conflict("Cannot cancel image transfer: it has finished.")
            t["phase"] = "finalizing_failure"
            end = ("finished_failure", "illegal")
        elif name in ("pause", "resume"):
            if t["phase"] not in ("transferring", "paused_user", "paused_system"):
                raise conflict("Cannot %s image transfer: the transfer is %s." % (name, t["phase"]))
            t["phase"] = "paused_user" if name == "pause" else "transferring"
            if name == "resume":
                t["last_activity"] = time.monotonic()
                self.tickets[t["ticket"]] = t
            else:
                self.tickets.pop(t["ticket"], None)
            return
        else:
            raise Fault(404)
        self.tickets.pop(t["ticket"], None)

        def done():
            t["phase"] = end[0]
            d = m.disks.get(t["disk"])
            if d is not None:
                d["status"] = end[1]
        m.after(done)

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
        if t["phase"] not in ("initializing",):
            url = "%s/images/%s" % (t["base_url"], t["ticket"])
            out["transfer_url"] = out["proxy_url"] = url
        return out


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


def serve(h, transfers, lock, path):
    """One imageio request on /images/<ticket>[/extents]; the request body is
    still unread."""
    mt = re.match(r"^/images/([^/]+)(/extents)?$", path)
    n = int(h.headers.get("Content-Length") or 0)
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
        feats = {"unix_socket": "\u0000/org/ovirt/imageio", "features": ["extents", "zero",
                                                                         "flush"],
                 "max_readers": 8, "max_writers": 8}
        return _ok(h, 200, json.dumps(feats).encode(),
                   headers={"Allow": "OPTIONS,GET,PUT,PATCH"})
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
