# BPF build helpers shared by the Sluice tree and by out-of-tree plugins.
#
#   sluice_bpf_skeleton(<target> <name> <source.bpf.c> [INCLUDES dir...])
#       compiles <source.bpf.c> with clang -target bpf into <name>.bpf.o and
#       makes <name>.skel.h (bpftool gen skeleton); <target> is an INTERFACE
#       library whose include path holds the skeleton.
#
#   sluice_add_plugin(<name> SOURCES a.cpp ... BPF stages.bpf.c [LIBRARIES ...])
#       builds <name>.so with the BPF object embedded through its skeleton
#       (include "<name>.skel.h"), ready for the plugin directory.
include_guard(GLOBAL)

find_program(SLUICE_CLANG NAMES clang clang-16 clang-15 clang-14 REQUIRED)
find_program(SLUICE_BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)

if(NOT DEFINED SLUICE_BPF_ARCH_INCLUDE)
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-multiarch
                  OUTPUT_VARIABLE _sluice_multiarch OUTPUT_STRIP_TRAILING_WHITESPACE
                  ERROR_QUIET)
  if(NOT _sluice_multiarch)
    set(_sluice_multiarch "${CMAKE_SYSTEM_PROCESSOR}-linux-gnu")
  endif()
  set(SLUICE_BPF_ARCH_INCLUDE "/usr/include/${_sluice_multiarch}" CACHE PATH
      "Directory holding asm/types.h for BPF compilation")
endif()

function(sluice_bpf_skeleton target name source)
  cmake_parse_arguments(ARG "" "" "INCLUDES;DEPENDS" ${ARGN})
  set(out_dir "${CMAKE_CURRENT_BINARY_DIR}/${target}_skel")
  set(object "${out_dir}/${name}.bpf.o")
  set(skeleton "${out_dir}/${name}.skel.h")
  set(include_flags)
  foreach(dir IN LISTS ARG_INCLUDES SLUICE_BPF_INCLUDE_DIRS)
    list(APPEND include_flags "-I${dir}")
  endforeach()
  get_filename_component(abs_source "${source}" ABSOLUTE)
  file(GLOB_RECURSE sdk_bpf_headers CONFIGURE_DEPENDS "${SLUICE_BPF_SDK_INCLUDE}/sluice/bpf/*")
  # The depfile makes headers next to the source (a plugin's layout and
  # shared helpers) rebuild the object when they change.
  add_custom_command(
    OUTPUT "${object}"
    COMMAND ${CMAKE_COMMAND} -E make_directory "${out_dir}"
    COMMAND ${SLUICE_CLANG} -O2 -g -target bpf -Wall -Werror -D__BPF__
            -I${SLUICE_BPF_SDK_INCLUDE} ${include_flags} -I${SLUICE_BPF_ARCH_INCLUDE}
            -MD -MF "${object}.d" -c "${abs_source}" -o "${object}"
    DEPENDS "${abs_source}" ${sdk_bpf_headers} ${ARG_DEPENDS}
    DEPFILE "${object}.d"
    COMMENT "BPF ${name}: clang -target bpf"
    VERBATIM)
  add_custom_command(
    OUTPUT "${skeleton}"
    COMMAND ${SLUICE_BPFTOOL} gen skeleton "${object}" name "${name}" > "${skeleton}"
    DEPENDS "${object}"
    COMMENT "BPF ${name}: bpftool gen skeleton"
    VERBATIM)
  add_custom_target(${target}_gen DEPENDS "${skeleton}")
  add_library(${target} INTERFACE)
  add_dependencies(${target} ${target}_gen)
  target_include_directories(${target} INTERFACE "${out_dir}")
  set_property(TARGET ${target} PROPERTY SLUICE_BPF_OBJECT "${object}")
endfunction()

function(sluice_add_plugin name)
  cmake_parse_arguments(ARG "" "" "SOURCES;BPF;LIBRARIES;INCLUDES" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "sluice_add_plugin(${name}): SOURCES is required")
  endif()
  add_library(sluice_plugin_${name} MODULE ${ARG_SOURCES})
  set(index 0)
  foreach(bpf_source IN LISTS ARG_BPF)
    get_filename_component(stem "${bpf_source}" NAME)
    string(REGEX REPLACE "\\.bpf\\.c$" "" stem "${stem}")
    string(MAKE_C_IDENTIFIER "${stem}" stem)
    sluice_bpf_skeleton(sluice_plugin_${name}_bpf${index} ${stem} ${bpf_source}
                        INCLUDES ${ARG_INCLUDES})
    target_link_libraries(sluice_plugin_${name} PRIVATE sluice_plugin_${name}_bpf${index})
    math(EXPR index "${index} + 1")
  endforeach()
  target_link_libraries(sluice_plugin_${name} PRIVATE Sluice::sdk ${ARG_LIBRARIES})
  target_compile_features(sluice_plugin_${name} PRIVATE cxx_std_20)
  set_target_properties(sluice_plugin_${name} PROPERTIES
    PREFIX "" OUTPUT_NAME "${name}"
    CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
  if(DEFINED SLUICE_PLUGIN_OUTPUT_DIR)
    set_target_properties(sluice_plugin_${name} PROPERTIES
      LIBRARY_OUTPUT_DIRECTORY "${SLUICE_PLUGIN_OUTPUT_DIR}")
  endif()
endfunction()
