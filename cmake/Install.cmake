# `cmake --install` rules: dog as a library for apps built out of this tree.
#
# Installs the public headers (include/dog/), every static library dog_runtime needs (found by
# walking its link graph, so a library a layer adds later is installed without an edit here),
# dogConfig.cmake + dogConfigVersion.cmake + the exported targets (namespace dog::), a pkg-config
# file dog.pc, and the dog-chat example binary. An app then writes
#     find_package(dog REQUIRED)  target_link_libraries(app PRIVATE dog::dog)
# or  c++ -std=c++20 app.cc $(pkg-config --cflags --libs dog)
# Tested by tests/deploy/install_test.py. Included from the top CMakeLists.txt after every layer
# has defined its targets.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# dog_linked_targets(<target> <internal-var> <imported-var>): the targets <target> links
# directly (privately or not), split into the project's own and imported ones (packages).
function(dog_linked_targets t internal_out imported_out)
  get_target_property(type ${t} TYPE)
  set(items "")
  foreach(prop LINK_LIBRARIES INTERFACE_LINK_LIBRARIES)
    if(prop STREQUAL "LINK_LIBRARIES" AND type STREQUAL "INTERFACE_LIBRARY")
      continue()
    endif()
    get_target_property(l ${t} ${prop})
    if(l)
      list(APPEND items ${l})
    endif()
  endforeach()
  set(internal "")
  set(imported "")
  foreach(d IN LISTS items)
    string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" d "${d}")
    if(TARGET ${d})
      get_target_property(is_imported ${d} IMPORTED)
      if(is_imported)
        list(APPEND imported ${d})
      else()
        list(APPEND internal ${d})
      endif()
    endif()
  endforeach()
  set(${internal_out} ${internal} PARENT_SCOPE)
  set(${imported_out} ${imported} PARENT_SCOPE)
endfunction()

# dog_collect_internal(<target> <out-var>): the project's own targets (not imported ones) that
# <target> links, directly or through others, in dependency order: every target comes after all
# the targets that link it (the order a static link line needs).
function(dog_collect_internal target out)
  set(order "")
  set(seen "")
  function(_dog_visit t)
    if(t IN_LIST seen)
      return()
    endif()
    list(APPEND seen ${t})
    set(seen ${seen} PARENT_SCOPE)
    dog_linked_targets(${t} internal imported)
    foreach(d IN LISTS internal)
      _dog_visit(${d})
      set(seen ${seen} PARENT_SCOPE)
      set(order ${order} PARENT_SCOPE)
    endforeach()
    list(PREPEND order ${t})  # after its dependencies were prepended: dependents come first
    set(order ${order} PARENT_SCOPE)
  endfunction()
  _dog_visit(${target})
  set(${out} ${order} PARENT_SCOPE)
endfunction()

# The layers declare `target_include_directories(X PUBLIC ${PROJECT_SOURCE_DIR})` (and the
# generated Cap'n Proto headers in the build dir). Those paths mean nothing after an install,
# and install(EXPORT) refuses them, so they become build-only here. The public API needs only
# include/dog/, which the `dog` target adds for installs.
function(dog_build_only_includes t)
  foreach(prop INTERFACE_INCLUDE_DIRECTORIES INTERFACE_SYSTEM_INCLUDE_DIRECTORIES)
    get_target_property(dirs ${t} ${prop})
    if(NOT dirs)
      continue()
    endif()
    set(fixed "")
    foreach(d IN LISTS dirs)
      if(NOT d MATCHES "^\\$<" AND (d MATCHES "^${PROJECT_SOURCE_DIR}(/|$)" OR d MATCHES "^${PROJECT_BINARY_DIR}(/|$)"))
        list(APPEND fixed "$<BUILD_INTERFACE:${d}>")
      else()
        list(APPEND fixed "${d}")
      endif()
    endforeach()
    set_target_properties(${t} PROPERTIES ${prop} "${fixed}")
  endforeach()
endfunction()

# dog::dog: what an app links. dog_runtime brings the rest (front door, cluster, RPC, ...).
add_library(dog INTERFACE)
add_library(dog::dog ALIAS dog)
target_link_libraries(dog INTERFACE dog_runtime)
target_include_directories(dog INTERFACE
  $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include> $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
if(DOG_SANITIZE)  # the installed libraries are instrumented: apps must link the runtimes too
  target_link_options(dog INTERFACE -fsanitize=address,undefined)
endif()

dog_collect_internal(dog DOG_INSTALL_TARGETS)
foreach(t IN LISTS DOG_INSTALL_TARGETS)
  dog_build_only_includes(${t})
endforeach()

# The imported targets (Debian packages) those libraries link: dogConfig.cmake must find each
# package again in the app's build, since static libraries carry their dependencies along.
set(DOG_IMPORTED_DEPS "")
foreach(t IN LISTS DOG_INSTALL_TARGETS)
  dog_linked_targets(${t} internal imported)
  list(APPEND DOG_IMPORTED_DEPS ${imported})
endforeach()
list(REMOVE_DUPLICATES DOG_IMPORTED_DEPS)
# One line per package, in the order the config runs them.
set(DOG_FIND_DEPENDENCIES "")
set(_dog_packages "")
foreach(d IN LISTS DOG_IMPORTED_DEPS)
  if(d MATCHES "^Threads::")
    set(line "find_dependency(Threads)")
  elseif(d MATCHES "^CapnProto::")
    # CapnProtoConfig.cmake checks for libatomic with a C program: the app enables C too.
    set(line "find_dependency(CapnProto)")
  elseif(d MATCHES "^nlohmann_json::")
    set(line "find_dependency(nlohmann_json 3)")
  elseif(d MATCHES "^CLI11::")
    set(line "find_dependency(CLI11)")
  elseif(d MATCHES "^OpenSSL::")
    set(line "find_dependency(OpenSSL COMPONENTS Crypto)")
  elseif(d MATCHES "^toml11::")
    set(line "find_dependency(toml11)")
  elseif(d STREQUAL "PkgConfig::SODIUM")
    set(line "find_dependency(PkgConfig)\nif(NOT TARGET PkgConfig::SODIUM)\n  pkg_check_modules(SODIUM REQUIRED IMPORTED_TARGET libsodium)\nendif()")
  else()
    message(WARNING "cmake/Install.cmake: dogConfig.cmake does not know how to find ${d}; add it here")
    continue()
  endif()
  if(NOT line IN_LIST _dog_packages)
    list(APPEND _dog_packages "${line}")
    string(APPEND DOG_FIND_DEPENDENCIES "${line}\n")
  endif()
endforeach()

install(DIRECTORY include/dog DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.h")
install(TARGETS ${DOG_INSTALL_TARGETS} EXPORT dogTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
set(DOG_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/dog)
install(EXPORT dogTargets NAMESPACE dog:: DESTINATION ${DOG_CMAKE_DIR})
configure_package_config_file(cmake/dogConfig.cmake.in ${PROJECT_BINARY_DIR}/dogConfig.cmake
  INSTALL_DESTINATION ${DOG_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/dogConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)  # 0.x: a minor release may change the API
install(FILES ${PROJECT_BINARY_DIR}/dogConfig.cmake ${PROJECT_BINARY_DIR}/dogConfigVersion.cmake
  DESTINATION ${DOG_CMAKE_DIR})

# dog.pc: the same libraries in link order, and the pkg-config modules they need. Static
# libraries, so everything is in Libs (an app needs no --static).
set(DOG_PC_LIBS "")
foreach(t IN LISTS DOG_INSTALL_TARGETS)
  get_target_property(type ${t} TYPE)
  if(type STREQUAL "STATIC_LIBRARY")
    string(APPEND DOG_PC_LIBS " -l${t}")
  endif()
endforeach()
set(DOG_PC_EXTRA_LIBS "")
if(DOG_SANITIZE)
  set(DOG_PC_EXTRA_LIBS " -fsanitize=address,undefined")
endif()
# Relocatable: the prefix is found from the .pc file's own folder.
file(RELATIVE_PATH DOG_PC_TO_PREFIX /p/${CMAKE_INSTALL_LIBDIR}/pkgconfig /p)
string(REGEX REPLACE "/$" "" DOG_PC_TO_PREFIX "${DOG_PC_TO_PREFIX}")
configure_file(cmake/dog.pc.in ${PROJECT_BINARY_DIR}/dog.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/dog.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# The example chat node, for deploy/ (systemd unit, container image).
if(TARGET dog-chat)
  install(TARGETS dog-chat RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
