# Small helpers shared by engine/, tests/ and bench/.

# Adds every listed subdirectory that has a CMakeLists.txt.
function(mxp_add_subdirs)
  foreach(dir IN LISTS ARGN)
    if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/${dir}/CMakeLists.txt)
      add_subdirectory(${dir})
    endif()
  endforeach()
endfunction()

# mxp_unit_test(NAME SOURCES a.cpp b.cpp LIBS lib...): a GoogleTest executable registered with ctest.
function(mxp_unit_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} GTest::gtest GTest::gmock GTest::gtest_main)
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES LABELS unit)
endfunction()

# mxp_backend_test(NAME SCRIPT TIMEOUT [ENV k=v...] [SANITIZED_BACKEND b]): an integration
# script run once per event-loop backend (NAME_uring, NAME_uv; the script gets the backend as its
# argument), with MXFARM and MXPROBE in its environment. SANITIZED_BACKEND: sanitizer builds run
# only that backend's script, for a long test whose findings do not depend on the backend (the
# release suite runs both; the backends themselves are the loop's unit tests' business).
function(mxp_backend_test name script timeout)
  cmake_parse_arguments(T "" "SANITIZED_BACKEND" "ENV" ${ARGN})
  set(env "MXFARM=$<TARGET_FILE:mxfarm>" "MXPROBE=$<TARGET_FILE:mxprobe>" ${T_ENV})
  set(backends uring uv)
  if(MXP_SANITIZE AND T_SANITIZED_BACKEND)
    set(backends ${T_SANITIZED_BACKEND})
  endif()
  foreach(backend IN LISTS backends)
    add_test(NAME ${name}_${backend} COMMAND bash ${script} ${backend})
    set_tests_properties(${name}_${backend} PROPERTIES
      LABELS integration TIMEOUT ${timeout}
      ENVIRONMENT "${env}")
  endforeach()
endfunction()

# mxp_fuzz_target(NAME SOURCE file.cpp LIBS lib... CORPUS dir): a libFuzzer target.
# With MXP_FUZZ (clang) it is a real libFuzzer binary; otherwise it links a small driver that
# replays files. Either way ctest replays the committed corpus on every run.
function(mxp_fuzz_target name)
  cmake_parse_arguments(F "" "SOURCE;CORPUS" "LIBS" ${ARGN})
  add_executable(${name} ${F_SOURCE})
  target_link_libraries(${name} PRIVATE ${F_LIBS})
  if(MXP_FUZZ)
    target_compile_options(${name} PRIVATE -fsanitize=fuzzer)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
    add_test(NAME ${name}_corpus COMMAND ${name} -runs=0 ${F_CORPUS})
  else()
    target_sources(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests/fuzz/replay_main.cpp)
    add_test(NAME ${name}_corpus COMMAND ${name} ${F_CORPUS})
  endif()
  set_tests_properties(${name}_corpus PROPERTIES LABELS fuzz)
endfunction()
