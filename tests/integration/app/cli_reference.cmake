# Fails when docs/cli.md is not what `mxprobe help --markdown` prints (the reference drifted from
# the CLI definition). Regenerate: cmake --build --preset release --target cli-reference
execute_process(COMMAND ${MXPROBE} help --markdown OUTPUT_VARIABLE generated RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "mxprobe help --markdown exited ${rc}")
endif()
file(READ ${DOC} committed)
if(NOT generated STREQUAL committed)
  message(FATAL_ERROR "${DOC} differs from `mxprobe help --markdown`: regenerate it with "
                      "`cmake --build --preset release --target cli-reference` and commit it")
endif()
message(STATUS "${DOC} is current")
