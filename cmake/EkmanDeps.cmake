# Finds every library Ekman links through pkg-config. A missing one stops the
# configure step with the name of the Debian package that provides it.
find_package(PkgConfig)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR "pkg-config not found: install it with 'apt-get install pkg-config' "
                      "(or run deploy/install-deps.sh)")
endif()

# ek_require_pkg(<target suffix> <pkg-config name> <Debian package>)
function(ek_require_pkg name module debpkg)
  pkg_check_modules(EKDEP_${name} QUIET IMPORTED_TARGET GLOBAL ${module})
  if(NOT EKDEP_${name}_FOUND)
    message(FATAL_ERROR "Ekman needs ${module} (pkg-config '${module}') which was not found: "
                        "install the Debian package '${debpkg}' "
                        "(apt-get install ${debpkg}), or run deploy/install-deps.sh")
  endif()
  add_library(ek::${name} ALIAS PkgConfig::EKDEP_${name})
  message(STATUS "Found ${module} ${EKDEP_${name}_VERSION}")
endfunction()

ek_require_pkg(rabbitmq     librabbitmq   librabbitmq-dev)
ek_require_pkg(curl         libcurl       libcurl4-openssl-dev)
ek_require_pkg(virt         libvirt       libvirt-dev)
ek_require_pkg(ssh2         libssh2       libssh2-1-dev)
ek_require_pkg(jsonc        json-c        libjson-c-dev)
ek_require_pkg(pq           libpq         libpq-dev)
ek_require_pkg(openssl      openssl       libssl-dev)
ek_require_pkg(zstd         libzstd       libzstd-dev)
ek_require_pkg(microhttpd   libmicrohttpd libmicrohttpd-dev)
ek_require_pkg(xml2         libxml-2.0    libxml2-dev)
# OS morphing of Windows guests: offline registry hives (worker/morph/windows)
ek_require_pkg(hivex        hivex         libhivex-dev)
if(EKMAN_BUILD_TESTS)
  ek_require_pkg(cmocka     cmocka        libcmocka-dev)
endif()

find_package(Threads REQUIRED)

# Data plane (issue #5): XXH3 checksums (used header-only, so the writer stays
# statically linkable) and libnbd for the NBD source reader.
ek_require_pkg(xxhash       libxxhash     libxxhash-dev)
ek_require_pkg(nbd          libnbd        libnbd-dev)
