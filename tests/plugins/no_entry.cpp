// A shared library without the rguard entry point: the loader must refuse it.
extern "C" __attribute__((visibility("default"))) int not_an_rguard_plugin() { return 1; }
