# Installation and the exported CMake package.
#
#   cmake --install build --prefix /opt/kamaelia
#
# installs bin/kamaelia, the static libraries (kamaelia_core, kamaelia_asio,
# kamaelia_protocols), the public headers (include/kamaelia/...) and
# lib/cmake/Kamaelia/{KamaeliaConfig,KamaeliaConfigVersion,KamaeliaTargets}.cmake,
# so that an out-of-tree project does
#
#   find_package(Kamaelia 0.1 REQUIRED)
#   target_link_libraries(app PRIVATE kamaelia::protocols)   # or kamaelia::core
#
# (examples/out_of_tree is such a project; tests/packaging builds it against
# an installed tree).
include_guard(GLOBAL)
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(KAMAELIA_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/Kamaelia CACHE STRING
  "Where the CMake package files go, relative to the prefix")
mark_as_advanced(KAMAELIA_INSTALL_CMAKEDIR)

# The exported targets and their names in the package (kamaelia::<name>).
set(_kamaelia_exported kamaelia_asio kamaelia_core kamaelia_protocols)
set_target_properties(kamaelia_asio PROPERTIES EXPORT_NAME asio)
set_target_properties(kamaelia_core PROPERTIES EXPORT_NAME core)
set_target_properties(kamaelia_protocols PROPERTIES EXPORT_NAME protocols)
if(NOT TARGET kamaelia::asio)
  add_library(kamaelia::asio ALIAS kamaelia_asio)
endif()

# Static libraries built with sanitizers need the sanitizer runtime wherever
# they are linked: an installed consumer gets the link option with them.
if(KAMAELIA_SANITIZE)
  set_property(TARGET kamaelia_core APPEND PROPERTY INTERFACE_LINK_OPTIONS
    "$<INSTALL_INTERFACE:-fsanitize=${KAMAELIA_SANITIZE}>")
endif()

# Local (non-imported) libraries the exported ones link to must be exported
# too, or install(EXPORT) fails: add them (a helper library someone adds to
# kamaelia_protocols later is picked up here). Imported dependencies from
# Debian packages are found again by the package config (below).
set(_kamaelia_deps_seen)
set(_kamaelia_packages)
set(_kamaelia_queue ${_kamaelia_exported})
while(_kamaelia_queue)
  list(POP_FRONT _kamaelia_queue _t)
  get_target_property(_libs ${_t} INTERFACE_LINK_LIBRARIES)
  if(NOT _libs)
    continue()
  endif()
  foreach(_lib IN LISTS _libs)
    # $<LINK_ONLY:X> (a static library's private dependency) still has to be linked.
    string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" _lib "${_lib}")
    if(_lib MATCHES "^(spdlog|fmt)::")
      list(APPEND _kamaelia_packages ${CMAKE_MATCH_1})
    elseif(_lib MATCHES "^Threads::")
      list(APPEND _kamaelia_packages Threads)
    elseif(_lib MATCHES "^OpenSSL::")
      list(APPEND _kamaelia_packages OpenSSL)
    elseif(_lib MATCHES "^SQLite::")
      list(APPEND _kamaelia_packages SQLite3)
    elseif(_lib MATCHES "^CLI11::")
      list(APPEND _kamaelia_packages CLI11)
    elseif(TARGET "${_lib}")
      get_target_property(_imported "${_lib}" IMPORTED)
      get_target_property(_aliased "${_lib}" ALIASED_TARGET)
      if(_aliased)
        set(_lib ${_aliased})
      endif()
      if(NOT _imported AND NOT _lib IN_LIST _kamaelia_exported AND NOT _lib IN_LIST _kamaelia_deps_seen)
        list(APPEND _kamaelia_deps_seen ${_lib})
        list(APPEND _kamaelia_exported ${_lib})
        list(APPEND _kamaelia_queue ${_lib})
      endif()
    endif()
  endforeach()
endwhile()
# What the package config always finds (the core links these).
list(PREPEND _kamaelia_packages Threads fmt spdlog)
list(REMOVE_DUPLICATES _kamaelia_packages)

set(KAMAELIA_FIND_DEPENDENCIES "")
foreach(_p IN LISTS _kamaelia_packages)
  if(_p STREQUAL "SQLite3")
    string(APPEND KAMAELIA_FIND_DEPENDENCIES "find_dependency(SQLite3)\n")
  else()
    string(APPEND KAMAELIA_FIND_DEPENDENCIES "find_dependency(${_p})\n")
  endif()
endforeach()
list(JOIN _kamaelia_exported " " _kamaelia_exported_str)
message(STATUS "Kamaelia package: exports ${_kamaelia_exported_str}; needs ${_kamaelia_packages}")

install(TARGETS kamaelia
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)

install(TARGETS ${_kamaelia_exported} EXPORT KamaeliaTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT development
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT development)

# Public headers only: core/include and protocols/include (core/src's
# private headers stay behind).
install(DIRECTORY ${PROJECT_SOURCE_DIR}/core/include/kamaelia ${PROJECT_SOURCE_DIR}/protocols/include/kamaelia
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT development
  FILES_MATCHING PATTERN "*.hpp" PATTERN "*.h" PATTERN "*.ipp")

install(EXPORT KamaeliaTargets
  NAMESPACE kamaelia::
  FILE KamaeliaTargets.cmake
  DESTINATION ${KAMAELIA_INSTALL_CMAKEDIR} COMPONENT development)

configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/KamaeliaConfig.cmake.in
  ${CMAKE_BINARY_DIR}/cmake/KamaeliaConfig.cmake
  INSTALL_DESTINATION ${KAMAELIA_INSTALL_CMAKEDIR})
# 0.x: a minor version may break the API.
write_basic_package_version_file(${CMAKE_BINARY_DIR}/cmake/KamaeliaConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/cmake/KamaeliaConfig.cmake ${CMAKE_BINARY_DIR}/cmake/KamaeliaConfigVersion.cmake
  DESTINATION ${KAMAELIA_INSTALL_CMAKEDIR} COMPONENT development)
