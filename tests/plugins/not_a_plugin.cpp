// A shared library with no VITLAB_REGISTER_ATTENTION line: loading it as a plugin is an error.
extern "C" int not_a_plugin() { return 0; }
