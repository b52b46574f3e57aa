#!/bin/sh
# The node's own images as OCI archives, built here from scratch with buildah (no registry is
# within reach): the pause image (pause.c of the kubernetes module, compiled statically),
# containerd's sandbox, and a busybox image (Debian's busybox-static) for the provisioner's
# helper pods and the tests. Usage: images.sh OUTPUT_DIR
set -eu
out=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

pause_c="$(go env GOMODCACHE)/k8s.io/kubernetes@${K8S_VERSION:?}/build/pause/linux/pause.c"
[ -f "$pause_c" ] || (cd "$(dirname "$0")/../cluster" && go mod download k8s.io/kubernetes)
gcc -Os -static -DVERSION="$K8S_VERSION" -o "$work/pause" "$pause_c"
strip "$work/pause"

image() { # name reference rootfs-tarball entrypoint-json user
    c=$(buildah from scratch)
    buildah add "$c" "$3" / >/dev/null
    buildah config --entrypoint "$4" --user "$5" "$c"
    rm -f "$out/$1.tar"
    buildah commit --rm -q "$c" "oci-archive:$out/$1.tar:$2" >/dev/null
}

mkdir -p "$work/pause-root"
cp "$work/pause" "$work/pause-root/pause"
tar -C "$work/pause-root" -cf "$work/pause.tgz" .
image pause facility.local/pause:3.10 "$work/pause.tgz" '["/pause"]' 65535:65535

root="$work/busybox-root"
mkdir -p "$root/bin" "$root/etc" "$root/tmp"
chmod 1777 "$root/tmp"
cp /bin/busybox "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' >"$root/etc/group"
tar -C "$root" -cf "$work/busybox.tgz" .
image busybox facility.local/busybox:node "$work/busybox.tgz" '["/bin/sh"]' 0:0
