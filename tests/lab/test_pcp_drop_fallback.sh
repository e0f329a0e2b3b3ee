#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Lab test: a router whose port 5351 silently drops everything (PCP and NAT-PMP never
# answer) but which speaks UPnP-IGD. `portmap add` must give up on PCP/NAT-PMP in bounded
# time and fall back to UPnP; `portmap delete` must remove the mapping.
#   bash tests/lab/test_pcp_drop_fallback.sh PATH/TO/portmap      (as root)
set -u -o pipefail
# shellcheck source-path=SCRIPTDIR source=testlib.sh
. "$(dirname "$0")/testlib.sh"
tl_enter_lab pcp-drop "$@"
tl_require_portmap "$@"

tl_add_expect 8000/tcp upnp
tl_delete_expect 8000/tcp "$TL_EPORT"
tl_pass
