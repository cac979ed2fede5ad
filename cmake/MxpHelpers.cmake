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
# argument), with MXFARM and MXPROBE in its environment. The release suite runs both. Sanitizer
# builds run one: SANITIZED_BACKEND's, or else uring and uv in turn from one script to the next,
# so that each backend runs about half of the scripts under ASan (the backends' own code is the
# loop's unit tests' business, which run in full; this halves the sanitizer suite's time).
#
# COST: the script's usual seconds, for a long one. ctest starts the costliest tests first, and a
# fresh tree (CI's) has no timing history: without it a two-minute test can start last and
# alone make the suite's tail.
function(mxp_backend_test name script timeout)
  cmake_parse_arguments(T "" "SANITIZED_BACKEND;COST" "ENV" ${ARGN})
  set(env "MXFARM=$<TARGET_FILE:mxfarm>" "MXPROBE=$<TARGET_FILE:mxprobe>" ${T_ENV})
  set(backends uring uv)
  if(MXP_SANITIZE OR MXP_TSAN)
    if(T_SANITIZED_BACKEND)
      set(backends ${T_SANITIZED_BACKEND})
    else()
      get_property(turn GLOBAL PROPERTY MXP_SANITIZED_TURN)
      if(turn STREQUAL "uv")
        set(backends uv)
        set_property(GLOBAL PROPERTY MXP_SANITIZED_TURN uring)
      else()
        set(backends uring)
        set_property(GLOBAL PROPERTY MXP_SANITIZED_TURN uv)
      endif()
    endif()
  endif()
  foreach(backend IN LISTS backends)
    add_test(NAME ${name}_${backend} COMMAND bash ${script} ${backend})
    set_tests_properties(${name}_${backend} PROPERTIES
      LABELS integration TIMEOUT ${timeout}
      ENVIRONMENT "${env}")
    if(T_COST)
      set_tests_properties(${name}_${backend} PROPERTIES COST ${T_COST})
    endif()
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
