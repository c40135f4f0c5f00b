# sim_http.py - the simulator's HTTPS front: the SSO token endpoint, Bearer
# (and deprecated Basic) authentication, the REST API v4 routes under
# /ovirt-engine/api, the engine's status codes (201/202 creates, 200 actions
# and deletes, faults), and the test control endpoints under /sim/ (failure
# injection, token expiry, state and request log), which are not part of the
# engine's API and need no authentication.
import base64
import json
import re
import secrets
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import sim_imageio
from sim_core import API, Fault, as_bool, log, new_id, now_ms, stringify
from sim_model import BLANK_ID, OS_TYPES
from sim_render import Renderer, active_snapshot_id, parse_follow, ref, search

SSO_TOKEN = "/ovirt-engine/sso/oauth/token"
SSO_LOGOUT = "/ovirt-engine/services/sso-logout"
PKI = "/ovirt-engine/services/pki-resource"

# /top-level collection -> (entity kind, model attribute)
TOP = {"datacenters": ("data_center", "dcs"), "clusters": ("cluster", "clusters"),
       "storagedomains": ("storage_domain", "sds"), "networks": ("network", "networks"),
       "vnicprofiles": ("vnic_profile", "profiles"), "templates": ("template", "templates"),
       "vmpools": ("vm_pool", "pools"), "vms": ("vm", "vms"), "disks": ("disk", "disks"),
       "jobs": ("job", "jobs")}


class Auth:
    """Users and SSO tokens (absolute expiry, --token-ttl)."""

    def __init__(self, users, ttl):
        self.users = users  # "user@profile" -> password
        self.ttl = ttl
        self.tokens = {}    # token -> (user, expiry epoch seconds)
        self.lock = threading.Lock()

    def login(self, user, password):
        if "@" not in user:
            raise Fault(400, "Cannot authenticate user '%s': No valid profile found in "
                        "credentials." % user, reason="access_denied")
        if self.users.get(user) != password:
            raise Fault(400, "Cannot authenticate user '%s': The username or password is "
                        "incorrect." % user, reason="access_denied")
        tok = secrets.token_urlsafe(48)
        with self.lock:
            self.tokens[tok] = (user, time.time() + self.ttl)
        return tok, self.tokens[tok][1]

    def check(self, header):
        """The user an Authorization header authenticates, or a 401 fault."""
        if not header:
            raise Fault(401, "Authentication required: send 'Authorization: Bearer <token>' "
                        "from %s" % SSO_TOKEN, reason="Unauthorized")
        scheme, _, cred = header.partition(" ")
        if scheme.lower() == "bearer":
            with self.lock:
                user, exp = self.tokens.get(cred.strip(), (None, 0))
            if user is None:
                raise Fault(401, "The token is not valid (unknown or logged out)",
                            reason="Unauthorized")
            if exp < time.time():
                raise Fault(401, "The token has expired", reason="Unauthorized")
            return user
        if scheme.lower() == "basic":
            try:
                user, _, pw = base64.b64decode(cred).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                user, pw = "", None
            if self.users.get(user) == pw:
                return user
            raise Fault(401, "Invalid user name or password", reason="Unauthorized")
        raise Fault(401, "Unsupported authorization scheme '%s'" % scheme,
                    reason="Unauthorized")

    def expire_all(self):
        with self.lock:
            n = len(self.tokens)
            self.tokens = {t: (u, 0) for t, (u, _) in self.tokens.items()}
        return n

    def logout(self, tok):
        with self.lock:
            return self.tokens.pop(tok, None) is not None

    def active(self):
        now = time.time()
        with self.lock:
            return sum(1 for _, e in self.tokens.values() if e >= now)


class Control:
    """Test control state: failure rules and the request log."""

    def __init__(self):
        self.rules = []
        self.requests = []
        self.lock = threading.Lock()
        self.release = threading.Event()

    def add_rule(self, r):
        if not isinstance(r, dict) or not r.get("path_regex"):
            raise Fault(400, "a rule needs path_regex (and status, or \"timeout\": true)")
        try:
            re.compile(r["path_regex"])
        except re.error as e:
            raise Fault(400, "path_regex: %s" % e)
        if r.get("boot_fails") and not re.search(r"start", r["path_regex"]):
            raise Fault(400, "boot_fails applies to a VM's start action (/vms/ID/start)")
        if not r.get("timeout") and not r.get("boot_fails") and \
                not isinstance(r.get("status"), int):
            raise Fault(400, "a rule needs an integer status, \"timeout\": true or "
                             "\"boot_fails\": true")
        rule = {"id": new_id(), "method": (r.get("method") or "*").upper(),
                "path_regex": r["path_regex"], "status": r.get("status"),
                "timeout": bool(r.get("timeout")), "hang_seconds": r.get("hang_seconds", 3600),
                "boot_fails": bool(r.get("boot_fails")),
                "count": int(r.get("count", 1)), "when": r.get("when", "before"),
                "reason": r.get("reason", "Operation Failed"),
                "detail": r.get("detail", "[Simulated failure (ovirt-sim /sim/fail)]"),
                "hits": 0}
        if rule["when"] not in ("before", "after"):
            raise Fault(400, "when: 'before' (the call has no effect) or 'after' (it has)")
        with self.lock:
            self.rules.append(rule)
        return rule

    def take(self, method, path):
        """The first rule matching this call (its count is used up)."""
        with self.lock:
            for r in self.rules:
                if r["method"] in ("*", method) and re.search(r["path_regex"], path) \
                        and r["count"] != 0:
                    r["hits"] += 1
                    if r["count"] > 0:
                        r["count"] -= 1
                    return dict(r)
        return None

    def clear(self):
        with self.lock:
            self.rules = []
        self.release.set()
        self.release = threading.Event()

    def record(self, entry):
        with self.lock:
            self.requests.append(entry)
            if len(self.requests) > 20000:
                del self.requests[:10000]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ovirt-sim"

    def setup(self):
        self.request.settimeout(300)
        self.request.do_handshake()
        super().setup()

    def log_message(self, fmt, *args):
        if self.server.verbose:
            log("%s %s" % (self.client_address[0], fmt % args))

    # ----- plumbing -----------------------------------------------------
    def _send(self, status, body=None, headers=None, ctype="application/json"):
        data = b"" if body is None else (body if isinstance(body, bytes) else
                                         json.dumps(body).encode())
        headers = dict(headers or {})
        ctype = headers.pop("Content-Type", ctype)
        self.send_response(status)
        if data:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self._status = status

    def _body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._chunked()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _chunked(self):
        out = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline().strip():  # trailers
                    pass
                return b"".join(out)
            out.append(self.rfile.read(size))
            self.rfile.readline()

    def _json_body(self, raw):
        if not raw.strip():
            return {}
        ctype = (self.headers.get("Content-Type") or "").lower()
        if "json" not in ctype:
            raise Fault(415, "Content-Type '%s' is not supported here: send application/json"
                        % ctype, reason="Unsupported Media Type")
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise Fault(400, "Request syntactically incorrect: %s" % e,
                        reason="Request syntactically incorrect.")
        if not isinstance(body, dict):
            raise Fault(400, "Request syntactically incorrect: the body must be a JSON object",
                        reason="Request syntactically incorrect.")
        return body

    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    def do_PATCH(self):
        self._dispatch()

    def do_OPTIONS(self):
        self._dispatch()

    def _dispatch(self):
        self._status = 0
        u = urllib.parse.urlsplit(self.path)
        path = u.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(u.query,
                                                              keep_blank_values=True).items()}
        ctl = self.server.control
        if self.server.listener != "engine":
            # the host's imageio daemon or the engine's imageio proxy:
            # /images/ only (ovirt-imageio http.Router: 404 "No handler for")
            if path.startswith("/images/"):
                return self._imageio(path, query)
            return self._no_handler(path, query)
        raw = self._body()
        try:
            if path.startswith("/sim/") or path == "/sim":
                return self._control(path, raw, query)
            rule = ctl.take(self.command, path)
            if rule and rule["boot_fails"]:
                # the start is accepted, then the VM falls back to down
                status, body, headers = self._serve(path, query, raw)
                self.server.model.fail_boot(path, rule["detail"])
                return self._send(status, body, headers)
            if rule and rule["when"] == "before" and self._inject(rule):
                return
            status, body, headers = self._serve(path, query, raw)
            if rule and rule["when"] == "after" and self._inject(rule):
                return
            self._send(status, body, headers)
        except Fault as f:
            hdrs = {"WWW-Authenticate": 'Bearer realm="RESTAPI"'} if f.status == 401 else {}
            self._send(f.status, f.body(), hdrs)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # an engine bug answers 500; so does ours
            log("internal error on %s %s: %r" % (self.command, self.path, e))
            import traceback
            traceback.print_exc()
            self._send(500, {"reason": "Operation Failed", "detail": "[Internal Engine Error]"})
        finally:
            if not path.startswith("/sim"):
                ctl.record({"time": now_ms(), "method": self.command, "path": path,
                            "query": query, "status": self._status, "listener": "engine"})

    def _imageio(self, path, query):
        """imageio: the ticket is the credential; the body is streamed."""
        ctl, listener = self.server.control, self.server.listener
        try:
            rule = ctl.take(self.command, path)
            if rule:
                self.close_connection = True  # the body stays unread
                self._inject(rule)
                return
            sim_imageio.serve(self, self.server.transfers, self.server.model.lock, path,
                              listener)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            ctl.record({"time": now_ms(), "method": self.command, "path": path,
                        "query": query, "status": self._status, "listener": listener})

    def _no_handler(self, path, query):
        try:
            n = int(self.headers.get("Content-Length") or 0)
            if n or self.headers.get("Transfer-Encoding"):
                self.close_connection = True  # the body stays unread
            sim_imageio._err(self, 404, "No handler for %r" % path)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            self.server.control.record({"time": now_ms(), "method": self.command, "path": path,
                                        "query": query, "status": self._status,
                                        "listener": self.server.listener})

    def _inject(self, rule):
        if rule["timeout"]:
            self.server.control.release.wait(rule["hang_seconds"])
            self.close_connection = True  # no answer at all
            self._status = -1
            return True
        self._send(rule["status"], {"reason": rule["reason"], "detail": rule["detail"]})
        return True

    # ----- engine routes -------------------------------------------------
    def _serve(self, path, query, raw):
        if path == SSO_TOKEN:
            return self._sso_token(raw)
        if path == SSO_LOGOUT:
            form = urllib.parse.parse_qs(raw.decode(errors="replace"))
            self.server.auth.logout((form.get("token") or [""])[0])
            return 200, {}, None
        if path == PKI:
            if query.get("resource") != "ca-certificate":
                raise Fault(404)
            return 200, self.server.ca_pem.encode(), {"Content-Type": "application/x-pem-file"}
        if path == API or path.startswith(API + "/"):
            rest = path[len(API):]
            rest = rest[3:] if rest.startswith("/v4") else rest
            self.server.auth.check(self.headers.get("Authorization"))
            if "json" not in (self.headers.get("Accept") or ""):
                raise Fault(406, "this simulated engine answers JSON only: send "
                            "'Accept: application/json' (a real engine answers XML)",
                            reason="Not Acceptable")
            body = self._json_body(raw) if self.command in ("POST", "PUT") else {}
            with self.server.model.lock:
                return self._api(rest, query, body)
        raise Fault(404)

    def _sso_token(self, raw):
        if self.command != "POST":
            raise Fault(405)
        if "application/json" not in (self.headers.get("Accept") or ""):
            return 400, {"error_code": "invalid_request",
                         "error": "Accept: application/json is required"}, None
        form = {k: v[-1] for k, v in urllib.parse.parse_qs(raw.decode(errors="replace")).items()}
        if form.get("grant_type") != "password":
            return 400, {"error_code": "unsupported_grant_type",
                         "error": "The grant type '%s' is not supported"
                         % form.get("grant_type", "")}, None
        if "ovirt-app-api" not in (form.get("scope") or "").split():
            return 400, {"error_code": "invalid_scope",
                         "error": "The scope 'ovirt-app-api' is required"}, None
        try:
            tok, exp = self.server.auth.login(form.get("username", ""), form.get("password", ""))
        except Fault as f:
            return 400, {"error_code": "access_denied", "error": f.detail}, None
        return 200, {"access_token": tok, "scope": "ovirt-app-api ovirt-ext=token:password-access",
                     "exp": str(int(exp * 1000)), "token_type": "bearer"}, None

    def _api(self, rest, query, body):
        m = self.server.model
        r = Renderer(m, (self.headers.get("All-Content") or "").lower() == "true")
        follow = parse_follow(query.get("follow"))
        parts = [urllib.parse.unquote(p) for p in rest.split("/") if p]
        meth = self.command
        corr = self.headers.get("Correlation-Id")
        out = lambda kind, o, parent=None: stringify(r.render(kind, o, parent, follow))  # noqa
        if not parts:
            self._only(meth, "GET")
            return 200, self._root(), None
        top = parts[0]
        if top == "imagetransfers":
            return self._transfers(parts, body)
        if top == "operatingsystems":
            self._only(meth, "GET")
            return 200, {"operating_system": [
                {"id": "os-%d" % n, "name": o, "description": o,
                 "href": "%s/operatingsystems/os-%d" % (API, n)}
                for n, o in enumerate(OS_TYPES)]}, None
        if top not in TOP:
            raise Fault(404)
        kind, attr = TOP[top]
        coll = getattr(m, attr)
        if len(parts) == 1:
            if meth == "GET":
                return 200, self._list(kind, list(coll.values()), query, out), None
            if meth == "POST" and top == "vms":
                vm, status = m.vm_add(body, query, corr)
                return self._created(vm, status, out("vm", vm), "vms")
            if meth == "POST" and top == "disks":
                d = m.disk_add(body, corr)
                return self._created(d, 202, out("disk", d), "disks")
            raise Fault(405)
        obj = coll.get(parts[1])
        if obj is None:
            raise Fault(404)
        if len(parts) == 2:
            return self._entity(top, kind, obj, body, query, out)
        return self._sub(top, obj, parts[2:], body, query, out, r)

    def _transfers(self, parts, body):
        tr, meth = self.server.transfers, self.command
        if len(parts) == 1:
            if meth == "GET":
                items = list(tr.all.values())
                return 200, ({"image_transfer": [stringify(tr.render(tr.get(t["id"])))
                                                 for t in items]} if items else {}), None
            self._only(meth, "POST")
            t = tr.add(body)
            return 201, stringify(tr.render(t)), {
                "Location": self._abs("%s/imagetransfers/%s" % (API, t["id"]))}
        if len(parts) == 2:
            self._only(meth, "GET")
            return 200, stringify(tr.render(tr.get(parts[1]))), None
        if len(parts) == 3:
            self._only(meth, "POST")
            tr.action(parts[1], parts[2])
            return 200, {"status": "complete"}, None
        raise Fault(404)

    def _only(self, meth, *allowed):
        if meth not in allowed:
            raise Fault(405)

    def _root(self):
        m = self.server.model
        return stringify({
            "product_info": {"name": "oVirt Engine", "vendor": "ovirt.org",
                             "version": dict(m.engine_version)},
            "special_objects": {"blank_template": ref("templates", BLANK_ID)},
            "summary": {"vms": {"total": len(m.vms),
                                "active": sum(1 for v in m.vms.values() if m.running(v))},
                        "storage_domains": {"total": len(m.sds),
                                            "active": sum(1 for s in m.sds.values()
                                                          if s["status"] == "active")}},
            "time": now_ms(),
            "link": [{"href": "%s/%s" % (API, k), "rel": k} for k in
                     list(TOP) + ["operatingsystems", "imagetransfers"]]})

    def _list(self, kind, items, query, out):
        if query.get("search"):
            cs = as_bool(query.get("case_sensitive", "true"), "case_sensitive")
            items = search(self.server.model, kind, items, query["search"], cs)
        if query.get("max"):
            try:
                items = items[:max(0, int(query["max"]))]
            except ValueError:
                raise Fault(400, "Invalid value for 'max': '%s'" % query["max"])
        return {kind: [out(kind, o) for o in items]} if items else {}

    def _created(self, obj, status, rendered, path):
        """201, or 202 with the locked entity; Expect: 201-created blocks until
        the entity is ready."""
        if status == 202 and "201-created" in (self.headers.get("Expect") or ""):
            self._wait_ready(obj)
            rendered = dict(rendered)
            rendered["status"] = obj["status"]
            status = 201
        if status == 202:
            rendered = dict(rendered, creation_status="pending")
        return status, rendered, {"Location": self._abs("%s/%s/%s" % (API, path, obj["id"]))}

    def _abs(self, href):
        """Location is an absolute URL, as the engine writes it."""
        return "https://%s%s" % (self.headers.get("Host") or "localhost", href)

    def _wait_ready(self, obj, limit=300):
        lock = self.server.model.lock
        end = time.monotonic() + limit
        lock.release()  # the handler holds it once (taken in _serve)
        try:
            while time.monotonic() < end:
                with lock:
                    if obj.get("status") not in ("locked", "image_locked") and \
                            obj.get("status") != "started":
                        return
                time.sleep(0.05)
        finally:
            lock.acquire()

    def _entity(self, top, kind, obj, body, query, out):
        m, meth = self.server.model, self.command
        if meth == "GET":
            return 200, out(kind, obj), None
        if meth == "PUT" and top == "vms":
            return 200, out("vm", m.vm_update(obj["id"], body)), None
        if meth == "PUT" and top == "disks":
            return 200, out("disk", m.disk_update(obj["id"], body)), None
        if meth == "DELETE" and top == "vms":
            m.vm_delete(obj["id"], query)
            return 200, None, None
        if meth == "DELETE" and top == "disks":
            m.disk_delete(obj["id"])
            return 200, None, None
        raise Fault(405)

    def _action(self, job, body, key, obj_ref):
        if job is not None and str(body.get("async", "")).lower() == "false":
            self._wait_ready(job)
        out = {"status": "complete"}
        if job is not None:
            out["job"] = ref("jobs", job["id"])
        if key:
            out[key] = obj_ref
        return 200, stringify(out), None

    def _sub(self, top, obj, parts, body, query, out, r):
        m, meth, corr = self.server.model, self.command, self.headers.get("Correlation-Id")
        sub = parts[0]
        if top == "datacenters":
            self._only(meth, "GET")
            return self._dc_sub(obj, parts, query, out)
        if top == "clusters" and parts == ["networks"]:
            self._only(meth, "GET")
            return 200, self._list("network", [n for n in m.networks.values()
                                               if obj["id"] in n["clusters"]], query, out), None
        if top == "networks" and parts == ["vnicprofiles"]:
            self._only(meth, "GET")
            return 200, self._list("vnic_profile", [p for p in m.profiles.values()
                                                    if p["network"] == obj["id"]],
                                   query, out), None
        if top == "storagedomains" and parts == ["disks"]:
            self._only(meth, "GET")
            return 200, self._list("disk", [d for d in m.disks.values()
                                            if d["storage_domain"] == obj["id"]],
                                   query, out), None
        if top == "templates" and sub in ("diskattachments", "nics") and len(parts) == 1:
            self._only(meth, "GET")
            if sub == "nics":
                items = obj["nics"]
                return 200, ({"nic": [out("nic", n, obj) for n in items]} if items else {}), None
            items = list(obj["attachments"].values())
            return 200, ({"disk_attachment": [out("disk_attachment", a, obj) for a in items]}
                         if items else {}), None
        if top == "disks" and parts == ["copy"]:
            self._only(meth, "POST")
            # the engine answers an async MoveOrCopyDisk with 202 and the action
            # as given (restapi BackendDiskResource.copy -> doAction): no new
            # disk id; the copy is found by its name. async=false waits.
            job, new = m.disk_copy(obj["id"], body, corr)
            if str(body.get("async", "")).lower() == "false":
                return self._action(job, body, "disk", ref("disks", new["id"]))
            out = {k: body[k] for k in ("storage_domain", "disk") if k in body}
            out.update({"status": "pending", "job": ref("jobs", job["id"])})
            return 202, stringify(out), None
        if top == "vms":
            return self._vm_sub(obj, parts, body, query, out)
        raise Fault(404)

    def _dc_sub(self, dc, parts, query, out):
        m = self.server.model
        what = parts[0]
        if what == "storagedomains":
            sds = [s for s in m.sds.values() if s["data_center"] == dc["id"]]
            if len(parts) == 2:
                sd = next((s for s in sds if s["id"] == parts[1]), None)
                if sd is None:
                    raise Fault(404)
                return 200, out("storage_domain", sd, dc), None
            items = search(m, "storage_domain", sds, query["search"]) \
                if query.get("search") else sds
            return 200, ({"storage_domain": [out("storage_domain", s, dc) for s in items]}
                         if items else {}), None
        if what == "clusters" and len(parts) == 1:
            return 200, self._list("cluster", [c for c in m.clusters.values()
                                               if c["data_center"] == dc["id"]],
                                   query, out), None
        if what == "networks" and len(parts) == 1:
            return 200, self._list("network", [n for n in m.networks.values()
                                               if n["data_center"] == dc["id"]],
                                   query, out), None
        raise Fault(404)

    def _vm_sub(self, vm, parts, body, query, out):
        m, meth, corr = self.server.model, self.command, self.headers.get("Correlation-Id")
        sub, vid = parts[0], vm["id"]
        if len(parts) == 1 and sub in ("start", "stop", "shutdown", "reboot"):
            self._only(meth, "POST")
            job = m.vm_action(vid, sub, body, corr)
            return self._action(job, body, "vm", ref("vms", vid))
        if sub == "diskattachments":
            if len(parts) == 1:
                if meth == "GET":
                    items = sorted(vm["attachments"].values(), key=lambda a: a["order"])
                    return 200, ({"disk_attachment": [out("disk_attachment", a, vm)
                                                      for a in items]} if items else {}), None
                self._only(meth, "POST")
                vm, att, status = m.attachment_add(vid, body, corr)
                return status, out("disk_attachment", att, vm), {
                    "Location": self._abs("%s/vms/%s/diskattachments/%s" % (API, vid, att["id"]))}
            did = parts[1]
            if meth == "GET":
                return 200, out("disk_attachment", m.attachment_get(vid, did)[1], vm), None
            if meth == "PUT":
                return 200, out("disk_attachment", m.attachment_update(vid, did, body)[1],
                                vm), None
            self._only(meth, "DELETE")
            m.attachment_delete(vid, did, query)
            return 200, None, None
        if sub == "nics":
            return self._nics(vm, parts, body, out)
        if sub == "reporteddevices" and len(parts) == 1:
            self._only(meth, "GET")
            items = m.reported_devices(vm)
            return 200, ({"reported_device": [out("reported_device", d, vm) for d in items]}
                         if items else {}), None
        if sub == "snapshots":
            return self._snapshots(vm, parts, body, out)
        raise Fault(404)

    def _nics(self, vm, parts, body, out):
        m, meth, vid = self.server.model, self.command, vm["id"]
        if len(parts) == 1:
            if meth == "GET":
                items = sorted(vm["nics"].values(), key=lambda n: n["name"])
                return 200, ({"nic": [out("nic", n, vm) for n in items]} if items else {}), None
            self._only(meth, "POST")
            vm, n = m.nic_add(vid, body)
            return 201, out("nic", n, vm), {
                "Location": self._abs("%s/vms/%s/nics/%s" % (API, vid, n["id"]))}
        nid = parts[1]
        if len(parts) == 3 and parts[2] == "reporteddevices":
            self._only(meth, "GET")
            vm, n = m.nic_get(vid, nid)
            items = m.reported_devices(vm, n)
            return 200, ({"reported_device": [out("reported_device", d, vm) for d in items]}
                         if items else {}), None
        if len(parts) != 2:
            raise Fault(404)
        if meth == "GET":
            return 200, out("nic", m.nic_get(vid, nid)[1], vm), None
        if meth == "PUT":
            return 200, out("nic", m.nic_update(vid, nid, body)[1], vm), None
        self._only(meth, "DELETE")
        m.nic_delete(vid, nid)
        return 200, None, None

    def _snapshots(self, vm, parts, body, out):
        m, meth, vid = self.server.model, self.command, vm["id"]
        corr = self.headers.get("Correlation-Id")
        r = Renderer(m)
        if len(parts) == 1:
            if meth == "GET":
                return 200, {"snapshot": [out("snapshot", s, vm) for s in r.snapshots_of(vm)]}, None
            self._only(meth, "POST")
            vm, s = m.snapshot_add(vid, body, corr)
            return 202, dict(out("snapshot", s, vm), creation_status="pending"), {
                "Location": self._abs("%s/vms/%s/snapshots/%s" % (API, vid, s["id"]))}
        sid = parts[1]
        if sid == active_snapshot_id(vm) and len(parts) == 2 and meth == "GET":
            return 200, out("snapshot", r.snapshots_of(vm)[0], vm), None
        if len(parts) == 3 and parts[2] == "restore":
            self._only(meth, "POST")
            job = m.snapshot_restore(vid, sid, body, corr)
            return self._action(job, body, "snapshot", ref("vms/%s/snapshots" % vid, sid))
        if len(parts) == 3 and parts[2] == "disks":
            self._only(meth, "GET")
            s = m.snapshot_get(vid, sid)[1]
            items = [m.disks[d] for d in s["files"] if d in m.disks]
            return 200, ({"disk": [dict(out("disk", d), snapshot=ref(
                "vms/%s/snapshots" % vid, sid)) for d in items]} if items else {}), None
        if len(parts) != 2:
            raise Fault(404)
        if meth == "GET":
            return 200, out("snapshot", m.snapshot_get(vid, sid)[1], vm), None
        self._only(meth, "DELETE")
        m.snapshot_delete(vid, sid, corr)
        return 200, None, None

    # ----- /sim control --------------------------------------------------
    def _control(self, path, raw, query):
        ctl, meth = self.server.control, self.command
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError as e:
            raise Fault(400, "the body is not JSON: %s" % e)
        if path == "/sim/fail":
            if meth == "POST":
                rules = body if isinstance(body, list) else [body]
                return self._send(200, {"rules": [ctl.add_rule(x) for x in rules]})
            if meth == "DELETE":
                ctl.clear()
                return self._send(200, {})
            with ctl.lock:
                return self._send(200, {"rules": ctl.rules})
        if path == "/sim/tokens/expire" and meth == "POST":
            return self._send(200, {"expired": self.server.auth.expire_all()})
        if path == "/sim/timers" and meth == "POST":
            self.server.model.sched.pause(bool(body.get("paused")))
            return self._send(200, {"paused": self.server.model.sched.paused})
        if path == "/sim/requests":
            since = int(query.get("since", 0))
            with ctl.lock:
                return self._send(200, {"requests": [q for q in ctl.requests
                                                     if q["time"] >= since]})
        if path == "/sim/state":
            with self.server.model.lock:
                return self._send(200, self.server.state())
        if path == "/sim/engine" and meth == "PUT":
            with self.server.model.lock:
                return self._send(200, {"version": self.server.model.set_engine_version(
                    body.get("version", ""))})
        if path == "/sim/imageio" and meth in ("GET", "PUT"):
            with self.server.model.lock:
                return self._send(200, self.server.transfers.control(
                    body if meth == "PUT" else None))
        mt = re.match(r"^/sim/storagedomains/([^/]+)$", path)
        if mt and meth == "PUT":
            return self._send(200, self.server.set_sd(mt.group(1), body))
        raise Fault(404)


class Server(ThreadingHTTPServer):
    """One HTTPS listener: the engine ("engine": API, SSO, /sim/), the host's
    imageio daemon ("imageio") or the engine's imageio proxy ("proxy"); all
    share the model, the control state and the transfers."""
    daemon_threads = True
    allow_reuse_address = True
    listener = "engine"

    def handle_error(self, request, client_address):
        import sys
        e = sys.exc_info()[1]
        if self.verbose or not isinstance(e, (OSError, ConnectionError)):
            log("connection from %s: %r" % (client_address[0], e))

    def state(self):
        """Everything tests may want to check, secrets left out."""
        m = self.model
        name = lambda coll, i: coll[i]["name"] if i in coll else None  # noqa: E731
        vms = []
        for v in m.vms.values():
            vms.append({
                "id": v["id"], "name": v["name"], "status": v["status"], "ip": v["ip"],
                "worker": v["worker"], "cluster": name(m.clusters, v["cluster"]),
                "template": name(m.templates, v["template"]),
                "vm_pool": name(m.pools, v["vm_pool"]), "memory": v["memory"],
                "memory_max": v["memory_max"], "memory_guaranteed": v["memory_guaranteed"],
                "cpu": {"sockets": v["sockets"], "cores": v["cores"], "threads": v["threads"]},
                "os_type": v["os_type"], "type": v["type"],
                "delete_protected": v["delete_protected"],
                "attachments": [{"disk": a["id"], "disk_name": name(m.disks, a["id"]),
                                 "interface": a["interface"], "active": a["active"],
                                 "bootable": a["bootable"]} for a in v["attachments"].values()],
                "nics": [{"name": n["name"], "mac": n["mac"], "interface": n["interface"],
                          "vnic_profile": name(m.profiles, n["vnic_profile"]),
                          "network": name(m.networks, m.profiles[n["vnic_profile"]]["network"])
                          if n["vnic_profile"] else None} for n in v["nics"].values()],
                "snapshots": [{"id": s["id"], "description": s["description"],
                               "status": s["status"], "disks": list(s["files"])}
                              for s in v["snapshots"].values()],
                "guest": m.guest.info(v)})
        return {
            "state_dir": self.state_dir, "storage_dir": m.storage_dir, "vms": vms,
            "disks": [{"id": d["id"], "name": d["name"], "status": d["status"],
                       "file": d["file"], "provisioned_size": d["provisioned_size"],
                       "format": d["format"], "sparse": d["sparse"],
                       "storage_domain": name(m.sds, d["storage_domain"]),
                       "vm": name(m.vms, d["vm"]), "template": name(m.templates, d["template"])}
                      for d in m.disks.values()],
            "storage_domains": [{k: s[k] for k in ("id", "name", "available", "used",
                                                   "committed", "status", "storage_type")}
                                for s in m.sds.values()],
            "templates": [{"id": t["id"], "name": t["name"], "worker": t["worker"],
                           "username": t["username"], "password_set": bool(t["password"]),
                           "disks": list(t["attachments"])} for t in m.templates.values()],
            "vm_pools": [{"id": p["id"], "name": p["name"],
                          "vms": [v["name"] for v in m.vms.values() if v["vm_pool"] == p["id"]]}
                         for p in m.pools.values()],
            "jobs": [{"id": j["id"], "description": j["description"], "status": j["status"]}
                     for j in m.jobs.values()],
            "imageio": self.transfers.control(),
            "tokens_active": self.auth.active(),
            "fail_rules": self.control.rules,
        }

    def set_sd(self, key, body):
        with self.model.lock:
            sd = next((s for s in self.model.sds.values() if key in (s["id"], s["name"])), None)
            if sd is None:
                raise Fault(404, "no storage domain '%s'" % key)
            if "available" in body:
                sd["available"] = int(body["available"])
            if "status" in body:
                sd["status"] = str(body["status"])
            return {k: sd[k] for k in ("id", "name", "available", "status")}
