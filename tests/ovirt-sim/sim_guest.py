# sim_guest.py - what runs inside a simulated VM. A VM made from a worker
# template acts as a cloud-init guest: on boot it gets the user-data the
# engine builds from vm.initialization (its own YAML keys, then
# custom_script, under one "#cloud-config": sim_cloudinit.py, after
# ovirt-engine CloudInitHandler), loads it with a YAML loader as cloud-init
# does (text it would ignore starts nothing), writes write_files into the
# VM's sandbox, and runs the ekman-writer that a per-boot script or runcmd
# starts as a local process bound to the VM's own loopback address, with paths mapped into the sandbox and its
# attached disks visible as <sandbox>/by-id/<udev name> symlinks to their
# files, the way a real guest sees /dev/disk/by-id. Other VMs only change
# state.
import base64
import os
import shlex
import shutil
import signal
import subprocess
import time

import sim_cloudinit
from sim_core import log

SERIAL_MAX = 20  # virtio-blk serial limit


def by_id_name(iface, disk_id):
    """The /dev/disk/by-id name udev gives a disk whose serial is its oVirt id
    (oVirt passes the disk id as the serial; each bus truncates it)."""
    if iface == "virtio":
        return "virtio-" + disk_id[:SERIAL_MAX]
    if iface == "virtio_scsi":
        return "scsi-0QEMU_QEMU_HARDDISK_" + disk_id
    return "ata-QEMU_HARDDISK_" + disk_id[:SERIAL_MAX]


class Guests:
    def __init__(self, vms_dir, storage_dir, writer, final_stage=9.0):
        self.vms_dir = vms_dir
        # seconds from boot to cloud-init's final stage (per-boot scripts):
        # the guest agent reports the address long before (a real guest's
        # qemu-guest-agent starts with the system, cloud-final.service last)
        self.final_stage = final_stage
        self.boots = {}     # vm id -> boot count (a pending final stage of an earlier boot is void)
        self.storage_dir = storage_dir
        self.writer = writer
        self.model = None  # set by the model's owner
        self.procs = {}     # vm id -> Popen of its writer
        self.ports = {}     # vm id -> port the writer listens on
        self.by_id_flag = self._writer_has("--by-id-dir")
        self.setpriv = shutil.which("setpriv")
        os.makedirs(vms_dir, exist_ok=True)

    def _writer_has(self, flag):
        if not self.writer:
            return False
        try:
            out = subprocess.run([self.writer, "--help"], capture_output=True, text=True,
                                 timeout=10)
            return flag in out.stdout + out.stderr
        except OSError as e:
            log("cannot run the writer %s: %s" % (self.writer, e))
            return False

    def sandbox(self, vm):
        return os.path.join(self.vms_dir, vm["id"])

    def _console(self, vm, msg):
        """The guest's cloud-init log (what a console would show)."""
        with open(os.path.join(self.sandbox(vm), "cloud-init.log"), "a") as f:
            f.write(time.strftime("%H:%M:%S ") + msg + "\n")

    # ----- boot ----------------------------------------------------------
    def start(self, vm, init):
        if not vm["worker"]:
            return
        sb = self.sandbox(vm)
        os.makedirs(os.path.join(sb, "by-id"), exist_ok=True)
        self.sync(vm)
        script = (init or {}).get("custom_script") if isinstance(init, dict) else None
        if not script:
            self._console(vm, "cloud-init: no user-data (initialization.custom_script); "
                              "nothing to do" + (" (the start action's vm.initialization was"
                                                 " ignored: use_cloud_init was not true)"
                                                 if vm.get("ignored_init") else ""))
            return
        try:
            doc = sim_cloudinit.load(sim_cloudinit.engine_user_data(init))
            written = self._write_files(vm, doc.get("write_files") or [])
            self._runcmd(vm, doc.get("runcmd") or [], written)
            argv = sim_cloudinit.writer_argv(doc)  # scripts_per_boot, final stage
            if argv:
                boot = self.boots.get(vm["id"], 0)
                self.model.sched.after(self.final_stage, self._final_stage, vm, boot, argv,
                                       written)
        except ValueError as e:
            self._console(vm, "cloud-init: %s" % e)

    def _write_files(self, vm, files):
        written = {}
        for f in files:
            path = f.get("path", "")
            if not path.startswith("/") or ".." in path.split("/"):
                raise ValueError("write_files: bad path '%s'" % path)
            enc = f.get("encoding", "text")
            data = f.get("content", "")
            if enc in ("b64", "base64"):
                data = base64.b64decode(data)
            elif enc == "text":
                data = data.encode()
            else:
                raise ValueError("write_files %s: encoding '%s' is not emulated" % (path, enc))
            host = os.path.join(self.sandbox(vm), path.lstrip("/"))
            os.makedirs(os.path.dirname(host), exist_ok=True)
            with open(host, "wb") as out:
                out.write(data)
            os.chmod(host, int(str(f.get("permissions", "0644")), 8))
            written[path] = host
            self._console(vm, "write_files: %s (%d bytes)" % (path, len(data)))
        return written

    def _runcmd(self, vm, cmds, written):
        for c in cmds:
            argv = c if isinstance(c, list) else shlex.split(str(c))
            if argv and os.path.basename(str(argv[0])) == "ekman-writer":
                self._start_writer(vm, [str(a) for a in argv], written)
            else:
                self._console(vm, "runcmd: %s: not emulated, skipped" % argv)

    def _final_stage(self, vm, boot, argv, written):
        # a timer callback: the scheduler holds the model lock
        if self.boots.get(vm["id"], 0) != boot or not self.model.running(vm):
            return  # stopped or rebooted meanwhile
        self._start_writer(vm, argv, written)

    def _writer_argv(self, vm, argv, written):
        out, port, i = [self.writer], 5566, 1
        while i < len(argv):
            a = argv[i]
            val = argv[i + 1] if i + 1 < len(argv) else None
            if a == "--listen" and val:
                port = int(val.rsplit(":", 1)[1])
                out += ["--listen", "%s:%d" % (vm["ip"], port)]
                i += 2
                continue
            if a == "--allow-path" and val:
                i += 2
                continue
            out.append(written.get(a, a))
            i += 1
        out += ["--allow-path", self.storage_dir]
        if self.by_id_flag:
            out += ["--by-id-dir", os.path.join(self.sandbox(vm), "by-id")]
        return out, port

    def _start_writer(self, vm, argv, written):
        if not self.writer:
            self._console(vm, "runcmd: ekman-writer: not installed (start the simulator "
                              "with --writer)")
            return
        if vm["id"] in self.procs:
            self._console(vm, "runcmd: ekman-writer already runs; skipped")
            return
        cmd, port = self._writer_argv(vm, argv, written)
        if self.setpriv:  # the writer dies with the simulator
            cmd = [self.setpriv, "--pdeathsig", "TERM", "--"] + cmd
        logf = open(os.path.join(self.sandbox(vm), "writer.log"), "ab")
        try:
            p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                 start_new_session=True)
        except OSError as e:
            self._console(vm, "runcmd: ekman-writer: %s" % e)
            return
        finally:
            logf.close()
        self.procs[vm["id"]] = p
        self.ports[vm["id"]] = port
        self._console(vm, "runcmd: started %s (pid %d)" % (" ".join(cmd), p.pid))
        log("VM %s: ekman-writer pid %d on %s:%d" % (vm["name"], p.pid, vm["ip"], port))

    # ----- devices -------------------------------------------------------
    def sync(self, vm):
        """Makes <sandbox>/by-id match the VM's active attachments (hot plug)."""
        d = os.path.join(self.sandbox(vm), "by-id")
        if not os.path.isdir(d):
            return
        want = {}
        if self.model.running(vm) or vm["status"] == "wait_for_launch":
            for did, a in vm["attachments"].items():
                disk = self.model.disks.get(did)
                if a["active"] and disk:
                    want[by_id_name(a["interface"], did)] = disk["file"]
        for name in os.listdir(d):
            p = os.path.join(d, name)
            if want.get(name) != (os.readlink(p) if os.path.islink(p) else None):
                os.unlink(p)
        for name, target in want.items():
            p = os.path.join(d, name)
            if not os.path.lexists(p):
                os.symlink(target, p)

    def ready(self, vm):
        """Whether the guest agent reports (addresses in reporteddevices): as
        soon as the VM is up, before cloud-init's final stage starts the
        writer (final_stage seconds after boot), as on a real engine."""
        return True

    # ----- power off -----------------------------------------------------
    def stop(self, vm):
        self.boots[vm["id"]] = self.boots.get(vm["id"], 0) + 1
        p = self.procs.pop(vm["id"], None)
        if p is not None:
            stop_process(p)
            self._console(vm, "power off: ekman-writer (pid %d) stopped" % p.pid)
        d = os.path.join(self.sandbox(vm), "by-id")
        for name in os.listdir(d) if os.path.isdir(d) else []:
            os.unlink(os.path.join(d, name))

    def remove(self, vm):
        self.stop(vm)
        shutil.rmtree(os.path.join(self.sandbox(vm), "etc"), ignore_errors=True)

    def stop_all(self):
        for vid in list(self.procs):
            stop_process(self.procs.pop(vid))

    def info(self, vm):
        p = self.procs.get(vm["id"])
        sb = self.sandbox(vm)
        byid = os.path.join(sb, "by-id")
        return {"sandbox": sb if os.path.isdir(sb) else None,
                "writer_pid": p.pid if p else None,
                "writer_running": bool(p and p.poll() is None),
                "writer_exit": p.poll() if p else None,
                "writer_port": self.ports.get(vm["id"]) if p else None,
                "by_id": {n: os.readlink(os.path.join(byid, n))
                          for n in sorted(os.listdir(byid))} if os.path.isdir(byid) else {}}


def stop_process(p):
    """SIGTERM, then SIGKILL after 5 s; reaps it."""
    if p.poll() is not None:
        return
    try:
        p.send_signal(signal.SIGTERM)
        p.wait(5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    except OSError:
        pass
