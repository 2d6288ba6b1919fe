# Checks a plugin selection before anything is built: every selected plugin
# must exist, and every plugin it needs (SLUICE_PLUGIN_DEPENDS, set by
# <plugins_dir>/<name>/plugin.cmake) must be selected too. Fails the
# configuration with a message that says what to add.
if(CMAKE_SCRIPT_MODE_FILE)
  cmake_policy(VERSION 3.25)  # IN_LIST; a script has no project() to set it
endif()

function(sluice_check_plugin_selection plugins_dir all selected)
  foreach(plugin IN LISTS selected)
    if(NOT plugin IN_LIST all)
      message(FATAL_ERROR "SLUICE_PLUGINS: unknown plugin '${plugin}' (known: ${all})")
    endif()
  endforeach()
  foreach(plugin IN LISTS selected)
    set(SLUICE_PLUGIN_DEPENDS)
    include(${plugins_dir}/${plugin}/plugin.cmake OPTIONAL)
    foreach(dep IN LISTS SLUICE_PLUGIN_DEPENDS)
      if(NOT dep IN_LIST selected)
        string(REPLACE ";" "\\;" shown "${selected}")
        message(FATAL_ERROR "SLUICE_PLUGINS: plugin '${plugin}' needs plugin '${dep}', which "
                            "is not selected. Add it: -DSLUICE_PLUGINS=\"${shown};${dep}\"")
      endif()
    endforeach()
  endforeach()
endfunction()

# cmake -DPLUGINS_DIR=... -DALL=a,b -DSELECTED=b -P SluicePluginSelection.cmake
# (lists comma-separated) runs the check alone; the tests use it.
if(CMAKE_SCRIPT_MODE_FILE STREQUAL CMAKE_CURRENT_LIST_FILE)
  string(REPLACE "," ";" all "${ALL}")
  string(REPLACE "," ";" selected "${SELECTED}")
  sluice_check_plugin_selection("${PLUGINS_DIR}" "${all}" "${selected}")
  message(STATUS "plugin selection '${SELECTED}' is complete")
endif()
