// A shared library that is not a Sluice plugin (no descriptor).
extern "C" __attribute__((visibility("default"))) int not_a_plugin_function() { return 42; }
