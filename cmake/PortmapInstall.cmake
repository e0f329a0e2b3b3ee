# SPDX-License-Identifier: MIT
# Install rules of the library (included from the top-level CMakeLists.txt).
# Components, one per Debian package (cmake/PortmapPackaging.cmake):
#   runtime      libportmap.so.N
#   development  headers, libportmap.a, the .so link, CMake package, portmap.pc, man3
#   tools        portmap, portmap-probe and their man pages (tools/CMakeLists.txt)
set(PORTMAP_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/portmap)
option(PORTMAP_PACKAGING
  "Install as a distribution package wants it: gzipped man pages, Debian changelogs, no RPATH" OFF)

# Install a file (gzipped with PORTMAP_PACKAGING) as DIR/NAME[.gz].
function(portmap_install_doc file dir name component)
  install(FILES ${file} DESTINATION ${dir} RENAME ${name} COMPONENT ${component})
  if(PORTMAP_PACKAGING)
    install(CODE "execute_process(COMMAND gzip -9nf
        \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${dir}/${name}\" RESULT_VARIABLE rc)
      if(NOT rc EQUAL 0)
        message(FATAL_ERROR \"gzip ${dir}/${name} failed\")
      endif()" COMPONENT ${component})
  endif()
endfunction()

# Each library in an export set of its own, so a shared-only consumer does
# not need the static library's dependencies.
if(TARGET portmap_shared)
  install(TARGETS portmap_shared EXPORT portmapSharedTargets
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime
      NAMELINK_COMPONENT development
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)
  install(EXPORT portmapSharedTargets NAMESPACE portmap:: DESTINATION ${PORTMAP_CMAKE_DIR}
    FILE portmap-shared-targets.cmake COMPONENT development)
endif()
install(TARGETS portmap_static EXPORT portmapStaticTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT development)
install(EXPORT portmapStaticTargets NAMESPACE portmap:: DESTINATION ${PORTMAP_CMAKE_DIR}
  FILE portmap-static-targets.cmake COMPONENT development)

install(DIRECTORY include/portmap DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT development)

configure_package_config_file(cmake/portmapConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/portmapConfig.cmake
  INSTALL_DESTINATION ${PORTMAP_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/portmapConfigVersion.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/portmapConfig.cmake
  ${CMAKE_CURRENT_BINARY_DIR}/portmapConfigVersion.cmake
  ${CMAKE_CURRENT_SOURCE_DIR}/cmake/FindPortmapNatpmp.cmake
  ${CMAKE_CURRENT_SOURCE_DIR}/cmake/FindPortmapMiniupnpc.cmake
  DESTINATION ${PORTMAP_CMAKE_DIR} COMPONENT development)

# relocatable: the prefix is found from the .pc file's own place
file(RELATIVE_PATH PORTMAP_PC_UP "/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/")
configure_file(cmake/portmap.pc.in ${CMAKE_CURRENT_BINARY_DIR}/portmap.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/portmap.pc
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT development)

portmap_install_doc(${CMAKE_CURRENT_SOURCE_DIR}/man/libportmap.3 ${CMAKE_INSTALL_MANDIR}/man3
  libportmap.3 development)
if(PORTMAP_BUILD_TOOLS)
  foreach(page portmap.1 portmap-probe.1)
    portmap_install_doc(${CMAKE_CURRENT_SOURCE_DIR}/man/${page} ${CMAKE_INSTALL_MANDIR}/man1
      ${page} tools)
  endforeach()
endif()
