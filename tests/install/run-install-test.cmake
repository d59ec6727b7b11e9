# Runs by `ctest -R install-consumer` (see CMakeLists.txt here).
function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE result
                  OUTPUT_VARIABLE output ERROR_VARIABLE output)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "${what} failed (${result}):\n${output}")
  endif()
  message(STATUS "${what}: ok")
  set(output "${output}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
run("cmake --install (development)" ${CMAKE_COMMAND} --install ${BUILD_DIR}
    --prefix ${prefix} --component development)

# Only what a C++ user needs, and no static archive (libdir may be lib/ or
# lib/<multiarch>/).
foreach(header extractor.h error.h)
  if(NOT EXISTS ${prefix}/include/voxprint/${header})
    message(FATAL_ERROR "the installed tree has no include/voxprint/${header}")
  endif()
endforeach()
foreach(name libvoxprint.so voxprint.pc voxprint-config.cmake)
  file(GLOB_RECURSE found ${prefix}/lib*/${name})
  if(NOT found)
    message(FATAL_ERROR "the installed tree has no ${name}")
  endif()
endforeach()
file(GLOB_RECURSE archives ${prefix}/*.a)
if(archives)
  message(FATAL_ERROR "static archives installed: ${archives}")
endif()

set(model ${KIT_DIR}/models/pytorch_model.bin)
set(audio ${KIT_DIR}/audio/sample.wav)
set(expected ${KIT_DIR}/expected/sample_wav.whole.npy)

# 1. CMake: find_package(voxprint) -> voxprint::voxprint.
run("configure the outside project" ${CMAKE_COMMAND} -S ${CONSUMER_DIR}
    -B ${WORK_DIR}/cmake-build -G ${GENERATOR}
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_CXX_COMPILER=${CXX}
    -DCMAKE_BUILD_TYPE=Release)
run("build it (find_package)" ${CMAKE_COMMAND} --build ${WORK_DIR}/cmake-build)
run("run it (find_package)" ${WORK_DIR}/cmake-build/embed-one ${model} ${audio}
    ${expected})
message(STATUS "${output}")

# 2. pkg-config, as a Makefile would use it: flags from voxprint.pc only.
file(GLOB_RECURSE pc ${prefix}/voxprint.pc)
get_filename_component(pc_dir ${pc} DIRECTORY)
set(ENV{PKG_CONFIG_PATH} ${pc_dir})
run("pkg-config" pkg-config --cflags --libs voxprint)
string(STRIP "${output}" flags)
separate_arguments(flags UNIX_COMMAND "${flags}")
run("build it (pkg-config)" ${CXX} -std=c++20 -O1
    ${CONSUMER_DIR}/embed-one.cc ${flags} -o ${WORK_DIR}/embed-one-pc)
# The prefix is not in the loader's path: as any uninstalled prefix.
file(GLOB_RECURSE so ${prefix}/libvoxprint.so)
get_filename_component(lib_dir ${so} DIRECTORY)
run("run it (pkg-config)" ${CMAKE_COMMAND} -E env LD_LIBRARY_PATH=${lib_dir}
    ${WORK_DIR}/embed-one-pc ${model} ${audio} ${expected})
message(STATUS "${output}")
