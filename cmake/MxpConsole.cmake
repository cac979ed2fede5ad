# The operator console (admin-wasm/) is a separate Emscripten build, configured through emcmake
# and built on every build of this tree (its own ninja makes that cheap when nothing changed).
# Output: ${MXP_CONSOLE_DIR} (index.html, index.js, index.wasm) for `mxprobe serve --console`.
include(ExternalProject)
find_program(MXP_EMCMAKE emcmake)
find_program(MXP_NODE node)
if(NOT MXP_EMCMAKE OR NOT MXP_NODE)
  message(FATAL_ERROR "the console needs Emscripten and node (run tools/setup.sh), "
                      "or configure with -DMXP_BUILD_CONSOLE=OFF")
endif()
if(NOT EXISTS ${PROJECT_SOURCE_DIR}/third_party/imgui/imgui.cpp)
  message(FATAL_ERROR "Dear ImGui's source is not in third_party/imgui (run tools/setup.sh), "
                      "or configure with -DMXP_BUILD_CONSOLE=OFF")
endif()
set(MXP_CONSOLE_BUILD ${CMAKE_BINARY_DIR}/admin-wasm)
set(MXP_CONSOLE_DIR ${MXP_CONSOLE_BUILD}/dist CACHE INTERNAL "the built console")
# Debian's emscripten 3.1.6 needs node-acorn from /usr/share/nodejs, and node 20 refuses the
# flags of emcmake's default emulator (docs/building-console.md).
set(env ${CMAKE_COMMAND} -E env NODE_PATH=/usr/share/nodejs)
ExternalProject_Add(console
  SOURCE_DIR ${PROJECT_SOURCE_DIR}/admin-wasm
  BINARY_DIR ${MXP_CONSOLE_BUILD}
  CONFIGURE_COMMAND ${env} ${MXP_EMCMAKE} ${CMAKE_COMMAND} -S <SOURCE_DIR> -B <BINARY_DIR>
                    -G Ninja -DCMAKE_BUILD_TYPE=Release
                    -DCMAKE_CROSSCOMPILING_EMULATOR=${MXP_NODE}
  BUILD_COMMAND ${env} ${CMAKE_COMMAND} --build <BINARY_DIR>
  INSTALL_COMMAND ""
  BUILD_ALWAYS ON
  USES_TERMINAL_BUILD OFF
  BUILD_BYPRODUCTS ${MXP_CONSOLE_DIR}/index.html ${MXP_CONSOLE_DIR}/index.js
                   ${MXP_CONSOLE_DIR}/index.wasm)
