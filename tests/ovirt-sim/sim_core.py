# sim_core.py - shared pieces of the oVirt engine simulator: faults, the
# engine's JSON conventions (integers and booleans as strings, dates as
# epoch-ms numbers), input coercion, a timer thread for the locked -> ok
# transitions, and a sparse file copy for snapshots.
import heapq
import os
import threading
import time
import uuid

API = "/ovirt-engine/api"

# Keys the engine emits as epoch-ms numbers; every other integer or boolean
# goes out as a string (Jackson over JAXB).
DATE_KEYS = {"date", "creation_time", "start_time", "stop_time", "end_time",
             "last_updated", "time"}


class Fault(Exception):
    """An HTTP error answer. detail None with status 404 gives an empty body,
    as the engine does for an unknown id in the URL."""

    def __init__(self, status, detail=None, reason="Operation Failed"):
        super().__init__(detail or reason)
        self.status = status
        self.detail = detail
        self.reason = reason

    def body(self):
        if self.detail is None and self.status == 404:
            return None
        return {"reason": self.reason, "detail": self.detail or ""}


def conflict(detail):
    """409 with the engine's bracketed message style."""
    return Fault(409, "[%s]" % detail)


def incomplete(entity, fields):
    return Fault(400, "%s [%s] required for add" % (entity, ", ".join(fields)),
                 reason="Incomplete parameters")


def invalid(field, value, what="value"):
    return Fault(400, "Invalid %s for '%s': '%s'" % (what, field, value),
                 reason="Invalid value")


def not_found_ref(kind, key, value):
    return Fault(404, "Entity not found: %s: %s=%s" % (kind, key, value))


def stringify(v, key=None):
    """Engine output form of a value."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return v if key in DATE_KEYS else str(v)
    if isinstance(v, dict):
        return {k: stringify(x, k) for k, x in v.items()}
    if isinstance(v, list):
        return [stringify(x, key) for x in v]
    return v


def as_int(v, field, minimum=None):
    """Input may carry numbers as JSON numbers or strings."""
    if isinstance(v, bool):
        raise invalid(field, v)
    try:
        n = int(v)
    except (TypeError, ValueError):
        raise invalid(field, v)
    if minimum is not None and n < minimum:
        raise invalid(field, v)
    return n


def as_bool(v, field):
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    raise invalid(field, v)


def opt(d, key, conv, field, default=None):
    """d[key] converted with conv(value, field), or default when absent."""
    if not isinstance(d, dict) or d.get(key) is None:
        return default
    return conv(d[key], field)


def new_id():
    return str(uuid.uuid4())


def now_ms():
    return int(time.time() * 1000)


def wrapped(obj, singular):
    """The items of a nested collection {"x": [...]}, which may be missing or
    hold a single object."""
    if not isinstance(obj, dict):
        return []
    items = obj.get(singular, [])
    if isinstance(items, dict):
        return [items]
    return items if isinstance(items, list) else []


class Scheduler:
    """Runs callbacks at a given time on one thread; each callback is called
    with the model lock held by the caller's wrapper."""

    def __init__(self, lock):
        self.lock = lock
        self.heap = []
        self.seq = 0
        self.paused = False  # tests freeze transitions to hold objects locked
        self.cv = threading.Condition()
        threading.Thread(target=self._run, name="sim-timers", daemon=True).start()

    def after(self, seconds, fn, *args):
        with self.cv:
            self.seq += 1
            heapq.heappush(self.heap, (time.monotonic() + seconds, self.seq, fn, args))
            self.cv.notify()

    def pause(self, paused):
        with self.cv:
            self.paused = paused
            self.cv.notify()

    def _run(self):
        while True:
            with self.cv:
                while self.paused or not self.heap or self.heap[0][0] > time.monotonic():
                    wait = self.heap[0][0] - time.monotonic() \
                        if self.heap and not self.paused else None
                    self.cv.wait(wait)
                _, _, fn, args = heapq.heappop(self.heap)
            try:
                with self.lock:
                    fn(*args)
            except Exception as e:  # a timer must not kill the thread
                log("timer %s failed: %r" % (getattr(fn, "__name__", fn), e))


def copy_sparse(src, dst, size=None):
    """Copies src to dst keeping holes (SEEK_DATA/SEEK_HOLE), so snapshots of
    large thin disks cost what their data costs."""
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        end = os.fstat(fi.fileno()).st_size
        fo.truncate(end if size is None else size)
        off = 0
        while off < end:
            try:
                data = os.lseek(fi.fileno(), off, os.SEEK_DATA)
            except OSError:  # ENXIO: no data after off
                break
            hole = os.lseek(fi.fileno(), data, os.SEEK_HOLE)
            fi.seek(data)
            fo.seek(data)
            left = hole - data
            while left > 0:
                buf = fi.read(min(left, 1 << 20))
                if not buf:
                    break
                fo.write(buf)
                left -= len(buf)
            off = hole


_log_lock = threading.Lock()


def log(msg):
    with _log_lock:
        print(time.strftime("%H:%M:%S ") + "ovirt-sim: " + msg, file=__import__("sys").stderr,
              flush=True)
