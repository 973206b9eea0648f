// A test plugin as one built against a vitlab with another plugin ABI registers itself: loading
// it is refused before its factory could ever run.
#include "vitlab/attention/mha.h"
#include "vitlab/attention/registry.h"

[[maybe_unused]] static const int registered =
    vitlab_register_attention(VITLAB_PLUGIN_ABI + 1, "mha_from_the_future", &vitlab::make_mha);
