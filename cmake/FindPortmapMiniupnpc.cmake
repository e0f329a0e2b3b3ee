# SPDX-License-Identifier: MIT
# miniupnpc (UPnP-IGD backend) as the imported target portmap::miniupnpc.
# Uses pkg-config's answer as a hint when there is one, then plain header
# and library search (miniupnpc's own CMake package is not installed by
# every distribution). Installed next to portmapConfig.cmake for static
# consumers.
#   PortmapMiniupnpc_FOUND, MINIUPNPC_INCLUDE_DIR, MINIUPNPC_LIBRARY
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(PC_MINIUPNPC QUIET miniupnpc)
endif()
find_path(MINIUPNPC_INCLUDE_DIR miniupnpc/miniupnpc.h HINTS ${PC_MINIUPNPC_INCLUDE_DIRS})
find_library(MINIUPNPC_LIBRARY miniupnpc HINTS ${PC_MINIUPNPC_LIBRARY_DIRS})
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(PortmapMiniupnpc
  REQUIRED_VARS MINIUPNPC_LIBRARY MINIUPNPC_INCLUDE_DIR)
mark_as_advanced(MINIUPNPC_INCLUDE_DIR MINIUPNPC_LIBRARY)
if(PortmapMiniupnpc_FOUND AND NOT TARGET portmap::miniupnpc)
  add_library(portmap::miniupnpc UNKNOWN IMPORTED)
  set_target_properties(portmap::miniupnpc PROPERTIES
    IMPORTED_LOCATION "${MINIUPNPC_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${MINIUPNPC_INCLUDE_DIR}")
endif()
