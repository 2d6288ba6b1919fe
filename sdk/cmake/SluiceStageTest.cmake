# sluice_add_stage_test(<target> SOURCES <file>... PLUGINS <name>...
#                       [LIBRARIES <lib>...] [GTEST_ARGS <arg>...])
#
# A gtest executable of stage tests (Sluice::testing) run on the real
# kernel: it is built after the plugins it loads (sluice_add_plugin targets),
# sees the path of each as <NAME>_PLUGIN (e.g. NAT_PLUGIN) and the directory
# each plugin was declared in on its include path, and its tests are labelled `bpf`
# with a 60 s timeout (they need root). GTEST_ARGS go to
# gtest_discover_tests (e.g. TEST_PREFIX "nat.").
function(sluice_add_stage_test target)
  cmake_parse_arguments(ARG "" "" "SOURCES;PLUGINS;LIBRARIES;GTEST_ARGS" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "sluice_add_stage_test(${target}): SOURCES is required")
  endif()
  find_package(GTest REQUIRED)
  include(GoogleTest)
  add_executable(${target} ${ARG_SOURCES})
  target_link_libraries(${target} PRIVATE Sluice::testing GTest::gtest_main ${ARG_LIBRARIES})
  target_compile_features(${target} PRIVATE cxx_std_20)
  foreach(plugin IN LISTS ARG_PLUGINS)
    if(NOT TARGET sluice_plugin_${plugin})
      message(FATAL_ERROR "sluice_add_stage_test(${target}): no plugin '${plugin}' "
                          "(declare it with sluice_add_plugin first)")
    endif()
    add_dependencies(${target} sluice_plugin_${plugin})
    # Where the plugin was declared: its headers (map layouts) are there.
    get_target_property(plugin_dir sluice_plugin_${plugin} SOURCE_DIR)
    target_include_directories(${target} PRIVATE ${plugin_dir})
    string(TOUPPER "${plugin}" macro)
    string(MAKE_C_IDENTIFIER "${macro}" macro)
    target_compile_definitions(${target} PRIVATE
      ${macro}_PLUGIN="$<TARGET_FILE:sluice_plugin_${plugin}>")
  endforeach()
  gtest_discover_tests(${target} ${ARG_GTEST_ARGS}
    PROPERTIES LABELS "bpf" TIMEOUT 60
    DISCOVERY_MODE PRE_TEST)
endfunction()
