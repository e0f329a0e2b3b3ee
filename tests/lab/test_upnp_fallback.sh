#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Lab test: a router with UPnP-IGD only (no PCP, no NAT-PMP: ICMP port unreachable on
# 5351). `portmap add` must fall back to UPnP (found by SSDP; no --gateway), create the
# mapping on the router, and `portmap delete` must remove it.
#   bash tests/lab/test_upnp_fallback.sh PATH/TO/portmap      (as root)
set -u -o pipefail
# shellcheck source-path=SCRIPTDIR source=testlib.sh
. "$(dirname "$0")/testlib.sh"
tl_enter_lab upnp "$@"
tl_require_portmap "$@"

tl_add_expect 8000/tcp upnp
tl_delete_expect 8000/tcp "$TL_EPORT"
tl_pass
