#!/usr/bin/env bash
# Makes a headless browser usable for the browser tests (`cargo xtask ci` runs it; so can you):
# installs chromium and chromium-driver from Debian's packages when chromium or chromedriver is
# missing (apt-get install; apt-get update only when the install fails without it), then prints
# their paths on stdout:
#
#     chromium: /usr/bin/chromium
#     chromedriver: /usr/bin/chromedriver
#
# The tests (tests/browser.rs) find chromedriver on PATH and start it themselves. Installing needs
# root; without root it only says what is missing.
# shellcheck shell=bash

set -uo pipefail

_say() {
    echo "chromium.sh: $*" >&2
}

# The browser's command: Debian's `chromium`, or another distribution's name for it.
_modal_chromium_browser() {
    local c
    for c in chromium chromium-browser google-chrome; do
        command -v "$c" 2>/dev/null && return 0
    done
    return 1
}

_modal_chromium_install() {
    local missing=""
    _modal_chromium_browser >/dev/null || missing="$missing chromium"
    command -v chromedriver >/dev/null 2>&1 || missing="$missing chromedriver"
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        _say "missing:$missing, and this is not root: apt-get install chromium chromium-driver"
        return 1
    fi
    _say "installing chromium and chromium-driver (apt-get), missing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1; then
        apt-get update -qq >&2 && apt-get install -y -qq chromium chromium-driver >&2 || return 1
    fi
}

modal_chromium_setup() {
    _modal_chromium_install || return 1
    local browser driver
    browser=$(_modal_chromium_browser) || {
        _say "chromium is still missing after apt-get install chromium"
        return 1
    }
    driver=$(command -v chromedriver) || {
        _say "chromedriver is still missing after apt-get install chromium-driver"
        return 1
    }
    # Both must run here (a missing library shows now rather than as a test's timeout).
    local v
    # (Debian's launcher script may complain on stderr about an odd /dev/shm; only a failure
    # needs its words.)
    v=$("$browser" --version 2>/dev/null) || {
        _say "$browser does not run: $("$browser" --version 2>&1)"
        return 1
    }
    _say "$v is ready"
    v=$("$driver" --version 2>&1) || {
        _say "$driver does not run: $v"
        return 1
    }
    echo "chromium: $browser"
    echo "chromedriver: $driver"
}

modal_chromium_setup
