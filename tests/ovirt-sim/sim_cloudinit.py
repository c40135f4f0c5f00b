#!/usr/bin/env python3
# sim_cloudinit.py - cloud-init user-data as oVirt's engine writes it and as
# cloud-init reads it, for the simulator's guests and the unit tests.
#
# Engine side (ovirt-engine, vdsbroker CloudInitHandler.java, getUserData and
# storeExecutionParameters): the engine dumps its own user-data map as block
# YAML (SnakeYAML, FlowStyle.BLOCK) - disable_root: 0, output.all, a runcmd
# that rewrites datasource_list, chpasswd.expire false, ssh_pwauth true, and,
# when given, ssh_deletekeys (regenerate_ssh_keys), timezone, password
# (root_password) and user (user_name) - then appends
# vm.initialization.custom_script verbatim, and puts "#cloud-config\n" in
# front of the whole text. Nothing escapes or merges custom_script: it has to
# continue the engine's block mapping.
#
# Guest side (cloud-init): user-data whose first line is "#cloud-config" is
# loaded with yaml.safe_load (a later duplicate key replaces an earlier one);
# write_files runs in the init stage; scripts in
# /var/lib/cloud/scripts/per-boot/ run in the final stage (scripts_per_boot).
#
# Usage: sim_cloudinit.py nocloud|ovirt FILE
#   nocloud: FILE is a whole user-data document; ovirt: FILE is a
#   custom_script, wrapped first as the engine does. Prints the loaded
#   document as JSON plus "writer_argv", the ekman-writer command line the
#   per-boot scripts start (null if none); exits 1 with the loader's message
#   when the text is not a cloud-config cloud-init would read.
import json
import shlex
import sys

import yaml

PER_BOOT = "/var/lib/cloud/scripts/per-boot/"


def engine_user_data(init):
    """The user-data text the engine builds from vm.initialization."""
    user = {
        "disable_root": 0,
        "output": {"all": ">> /var/log/cloud-init-output.log"},
        "runcmd": ["sed -i '/^datasource_list: /d' /etc/cloud/cloud.cfg; echo "
                   "'datasource_list: [\"NoCloud\", \"ConfigDrive\"]' >> /etc/cloud/cloud.cfg"],
        "chpasswd": {"expire": False},
        "ssh_pwauth": True,
    }
    if init.get("regenerate_ssh_keys") is not None:
        user["ssh_deletekeys"] = str(init["regenerate_ssh_keys"]).lower()
    if init.get("timezone"):
        user["timezone"] = init["timezone"]
    if init.get("root_password"):
        user["password"] = init["root_password"]
    if init.get("user_name"):
        user["user"] = init["user_name"]
    text = yaml.safe_dump(user, default_flow_style=False)
    if init.get("custom_script") is not None:
        text += init["custom_script"]
    return "#cloud-config\n" + text if text.strip() else text


def load(text):
    """The document cloud-init would act on; ValueError when it would not."""
    first = text.split("\n", 1)[0]
    if not first.startswith("#cloud-config"):
        raise ValueError("user-data does not start with '#cloud-config'; cloud-init "
                         "would not read it as cloud-config")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError("user-data is not valid YAML, cloud-init ignores it: %s"
                         % str(e).replace("\n", " "))
    if not isinstance(doc, dict):
        raise ValueError("user-data is not a YAML mapping")
    return doc


def writer_argv(doc):
    """The ekman-writer command line of the per-boot scripts, or None."""
    for f in doc.get("write_files") or []:
        if not str(f.get("path", "")).startswith(PER_BOOT):
            continue
        if f.get("encoding", "text") not in ("text", None):
            raise ValueError("write_files %s: encoding %s is not emulated"
                             % (f["path"], f["encoding"]))
        for line in str(f.get("content", "")).splitlines():
            words = shlex.split(line, comments=True)
            if words and words[0] == "setsid":
                words = words[1:]
            if words and words[0].rsplit("/", 1)[-1] == "ekman-writer":
                return [w for w in words
                        if w != "&" and not w.startswith((">", "<", "2>"))]
    return None


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("nocloud", "ovirt"):
        print("usage: sim_cloudinit.py nocloud|ovirt FILE", file=sys.stderr)
        return 2
    with open(sys.argv[2]) as f:
        text = f.read()
    if sys.argv[1] == "ovirt":
        text = engine_user_data({"custom_script": text, "user_name": "root"})
    try:
        doc = load(text)
        doc["writer_argv"] = writer_argv(doc)
    except ValueError as e:
        print("cloud-init: %s" % e, file=sys.stderr)
        return 1
    json.dump(doc, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
