# lib_guest.sh - a tiny TCG guest for the libvirt tests (sourced): a Debian
# kernel and a busybox initramfs whose init loads the virtio disk modules and
# then runs every line that arrives on the serial console as a shell command
# (environment.md §10). The host talks to it through a Unix socket console:
#   guest_build CACHE_DIR            -> GUEST_KERNEL, GUEST_INITRD
#   guest_cmd DIR TAG 'COMMAND'      runs COMMAND in the guest, waits for it
# Needs: apt-get (download only), dpkg-deb, cpio, gzip, busybox (static), socat.
# no_timer_check: under TCG on a loaded machine the kernel may otherwise find
# the IO-APIC timer "not working" and panic.

guest_build() { # guest_build CACHE_DIR
    local cache=$1 pkg deb k m
    mkdir -p "$cache"
    GUEST_KERNEL=$cache/vmlinuz GUEST_INITRD=$cache/initrd.gz
    [[ -s $GUEST_KERNEL && -s $GUEST_INITRD ]] && return 0
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    [[ -n $pkg ]] || { echo "lib_guest: no linux-image package known to apt" >&2; return 1; }
    deb=$(ls "$cache"/"$pkg"_*.deb 2>/dev/null | head -1)
    if [[ -z $deb ]]; then
        (cd "$cache" && apt-get download -q "$pkg" >/dev/null 2>&1) ||
            { echo "lib_guest: apt-get download $pkg failed" >&2; return 1; }
        deb=$(ls "$cache"/"$pkg"_*.deb | head -1)
    fi
    rm -rf "$cache/k" "$cache/root"
    dpkg-deb -x "$deb" "$cache/k"
    cp "$cache"/k/boot/vmlinuz-* "$GUEST_KERNEL"
    mkdir -p "$cache/root/bin" "$cache/root/mod" "$cache/root/proc" "$cache/root/sys" "$cache/root/dev"
    cp "$(command -v busybox)" "$cache/root/bin/busybox"
    for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk; do
        k=$(find "$cache/k/lib/modules" -name "$m.ko*" | head -1)
        [[ -n $k ]] || { echo "lib_guest: module $m not found" >&2; return 1; }
        cp "$k" "$cache/root/mod/"
    done
    cat > "$cache/root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk; do
    f=$(ls /mod/$m.ko* 2>/dev/null | head -1); [ -n "$f" ] && insmod "$f"
done
sleep 1
echo GUEST-READY >/dev/ttyS0
stty -echo </dev/ttyS0
while read -r l; do eval "$l"; done </dev/ttyS0 >/dev/ttyS0 2>&1
INIT
    chmod 755 "$cache/root/init"
    (cd "$cache/root" && find . | cpio -o -H newc 2>/dev/null | gzip -1 >"$GUEST_INITRD")
    rm -rf "$cache/k" "$cache/root"
}

# guest_xml NAME KERNEL INITRD CONSOLE_DIR DISK1 FMT1 DISK2 FMT2
guest_xml() {
    cat <<XML
<domain type='qemu'>
  <name>$1</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><kernel>$2</kernel><initrd>$3</initrd>
    <cmdline>console=ttyS0 quiet panic=-1 no_timer_check</cmdline></os>
  <features><acpi/></features>
  <on_reboot>destroy</on_reboot>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='$6'/><source file='$5'/><target dev='vda' bus='virtio'/><boot order='1'/></disk>
    <disk type='file' device='disk'><driver name='qemu' type='$8'/><source file='$7'/><target dev='vdb' bus='virtio'/></disk>
    <interface type='user'><mac address='52:54:00:6c:76:01'/><model type='virtio'/></interface>
    <serial type='unix'><source mode='bind' path='$4/con.sock'/><log file='$4/con.log' append='off'/><target port='0'/></serial>
    <console type='unix'><source mode='bind' path='$4/con.sock'/><target type='serial' port='0'/></console>
  </devices>
</domain>
XML
}

guest_wait_ready() { # guest_wait_ready CONSOLE_DIR
    local i
    for i in $(seq 600); do
        grep -q GUEST-READY "$1/con.log" 2>/dev/null && return 0
        sleep 0.2
    done
    return 1
}

guest_cmd() { # guest_cmd CONSOLE_DIR TAG 'COMMAND'
    local i
    printf '%s; echo DONE-%s\n' "$3" "$2" | socat -t1 - "UNIX-CONNECT:$1/con.sock" >/dev/null
    for i in $(seq 600); do
        grep -q "^DONE-$2" "$1/con.log" && return 0
        sleep 0.1
    done
    return 1
}
