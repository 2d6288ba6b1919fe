# Read by cmake/SluicePluginSelection.cmake: nat needs the conntrack table.
set(SLUICE_PLUGIN_DEPENDS conntrack)
