# Read by cpack for each generator (CPACK_PROJECT_CONFIG_FILE).
if(CPACK_GENERATOR STREQUAL "DEB" AND
   NOT CPACK_PACKAGING_INSTALL_PREFIX STREQUAL "/usr")
  message(FATAL_ERROR
    "The .deb needs a build configured with -DCMAKE_INSTALL_PREFIX=/usr "
    "(this one has ${CPACK_PACKAGING_INSTALL_PREFIX}): the service's unit and "
    "settings file name /usr/bin/voxprint and /etc/default/voxprint.")
endif()
# cuDNN (and the CUDA driver) are not Debian packages: dpkg-shlibdeps cannot
# name a package for libcudnn, and the unit hides device nodes from the
# service (PrivateDevices=yes). The .deb is a CPU build.
if(CPACK_GENERATOR STREQUAL "DEB" AND CPACK_VOXPRINT_WITH_CUDA)
  message(FATAL_ERROR
    "The .deb is built with -DVOXPRINT_WITH_CUDA=OFF: cuDNN is no Debian "
    "package (dpkg-shlibdeps finds none for libcudnn) and voxprint.service "
    "runs without device access.")
endif()
