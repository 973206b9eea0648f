// A test plugin that registers a name vitlab has built in: loading it is an error naming both.
#include "vitlab/attention/mha.h"
#include "vitlab/attention/registry.h"

VITLAB_REGISTER_ATTENTION(mha, vitlab::make_mha)
