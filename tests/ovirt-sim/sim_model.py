# sim_model.py - the simulated engine's inventory and the rules the real
# engine applies to it: data centers, clusters, storage domains with free
# space, networks and vNIC profiles, templates, VM pools, VMs, disks (sparse
# files), disk attachments, NICs, snapshots and jobs, with the engine's
# validation messages and its timed state machines (locked -> ok,
# image_locked -> down, wait_for_launch -> powering_up -> up). Every public
# method runs with self.lock held (the HTTP layer takes it).
import os
import re
import shutil
import threading
import uuid

from sim_core import (Fault, Scheduler, as_bool, as_int, conflict, copy_sparse, incomplete,
                      invalid, new_id, not_found_ref, now_ms, opt, wrapped)

BLANK_ID = "00000000-0000-0000-0000-000000000000"
GIB = 1 << 30
NAME_RE = re.compile(r"^[\w.-]+$")
DISK_IFACES = ("virtio", "virtio_scsi", "ide", "sata", "spapr_vscsi")
NIC_IFACES = ("virtio", "e1000", "rtl8139", "pci_passthrough")
VM_TYPES = ("server", "desktop", "high_performance")
# A subset of the engine's osinfo ids (GET /operatingsystems).
OS_TYPES = ["other", "other_linux", "rhel_6x64", "rhel_7x64", "rhel_8x64", "rhel_9x64",
            "centos_7x64", "debian_8", "debian_9", "debian_10", "debian_11", "debian_12",
            "ubuntu_16_04", "ubuntu_18_04", "ubuntu_20_04", "ubuntu_22_04", "sles_12",
            "oel_7x64", "oel_8x64", "oel_9x64", "windows_7x64", "windows_8x64",
            "windows_10x64", "windows_11", "windows_2012x64", "windows_2012R2x64",
            "windows_2016x64", "windows_2019x64", "windows_2022"]


MAX_SOCKETS, MAX_CPU_PER_SOCKET, MAX_THREADS_PER_CPU, MAX_VCPUS = 16, 254, 8, 384
COPY_RATE = 64 * 1048576  # bytes/s of a simulated storage copy (disk copy action)


def max_vcpus(cores, threads):
    """VmCpuCountHelper.calcMaxVCpu for x86: the APIC id has 8 bits."""
    width = lambda n: 0 if n == 0 else (n - 1).bit_length()
    one = width(threads) + width(cores)
    if one > 8:
        return MAX_VCPUS
    limit = cores * threads * min(MAX_SOCKETS, 2 ** (8 - one))
    if limit == 256:
        limit -= cores * threads
    if MAX_VCPUS < limit:
        return (MAX_VCPUS // (cores * threads)) * (cores * threads)
    return limit



def check_alias(name, action):
    """A disk's alias holds letters, digits, '.', '_' and '-' only (the
    engine's validation pattern ^[\\p{L}0-9._-]*$ on DiskImage alias)."""
    if not all(ch.isalpha() or ch.isdigit() or ch in "._-" for ch in str(name)):
        raise Fault(400, "[Cannot %s Virtual Disk. Disk alias name must be formed of "
                         "alphanumeric characters, numbers or \"-_.\".]" % action,
                    reason="Operation Failed")

class Model:
    def __init__(self, state_dir, delay, config, guest):
        self.lock = threading.RLock()
        self.sched = Scheduler(self.lock)
        self.delay = delay
        self.guest = guest
        self.storage_dir = os.path.join(state_dir, "storage")
        self.snap_dir = os.path.join(state_dir, "snapshots")
        for d in (self.storage_dir, self.snap_dir):
            os.makedirs(d, exist_ok=True)
        self.dcs, self.clusters, self.sds, self.networks = {}, {}, {}, {}
        self.profiles, self.templates, self.pools, self.vms = {}, {}, {}, {}
        self.disks, self.jobs = {}, {}
        self.next_ip = 0
        self.ip_prefix = "127.0.1."  # the server sets it from its port
        self.next_mac = 0
        self.next_order = 0
        self.set_engine_version((config or {}).get("engine_version", "4.5.5-1.el8"))
        with self.lock:
            self._seed(config or {})

    # ----- the engine's version ------------------------------------------
    def set_engine_version(self, full):
        """The version GET /ovirt-engine/api reports (product_info.version,
        ovirt-engine BackendApiResource.addSystemVersion) and that decides
        what PUT /disks does (disk_update)."""
        parts = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?(?:\.(\d+))?", str(full))
        if not parts:
            raise Fault(400, "engine version '%s' is not MAJOR.MINOR[.BUILD[.REVISION]]" % full)
        nums = [int(x or 0) for x in parts.groups()]
        self.engine_version = {"major": nums[0], "minor": nums[1], "build": nums[2],
                               "revision": nums[3], "full_version": str(full)}
        return self.engine_version

    @staticmethod
    def _level(text):
        """A compatibility level "4.2" as the API renders it (ClusterMapper:
        major and minor only)."""
        major, _, minor = str(text).partition(".")
        return {"major": int(major), "minor": int(minor or 0)}

    def engine_at_least(self, *v):
        e = self.engine_version
        return (e["major"], e["minor"], e["build"]) >= tuple(v) + (0,) * (3 - len(v))

    # ----- seeding -------------------------------------------------------
    def _seed(self, cfg):
        for c in cfg.get("data_centers") or [{"name": "Default"}]:
            i = c.get("id") or new_id()
            self.dcs[i] = {"id": i, "name": c["name"], "description": c.get("description", ""),
                           "status": c.get("status", "up"), "local": False,
                           "storage_format": "v5", "version": {"major": 4, "minor": 7}}
        first_dc = next(iter(self.dcs.values()))
        for c in cfg.get("clusters") or [{"name": "Default"}]:
            i = c.get("id") or new_id()
            dc = self._by_name(self.dcs, c.get("data_center"), first_dc)
            self.clusters[i] = {"id": i, "name": c["name"], "description": c.get("description", ""),
                                "data_center": dc["id"],
                                "cpu": {"architecture": "x86_64", "type": "Intel Nehalem Family"},
                                "version": self._level(c.get("version", "4.7"))}
        sds = cfg.get("storage_domains") or [{"name": "data1", "available": 10 * GIB}]
        for n, c in enumerate(sds):
            self._seed_sd(c, n == 0, first_dc)
        nets = cfg.get("networks") or [{"name": "ovirtmgmt"}]
        for c in nets:
            self._seed_network(c, first_dc)
        self.templates[BLANK_ID] = {
            "id": BLANK_ID, "name": "Blank", "description": "Blank template", "status": "ok",
            "cluster": None, "memory": GIB, "sockets": 1, "cores": 1, "threads": 1,
            "os_type": "other", "type": "desktop", "creation_time": now_ms(),
            "worker": False, "username": None, "password": None, "attachments": {}, "nics": [],
            "version_number": 1, "version_name": "base", "base_template": None}
        for c in cfg.get("templates") or []:
            self._seed_template(c)
        for c in cfg.get("vm_pools") or []:
            i = c.get("id") or new_id()
            cl = self._by_name(self.clusters, c.get("cluster"), next(iter(self.clusters.values())))
            t = self._by_name(self.templates, c.get("template"), self.templates[BLANK_ID])
            self.pools[i] = {"id": i, "name": c["name"], "description": c.get("description", ""),
                             "cluster": cl["id"], "template": t["id"],
                             "size": int(c.get("size", 0)), "type": c.get("type", "automatic"),
                             "max_user_vms": int(c.get("max_user_vms", 1))}

    def _by_name(self, coll, name, default):
        if name is None:
            return default
        for o in coll.values():
            if o["name"] == name or o["id"] == name:
                return o
        raise SystemExit("config: no object named '%s'" % name)

    def _seed_sd(self, c, master, first_dc):
        i = c.get("id") or new_id()
        dc = self._by_name(self.dcs, c.get("data_center"), first_dc)
        stype = c.get("storage_type", "nfs")
        self.sds[i] = {"id": i, "name": c["name"], "description": c.get("description", ""),
                       "type": c.get("type", "data"), "storage_type": stype,
                       "block": stype in ("iscsi", "fcp"), "data_center": dc["id"],
                       "status": c.get("status", "active"), "master": master,
                       "available": int(c.get("available", 10 * GIB)), "used": 0,
                       "committed": 0}
        os.makedirs(os.path.join(self.storage_dir, i), exist_ok=True)

    def _seed_network(self, c, first_dc):
        i = c.get("id") or new_id()
        dc = self._by_name(self.dcs, c.get("data_center"), first_dc)
        clusters = [self._by_name(self.clusters, n, None)["id"] for n in c["clusters"]] \
            if "clusters" in c else [k for k, v in self.clusters.items()
                                     if v["data_center"] == dc["id"]]
        self.networks[i] = {"id": i, "name": c["name"], "description": c.get("description", ""),
                            "data_center": dc["id"], "clusters": clusters,
                            "vlan": c.get("vlan"), "mtu": int(c.get("mtu", 0)),
                            "usages": list(c.get("usages", ["vm"]))}
        # vNIC profiles exist for VM networks only (a non-VM network has none)
        default = [c["name"]] if "vm" in self.networks[i]["usages"] else []
        for p in c.get("vnic_profiles", default):
            pid = new_id()
            self.profiles[pid] = {"id": pid, "name": p, "network": i}

    def _seed_template(self, c):
        i = c.get("id") or new_id()
        cl = self._by_name(self.clusters, c.get("cluster"), next(iter(self.clusters.values())))
        t = {"id": i, "name": c["name"], "description": c.get("description", ""),
             "status": "ok", "cluster": cl["id"], "memory": int(c.get("memory", GIB)),
             "sockets": int(c.get("cpus", 1)), "cores": 1, "threads": 1,
             "os_type": c.get("os_type", "other_linux"), "type": c.get("type", "server"),
             "creation_time": now_ms(), "worker": bool(c.get("worker", False)),
             "username": c.get("username"), "password": c.get("password"),
             "attachments": {}, "nics": [],
             # template versions share the base's name (a name search returns
             # them all); version 1 is the base
             "version_number": int(c.get("version_number", 1)),
             "version_name": c.get("version_name", "base" if int(c.get("version_number", 1)) == 1
                                   else "v%s" % c.get("version_number")),
             "base_template": None}
        if t["version_number"] > 1:
            base = next((b for b in self.templates.values()
                         if b["name"] == c["name"] and b["version_number"] == 1), None)
            if base is None:
                raise ValueError("template %s version %d: its base (version 1) must come first "
                                 "in the configuration" % (c["name"], t["version_number"]))
            t["base_template"] = base["id"]
        for n, d in enumerate(c.get("disks") or []):
            sd = self._by_name(self.sds, d.get("storage_domain"), next(iter(self.sds.values())))
            disk = self._new_disk(d.get("name", "%s_Disk%d" % (c["name"], n + 1)),
                                  int(d.get("size", 1 << 20)), d.get("format", "cow"),
                                  d.get("sparse", True), sd, 0)
            disk["status"], disk["template"] = "ok", i
            t["attachments"][disk["id"]] = self._new_attachment(disk["id"], "virtio", n == 0, True)
        for n in c.get("nics") or []:
            prof = self._by_name(self.profiles, n.get("vnic_profile"), None)
            t["nics"].append({"id": new_id(), "name": n.get("name", "nic1"),
                              "interface": n.get("interface", "virtio"),
                              "vnic_profile": prof["id"] if prof else None})
        self.templates[i] = t

    # ----- lookups -------------------------------------------------------
    COLL_NAMES = {"cluster": ("clusters", "Cluster"), "template": ("templates", "Template"),
                  "storage_domain": ("sds", "StorageDomain"), "vm_pool": ("pools", "VmPool"),
                  "vnic_profile": ("profiles", "VnicProfile"), "vm": ("vms", "VM"),
                  "disk": ("disks", "Disk"), "data_center": ("dcs", "DataCenter"),
                  "network": ("networks", "Network")}

    def ref(self, kind, r, required=None):
        """The object a body reference {"id"} or {"name"} names: 404 with the
        engine's "Entity not found" when there is none."""
        attr, label = self.COLL_NAMES[kind]
        coll = getattr(self, attr)
        if not isinstance(r, dict) or not (r.get("id") or r.get("name")):
            if required:
                raise incomplete(required, ["%s.id|name" % kind])
            return None
        if r.get("id"):
            o = coll.get(r["id"])
            if o is None:
                raise not_found_ref(label, "id", r["id"])
            return o
        for o in coll.values():
            if o["name"] == r["name"]:
                return o
        raise not_found_ref(label, "name", r["name"])

    def get(self, kind, i):
        """An object named by id in the URL: 404 with an empty body."""
        o = getattr(self, self.COLL_NAMES[kind][0]).get(i)
        if o is None:
            raise Fault(404)
        return o

    # ----- jobs ----------------------------------------------------------
    def job(self, description, correlation_id=None):
        j = {"id": new_id(), "description": description, "status": "started",
             "start_time": now_ms(), "end_time": None, "last_updated": now_ms(),
             "external": False, "auto_cleared": True, "correlation_id": correlation_id}
        self.jobs[j["id"]] = j
        return j

    def job_end(self, j, status="finished"):
        j["status"], j["end_time"] = status, now_ms()
        j["last_updated"] = j["end_time"]

    def after(self, fn, *args, factor=1.0):
        self.sched.after(self.delay * factor, fn, *args)

    # ----- storage -------------------------------------------------------
    def _sd_usable(self, sd, action, what):
        if sd["status"] != "active":
            raise conflict("Cannot %s %s. The relevant Storage Domain's status is %s."
                           % (action, what, sd["status"].capitalize()))

    def _reserve(self, sd, need, provisioned, action, what):
        if need > sd["available"]:
            raise conflict("Cannot %s %s. Low disk space on Storage Domain %s."
                           % (action, what, sd["name"]))
        sd["available"] -= need
        sd["used"] += need
        sd["committed"] += provisioned

    def _release(self, disk):
        sd = self.sds.get(disk["storage_domain"])
        if sd:
            sd["available"] += disk["reserved"]
            sd["used"] -= disk["reserved"]
            sd["committed"] -= disk["provisioned_size"] if disk["reserved"] else 0

    def _new_disk(self, name, size, fmt, sparse, sd, reserved):
        i = new_id()
        path = os.path.join(self.storage_dir, sd["id"], i)
        with open(path, "wb") as f:
            f.truncate(size)
        d = {"id": i, "name": name, "description": "", "provisioned_size": size,
             "format": fmt, "sparse": sparse, "status": "locked", "storage_domain": sd["id"],
             "reserved": reserved, "shareable": False, "wipe_after_delete": False,
             "content_type": "data", "file": path, "template": None, "vm": None,
             "initial_size": None}
        self.disks[i] = d
        return d

    def _disk_ready(self, d, job=None):
        if d["id"] in self.disks and d["status"] == "locked":
            d["status"] = "ok"
        if job:
            self.job_end(job)

    def disk_add(self, body, corr=None):
        if not isinstance(body, dict):
            raise Fault(400, "Disk body required", reason="Request syntactically incorrect.")
        missing = [f for f, k in (("provisionedSize", "provisioned_size"), ("format", "format"))
                   if body.get(k) is None]
        if missing:
            raise incomplete("Disk", missing)
        size = as_int(body["provisioned_size"], "provisioned_size", 1)
        fmt = body["format"]
        if fmt not in ("raw", "cow"):
            raise invalid("format", fmt)
        sds = wrapped(body.get("storage_domains"), "storage_domain")
        if not sds:
            raise incomplete("Disk", ["storageDomains.storageDomain.id|name"])
        sd = self.ref("storage_domain", sds[0])
        sparse = opt(body, "sparse", as_bool, "sparse", fmt == "cow")
        initial = opt(body, "initial_size", as_int, "initial_size")
        self._sd_usable(sd, "add", "Virtual Disk")
        if sd["block"] and fmt == "raw" and sparse:
            raise conflict("Cannot add Virtual Disk. Disk configuration (RAW Sparse) is "
                           "incompatible with the storage domain type.")
        name = body.get("name") or body.get("alias") or "disk-" + new_id()[:8]
        check_alias(name, "add")
        need = initial if (sparse and initial) else size
        self._reserve(sd, need, size, "add", "Virtual Disk")
        d = self._new_disk(name, size, fmt, sparse, sd, need)
        d["initial_size"] = initial
        d["description"] = body.get("description", "")
        d["shareable"] = opt(body, "shareable", as_bool, "shareable", False)
        d["wipe_after_delete"] = opt(body, "wipe_after_delete", as_bool, "wipe_after_delete",
                                     False)
        j = self.job("Adding Disk %s" % name, corr)
        self.after(self._disk_ready, d, j)
        return d

    def disk_delete(self, i):
        d = self.get("disk", i)
        if d["template"]:
            raise conflict("Cannot remove Virtual Disk. The disk is used by a template.")
        if d["status"] == "locked":
            raise conflict("Cannot remove Virtual Disk: The following disks are locked: %s. "
                           "Please try again in a few minutes." % d["name"])
        vm = self.vms.get(d["vm"]) if d["vm"] else None
        if vm:
            att = vm["attachments"][i]
            if vm["status"] != "down" and att["active"]:
                raise conflict("Cannot remove Virtual Disk. VM %s is running." % vm["name"])
            del vm["attachments"][i]
            self.guest.sync(vm)
        d["status"] = "locked"
        self.after(self._disk_gone, d, factor=0.5)

    def disk_remove_internal(self, i):
        """The engine's own RemoveDisk, as a failed or cancelled upload's
        image transfer runs it (ovirt-engine TransferDiskImageCommand
        .endWithFailure): no validation; the disk is locked, then gone."""
        d = self.disks.get(i)
        if d is None:
            return
        vm = self.vms.get(d["vm"]) if d["vm"] else None
        if vm and i in vm["attachments"]:
            del vm["attachments"][i]
            self.guest.sync(vm)
        d["status"] = "locked"
        self.after(self._disk_gone, d, factor=0.5)

    def _disk_gone(self, d):
        self.disks.pop(d["id"], None)
        self._release(d)
        for vm in self.vms.values():
            for s in vm["snapshots"].values():
                f = s["files"].pop(d["id"], None)
                if f and os.path.exists(f):
                    os.unlink(f)
        if os.path.exists(d["file"]):
            os.unlink(d["file"])

    def disk_update(self, i, body):
        """PUT /disks/{id}: ovirt-engine BackendDiskResource.update. The API
        model's DiskService.update came in 4.1 for qcow_version alone and
        covers provisioned_size, alias, description from 4.4.0 (UpdateDisk).
        4.1.0-4.3.1 amend only with qcow_version and otherwise answer the
        disk unchanged (a resize is silently dropped); 4.3.2-4.3.x refuse
        anything else with 409; before 4.1 there is no such method (405)."""
        d = self.get("disk", i)
        if not self.engine_at_least(4, 1):
            raise Fault(405)
        if not self.engine_at_least(4, 4):
            if "qcow_version" in body or not self.engine_at_least(4, 3, 2):
                return d
            raise conflict("Updating disk attributes other than QCOW version is permitted "
                           "only for disk-attachments, which reside under VMs.")
        return self._disk_change(d, body)

    def _disk_change(self, d, body):
        if d["status"] == "locked":
            raise conflict("Cannot edit Virtual Disk: The following disks are locked: %s. "
                           "Please try again in a few minutes." % d["name"])
        if body.get("name") or body.get("alias"):
            d["name"] = body.get("name") or body.get("alias")
        if "description" in body:
            d["description"] = body["description"]
        size = opt(body, "provisioned_size", as_int, "provisioned_size")
        if size is not None and size != d["provisioned_size"]:
            if size < d["provisioned_size"]:
                raise conflict("Cannot edit Virtual Disk. New disk size cannot be smaller "
                               "than the current disk size.")
            sd = self.sds[d["storage_domain"]]
            grow = 0 if d["sparse"] else size - d["provisioned_size"]
            self._reserve(sd, grow, size - d["provisioned_size"], "extend", "Virtual Disk")
            d["reserved"] += grow
            with open(d["file"], "r+b") as f:
                f.truncate(size)
            d["provisioned_size"] = size
        return d

    def disk_copy(self, i, body, corr=None):
        d = self.get("disk", i)
        if d["status"] != "ok":
            raise conflict("Cannot copy Virtual Disk: The following disks are locked: %s. "
                           "Please try again in a few minutes." % d["name"])
        sd = self.ref("storage_domain", body.get("storage_domain"), "Action")
        self._sd_usable(sd, "copy", "Virtual Disk")
        need = d["provisioned_size"] if not d["sparse"] else \
            os.stat(d["file"]).st_blocks * 512
        self._reserve(sd, need, d["provisioned_size"], "copy", "Virtual Disk")
        name = (body.get("disk") or {}).get("name") or (body.get("disk") or {}).get("alias") \
            or d["name"]
        check_alias(name, "copy")
        n = self._new_disk(name, d["provisioned_size"], d["format"], d["sparse"], sd, need)
        copy_sparse(d["file"], n["file"], d["provisioned_size"])
        d["status"] = "locked"
        j = self.job("Copying Disk %s" % d["name"], corr)

        def done():
            self._disk_ready(d)
            self._disk_ready(n, j)
        # a copy takes as long as its data: COPY_RATE bytes/s after the base delay
        self.after(done, factor=1.0 + need / COPY_RATE / max(self.delay, 0.001))
        return j, n

    # ----- VMs -----------------------------------------------------------
    def _alloc_ip(self):
        """127.<port high>.<port low>.N: unique among simulators running at
        once (their ports differ), never 127.0.0.x; wraps after 254 VMs."""
        k = self.next_ip
        self.next_ip += 1
        return "%s%d" % (self.ip_prefix, 1 + k % 254)

    def _alloc_mac(self):
        self.next_mac += 1
        k = self.next_mac
        return "56:6f:%02x:%02x:%02x:%02x" % (0x1a, (k >> 16) & 0xff, (k >> 8) & 0xff, k & 0xff)

    def _check_name(self, name, what):
        if not NAME_RE.match(name) or len(name) > 64:
            raise conflict("Cannot add %s. The given name contains special characters. Only "
                           "lower-case and upper-case letters, numbers, '_', '-', '.' are "
                           "allowed." % what)

    def _vm_config(self, target, body, action):
        """Fields a create or an update may set; validated as the engine does,
        all before any is changed."""
        vm = dict(target)
        mem = opt(body, "memory", as_int, "memory", vm["memory"])
        mp = body.get("memory_policy") or {}
        mmax = opt(mp, "max", as_int, "memory_policy.max",
                   4 * mem if action == "add" else vm["memory_max"])
        guar = opt(mp, "guaranteed", as_int, "memory_policy.guaranteed",
                   min(vm["memory_guaranteed"], mem))
        if mem > mmax:
            raise conflict("Cannot %s VM. Maximum memory size cannot be smaller than memory "
                           "size." % action)
        if guar > mem:
            raise conflict("Cannot %s VM. Physical Memory Guaranteed cannot exceed Memory Size."
                           % action)
        topo = (body.get("cpu") or {}).get("topology") or {}
        for k in ("sockets", "cores", "threads"):
            vm[k] = opt(topo, k, lambda v, f: as_int(v, f, 1), "cpu.topology." + k, vm[k])
        # the engine's limits for x86 clusters 4.2 to 4.5: MaxNumOfVmSockets 16,
        # MaxNumOfCpuPerSocket 254, MaxNumOfThreadsPerCpu 8, MaxNumOfVmCpus
        # 384, and the 8-bit APIC id bound (VmCpuCountHelper.calcMaxVCpu)
        if vm["sockets"] > MAX_SOCKETS:
            raise conflict("Cannot %s VM. Max number of sockets exceeded (%d > %d)."
                           % (action, vm["sockets"], MAX_SOCKETS))
        if vm["cores"] > MAX_CPU_PER_SOCKET or vm["threads"] > MAX_THREADS_PER_CPU:
            raise conflict("Cannot %s VM. Max number of cores per socket or threads per core "
                           "exceeded." % action)
        vcpus = vm["sockets"] * vm["cores"] * vm["threads"]
        if vcpus > max_vcpus(vm["cores"], vm["threads"]):
            raise conflict("Cannot %s VM. Max number of CPUs exceeded (%d > %d)."
                           % (action, vcpus, max_vcpus(vm["cores"], vm["threads"])))
        os_ = body.get("os") or {}
        if os_.get("type") is not None:
            if os_["type"] not in OS_TYPES:
                raise invalid("os.type", os_["type"])
            vm["os_type"] = os_["type"]
        boot = wrapped((os_.get("boot") or {}).get("devices"), "device")
        if boot:
            vm["boot"] = boot
        if body.get("type") is not None:
            if body["type"] not in VM_TYPES:
                raise invalid("type", body["type"])
            vm["type"] = body["type"]
        vm["delete_protected"] = opt(body, "delete_protected", as_bool, "delete_protected",
                                     vm["delete_protected"])
        # vm_pool: not read on input (restapi VmMapper maps a VM's pool on
        # output only; the engine adds VMs to a pool only from its template)
        for k in ("description", "comment"):
            if k in body:
                vm[k] = body[k]
        if isinstance(body.get("initialization"), dict):
            vm["initialization"] = body["initialization"]
        if isinstance(body.get("placement_policy"), dict):
            vm["placement_policy"] = body["placement_policy"]
        vm["memory"], vm["memory_max"], vm["memory_guaranteed"] = mem, mmax, guar
        target.update(vm)

    def vm_add(self, body, query, corr=None):
        if not isinstance(body, dict) or not body.get("name"):
            raise incomplete("Vm", ["name"])
        cl = self.ref("cluster", body.get("cluster"), "Vm")
        t = self.ref("template", body.get("template")) or self.templates[BLANK_ID]
        name = body["name"]
        self._check_name(name, "VM")
        if any(v["name"] == name for v in self.vms.values()):
            raise conflict("Cannot add VM. The VM name is already in use, please choose a "
                           "unique name and try again.")
        if t["cluster"] and self.clusters[t["cluster"]]["data_center"] != cl["data_center"]:
            raise conflict("Cannot add VM. Template %s is not in the Data Center of Cluster %s."
                           % (t["name"], cl["name"]))
        i = new_id()
        vm = {"id": i, "name": name, "description": "", "comment": "", "cluster": cl["id"],
              "template": t["id"], "memory": t["memory"], "memory_max": 4 * t["memory"],
              "memory_guaranteed": t["memory"], "sockets": t["sockets"], "cores": t["cores"],
              "threads": t["threads"], "os_type": t["os_type"], "boot": ["hd"],
              "type": t["type"], "delete_protected": False, "vm_pool": None,
              "initialization": None, "placement_policy": None, "status": "down",
              "creation_time": now_ms(), "start_time": None, "stop_time": None,
              "attachments": {}, "nics": {}, "snapshots": {}, "ip": self._alloc_ip(),
              "worker": t["worker"], "booted": False, "run_once_init": None}
        snaps = wrapped(body.get("snapshots"), "snapshot")
        src = self._find_snapshot(snaps[0]) if snaps else None
        if src:  # a clone of a snapshot: its VM's configuration, then the body's
            for k in ("memory", "memory_max", "memory_guaranteed", "sockets", "cores",
                      "threads", "os_type", "type", "boot"):
                vm[k] = src[0][k]
        self._vm_config(vm, body, "add")
        overrides = {}
        for a in wrapped(body.get("disk_attachments"), "disk_attachment"):
            dd = a.get("disk") or {}
            if dd.get("id"):
                overrides[dd["id"]] = dd
        clone = str(query.get("clone", "false")).lower() == "true"
        if src:
            copies = self._vm_snapshot_disks(vm, src[0], src[1], overrides)
        else:
            copies = self._vm_template_disks(vm, t, overrides, clone)
        for n in (src[0]["nics"].values() if src else t["nics"]):
            nid = new_id()
            vm["nics"][nid] = {"id": nid, "name": n["name"], "interface": n["interface"],
                               "vnic_profile": n["vnic_profile"], "mac": self._alloc_mac(),
                               "plugged": True, "linked": True}
        self.vms[i] = vm
        j = self.job("Creating VM %s" % name, corr)
        if not copies:
            self.job_end(j)
            return vm, 201
        vm["status"] = "image_locked"

        def ready():
            for d in copies:
                self._disk_ready(d)
            if vm["status"] == "image_locked":
                vm["status"] = "down"
            self.job_end(j)
        self.after(ready)
        return vm, 202

    def _vm_template_disks(self, vm, t, overrides, clone):
        """The VM's own copies of the template's disks (a thin clone costs no
        space; clone=true copies in full). All are checked before any is made."""
        plan, need_by_sd = [], {}
        for tid, ta in t["attachments"].items():
            td = self.disks[tid]
            o = overrides.get(tid, {})
            sds = wrapped(o.get("storage_domains"), "storage_domain")
            sd = self.ref("storage_domain", sds[0]) if sds else self.sds[td["storage_domain"]]
            self._sd_usable(sd, "add", "VM")
            fmt = o.get("format") or td["format"]
            if fmt not in ("raw", "cow"):
                raise invalid("disk.format", fmt)
            sparse = opt(o, "sparse", as_bool, "sparse", td["sparse"])
            need = (td["provisioned_size"] if not sparse else
                    os.stat(td["file"]).st_blocks * 512) if clone else 0
            need_by_sd[sd["id"]] = need_by_sd.get(sd["id"], 0) + need
            if need_by_sd[sd["id"]] > sd["available"]:
                raise conflict("Cannot add VM. Low disk space on Storage Domain %s."
                               % sd["name"])
            plan.append((td, ta, o, sd, fmt, sparse, need))
        copies = []
        for td, ta, o, sd, fmt, sparse, need in plan:
            self._reserve(sd, need, td["provisioned_size"], "add", "VM")
            d = self._new_disk(o.get("name") or o.get("alias") or td["name"],
                               td["provisioned_size"], fmt, sparse, sd, need)
            copy_sparse(td["file"], d["file"], td["provisioned_size"])
            d["vm"] = vm["id"]
            vm["attachments"][d["id"]] = self._new_attachment(d["id"], ta["interface"],
                                                              ta["bootable"], True)
            copies.append(d)
        return copies

    def _find_snapshot(self, r):
        sid = r.get("id") if isinstance(r, dict) else None
        for v in self.vms.values():
            if sid in v["snapshots"]:
                s = v["snapshots"][sid]
                if s["status"] != "ok":
                    raise conflict("Cannot add VM. Snapshot %s is locked." % s["description"])
                return v, s
        raise not_found_ref("Snapshot", "id", sid)

    def _vm_snapshot_disks(self, vm, src_vm, snap, overrides):
        """New disks holding the snapshot's content (a full copy, as a clone
        from a snapshot is), attached as they were to the source VM."""
        plan, need_by_sd = [], {}
        for did, f in snap["files"].items():
            sd_ = self.disks.get(did)
            if sd_ is None:
                continue
            o = overrides.get(did, {})
            sds = wrapped(o.get("storage_domains"), "storage_domain")
            sd = self.ref("storage_domain", sds[0]) if sds else self.sds[sd_["storage_domain"]]
            self._sd_usable(sd, "add", "VM")
            sparse = opt(o, "sparse", as_bool, "sparse", sd_["sparse"])
            need = os.stat(f).st_blocks * 512 if sparse else sd_["provisioned_size"]
            need_by_sd[sd["id"]] = need_by_sd.get(sd["id"], 0) + need
            if need_by_sd[sd["id"]] > sd["available"]:
                raise conflict("Cannot add VM. Low disk space on Storage Domain %s."
                               % sd["name"])
            plan.append((sd_, f, o, sd, sparse, need))
        copies = []
        for sd_, f, o, sd, sparse, need in plan:
            self._reserve(sd, need, sd_["provisioned_size"], "add", "VM")
            d = self._new_disk(o.get("name") or o.get("alias") or sd_["name"],
                               sd_["provisioned_size"], o.get("format") or sd_["format"],
                               sparse, sd, need)
            copy_sparse(f, d["file"], sd_["provisioned_size"])
            d["vm"] = vm["id"]
            a = src_vm["attachments"].get(sd_["id"]) or {"interface": "virtio",
                                                         "bootable": False}
            vm["attachments"][d["id"]] = self._new_attachment(d["id"], a["interface"],
                                                              a["bootable"], True)
            copies.append(d)
        return copies

    def vm_update(self, i, body):
        vm = self.get("vm", i)
        if vm["status"] == "image_locked":
            raise conflict("Cannot edit VM. VM is being updated.")
        rename = body.get("name") and body["name"] != vm["name"]
        if rename:
            self._check_name(body["name"], "VM")
            if any(v["name"] == body["name"] for v in self.vms.values()):
                raise conflict("Cannot edit VM. The VM name is already in use, please choose a "
                               "unique name and try again.")
        self._vm_config(vm, body, "edit")
        if rename:
            vm["name"] = body["name"]
        return vm

    def vm_delete(self, i, query):
        vm = self.get("vm", i)
        if vm["status"] not in ("down",):
            if vm["status"] == "image_locked":
                raise conflict("Cannot remove VM: VM is locked. Please try again in a few "
                               "minutes.")
            raise conflict("Cannot remove VM. VM is running.")
        if vm["delete_protected"]:
            raise conflict("Cannot remove VM. Delete protection is enabled. In order to delete,"
                           " disable Delete protection first.")
        detach_only = str(query.get("detach_only", "false")).lower() == "true"
        for did in list(vm["attachments"]):
            d = self.disks.get(did)
            if d and d["status"] == "locked":
                raise conflict("Cannot remove VM: The following disks are locked: %s. Please "
                               "try again in a few minutes." % d["name"])
        disks = [self.disks[did] for did in vm["attachments"] if did in self.disks]
        for d in disks:
            d["vm"] = None
            if not detach_only:
                d["status"] = "locked"
        vm["attachments"] = {}
        self._drop_snapshots(vm)
        self.guest.remove(vm)
        if detach_only or not disks:
            del self.vms[i]
            return
        vm["status"] = "image_locked"

        def gone():
            self.vms.pop(i, None)
            for d in disks:
                self._disk_gone(d)
        self.after(gone, factor=0.5)

    def _drop_snapshots(self, vm):
        for s in vm["snapshots"].values():
            shutil.rmtree(os.path.join(self.snap_dir, s["id"]), ignore_errors=True)
        vm["snapshots"] = {}

    # ----- VM actions ----------------------------------------------------
    def vm_action(self, i, action, body, corr=None):
        vm = self.get("vm", i)
        fn = {"start": self._vm_start, "stop": self._vm_stop, "shutdown": self._vm_shutdown,
              "reboot": self._vm_reboot}.get(action)
        if fn is None:
            raise Fault(404)
        return fn(vm, body or {}, corr)

    def _locked_disks(self, vm):
        return [self.disks[d]["name"] for d, a in vm["attachments"].items()
                if a["active"] and self.disks[d]["status"] == "locked"]

    def _vm_start(self, vm, body, corr):
        if vm["status"] == "image_locked":
            raise conflict("Cannot run VM: VM is locked. Please try again in a few minutes.")
        if vm["status"] != "down":
            raise conflict("Cannot run VM. VM is running.")
        locked = self._locked_disks(vm)
        if locked:
            raise conflict("Cannot run VM: The following disks are locked: %s. Please try "
                           "again in a few minutes." % ", ".join(locked))
        run_vm = body.get("vm") if isinstance(body.get("vm"), dict) else {}
        once = run_vm.get("initialization") if isinstance(run_vm.get("initialization"),
                                                          dict) else None
        use_ci = opt(body, "use_cloud_init", as_bool, "use_cloud_init", False) or \
            opt(body, "use_initialization", as_bool, "use_initialization", False)
        # The engine builds a cloud-init payload when asked to (use_cloud_init:
        # run-once data, else the VM's own), or on the first run of a VM that
        # has initialization data; run-once data alone is not enough.
        if use_ci:
            init = once or vm["initialization"]
        else:
            init = vm["initialization"] if not vm["booted"] else None
        vm["run_once_init"] = init
        vm["ignored_init"] = bool(once and not use_ci)
        vm["status"] = "wait_for_launch"
        j = self.job("Launching VM %s" % vm["name"], corr)
        self.after(self._vm_boot, vm, j, factor=0.5)
        return j

    def fail_boot(self, path, detail):
        """/sim/fail boot_fails: the VM whose start was just accepted falls back
        to down instead of powering up, as when the host chosen cannot run it
        (the engine's RunVmCommand answered; VDSM's create then fails and the
        VM is reported down with an error, an event tells why)."""
        m = re.search(r"/vms/([^/]+)/start$", path)
        with self.lock:
            vm = self.vms.get(m.group(1)) if m else None
            if vm and vm["status"] == "wait_for_launch":
                vm["boot_fails"] = detail

    def _vm_boot(self, vm, j):
        if vm["status"] != "wait_for_launch":
            return
        if vm.pop("boot_fails", None) is not None:
            vm["status"] = "down"
            vm["stop_time"] = now_ms()
            self.job_end(j, "failed")
            return
        vm["status"] = "powering_up"
        vm["booted"] = True
        vm["start_time"] = now_ms()
        self.guest.start(vm, vm["run_once_init"])
        self.job_end(j)
        self.after(self._vm_up, vm, factor=0.5)

    def _vm_up(self, vm):
        if vm["status"] == "powering_up":
            vm["status"] = "up"

    def _vm_stop(self, vm, body, corr):
        if vm["status"] in ("down", "image_locked"):
            raise conflict("Cannot stop VM. VM is not running.")
        j = self.job("Stopping VM %s" % vm["name"], corr)
        self._vm_down(vm)
        self.job_end(j)
        return j

    def _vm_down(self, vm):
        self.guest.stop(vm)
        if vm["id"] in self.vms:
            vm["status"] = "down"
            vm["stop_time"] = now_ms()

    def _vm_shutdown(self, vm, body, corr):
        if vm["status"] in ("down", "image_locked"):
            raise conflict("Cannot shutdown VM. VM is not running.")
        vm["status"] = "powering_down"
        j = self.job("Shutting down VM %s" % vm["name"], corr)

        def off():
            if vm["status"] == "powering_down":
                self._vm_down(vm)
            self.job_end(j)
        self.after(off)
        return j

    def _vm_reboot(self, vm, body, corr):
        if vm["status"] != "up":
            raise conflict("Cannot reboot VM. VM is not running.")
        self.guest.stop(vm)
        vm["status"] = "reboot_in_progress"
        j = self.job("Rebooting VM %s" % vm["name"], corr)
        vm["status"] = "wait_for_launch"
        self.after(self._vm_boot, vm, j, factor=0.5)
        return j

    def running(self, vm):
        return vm["status"] in ("powering_up", "up", "powering_down", "reboot_in_progress")

    # ----- disk attachments ----------------------------------------------
    def _new_attachment(self, did, iface, bootable, active):
        self.next_order += 1
        return {"id": did, "interface": iface, "bootable": bootable, "active": active,
                "pass_discard": False, "read_only": False, "order": self.next_order}

    def attachment_add(self, vid, body, corr=None):
        vm = self.get("vm", vid)
        if not isinstance(body, dict):
            raise Fault(400, "DiskAttachment body required",
                        reason="Request syntactically incorrect.")
        if vm["status"] == "image_locked":
            raise conflict("Cannot attach Virtual Disk. VM %s is locked. Please try again in a "
                           "few minutes." % vm["name"])
        iface = body.get("interface")
        if iface is None:
            raise incomplete("DiskAttachment", ["interface"])
        if iface not in DISK_IFACES:
            raise invalid("interface", iface)
        dbody = body.get("disk") or {}
        bootable = opt(body, "bootable", as_bool, "bootable", False)
        active = opt(body, "active", as_bool, "active", True)
        status = 201
        if not dbody.get("id") and dbody.get("provisioned_size") is not None:
            self._check_boot(vm, None, bootable)
            d = self.disk_add(dbody, corr)
            status = 202
        else:
            d = self.ref("disk", dbody, "DiskAttachment")
        if d["template"]:
            raise conflict("Cannot attach Virtual Disk. The disk %s belongs to a template."
                           % d["name"])
        if d["id"] in vm["attachments"]:
            raise conflict("Cannot attach Virtual Disk. The disk is already attached to VM %s."
                           % vm["name"])
        if d["vm"] and not d["shareable"]:
            raise conflict("Cannot attach Virtual Disk. The disk %s is not shareable and is "
                           "already attached to VM %s." % (d["name"], self.vms[d["vm"]]["name"]))
        if status == 201 and d["status"] == "locked":
            raise conflict("Cannot attach Virtual Disk: The following disks are locked: %s. "
                           "Please try again in a few minutes." % d["name"])
        self._check_boot(vm, d["id"], bootable)
        att = self._new_attachment(d["id"], iface, bootable, active)
        att["pass_discard"] = opt(body, "pass_discard", as_bool, "pass_discard", False)
        att["read_only"] = opt(body, "read_only", as_bool, "read_only", False)
        vm["attachments"][d["id"]] = att
        d["vm"] = vm["id"]
        self.guest.sync(vm)
        return vm, att, status

    def _check_boot(self, vm, did, bootable):
        if not bootable:
            return
        for other, a in vm["attachments"].items():
            if other != did and a["bootable"]:
                raise conflict("Cannot attach Virtual Disk. The VM already has a boot disk: %s."
                               % self.disks[other]["name"])

    def attachment_get(self, vid, did):
        vm = self.get("vm", vid)
        if did not in vm["attachments"]:
            raise Fault(404)
        return vm, vm["attachments"][did]

    def attachment_update(self, vid, did, body):
        vm, att = self.attachment_get(vid, did)
        if vm["status"] == "image_locked":
            raise conflict("Cannot edit Virtual Disk. VM %s is locked." % vm["name"])
        new = dict(att)
        iface = body.get("interface")
        if iface is not None and iface != att["interface"]:
            if iface not in DISK_IFACES:
                raise invalid("interface", iface)
            if self.running(vm) and att["active"]:
                raise conflict("Cannot edit Virtual Disk. The disk interface cannot be changed "
                               "while the disk is plugged into a running VM.")
            new["interface"] = iface
        for k in ("bootable", "active", "pass_discard", "read_only"):
            if body.get(k) is not None:
                new[k] = as_bool(body[k], k)
        if new["bootable"]:
            self._check_boot(vm, did, True)
        # the disk inside: BackendDiskAttachmentResource.update runs
        # UpdateVmDisk, DiskMapper takes provisioned_size (every version
        # with disk attachments: the way to extend a disk before 4.4)
        inner = body.get("disk") if isinstance(body.get("disk"), dict) else {}
        if "provisioned_size" in inner:
            self._disk_change(self.disks[did], {"provisioned_size": inner["provisioned_size"]})
        att.update(new)
        self.guest.sync(vm)
        return vm, att

    def attachment_delete(self, vid, did, query):
        vm, att = self.attachment_get(vid, did)
        if vm["status"] == "image_locked":
            raise conflict("Cannot detach Virtual Disk. VM %s is locked." % vm["name"])
        if self.running(vm) and att["active"]:
            raise conflict("Cannot detach Virtual Disk. The disk is plugged into running VM %s;"
                           " deactivate it first." % vm["name"])
        d = self.disks[did]
        del vm["attachments"][did]
        d["vm"] = None
        self.guest.sync(vm)
        if str(query.get("detach_only", "true")).lower() == "false":
            self.disk_delete(did)

    # ----- NICs ----------------------------------------------------------
    def nic_add(self, vid, body):
        vm = self.get("vm", vid)
        if not isinstance(body, dict) or not body.get("name"):
            raise incomplete("Nic", ["name"])
        if any(n["name"] == body["name"] for n in vm["nics"].values()):
            raise conflict("Cannot add Interface. The VM Network Interface name is already in "
                           "use, please choose a unique name and try again.")
        iface = body.get("interface", "virtio")
        if iface not in NIC_IFACES:
            raise invalid("interface", iface)
        prof = self._nic_profile(vm, body)
        mac = (body.get("mac") or {}).get("address") or self._alloc_mac()
        # one MAC pool, duplicates not allowed (the default MAC pool's
        # allow_duplicates is false: VmNicValidator / MacPool)
        if any(x["mac"].lower() == mac.lower() for v in self.vms.values()
               for x in v["nics"].values()):
            raise conflict("Cannot add Interface. The MAC address is already in use.")
        n = {"id": new_id(), "name": body["name"], "interface": iface,
             "vnic_profile": prof["id"] if prof else None, "mac": mac,
             "plugged": opt(body, "plugged", as_bool, "plugged", True),
             "linked": opt(body, "linked", as_bool, "linked", True)}
        vm["nics"][n["id"]] = n
        return vm, n

    def _nic_profile(self, vm, body):
        prof = self.ref("vnic_profile", body.get("vnic_profile"))
        if prof:
            net = self.networks[prof["network"]]
            if vm["cluster"] not in net["clusters"]:
                raise conflict("Cannot add Interface. Network %s is not attached to Cluster %s."
                               % (net["name"], self.clusters[vm["cluster"]]["name"]))
        return prof

    def nic_get(self, vid, nid):
        vm = self.get("vm", vid)
        if nid not in vm["nics"]:
            raise Fault(404)
        return vm, vm["nics"][nid]

    def nic_update(self, vid, nid, body):
        vm, n = self.nic_get(vid, nid)
        if "vnic_profile" in body:
            p = self._nic_profile(vm, body)
            n["vnic_profile"] = p["id"] if p else None
        for k in ("plugged", "linked"):
            if body.get(k) is not None:
                n[k] = as_bool(body[k], k)
        if body.get("name"):
            n["name"] = body["name"]
        return vm, n

    def nic_delete(self, vid, nid):
        vm, n = self.nic_get(vid, nid)
        if self.running(vm) and n["plugged"]:
            raise conflict("Cannot remove Interface. The interface is plugged into running VM "
                           "%s; unplug it first." % vm["name"])
        del vm["nics"][nid]

    def reported_devices(self, vm, nic=None):
        """What the guest agent reports: only while the VM runs and its agent
        is up (for a worker, before its writer listens: sim_guest.py)."""
        if vm["status"] != "up" or not self.guest.ready(vm):
            return []
        out = []
        nics = sorted(vm["nics"].values(), key=lambda n: n["name"])
        for k, n in enumerate(nics):
            if nic and n["id"] != nic["id"]:
                continue
            ips = [{"address": "fe80::546f:%x" % (k + 1), "version": "v6"}]
            if k == 0 and n["vnic_profile"] and n["plugged"] and n["linked"]:
                ips.insert(0, {"address": vm["ip"], "version": "v4"})
            out.append({"id": new_id_for(vm["id"], n["id"]), "name": "eth%d" % k,
                        "description": "guest reported data", "type": "network",
                        "mac": {"address": n["mac"]}, "ips": {"ip": ips}})
        return out

    # ----- snapshots -----------------------------------------------------
    def snapshot_add(self, vid, body, corr=None):
        vm = self.get("vm", vid)
        if not isinstance(body, dict) or not body.get("description"):
            raise incomplete("Snapshot", ["description"])
        if vm["status"] == "image_locked":
            raise conflict("Cannot create Snapshot. VM %s is locked." % vm["name"])
        sel = [a.get("disk", {}).get("id") for a in
               wrapped(body.get("disk_attachments"), "disk_attachment")]
        dids = [d for d in vm["attachments"] if not sel or d in sel]
        for d in sel:
            if d not in vm["attachments"]:
                raise conflict("Cannot create Snapshot. Disk %s is not attached to VM %s."
                               % (d, vm["name"]))
        locked = [self.disks[d]["name"] for d in dids if self.disks[d]["status"] == "locked"]
        if locked:
            raise conflict("Cannot create Snapshot: The following disks are locked: %s. Please"
                           " try again in a few minutes." % ", ".join(locked))
        s = {"id": new_id(), "description": body["description"], "status": "locked",
             "type": "regular", "date": now_ms(),
             "persist_memorystate": opt(body, "persist_memorystate", as_bool,
                                        "persist_memorystate", True) and self.running(vm),
             "files": {}}
        os.makedirs(os.path.join(self.snap_dir, s["id"]))
        for did in dids:
            f = os.path.join(self.snap_dir, s["id"], did)
            copy_sparse(self.disks[did]["file"], f)
            s["files"][did] = f
            self.disks[did]["status"] = "locked"
        vm["snapshots"][s["id"]] = s
        j = self.job("Creating VM Snapshot %s for VM %s" % (s["description"], vm["name"]), corr)

        def done():
            s["status"] = "ok"
            for did in dids:
                if did in self.disks:
                    self._disk_ready(self.disks[did])
            self.job_end(j)
        self.after(done)
        return vm, s

    def snapshot_get(self, vid, sid):
        vm = self.get("vm", vid)
        if sid not in vm["snapshots"]:
            raise Fault(404)
        return vm, vm["snapshots"][sid]

    def snapshot_restore(self, vid, sid, body, corr=None):
        vm, s = self.snapshot_get(vid, sid)
        if vm["status"] != "down":
            raise conflict("Cannot revert to Snapshot. VM must be down in order to revert to a "
                           "snapshot; VM %s is %s." % (vm["name"], vm["status"]))
        if s["status"] != "ok":
            raise conflict("Cannot revert to Snapshot. Snapshot is locked.")
        for did, f in s["files"].items():
            d = self.disks.get(did)
            if d is not None:
                copy_sparse(f, d["file"], d["provisioned_size"])
                d["status"] = "locked"
        # Committing a snapshot drops the ones taken after it.
        ids = list(vm["snapshots"])
        for later in ids[ids.index(sid) + 1:]:
            shutil.rmtree(os.path.join(self.snap_dir, later), ignore_errors=True)
            del vm["snapshots"][later]
        vm["status"] = "image_locked"
        j = self.job("Restoring VM Snapshot %s of VM %s" % (s["description"], vm["name"]), corr)

        def done():
            for did in s["files"]:
                if did in self.disks:
                    self._disk_ready(self.disks[did])
            if vm["status"] == "image_locked":
                vm["status"] = "down"
            self.job_end(j)
        self.after(done)
        return j

    def snapshot_delete(self, vid, sid, corr=None):
        vm, s = self.snapshot_get(vid, sid)
        if s["status"] != "ok":
            raise conflict("Cannot remove Snapshot. Snapshot is currently being created, "
                           "restored or removed.")
        s["status"] = "locked"
        j = self.job("Removing Snapshot %s of VM %s" % (s["description"], vm["name"]), corr)

        def merged():
            vm["snapshots"].pop(sid, None)
            shutil.rmtree(os.path.join(self.snap_dir, sid), ignore_errors=True)
            self.job_end(j)
        self.after(merged)


def new_id_for(a, b):
    """A stable id derived from two ids (reported devices have no life of their own)."""
    return str(uuid.uuid5(uuid.UUID(a), b))
