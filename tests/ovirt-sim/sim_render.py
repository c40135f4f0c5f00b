# sim_render.py - the engine's JSON view of the model: one function per
# entity type with href, links and actions as the engine writes them,
# references {"id","href"}, nested collections wrapped in their singular name,
# follow= (inlining linked entities) and search= (name=X and cluster=Y, with
# * wildcards, case_sensitive and max).
import fnmatch
import os
import re
import uuid

from sim_core import API, Fault


def ref(path, i):
    return {"id": i, "href": "%s/%s/%s" % (API, path, i)}


def links(href, rels):
    return [{"href": "%s/%s" % (href, r), "rel": r} for r in rels]


def actions(href, names):
    return {"link": [{"href": "%s/%s" % (href, n), "rel": n} for n in names]}


class Renderer:
    def __init__(self, model, all_content=False):
        self.m = model
        self.all_content = all_content

    # ----- top-level entities --------------------------------------------
    def data_center(self, dc, parent=None):
        href = "%s/datacenters/%s" % (API, dc["id"])
        return {"id": dc["id"], "name": dc["name"], "description": dc["description"],
                "href": href, "status": dc["status"], "local": dc["local"],
                "storage_format": dc["storage_format"], "version": dc["version"],
                "supported_versions": {"version": [dc["version"]]},
                "link": links(href, ["storagedomains", "clusters", "networks"])}

    def cluster(self, c, parent=None):
        href = "%s/clusters/%s" % (API, c["id"])
        return {"id": c["id"], "name": c["name"], "description": c["description"],
                "href": href, "cpu": c["cpu"], "version": c["version"],
                "data_center": ref("datacenters", c["data_center"]),
                "link": links(href, ["networks"])}

    def storage_domain(self, sd, parent=None):
        href = "%s/storagedomains/%s" % (API, sd["id"])
        out = {"id": sd["id"], "name": sd["name"], "description": sd["description"],
               "href": href, "type": sd["type"], "available": sd["available"],
               "used": sd["used"], "committed": sd["committed"], "master": sd["master"],
               "storage_format": "v5", "external_status": "ok",
               "warning_low_space_indicator": 10, "critical_space_action_blocker": 5,
               "storage": {"type": sd["storage_type"], "address": "storage.sim.local",
                           "path": "/exports/%s" % sd["name"]},
               "data_centers": {"data_center": [ref("datacenters", sd["data_center"])]},
               "link": links(href, ["disks"])}
        if parent is not None:  # the data-center view carries the status
            out["status"] = sd["status"]
            out["href"] = "%s/datacenters/%s/storagedomains/%s" % (API, parent["id"], sd["id"])
            out["data_center"] = ref("datacenters", parent["id"])
        return out

    def network(self, n, parent=None):
        href = "%s/networks/%s" % (API, n["id"])
        out = {"id": n["id"], "name": n["name"], "description": n["description"],
               "href": href, "data_center": ref("datacenters", n["data_center"]),
               "usages": {"usage": list(n["usages"])} if n["usages"] else {},
               "mtu": n["mtu"], "stp": False,
               "link": links(href, ["vnicprofiles"])}
        if n["vlan"] is not None:
            out["vlan"] = {"id": int(n["vlan"])}
        return out

    def vnic_profile(self, p, parent=None):
        return {"id": p["id"], "name": p["name"], "href": "%s/vnicprofiles/%s" % (API, p["id"]),
                "network": ref("networks", p["network"]), "pass_through": {"mode": "disabled"},
                "port_mirroring": False}

    def template(self, t, parent=None):
        href = "%s/templates/%s" % (API, t["id"])
        out = {"id": t["id"], "name": t["name"], "description": t["description"],
               "href": href, "status": t["status"], "memory": t["memory"],
               "cpu": {"architecture": "x86_64", "topology": {
                   "sockets": t["sockets"], "cores": t["cores"], "threads": t["threads"]}},
               "os": {"type": t["os_type"], "boot": {"devices": {"device": ["hd"]}}},
               "type": t["type"], "creation_time": t["creation_time"], "stateless": False,
               "version": {"version_number": t["version_number"],
                           "version_name": t["version_name"]},
               "link": links(href, ["diskattachments", "nics"])}
        if t["base_template"]:
            out["version"]["base_template"] = ref("templates", t["base_template"])
        if t["cluster"]:
            out["cluster"] = ref("clusters", t["cluster"])
        return out

    def vm_pool(self, p, parent=None):
        return {"id": p["id"], "name": p["name"], "description": p["description"],
                "href": "%s/vmpools/%s" % (API, p["id"]), "size": p["size"], "type": p["type"],
                "max_user_vms": p["max_user_vms"], "cluster": ref("clusters", p["cluster"]),
                "template": ref("templates", p["template"])}

    def vm(self, vm, parent=None):
        href = "%s/vms/%s" % (API, vm["id"])
        out = {"id": vm["id"], "name": vm["name"], "description": vm["description"],
               "comment": vm["comment"], "href": href, "status": vm["status"],
               "cluster": ref("clusters", vm["cluster"]),
               "template": ref("templates", vm["template"]),
               "memory": vm["memory"],
               "memory_policy": {"guaranteed": vm["memory_guaranteed"],
                                 "max": vm["memory_max"], "ballooning": True},
               "cpu": {"architecture": "x86_64", "topology": {
                   "sockets": vm["sockets"], "cores": vm["cores"], "threads": vm["threads"]}},
               "os": {"type": vm["os_type"], "boot": {"devices": {"device": vm["boot"]}}},
               "type": vm["type"], "delete_protected": vm["delete_protected"],
               "stateless": False, "origin": "ovirt", "run_once": False,
               "creation_time": vm["creation_time"],
               "link": links(href, ["diskattachments", "nics", "snapshots", "reporteddevices",
                                    "permissions", "tags"]),
               "actions": actions(href, ["start", "stop", "shutdown", "reboot"])}
        for k in ("start_time", "stop_time"):
            if vm[k]:
                out[k] = vm[k]
        if vm["vm_pool"]:
            out["vm_pool"] = ref("vmpools", vm["vm_pool"])
        if vm["placement_policy"]:
            out["placement_policy"] = vm["placement_policy"]
        if self.m.running(vm):
            out["host"] = {"id": "5a1a0000-0000-0000-0000-000000000001",
                           "href": "%s/hosts/5a1a0000-0000-0000-0000-000000000001" % API}
        if self.all_content and vm["initialization"]:
            out["initialization"] = {k: v for k, v in vm["initialization"].items()
                                     if k != "root_password"}
        return out

    def disk(self, d, parent=None):
        href = "%s/disks/%s" % (API, d["id"])
        try:
            actual = os.stat(d["file"]).st_blocks * 512
        except OSError:
            actual = 0
        out = {"id": d["id"], "name": d["name"], "alias": d["name"],
               "description": d["description"], "href": href,
               "provisioned_size": d["provisioned_size"], "actual_size": actual,
               "total_size": actual, "format": d["format"], "sparse": d["sparse"],
               "status": d["status"], "storage_type": "image", "content_type": d["content_type"],
               "shareable": d["shareable"], "wipe_after_delete": d["wipe_after_delete"],
               "propagate_errors": False, "qcow_version": "qcow2_v3"
               if d["format"] == "cow" else None,
               "image_id": d["id"][::-1][:8] + d["id"][8:],
               "storage_domains": {"storage_domain": [ref("storagedomains",
                                                          d["storage_domain"])]},
               "link": links(href, ["permissions", "statistics"]),
               "actions": actions(href, ["copy", "move", "sparsify", "export"])}
        if out["qcow_version"] is None:
            del out["qcow_version"]
        return out

    # ----- VM and template sub-collections --------------------------------
    def disk_attachment(self, a, owner):
        is_vm = "attachments" in owner and "snapshots" in owner
        base = "vms" if is_vm else "templates"
        href = "%s/%s/%s/diskattachments/%s" % (API, base, owner["id"], a["id"])
        out = {"id": a["id"], "href": href, "active": a["active"], "bootable": a["bootable"],
               "interface": a["interface"], "pass_discard": a["pass_discard"],
               "read_only": a["read_only"], "uses_scsi_reservation": False,
               "disk": ref("disks", a["id"])}
        out["vm" if is_vm else "template"] = ref(base, owner["id"])
        if is_vm and owner["status"] == "up" and self.m.guest.ready(owner) and a["active"]:
            out["logical_name"] = self._logical_name(owner, a)
        return out

    def _logical_name(self, vm, att):
        """What the guest agent reports: /dev/vdX for virtio, /dev/sdX otherwise,
        in plug order."""
        virtio = att["interface"] == "virtio"
        same = sorted((a for a in vm["attachments"].values()
                       if a["active"] and (a["interface"] == "virtio") == virtio),
                      key=lambda a: a["order"])
        n = [a["id"] for a in same].index(att["id"])
        return "/dev/%s%s" % ("vd" if virtio else "sd", chr(ord("a") + n) if n < 26 else
                              "a" + chr(ord("a") + n - 26))

    def nic(self, n, owner):
        is_vm = "snapshots" in owner
        base = "vms" if is_vm else "templates"
        href = "%s/%s/%s/nics/%s" % (API, base, owner["id"], n["id"])
        out = {"id": n["id"], "name": n["name"], "href": href, "interface": n["interface"],
               "link": links(href, ["reporteddevices"]) if is_vm else []}
        if is_vm:
            out.update({"mac": {"address": n["mac"]}, "plugged": n["plugged"],
                        "linked": n["linked"], "vm": ref("vms", owner["id"])})
        else:
            out["template"] = ref("templates", owner["id"])
        if n["vnic_profile"]:
            out["vnic_profile"] = ref("vnicprofiles", n["vnic_profile"])
        return out

    def reported_device(self, r, owner):
        out = dict(r)
        out["href"] = "%s/vms/%s/reporteddevices/%s" % (API, owner["id"], r["id"])
        out["vm"] = ref("vms", owner["id"])
        return out

    def snapshot(self, s, vm):
        href = "%s/vms/%s/snapshots/%s" % (API, vm["id"], s["id"])
        return {"id": s["id"], "href": href, "description": s["description"],
                "snapshot_status": s["status"], "snapshot_type": s["type"], "date": s["date"],
                "persist_memorystate": s["persist_memorystate"], "vm": ref("vms", vm["id"]),
                "link": links(href, ["disks"]),
                "actions": actions(href, ["restore"])}

    def job(self, j, parent=None):
        out = {"id": j["id"], "href": "%s/jobs/%s" % (API, j["id"]),
               "description": j["description"], "status": j["status"],
               "start_time": j["start_time"], "last_updated": j["last_updated"],
               "external": j["external"], "auto_cleared": j["auto_cleared"],
               "link": links("%s/jobs/%s" % (API, j["id"]), ["steps"])}
        if j["end_time"]:
            out["end_time"] = j["end_time"]
        return out

    def snapshots_of(self, vm):
        """The VM's snapshots as the engine lists them: "Active VM" first."""
        active = {"id": active_snapshot_id(vm), "description": "Active VM", "status": "ok",
                  "type": "active", "date": vm["creation_time"],
                  "persist_memorystate": False, "files": {}}
        return [active] + list(vm["snapshots"].values())

    # ----- generic rendering, follow -------------------------------------
    def render(self, kind, obj, parent=None, follow=None):
        out = getattr(self, kind)(obj, parent)
        for key, sub in (follow or {}).items():
            spec = self.follow_spec(kind, obj, parent, key)
            if spec is None:
                raise Fault(400, "Link '%s' of %s cannot be followed" % (key, kind),
                            reason="Invalid value")
            if spec[0] == "list":
                _, singular, ckind, items, cparent = spec
                out[key] = {singular: [self.render(ckind, o, cparent, sub) for o in items]} \
                    if items else {}
            else:
                _, ckind, o = spec
                if o is not None:
                    out[key] = self.render(ckind, o, None, sub)
        return out

    def follow_spec(self, kind, o, parent, key):
        m = self.m
        if kind == "vm":
            return {
                "disk_attachments": ("list", "disk_attachment", "disk_attachment",
                                     sorted(o["attachments"].values(), key=lambda a: a["order"]),
                                     o),
                "nics": ("list", "nic", "nic", list(o["nics"].values()), o),
                "snapshots": ("list", "snapshot", "snapshot", self.snapshots_of(o), o),
                "reported_devices": ("list", "reported_device", "reported_device",
                                     m.reported_devices(o), o),
                "cluster": ("one", "cluster", m.clusters.get(o["cluster"])),
                "template": ("one", "template", m.templates.get(o["template"])),
                "vm_pool": ("one", "vm_pool", m.pools.get(o["vm_pool"])),
            }.get(key)
        if kind == "template":
            return {
                "disk_attachments": ("list", "disk_attachment", "disk_attachment",
                                     list(o["attachments"].values()), o),
                "nics": ("list", "nic", "nic", o["nics"], o),
                "cluster": ("one", "cluster", m.clusters.get(o["cluster"])),
            }.get(key)
        if kind == "disk_attachment":
            return {"disk": ("one", "disk", m.disks.get(o["id"])),
                    "vm": ("one", "vm", parent if "snapshots" in parent else None)}.get(key)
        if kind == "nic":
            return {"vnic_profile": ("one", "vnic_profile", m.profiles.get(o["vnic_profile"])),
                    "reported_devices": ("list", "reported_device", "reported_device",
                                         m.reported_devices(parent, o), parent)}.get(key)
        if kind == "disk" and key == "storage_domains":
            return ("list", "storage_domain", "storage_domain", [m.sds[o["storage_domain"]]],
                    None)
        if kind == "vnic_profile" and key == "network":
            return ("one", "network", m.networks.get(o["network"]))
        if kind == "network":
            return {"data_center": ("one", "data_center", m.dcs.get(o["data_center"])),
                    "vnic_profiles": ("list", "vnic_profile", "vnic_profile",
                                      [p for p in m.profiles.values()
                                       if p["network"] == o["id"]], None)}.get(key)
        if kind in ("cluster",) and key == "data_center":
            return ("one", "data_center", m.dcs.get(o["data_center"]))
        if kind == "storage_domain" and key == "data_centers":
            return ("list", "data_center", "data_center", [m.dcs[o["data_center"]]], None)
        if kind == "vm_pool":
            return {"cluster": ("one", "cluster", m.clusters.get(o["cluster"])),
                    "template": ("one", "template", m.templates.get(o["template"]))}.get(key)
        return None


def active_snapshot_id(vm):
    return str(uuid.uuid5(uuid.UUID(vm["id"]), "active"))


def parse_follow(s):
    """"disk_attachments.disk,nics" -> {"disk_attachments": {"disk": {}}, "nics": {}}"""
    tree = {}
    for part in filter(None, (p.strip() for p in (s or "").split(","))):
        node = tree
        for k in part.split("."):
            node = node.setdefault(k, {})
    return tree


# ----- search= ---------------------------------------------------------------
def search_keys(model, kind):
    """The fields search= accepts for each collection, as value getters."""
    m = model
    name = lambda o: o["name"]  # noqa: E731
    ident = lambda o: o["id"]  # noqa: E731
    dc_of = lambda o: m.dcs[o["data_center"]]["name"]  # noqa: E731
    keys = {
        "vm": {"name": name, "id": ident, "status": lambda o: o["status"],
               "description": lambda o: o["description"],
               "cluster": lambda o: m.clusters[o["cluster"]]["name"],
               "template": lambda o: m.templates[o["template"]]["name"],
               "datacenter": lambda o: dc_of(m.clusters[o["cluster"]]),
               "pool": lambda o: m.pools[o["vm_pool"]]["name"] if o["vm_pool"] else ""},
        "template": {"name": name, "id": ident, "status": lambda o: o["status"],
                     "cluster": lambda o: m.clusters[o["cluster"]]["name"] if o["cluster"]
                     else "",
                     "datacenter": lambda o: dc_of(m.clusters[o["cluster"]]) if o["cluster"]
                     else ""},
        "disk": {"name": name, "alias": name, "id": ident, "status": lambda o: o["status"],
                 "format": lambda o: o["format"],
                 "storage": lambda o: m.sds[o["storage_domain"]]["name"],
                 "vm_names": lambda o: m.vms[o["vm"]]["name"] if o["vm"] else ""},
        "storage_domain": {"name": name, "id": ident, "type": lambda o: o["type"],
                           "datacenter": dc_of, "status": lambda o: o["status"]},
        "data_center": {"name": name, "id": ident, "status": lambda o: o["status"]},
        "cluster": {"name": name, "id": ident, "datacenter": dc_of},
        "network": {"name": name, "id": ident, "datacenter": dc_of},
        "vnic_profile": {"name": name, "id": ident},
        "vm_pool": {"name": name, "id": ident},
        "job": {"id": ident, "status": lambda o: o["status"],
                "correlation_id": lambda o: o["correlation_id"] or "",
                "description": lambda o: o["description"]},
    }
    return keys.get(kind, {})


CLAUSE_RE = re.compile(r'^\s*([A-Za-z_.]+)\s*(!=|=)\s*(?:"([^"]*)"|(\S+))\s*$')


def search(model, kind, items, query, case_sensitive=True):
    """The items a search= expression selects: clauses "key=value" or
    "key!=value" joined with AND; * is a wildcard."""
    q = query.strip()
    # The engine accepts a leading "Vms:"-style prefix; drop it.
    q = re.sub(r"^\w+\s*:\s*", "", q) if re.match(r"^\w+\s*:", q) else q
    keys = search_keys(model, kind)
    clauses = []
    for part in re.split(r"\s+and\s+", q, flags=re.IGNORECASE) if q else []:
        mt = CLAUSE_RE.match(part)
        if not mt:
            raise Fault(400, "Search query '%s' is not valid: cannot parse '%s' (use "
                        "field=value [and field=value ...])" % (query, part))
        k = mt.group(1).lower()
        if k not in keys:
            raise Fault(400, "Search query '%s' is not valid: unknown field '%s' (known: %s)"
                        % (query, mt.group(1), ", ".join(sorted(keys))))
        v = mt.group(3) if mt.group(3) is not None else mt.group(4)
        clauses.append((keys[k], mt.group(2), v))

    def match(o):
        for get, op, v in clauses:
            have = str(get(o))
            pat = v
            if not case_sensitive:
                have, pat = have.lower(), pat.lower()
            ok = fnmatch.fnmatchcase(have, pat)
            if ok != (op == "="):
                return False
        return True
    return [o for o in items if match(o)]
