# godwit_add_gtest(NAME <name> LABELS <label>... SOURCES <src>... [LIBS <lib>...] [TIMEOUT s])
# One GoogleTest executable registered with ctest as ONE test (fast to list, clear
# label). Every test gets at least one label; `unit` is for fast host tests.
function(godwit_add_gtest)
  cmake_parse_arguments(T "" "NAME;TIMEOUT" "LABELS;SOURCES;LIBS" ${ARGN})
  if(NOT T_LABELS)
    message(FATAL_ERROR "godwit_add_gtest(${T_NAME}): LABELS is required")
  endif()
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main GTest::gmock
                        godwit_host_flags Threads::Threads)
  set_target_properties(${T_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests)
  add_test(NAME ${T_NAME} COMMAND ${T_NAME} --gtest_color=no)
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  set_tests_properties(${T_NAME} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT})
endfunction()

# godwit_add_script_test(NAME <name> LABELS <label>... COMMAND <cmd>... [TIMEOUT s] [COST n])
# A test driven by a script (emulator boots, interop with qemu-img, two-process runs).
function(godwit_add_script_test)
  cmake_parse_arguments(T "" "NAME;TIMEOUT;COST" "LABELS;COMMAND" ${ARGN})
  if(NOT T_LABELS)
    message(FATAL_ERROR "godwit_add_script_test(${T_NAME}): LABELS is required")
  endif()
  add_test(NAME ${T_NAME} COMMAND ${T_COMMAND})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  set_tests_properties(${T_NAME} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "GODWIT_BUILD_DIR=${PROJECT_BINARY_DIR};GODWIT_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
  # COST: ctest -j starts costly tests first (a clean clone has no timing data), so the
  # long emulated-host tests overlap the short ones instead of running last.
  if(T_COST)
    set_tests_properties(${T_NAME} PROPERTIES COST ${T_COST})
  endif()
endfunction()

# godwit_add_fuzzer(NAME <name> SOURCES <src>... [LIBS ...] [CORPUS dir] [SECONDS n])
# A libFuzzer target built with clang (a separate compiler from the main build, so it
# is an external build step), plus a ctest `fuzz` test that runs it briefly.
# The sources must be hosted C++ that compiles with clang++ -std=c++20 and only the
# SOURCES listed (plus header-only deps); LIB sources go in SOURCES too.
function(godwit_add_fuzzer)
  cmake_parse_arguments(F "" "NAME;SECONDS" "SOURCES;INCLUDES;CORPUS;FLAGS" ${ARGN})
  if(NOT GODWIT_FUZZ)
    return()
  endif()
  find_program(GODWIT_CLANGXX NAMES clang++ clang++-14 REQUIRED)
  # The ctest run is a smoke run that keeps every parser's fuzzer honest in CI (9 targets
  # share the CI's 2 cores); GODWIT_FUZZ_SECONDS in the environment runs longer campaigns.
  if(NOT F_SECONDS)
    set(F_SECONDS 10)
  endif()
  set(out ${PROJECT_BINARY_DIR}/fuzz/${F_NAME})
  set(inc_flags "")
  foreach(i ${F_INCLUDES})
    list(APPEND inc_flags -I${i})
  endforeach()
  add_custom_command(
    OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${PROJECT_BINARY_DIR}/fuzz
    COMMAND ${GODWIT_CLANGXX} -std=c++20 -O1 -g1 -fsanitize=fuzzer,address,undefined
            -fno-sanitize-recover=undefined ${inc_flags} ${F_FLAGS} ${F_SOURCES} -o ${out}
    DEPENDS ${F_SOURCES}
    COMMENT "Building libFuzzer target ${F_NAME}"
    VERBATIM COMMAND_EXPAND_LISTS)
  add_custom_target(${F_NAME} ALL DEPENDS ${out})
  set(corpus_dir ${PROJECT_BINARY_DIR}/fuzz/${F_NAME}.corpus)
  add_test(NAME ${F_NAME}
    COMMAND ${CMAKE_COMMAND} -E env ASAN_OPTIONS=detect_leaks=1
            ${PROJECT_SOURCE_DIR}/tests/fuzz/run-fuzzer ${out} ${corpus_dir} ${F_SECONDS} ${F_CORPUS})
  set_tests_properties(${F_NAME} PROPERTIES LABELS "fuzz" TIMEOUT 300)
endfunction()
