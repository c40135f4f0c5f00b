#!/usr/bin/env bash
# build.sh - builds Ekman's worker image (the disk-copy / OS-morphing minion
# of the libvirt provider) from Debian packages: a qcow2 disk with an MBR,
# syslinux on a FAT partition, a Debian 6.1 kernel and an initramfs holding
# busybox, the needed kernel modules, sshd, qemu-ga and ekman-writer. The
# guest runs from RAM; rootfs/init is its PID 1. docs/worker-image.md has the
# contract with the provider.
#
# Usage: deploy/worker-image/build.sh [--output FILE.qcow2] [--build-dir DIR]
#          [--writer PATH] [--morph PATH] [--work-dir DIR] [--kernel-package PKG] [--force]
#   --build-dir   Ekman's CMake build directory (default: <checkout>/build);
#                 ekman-writer is built there when it is missing
#   --writer      the ekman-writer binary (default: BUILD_DIR/worker/ekman-writer)
#   --morph       the ekman-morph binary, the OS-morphing engine
#                 (default: BUILD_DIR/worker/morph/ekman-morph)
#   --output      default: BUILD_DIR/worker-image/ekman-worker.qcow2
#   --work-dir    downloaded packages and staging (default: next to --output)
#   --kernel-package  default: what linux-image-amd64 depends on
# Nothing is rebuilt when the output is newer than every input (this script,
# rootfs/, the writer) and made from the same ones (OUTPUT.manifest, which
# also lists the Debian package versions); --force rebuilds, e.g. to pick up
# a new kernel from apt.
# Needs: apt-get, dpkg-deb, cpio, gzip, qemu-img, mkfs.fat (dosfstools),
# syslinux + syslinux-common (+ mtools), busybox (busybox-static), and the
# disk tools OS morphing runs, taken from this Debian 12 host with their
# libraries: lvm (lvm2), blkid + partx + losetup (util-linux), ntfs-3g. No root.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT_DIR=$(cd "$SCRIPT_DIR/../.." && pwd)
readonly SCRIPT_DIR ROOT_DIR
readonly ARCH_LIB=lib/x86_64-linux-gnu
# Kernel modules the guest loads (with their dependencies), in this order:
# virtio transport, disks (virtio-blk, virtio-scsi), config drive on an
# IDE/SATA/SCSI cdrom, network, guest agent channel, filesystems.
# OS morphing adds device-mapper (LVM), xfs, btrfs and fuse (ntfs-3g).
readonly MODULES="virtio_pci virtio_blk virtio_scsi sd_mod ata_piix ahci sr_mod isofs
  virtio_net virtio_console virtio_rng nls_utf8 nls_cp437 nls_ascii vfat crc32c_generic ext4 loop
  dm_mod dm_snapshot dm_mirror dm_zero dm_thin_pool xfs btrfs fuse"
# Host programs OS morphing needs in the image (copied with their libraries);
# lvm answers to its command names through links.
readonly MORPH_TOOLS="/sbin/lvm /sbin/blkid /usr/bin/partx /sbin/losetup /bin/ntfs-3g"
readonly GCONV=usr/lib/x86_64-linux-gnu/gconv
readonly GCONV_MODULES="ISO8859-1 UTF-16 UTF-32 UNICODE"
readonly LVM_LINKS="pvs vgs lvs pvscan vgscan lvscan vgchange lvchange vgmknodes vgck pvdisplay vgdisplay lvdisplay"
readonly GUEST_PACKAGES=(busybox-static openssh-server qemu-guest-agent)
# cryptomgr.notests: the in-kernel crypto self-tests cost seconds under TCG
# (the data plane uses OpenSSL in user space, not kernel crypto).
readonly KERNEL_CMDLINE="console=ttyS0,115200 loglevel=4 panic=10 random.trust_cpu=on cryptomgr.notests"

log() { printf 'worker-image: %s\n' "$*" >&2; }
die() { printf 'worker-image: error: %s\n' "$*" >&2; exit 1; }
now_ms() { local t=${EPOCHREALTIME//[.,]/}; printf '%s\n' $((t / 1000)); }
T_START=$(now_ms)
T_LAST=$T_START
step_done() { # step_done WHAT: log the time since the previous step
    local t
    t=$(now_ms)
    log "$(printf '%-34s %6d ms' "$1" $((t - T_LAST)))"
    T_LAST=$t
}

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

parse_args() {
    OUTPUT='' BUILD_DIR=$ROOT_DIR/build WRITER='' MORPH='' WORK='' KERNEL_PKG='' FORCE=''
    while (($#)); do
        case $1 in
            --output) OUTPUT=${2:?--output needs a file}; shift ;;
            --build-dir) BUILD_DIR=${2:?--build-dir needs a directory}; shift ;;
            --writer) WRITER=${2:?--writer needs a path}; shift ;;
            --morph) MORPH=${2:?--morph needs a path}; shift ;;
            --work-dir) WORK=${2:?--work-dir needs a directory}; shift ;;
            --kernel-package) KERNEL_PKG=${2:?--kernel-package needs a package}; shift ;;
            --force) FORCE=1 ;;
            -h | --help) usage ;;
            *) die "unknown argument '$1' (see --help)" ;;
        esac
        shift
    done
    BUILD_DIR=$(realpath -m -- "$BUILD_DIR")
    OUTPUT=$(realpath -m -- "${OUTPUT:-$BUILD_DIR/worker-image/ekman-worker.qcow2}")
    WORK=$(realpath -m -- "${WORK:-$(dirname "$OUTPUT")/work}")
    WRITER=${WRITER:-$BUILD_DIR/worker/ekman-writer}
    MORPH=${MORPH:-$BUILD_DIR/worker/morph/ekman-morph}
}

check_tools() {
    local t missing=()
    for t in apt-get apt-cache dpkg-deb cpio gzip qemu-img mkfs.fat syslinux mcopy busybox ldd sha256sum strip; do
        command -v "$t" >/dev/null 2>&1 || missing+=("$t")
    done
    [[ -r /usr/lib/syslinux/mbr/mbr.bin ]] || missing+=("/usr/lib/syslinux/mbr/mbr.bin")
    for t in $MORPH_TOOLS; do
        [[ -x $t ]] || missing+=("$t")
    done
    ((${#missing[@]} == 0)) || die "missing: ${missing[*]}; install: apt-get install --no-install-recommends \
apt dpkg cpio gzip qemu-utils dosfstools mtools syslinux syslinux-common busybox-static lvm2 util-linux ntfs-3g"
}

# ensure_binary VAR NAME DEFAULT: the binary that VAR names exists (built in
# BUILD_DIR when it is the default and missing); VAR becomes its real path.
ensure_binary() {
    local var=$1 name=$2 default=$3 path=${!1}
    if [[ ! -x $path && $path == "$default" && -f $BUILD_DIR/CMakeCache.txt ]]; then
        log "building $name in $BUILD_DIR"
        cmake --build "$BUILD_DIR" --target "$name" -j2 >&2 || die "cmake --build $BUILD_DIR --target $name failed"
    fi
    [[ -x $path ]] || die "no $name at $path: build it (cmake --build BUILD_DIR --target $name) or pass --${name#ekman-} PATH"
    printf -v "$var" '%s' "$(realpath -- "$path")"
}

# apt_versions PKG...: "PKG=VERSION" for each, the version apt would install
# (one apt-cache call: each costs seconds without a package cache).
apt_versions() {
    apt-cache policy "$@" 2>/dev/null | awk '
        /^[^ ].*:$/ { p = substr($0, 1, length($0) - 1) }
        /^  Candidate:/ { if ($2 != "(none)") print p "=" $2 }'
}

# resolve_packages: PKGS (kernel + guest packages) and LIBS (the library
# packages sshd and qemu-ga depend on directly, so that the host need not
# have them installed), each as PKG=VERSION.
resolve_packages() {
    local deps p v
    deps=$(apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces \
        --no-enhances linux-image-amd64 openssh-server qemu-guest-agent 2>/dev/null)
    if [[ -z $KERNEL_PKG ]]; then
        KERNEL_PKG=$(awk '/Depends: linux-image-[0-9]/ { print $2; exit }' <<<"$deps")
        [[ -n $KERNEL_PKG ]] || die "apt knows no linux-image-amd64 (run apt-get update, or pass --kernel-package)"
    fi
    KVER=${KERNEL_PKG#linux-image-}
    mapfile -t LIBS < <(awk '$1 == "Depends:" && $2 ~ /^(lib|zlib1g)/ && $2 != "libc6" { print $2 }' <<<"$deps" | sort -u)
    mapfile -t PKGS < <(apt_versions "$KERNEL_PKG" "${GUEST_PACKAGES[@]}" "${LIBS[@]}")
    for p in "$KERNEL_PKG" "${GUEST_PACKAGES[@]}" "${LIBS[@]}"; do
        v=$(printf '%s\n' "${PKGS[@]}" | grep -c "^$p=" || true)
        ((v == 1)) || die "apt offers no package $p (run apt-get update)"
    done
}

# manifest: what the output is made of (input hashes; package versions).
manifest_files() {
    local f
    printf 'cmdline %s\nmodules %s\n' "$KERNEL_CMDLINE" "$(tr -s ' \n' '  ' <<<"$MODULES")"
    for f in "$WRITER" "$MORPH" "$SCRIPT_DIR/build.sh" $(find "$SCRIPT_DIR/rootfs" -type f | sort); do
        printf 'file %s %s\n' "$(sha256sum "$f" | cut -c1-16)" "${f#"$ROOT_DIR"/}"
    done
    for f in $MORPH_TOOLS; do
        printf 'host %s %s\n' "$(sha256sum "$f" | cut -c1-16)" "$f"
    done
}

# up_to_date: the output is newer than every input file and was made from
# the same files. Package versions are not asked of apt here (slow): a new
# kernel or security update is picked up by --force or any input change.
up_to_date() {
    local f
    [[ -z $FORCE && -s $OUTPUT && -s $OUTPUT.manifest ]] || return 1
    cmp -s <(grep -v '^package ' "$OUTPUT.manifest") "$WORK/manifest.files" || return 1
    for f in "$WRITER" "$MORPH" "$SCRIPT_DIR/build.sh" $(find "$SCRIPT_DIR/rootfs" -type f); do
        [[ $OUTPUT -nt $f ]] || return 1
    done
}

# download PKG=VER...: fetch the .deb files not in WORK/debs yet.
download() {
    local spec want=()
    mkdir -p "$WORK/debs"
    for spec in "$@"; do
        compgen -G "$WORK/debs/${spec%%=*}_*.deb" >/dev/null && [[ -s $WORK/debs/${spec%%=*}.version ]] &&
            [[ $(cat "$WORK/debs/${spec%%=*}.version") == "${spec#*=}" ]] && continue
        rm -f "$WORK/debs/${spec%%=*}"_*.deb
        want+=("$spec")
    done
    ((${#want[@]})) || return 0
    # apt drops privileges to _apt when it can write there as _apt.
    chown _apt "$WORK/debs" 2>/dev/null || true
    (cd "$WORK/debs" && apt-get download -q "${want[@]}" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2) ||
        true
    for spec in "${want[@]}"; do
        compgen -G "$WORK/debs/${spec%%=*}_*.deb" >/dev/null ||
            die "apt-get download ${spec} failed (network? apt-get update?)"
        printf '%s\n' "${spec#*=}" >"$WORK/debs/${spec%%=*}.version"
    done
}

deb_of() { compgen -G "$WORK/debs/$1_*.deb" | head -n 1; }

# fetch_packages: download what is missing, unpack all but the kernel into
# WORK/sysroot.
fetch_packages() {
    local p
    download "${PKGS[@]}"
    rm -rf "$WORK/sysroot"
    mkdir -p "$WORK/sysroot"
    for p in "${PKGS[@]%%=*}"; do
        [[ $p == "$KERNEL_PKG" ]] && continue
        dpkg-deb -x "$(deb_of "$p")" "$WORK/sysroot"
    done
    step_done "packages (${#PKGS[@]}: ${#LIBS[@]} libraries)"
}

# unpack_kernel: vmlinuz and the module tree with modules.dep (cached).
unpack_kernel() {
    local kdir=$WORK/kernel-$KVER
    if [[ ! -s $kdir/lib/modules/$KVER/modules.dep || $(deb_of "$KERNEL_PKG") -nt $kdir/lib/modules/$KVER/modules.dep ]]; then
        rm -rf "$kdir"
        mkdir -p "$kdir"
        dpkg-deb -x "$(deb_of "$KERNEL_PKG")" "$kdir"
        busybox depmod -b "$kdir" "$KVER"
    fi
    KDIR=$kdir
    [[ -s $KDIR/boot/vmlinuz-$KVER ]] || die "$KERNEL_PKG has no /boot/vmlinuz-$KVER"
    step_done "kernel $KVER"
}

# module_closure: the .ko paths (relative to lib/modules/KVER) of MODULES
# and everything they depend on; built-in modules are skipped.
module_closure() {
    local m ko dep base=$KDIR/lib/modules/$KVER
    for m in $MODULES; do
        ko=$(awk -F: -v m="$m" '{ n = $1; sub(/.*\//, "", n); sub(/\.ko$/, "", n); gsub(/-/, "_", n)
                                    if (n == m) { print $1; exit } }' "$base/modules.dep")
        if [[ -z $ko ]]; then
            grep -q "/$m.ko\$" "$base/modules.builtin" 2>/dev/null && continue
            die "kernel $KVER has no module $m"
        fi
        for dep in $(sed -n "s|^$ko:||p" "$base/modules.dep") "$ko"; do
            printf '%s\n' "$dep"
        done
    done | awk '!seen[$0]++'
}

# copy_with_libs BIN DEST: BIN into the rootfs at DEST, and every library
# ldd names (the unpacked packages first, then the host's).
copy_with_libs() {
    local bin=$1 dest=$2 line name path
    rm -f "$ROOTFS/$dest" # may be a busybox link
    install -D -m 0755 "$bin" "$ROOTFS/$dest"
    while read -r line; do
        case $line in
            *"not found"*) die "$(basename "$bin") needs ${line%% *}, found neither in the packages nor on this host" ;;
            *"=> /"*) name=${line%% =>*} path=${line#*=> } path=${path%% (*} ;;
            /*) name=${line%% (*} path=$name ;;
            *) continue ;;
        esac
        if [[ $name == /* ]]; then
            [[ -e $ROOTFS$name ]] || install -D -m 0755 "$(realpath "$path")" "$ROOTFS$name"
        else
            [[ -e $ROOTFS/$ARCH_LIB/$name ]] || install -D -m 0644 "$(realpath "$path")" "$ROOTFS/$ARCH_LIB/$name"
        fi
    done < <(LD_LIBRARY_PATH=$WORK/sysroot/$ARCH_LIB:$WORK/sysroot/usr/$ARCH_LIB ldd "$bin")
}

make_rootfs() {
    local m d
    ROOTFS=$WORK/rootfs
    rm -rf "$ROOTFS"
    mkdir -p "$ROOTFS"/{bin,sbin,usr/bin,usr/sbin,$ARCH_LIB,lib64,proc,sys,dev,run,tmp,root,mnt,var}
    chmod 1777 "$ROOTFS/tmp"
    chmod 0700 "$ROOTFS/root"
    cp -a "$SCRIPT_DIR/rootfs/." "$ROOTFS/"
    # git keeps no modes but the x bit: set those that matter here
    chmod 0600 "$ROOTFS/etc/shadow"
    chmod 0755 "$ROOTFS/init" "$ROOTFS/sbin/shutdown" "$ROOTFS"/lib/ekman/* "$ROOTFS/usr/share/udhcpc/default.script"
    install -m 0755 "$WORK/sysroot/bin/busybox" "$ROOTFS/bin/busybox"
    for m in $("$ROOTFS/bin/busybox" --list-full); do
        [[ -e $ROOTFS/$m ]] || ln -s /bin/busybox "$ROOTFS/$m"
    done
    copy_with_libs "$WORK/sysroot/usr/sbin/sshd" usr/sbin/sshd
    copy_with_libs "$WORK/sysroot/usr/sbin/qemu-ga" usr/sbin/qemu-ga
    copy_with_libs "$WRITER" usr/bin/ekman-writer
    copy_with_libs "$MORPH" usr/bin/ekman-morph
    # Ekman's own binaries without their debug information (a Debug or
    # sanitizer build's is tens of MiB, and the whole image lives in RAM)
    strip --strip-debug "$ROOTFS/usr/bin/ekman-writer" "$ROOTFS/usr/bin/ekman-morph"
    for m in $MORPH_TOOLS; do
        copy_with_libs "$m" "${m#/}"
    done
    for m in $LVM_LINKS; do
        ln -sf lvm "$ROOTFS/sbin/$m"
    done
    mkdir -p "$ROOTFS/etc/lvm" "$ROOTFS/run/lvm" "$ROOTFS/run/lock/lvm"
    # hivex (Windows hives) converts key and value names with iconv: glibc
    # loads these converters at run time
    mkdir -p "$ROOTFS/$GCONV"
    cp -a "/$GCONV"/gconv-modules* "$ROOTFS/$GCONV/"
    for m in $GCONV_MODULES; do
        install -m 0644 "/$GCONV/$m.so" "$ROOTFS/$GCONV/$m.so"
    done
    # modules: the closure, then a modules.dep for busybox modprobe
    d=$KDIR/lib/modules/$KVER
    while read -r m; do
        install -D -m 0644 "$d/$m" "$ROOTFS/lib/modules/$KVER/$m"
    done < <(module_closure)
    cp "$d/modules.builtin" "$d/modules.order" "$ROOTFS/lib/modules/$KVER/"
    busybox depmod -b "$ROOTFS" "$KVER"
    step_done "rootfs ($(du -sm "$ROOTFS" | cut -f1) MiB)"
}

make_initramfs() {
    (cd "$ROOTFS" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
        gzip -6 -n >"$WORK/initrd.img"
    step_done "initramfs ($(($(stat -c %s "$WORK/initrd.img") / 1048576)) MiB gzip)"
}

# le32 N: N as 4 little-endian bytes (printf %b escapes).
le32() { printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 & 255)) $(($1 >> 8 & 255)) $(($1 >> 16 & 255)) $(($1 >> 24 & 255)); }

# chs LBA: the 3 CHS bytes of a partition entry (255 heads, 63 sectors).
chs() {
    local c=$(($1 / (255 * 63))) h=$((($1 / 63) % 255)) s=$(($1 % 63 + 1))
    ((c <= 1023)) || { c=1023 h=254 s=63; }
    printf '\\x%02x\\x%02x\\x%02x' "$h" $((s | (c >> 2 & 0xc0))) $((c & 255))
}

# make_disk: MBR (syslinux mbr.bin + one active FAT16 partition at 1 MiB)
# + the partition (kernel, initramfs, syslinux), converted to qcow2.
make_disk() {
    local part=$WORK/boot.fat disk=$WORK/disk.raw kib sectors start=2048
    kib=$((($(stat -c %s "$KDIR/boot/vmlinuz-$KVER") + $(stat -c %s "$WORK/initrd.img")) / 1024))
    kib=$(((kib * 11 / 10 / 1024 + 4) * 1024))
    ((kib >= 32768)) || kib=32768
    rm -f "$part"
    mkfs.fat -C -F 16 -n EKMANBOOT -i e4a40001 -h "$start" "$part" "$kib" >/dev/null
    cat >"$WORK/syslinux.cfg" <<EOF
DEFAULT ekman
PROMPT 0
TIMEOUT 0
SERIAL 0 115200
LABEL ekman
  KERNEL /vmlinuz
  INITRD /initrd.img
  APPEND $KERNEL_CMDLINE
EOF
    cp "$KDIR/boot/vmlinuz-$KVER" "$WORK/vmlinuz"
    mcopy -i "$part" "$WORK/vmlinuz" "$WORK/initrd.img" "$WORK/syslinux.cfg" ::/
    syslinux --install "$part"
    sectors=$((kib * 2))
    truncate -s 0 "$disk"
    truncate -s $((start * 512)) "$disk"
    dd if=/usr/lib/syslinux/mbr/mbr.bin of="$disk" conv=notrunc status=none
    printf '%b' "\\x80$(chs $start)\\x0e$(chs $((start + sectors - 1)))$(le32 $start)$(le32 $sectors)" |
        dd of="$disk" bs=1 seek=446 conv=notrunc status=none
    printf '\x55\xaa' | dd of="$disk" bs=1 seek=510 conv=notrunc status=none
    cat "$part" >>"$disk"
    mkdir -p "$(dirname "$OUTPUT")"
    qemu-img convert -q -f raw -O qcow2 "$disk" "$OUTPUT.tmp"
    mv -f "$OUTPUT.tmp" "$OUTPUT"
    rm -f "$disk" "$part"
    step_done "disk ($((kib / 1024)) MiB FAT, qcow2)"
}

main() {
    parse_args "$@"
    check_tools
    ensure_binary WRITER ekman-writer "$BUILD_DIR/worker/ekman-writer"
    ensure_binary MORPH ekman-morph "$BUILD_DIR/worker/morph/ekman-morph"
    mkdir -p "$WORK"
    manifest_files >"$WORK/manifest.files"
    if up_to_date; then
        log "$OUTPUT is up to date ($(du -k "$OUTPUT" | cut -f1) KiB); nothing to do"
        return 0
    fi
    resolve_packages
    step_done "inputs (apt: kernel $KVER)"
    fetch_packages
    unpack_kernel
    make_rootfs
    make_initramfs
    make_disk
    { printf 'package %s\n' "${PKGS[@]}"; cat "$WORK/manifest.files"; } >"$OUTPUT.manifest"
    log "built $OUTPUT: $(($(stat -c %s "$OUTPUT") / 1024)) KiB (kernel $KVER) in $(($(now_ms) - T_START)) ms"
}

main "$@"
