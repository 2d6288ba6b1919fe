# Test fixture: beta is built on alpha.
set(SLUICE_PLUGIN_DEPENDS alpha)
