# SPDX-License-Identifier: MIT
# libnatpmp (NAT-PMP backend) as the imported target portmap::natpmp.
# libnatpmp installs neither a pkg-config file nor a CMake package, so this
# module finds it by header and library name. It is installed next to
# portmapConfig.cmake, so the exported static library names a target
# (resolved on the consumer's machine) rather than an absolute path.
#   PortmapNatpmp_FOUND, NATPMP_INCLUDE_DIR, NATPMP_LIBRARY
find_path(NATPMP_INCLUDE_DIR natpmp.h)
find_library(NATPMP_LIBRARY natpmp)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(PortmapNatpmp REQUIRED_VARS NATPMP_LIBRARY NATPMP_INCLUDE_DIR)
mark_as_advanced(NATPMP_INCLUDE_DIR NATPMP_LIBRARY)
if(PortmapNatpmp_FOUND AND NOT TARGET portmap::natpmp)
  add_library(portmap::natpmp UNKNOWN IMPORTED)
  set_target_properties(portmap::natpmp PROPERTIES
    IMPORTED_LOCATION "${NATPMP_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${NATPMP_INCLUDE_DIR}")
endif()
