# Makes the oci runtime usable for the tests (`cargo xtask ci` runs it; so can you): installs crun,
# and mmdebstrap (which builds images' Debian base), from Debian's packages when they are
# missing, and on a machine whose hybrid cgroup layout keeps controllers in the v2 hierarchy (crun refuses to run there), moves those controllers to v1 hierarchies of
# their own (`mount -t cgroup -o CONTROLLER`), which lasts until the next reboot. Both need
# root; without root it only says what is missing.
# shellcheck shell=bash

# Installs the Debian package $1 (whose command is $1) when missing; $2 says what it is for.
modal_crun_install() {
    command -v "$1" >/dev/null 2>&1 && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "crun.sh: $1 is not installed and this is not root: apt-get install $1" >&2
        return 1
    fi
    echo "crun.sh: installing $1 (apt-get), $2" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >&2
}

modal_crun_setup() {
    modal_crun_install crun "the oci runtime" || return 1
    modal_crun_install mmdebstrap "for image builds" || return 1
    local held=/sys/fs/cgroup/unified/cgroup.controllers
    if [ -r "$held" ] && [ -n "$(cat "$held")" ]; then
        if [ "$(id -u)" -ne 0 ]; then
            echo "crun.sh: the v2 hierarchy holds controllers ($(cat "$held")) and this is not root" >&2
            return 1
        fi
        local c
        for c in $(cat "$held"); do
            echo "crun.sh: moving the $c controller to a v1 hierarchy (crun refuses hybrid cgroups otherwise)" >&2
            mkdir -p "/sys/fs/cgroup/$c" && mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c" || return 1
        done
    fi
    echo "crun.sh: $(crun --version | head -n 1) is ready" >&2
}

modal_crun_setup
