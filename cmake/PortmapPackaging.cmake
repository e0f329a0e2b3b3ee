# SPDX-License-Identifier: MIT
# Debian packages from the tree: `cpack -G DEB` in a build configured with
# -DCMAKE_INSTALL_PREFIX=/usr -DPORTMAP_INSTALL_RPATH=OFF (tests/install/test_deb.sh).
#   libportmap0     the shared library (component runtime)
#   libportmap-dev  headers, static library, CMake package, portmap.pc, libportmap(3)
#   portmap-tools   portmap and portmap-probe with their man pages (linked with
#                   libportmap.a: no dependency on libportmapN)
set(CPACK_PACKAGE_NAME libportmap)
set(CPACK_PACKAGE_VENDOR "libportmap")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(PORTMAP_DEB_MAINTAINER "libportmap maintainers <libportmap@localhost>" CACHE STRING
  "Maintainer field of the Debian packages")
set(CPACK_PACKAGE_CONTACT "${PORTMAP_DEB_MAINTAINER}")
set(CPACK_GENERATOR DEB)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL runtime development tools)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(_portmap_deb_version "${PROJECT_VERSION}-1")

set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME libportmap${PROJECT_VERSION_MAJOR})
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY "=")
set(CPACK_DEBIAN_RUNTIME_DESCRIPTION
  "port mapping library (PCP, NAT-PMP, UPnP-IGD)
libportmap gets an application a working port forward from whatever its
gateway speaks: PCP (RFC 6887), NAT-PMP (RFC 6886) or UPnP-IGD. One
scheduler keeps every mapping alive, driven from the application's event
loop or from a thread of the library.
.
This package holds the shared library.")

set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_NAME libportmap-dev)
set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_SECTION libdevel)
# the static library and the .pc file (Requires.private) need both -dev packages
set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_DEPENDS
  "libportmap${PROJECT_VERSION_MAJOR} (= ${_portmap_deb_version}), libnatpmp-dev, libminiupnpc-dev")
set(CPACK_DEBIAN_DEVELOPMENT_DESCRIPTION
  "port mapping library (PCP, NAT-PMP, UPnP-IGD) - development files
libportmap gets an application a working port forward from whatever its
gateway speaks: PCP (RFC 6887), NAT-PMP (RFC 6886) or UPnP-IGD.
.
This package holds the header, the static library, the CMake package
(find_package(portmap)), the pkg-config file and libportmap(3).")

set(CPACK_DEBIAN_TOOLS_PACKAGE_NAME portmap-tools)
set(CPACK_DEBIAN_TOOLS_PACKAGE_SECTION net)
set(CPACK_DEBIAN_TOOLS_PACKAGE_SHLIBDEPS ON)
if(NOT PORTMAP_TOOLS_STATIC)
  # dpkg-shlibdeps finds libportmap.so.N in the build tree (CMake >= 3.20)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS ${CMAKE_BINARY_DIR})
  set(CPACK_DEBIAN_TOOLS_PACKAGE_DEPENDS
    "libportmap${PROJECT_VERSION_MAJOR} (= ${_portmap_deb_version})")
endif()
# Statically linked (the default), the tools need only what dpkg-shlibdeps
# finds: libc, libnatpmp1, libminiupnpc; not libportmapN.
set(CPACK_DEBIAN_TOOLS_DESCRIPTION
  "command-line port mapping over PCP, NAT-PMP and UPnP-IGD
portmap opens, keeps, deletes and lists port forwards on the gateway;
portmap-probe finds out which port-mapping protocol the gateway speaks and
why the others do not work.")

# ldconfig through the dpkg trigger (lintian: lacks-ldconfig-trigger); CPack
# still writes its own postinst/postrm calling ldconfig.
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_EXTRA ${CMAKE_CURRENT_SOURCE_DIR}/cmake/deb/triggers)

# /usr/share/doc/<package>/changelog.Debian.gz for each package (with PORTMAP_PACKAGING)
string(TIMESTAMP _portmap_deb_date "%a, %d %b %Y %H:%M:%S +0000" UTC)
configure_file(cmake/deb/changelog.Debian.in ${CMAKE_CURRENT_BINARY_DIR}/changelog.Debian @ONLY)
if(PORTMAP_PACKAGING)
  foreach(c runtime development tools)
    string(TOUPPER ${c} C)
    portmap_install_doc(${CMAKE_CURRENT_BINARY_DIR}/changelog.Debian
      ${CMAKE_INSTALL_DATAROOTDIR}/doc/${CPACK_DEBIAN_${C}_PACKAGE_NAME} changelog.Debian ${c})
    # the licence (MIT), never compressed (Debian policy 12.5)
    install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/cmake/deb/copyright
      DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/${CPACK_DEBIAN_${C}_PACKAGE_NAME} COMPONENT ${c})
  endforeach()
endif()

include(CPack)
